//! Errors found while loading and expanding scenarios, each tied to a file position.
//!
//! The main type is [`LoadError`]: a [`LoadErrorKind`] plus the file, line and column it is
//! about and the source line, rendered as `file:line:col: message` followed by the line and
//! a caret under the offending value. [`LoadErrors`] collects the errors of many files, and
//! [`ExpandError`] wraps the error of one matrix instance. This module also turns
//! serde-saphyr's errors into these kinds. It decides no exit status; the caller does.

use std::fmt;
use std::path::{Path, PathBuf};

use super::span::{Mark, Position};

/// What is wrong with a scenario file.
///
/// Messages are lowercase, name the offending object in backticks and never repeat the
/// `#[source]` cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The file could not be read.
    #[error("failed to read scenario file")]
    Read(#[source] std::io::Error),
    /// The file is not valid YAML (or holds no document, or more than one).
    #[error("invalid yaml: {message}")]
    Syntax {
        /// What the parser reported.
        message: String,
    },
    /// A key that the mapping does not allow, often a typo.
    #[error("unknown key `{key}`{}; expected one of {}", did_you_mean(.key, .allowed), list(.allowed))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The keys this mapping allows.
        allowed: Vec<String>,
    },
    /// The same key twice in one mapping.
    #[error("duplicate key `{key}`")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A value of the wrong type, such as a string where a list belongs.
    #[error("wrong type: expected {expected}{}", found_suffix(.found))]
    WrongType {
        /// What the model wants here.
        expected: String,
        /// What the file has, when it can be told.
        found: Option<String>,
    },
    /// A value of the right type that the model does not accept.
    #[error("{message}")]
    InvalidValue {
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// A required key is absent.
    #[error("missing required key `{key}` in {context}")]
    MissingField {
        /// The missing key.
        key: String,
        /// Where it is missing, such as "the `exec` step".
        context: String,
    },
    /// A step whose kind key is not one of the step kinds.
    #[error("unknown step kind `{kind}`{}; expected one of {}{}", did_you_mean(.kind, .allowed), list(.allowed), .hint.as_deref().unwrap_or_default())]
    UnknownStepKind {
        /// The key as written.
        kind: String,
        /// The step kinds.
        allowed: Vec<String>,
        /// A hint for a common mistake, starting with "; ".
        hint: Option<String>,
    },
    /// A step that is not a mapping with exactly one key.
    #[error("a step is a mapping with exactly one key, its kind (one of {}); common keys such as `name` go inside it: `- exec: {{ name: ..., command: [...] }}`", list(.allowed))]
    StepShape {
        /// The step kinds.
        allowed: Vec<String>,
    },
    /// An `apiVersion` other than `qus/v1`.
    #[error("unsupported apiVersion `{found}`; expected `qus/v1`")]
    UnknownApiVersion {
        /// The version as written.
        found: String,
    },
    /// A scenario name outside `[a-z0-9-]`.
    #[error("invalid scenario name `{name}`: {reason}")]
    BadName {
        /// The name as written.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Two files declare the same scenario name.
    #[error("duplicate scenario name `{name}`; also defined at {first}")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// `file:line:col` of the first definition.
        first: String,
    },
    /// A `${NAME}` that is not declared, not a matrix key, not built in and has no default.
    #[error("unknown variable `{name}`{}; declare it under `vars`, add a matrix key, give an inline default (`${{{name}:-value}}`) or use a built-in ({})", did_you_mean(.name, .known), list(.builtins))]
    UnknownVariable {
        /// The variable name.
        name: String,
        /// The names in scope (declared variables, matrix keys, built-ins), for suggestions.
        known: Vec<String>,
        /// The built-in variable names.
        builtins: Vec<String>,
    },
    /// A malformed `${...}` reference, or a field reference that does not fit the matrix.
    #[error("{message}")]
    BadVariable {
        /// What is wrong with the reference.
        message: String,
    },
    /// A declared variable with no default and no value given at run time.
    #[error(
        "variable `{name}` has no value; pass `--var {name}=...` or set the environment variable `{name}`"
    )]
    UnsetVariable {
        /// The variable name.
        name: String,
    },
    /// A regular expression that does not compile.
    #[error("invalid regex `{regex}`")]
    BadRegex {
        /// The pattern after variable substitution.
        regex: String,
        /// Why it does not compile.
        #[source]
        source: regex::Error,
    },
    /// A duration that is not like `30s`, `5m`, `1h` or `500ms`.
    #[error(
        "invalid duration `{value}`: {reason}; write a number and a unit (`ms`, `s`, `m`, `h`), such as `30s` or `1m30s`"
    )]
    BadDuration {
        /// The duration as written.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A matrix that cannot be expanded (an empty list, mixed shapes, duplicates).
    #[error("invalid matrix: {reason}")]
    InvalidMatrix {
        /// Which rule it breaks.
        reason: String,
    },
    /// A `build` step with both or neither of `containerfile` and `context`.
    #[error("a `build` step needs exactly one of `containerfile` and `context`, found {}", both_or_neither(*.both))]
    BuildSource {
        /// `true` for both, `false` for neither.
        both: bool,
    },
    /// A scenario with an empty `steps` list.
    #[error("`steps` is empty; a scenario needs at least one step")]
    EmptySteps,
}

impl LoadErrorKind {
    /// A stable kebab-case name for the class of error, for tests and machine output.
    pub fn code(&self) -> &'static str {
        match self {
            LoadErrorKind::Read(_) => "read",
            LoadErrorKind::Syntax { .. } => "syntax",
            LoadErrorKind::UnknownKey { .. } => "unknown-key",
            LoadErrorKind::DuplicateKey { .. } => "duplicate-key",
            LoadErrorKind::WrongType { .. } => "wrong-type",
            LoadErrorKind::InvalidValue { .. } => "invalid-value",
            LoadErrorKind::MissingField { .. } => "missing-field",
            LoadErrorKind::UnknownStepKind { .. } => "unknown-step-kind",
            LoadErrorKind::StepShape { .. } => "step-shape",
            LoadErrorKind::UnknownApiVersion { .. } => "unknown-api-version",
            LoadErrorKind::BadName { .. } => "bad-name",
            LoadErrorKind::DuplicateName { .. } => "duplicate-name",
            LoadErrorKind::UnknownVariable { .. } => "unknown-variable",
            LoadErrorKind::BadVariable { .. } => "bad-variable",
            LoadErrorKind::UnsetVariable { .. } => "unset-variable",
            LoadErrorKind::BadRegex { .. } => "bad-regex",
            LoadErrorKind::BadDuration { .. } => "bad-duration",
            LoadErrorKind::InvalidMatrix { .. } => "invalid-matrix",
            LoadErrorKind::BuildSource { .. } => "build-source",
            LoadErrorKind::EmptySteps => "empty-steps",
        }
    }

    /// Shorthand for [`LoadErrorKind::InvalidValue`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        LoadErrorKind::InvalidValue {
            message: message.into(),
        }
    }
}

fn found_suffix(found: &Option<String>) -> String {
    found
        .as_ref()
        .map(|f| format!(", found {f}"))
        .unwrap_or_default()
}

fn both_or_neither(both: bool) -> &'static str {
    if both { "both" } else { "neither" }
}

/// " (did you mean `x`?)" for the closest candidate within a small edit distance.
fn did_you_mean(word: &str, candidates: &[String]) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
pub(crate) fn closest<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = current;
        }
    }
    row[b.len()]
}

/// Formats names as "`a`, `b`, `c`".
fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The source line an error is about, with the marked range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Excerpt {
    /// The whole line, without its line break.
    text: String,
    /// Number of characters before the mark.
    before: usize,
    /// Number of characters marked (at least 1).
    width: usize,
}

impl Excerpt {
    fn new(source: &str, mark: &Mark) -> Option<Excerpt> {
        let position = mark.position?;
        let text = source.lines().nth(position.line - 1)?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        let before = (position.column - 1).min(text.chars().count());
        let rest = text.chars().count() - before;
        // Mark the value's text when it stays on this line, otherwise one character.
        let marked = mark
            .text(source)
            .filter(|t| !t.contains('\n'))
            .map_or(1, |t| t.chars().count());
        let width = marked.clamp(1, rest.max(1));
        Some(Excerpt {
            text: text.to_owned(),
            before,
            width,
        })
    }

    /// Writes the gutter, the line and the caret line, each preceded by a newline.
    fn render(&self, line: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        // Keep tabs so the caret lines up with what a terminal shows.
        let lead: String = self
            .text
            .chars()
            .take(self.before)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "\n{pad} |\n{number} | {}", self.text)?;
        write!(f, "\n{pad} | {lead}{}", "^".repeat(self.width))
    }
}

/// A problem in a scenario file, with where it is.
///
/// Displays as `file:line:col: message`, then the source line with a caret under the
/// offending text. The `#[source]` of the kind, if any, is this error's source.
#[derive(Debug)]
pub struct LoadError(Box<Inner>);

/// The fields of a [`LoadError`], boxed to keep `Result`s small.
#[derive(Debug)]
struct Inner {
    path: PathBuf,
    position: Option<Position>,
    excerpt: Option<Excerpt>,
    kind: LoadErrorKind,
}

impl LoadError {
    /// An error at `mark` in the file `path` whose text is `source`.
    pub(crate) fn at(path: &Path, source: &str, mark: &Mark, kind: LoadErrorKind) -> Self {
        LoadError(Box::new(Inner {
            path: path.to_owned(),
            position: mark.position,
            excerpt: Excerpt::new(source, mark),
            kind,
        }))
    }

    /// An error about the whole file, with no position.
    pub(crate) fn file(path: &Path, kind: LoadErrorKind) -> Self {
        LoadError(Box::new(Inner {
            path: path.to_owned(),
            position: None,
            excerpt: None,
            kind,
        }))
    }

    /// The scenario file.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// The 1-based line, or `None` for errors about the whole file.
    pub fn line(&self) -> Option<usize> {
        self.0.position.map(|p| p.line)
    }

    /// The 1-based column in characters, or `None` for errors about the whole file.
    pub fn column(&self) -> Option<usize> {
        self.0.position.map(|p| p.column)
    }

    /// Line and column together.
    pub fn position(&self) -> Option<Position> {
        self.0.position
    }

    /// What is wrong.
    pub fn kind(&self) -> &LoadErrorKind {
        &self.0.kind
    }

    /// `file:line:col` (or just `file` without a position).
    pub fn location(&self) -> String {
        match self.0.position {
            Some(p) => format!("{}:{}:{}", self.0.path.display(), p.line, p.column),
            None => self.0.path.display().to_string(),
        }
    }

    /// The first line of the message, `file:line:col: message`, without the excerpt.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.location(), self.0.kind)
    }

    /// Sort key: file, then position.
    pub(crate) fn sort_key(&self) -> (PathBuf, Option<Position>) {
        (self.0.path.clone(), self.0.position)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.0.kind)?;
        if let (Some(excerpt), Some(p)) = (&self.0.excerpt, self.0.position) {
            excerpt.render(p.line, f)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

/// Every error found while loading a set of files, sorted by file and position.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct LoadErrors(pub(crate) Vec<LoadError>);

impl LoadErrors {
    /// The errors, sorted by file and position.
    pub fn errors(&self) -> &[LoadError] {
        &self.0
    }

    /// Number of errors (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a `LoadErrors` holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors, by value.
    pub fn into_vec(self) -> Vec<LoadError> {
        self.0
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn render_all(errors: &[LoadError]) -> String {
    let mut out = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n\n");
    if errors.len() > 1 {
        out.push_str(&format!("\n\n{} errors in scenario files", errors.len()));
    }
    out
}

/// A scenario that loaded but cannot be expanded with the given variables, such as a
/// declared variable with no default and no value, or an override that makes a regex invalid.
#[derive(Debug, thiserror::Error)]
#[error("failed to expand scenario `{instance}`")]
pub struct ExpandError {
    /// The instance (`name` or `name[key=value,...]`) that failed.
    pub instance: String,
    /// What is wrong, and where.
    #[source]
    pub error: LoadError,
}

/// Collects errors for one file, dropping repeats of the same message at the same place
/// (a matrix repeats each step once per instance).
pub(crate) struct Diags<'a> {
    path: &'a Path,
    source: &'a str,
    errors: Vec<LoadError>,
    seen: std::collections::BTreeSet<(Option<Position>, String)>,
}

impl<'a> Diags<'a> {
    /// An empty collector for the file `path` with text `source`.
    pub(crate) fn new(path: &'a Path, source: &'a str) -> Self {
        Diags {
            path,
            source,
            errors: Vec::new(),
            seen: std::collections::BTreeSet::new(),
        }
    }

    /// Records `kind` at `mark`, unless the same message is already recorded there.
    pub(crate) fn push(&mut self, mark: &Mark, kind: LoadErrorKind) {
        if self.seen.insert((mark.position, kind.to_string())) {
            self.errors
                .push(LoadError::at(self.path, self.source, mark, kind));
        }
    }

    /// The file's text.
    pub(crate) fn source(&self) -> &'a str {
        self.source
    }

    /// Number of errors recorded so far.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// The errors, sorted by position (stable for errors at the same place).
    pub(crate) fn into_errors(mut self) -> Vec<LoadError> {
        self.errors.sort_by_key(LoadError::position);
        self.errors
    }
}

/// Turns a serde-saphyr error into a [`LoadError`].
pub(crate) fn from_yaml(path: &Path, source: &str, err: &serde_saphyr::Error) -> LoadError {
    use serde_saphyr::Error as E;

    let err = unwrap_yaml(err);
    let mark = err
        .location()
        .map(|l| Mark::from_location(&l))
        .unwrap_or_default();
    let kind = match err {
        E::SerdeUnknownField {
            field, expected, ..
        } => LoadErrorKind::UnknownKey {
            key: field.clone(),
            allowed: expected.iter().map(|s| (*s).to_owned()).collect(),
        },
        E::SerdeUnknownVariant {
            variant, expected, ..
        } if expected == super::raw::STEP_KINDS => unknown_step_kind(variant),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => LoadErrorKind::invalid(format!(
            "invalid value `{variant}`; expected one of {}",
            list(&expected.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        )),
        E::DuplicateMappingKey { key, .. } => LoadErrorKind::DuplicateKey {
            key: key.clone().unwrap_or_else(|| "?".to_owned()),
        },
        E::SerdeMissingField { field, .. } => LoadErrorKind::MissingField {
            key: (*field).to_owned(),
            context: "this mapping".to_owned(),
        },
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => LoadErrorKind::WrongType {
            expected: expected.clone(),
            found: Some(unexpected.clone()),
        },
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => LoadErrorKind::invalid(format!("invalid value {unexpected}; expected {expected}")),
        E::SerdeInvalidLength { len, expected, .. } => {
            LoadErrorKind::invalid(format!("invalid length {len}; expected {expected}"))
        }
        E::Unexpected { expected, .. } => LoadErrorKind::WrongType {
            expected: humanize_expected(expected),
            found: describe_found(source, &mark),
        },
        E::InvalidScalar { ty, .. } => LoadErrorKind::WrongType {
            expected: humanize_scalar_type(ty),
            found: describe_found(source, &mark),
        },
        E::InvalidBooleanStrict { .. } => LoadErrorKind::WrongType {
            expected: "`true` or `false`".to_owned(),
            found: describe_found(source, &mark),
        },
        E::NullIntoString { .. } => LoadErrorKind::WrongType {
            expected: "a string".to_owned(),
            found: Some("nothing (null)".to_owned()),
        },
        E::ExpectedMappingEndAfterEnumVariantValue { .. }
        | E::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
        | E::ExpectedStringKeyForExternallyTaggedEnum { .. }
        | E::UnexpectedValueForUnitEnumVariant { .. } => LoadErrorKind::StepShape {
            allowed: step_kinds(),
        },
        E::MultipleDocuments { .. } => LoadErrorKind::Syntax {
            message: "more than one yaml document; a scenario file holds exactly one".to_owned(),
        },
        other => LoadErrorKind::Syntax {
            message: strip_location_suffix(&other.to_string()),
        },
    };
    LoadError::at(path, source, &mark, kind)
}

/// Looks through snippet and alias wrappers to the error that says what is wrong.
fn unwrap_yaml(err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    let mut err = err.without_snippet();
    // Alias errors wrap the error at the anchored node; bounded in case of odd nesting.
    for _ in 0..8 {
        match err {
            serde_saphyr::Error::AliasError { error, .. } => err = error.without_snippet(),
            _ => break,
        }
    }
    err
}

/// The step kinds as owned strings.
pub(crate) fn step_kinds() -> Vec<String> {
    super::raw::STEP_KINDS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn unknown_step_kind(kind: &str) -> LoadErrorKind {
    let hint = match kind {
        "name" | "timeout" | "retries" => Some(format!(
            "; `{kind}` goes inside the step's mapping: `- exec: {{ {kind}: ..., command: [...] }}`"
        )),
        "expect" => Some(
            "; `expect` goes inside the step's mapping: `- run: { image: ..., expect: {...} }`"
                .to_owned(),
        ),
        _ => None,
    };
    LoadErrorKind::UnknownStepKind {
        kind: kind.to_owned(),
        allowed: step_kinds(),
        hint,
    }
}

fn humanize_expected(expected: &str) -> String {
    match expected {
        "sequence start" => "a list".to_owned(),
        "mapping start" | "empty mapping start" => "a mapping".to_owned(),
        "string scalar" | "scalar" => "a string".to_owned(),
        other => other.to_owned(),
    }
}

fn humanize_scalar_type(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "bool" => "`true` or `false`".to_owned(),
        other => format!("a value of type `{other}`"),
    }
}

/// Describes the YAML node at `mark`: "a list", "a mapping" or the scalar in backticks.
fn describe_found(source: &str, mark: &Mark) -> Option<String> {
    let start = mark.byte_offset?;
    let rest = source.get(start..)?;
    let text = mark.text(source).filter(|t| !t.is_empty())?;
    if text.starts_with('[') || rest.starts_with("- ") || rest.starts_with("-\n") {
        return Some("a list".to_owned());
    }
    if text.starts_with('{') {
        return Some("a mapping".to_owned());
    }
    // A scalar followed by `:` is the first key of a block mapping.
    let after = rest.get(text.len()..).unwrap_or_default();
    let line_after = after.lines().next().unwrap_or_default().trim_start();
    if line_after.starts_with(':') {
        return Some("a mapping".to_owned());
    }
    let first_line = text.lines().next().unwrap_or_default();
    let shown: String = first_line.chars().take(40).collect();
    let ellipsis = if shown.len() < text.len() { "..." } else { "" };
    Some(format!("`{shown}{ellipsis}`"))
}

/// Removes serde-saphyr's " at line N, column M" suffix and lowercases the first letter.
fn strip_location_suffix(message: &str) -> String {
    let message = message.lines().next().unwrap_or_default();
    let trimmed = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => &message[..i],
        _ => message,
    };
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "malformed document".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(line: usize, column: usize, byte_offset: usize, byte_len: usize) -> Mark {
        Mark {
            position: Some(Position { line, column }),
            byte_offset: Some(byte_offset),
            byte_len,
        }
    }

    #[test]
    fn display_has_location_line_and_caret() {
        let source = "a: 1\nbogus: 2\n";
        let err = LoadError::at(
            Path::new("x.yaml"),
            source,
            &mark(2, 1, 5, 5),
            LoadErrorKind::DuplicateKey {
                key: "bogus".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            "x.yaml:2:1: duplicate key `bogus`\n  |\n2 | bogus: 2\n  | ^^^^^"
        );
        assert_eq!(err.line(), Some(2));
        assert_eq!(err.column(), Some(1));
        assert_eq!(err.summary(), "x.yaml:2:1: duplicate key `bogus`");
    }

    #[test]
    fn caret_is_clamped_to_the_line() {
        let source = "k: |\n  multi\n  line\n";
        let err = LoadError::at(
            Path::new("x.yaml"),
            source,
            &mark(1, 4, 3, 16),
            LoadErrorKind::EmptySteps,
        );
        assert!(err.to_string().ends_with("1 | k: |\n  |    ^"), "{err}");
    }

    #[test]
    fn file_errors_have_no_position() {
        let err = LoadError::file(
            Path::new("gone.yaml"),
            LoadErrorKind::Read(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert_eq!(err.to_string(), "gone.yaml: failed to read scenario file");
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(err.line(), None);
    }

    #[test]
    fn location_suffix_is_stripped() {
        assert_eq!(
            strip_location_suffix("Unclosed bracket '{' at line 4, column 11"),
            "unclosed bracket '{'"
        );
        assert_eq!(strip_location_suffix("no suffix"), "no suffix");
    }

    #[test]
    fn found_describes_nodes() {
        let source = "a: [1]\nb: foo\nc:\n  d: 1\n";
        assert_eq!(
            describe_found(source, &mark(1, 4, 3, 1)).as_deref(),
            Some("a list")
        );
        assert_eq!(
            describe_found(source, &mark(2, 4, 10, 3)).as_deref(),
            Some("`foo`")
        );
        assert_eq!(
            describe_found(source, &mark(4, 3, 19, 1)).as_deref(),
            Some("a mapping")
        );
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys: Vec<String> = ["command", "env", "expect"].map(String::from).to_vec();
        assert_eq!(closest("comand", &keys), Some("command"));
        assert_eq!(closest("expcet", &keys), Some("expect"));
        assert_eq!(closest("ENV", &keys), Some("env"));
        assert_eq!(closest("image", &keys), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn codes_are_kebab_case() {
        let kinds = [
            LoadErrorKind::EmptySteps,
            LoadErrorKind::BuildSource { both: true },
            LoadErrorKind::invalid("x"),
        ];
        for kind in kinds {
            assert!(
                kind.code()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
        }
    }
}
