//! Variable references in scenario strings and the values that override them.
//!
//! A string may hold `${NAME}`, `${NAME:-default}` and `${key.field}` (a field of a matrix
//! value); `$$` is a literal `$`, and a `$` followed by anything else is kept as it is, so
//! shell text such as `$HOME` passes through. Defaults are literal text up to the first `}`.
//! The main types are [`VarOverrides`] (what `--var`, the environment and the harness supply)
//! and the crate-internal template parser. Looking names up is `expand.rs`'s job.

use std::collections::BTreeMap;

/// Variables the harness provides to every scenario.
///
/// - `HOST_ARCH`: the host's architecture (default: the harness's compile target, such as
///   `x86_64`).
/// - `QUS_VERSION`: the image version tag of the QEMU the instance runs on, in a run with
///   `--qemu` (`11.1.3-1`); else [`DEFAULT_QUS_VERSION`] (`latest`).
/// - `QUS_VERSION_SUFFIX`: `-` and that version (`-11.1.3-1`) in a run with `--qemu`, else
///   empty: `${QUS_REPO}:x86_64-aarch64${QUS_VERSION_SUFFIX}` names a per-target image.
/// - `REGISTRAR_BIN`: the registrar binary for `register: { host: true }` (default
///   `qus-register`).
/// - `RUN_ID`: the identifier of this run (default `local`).
/// - `SCENARIO`: the scenario's name.
/// - `SCENARIO_DIR`: the absolute directory of the scenario file.
pub const BUILTIN_VARS: &[&str] = &[
    "HOST_ARCH",
    "QUS_VERSION",
    "QUS_VERSION_SUFFIX",
    "REGISTRAR_BIN",
    "RUN_ID",
    "SCENARIO",
    "SCENARIO_DIR",
];

/// Default of `QUS_VERSION`: the tag of the newest image built.
pub const DEFAULT_QUS_VERSION: &str = "latest";

/// Default of `REGISTRAR_BIN`.
pub const DEFAULT_REGISTRAR_BIN: &str = "qus-register";

/// Default of `RUN_ID`.
pub const DEFAULT_RUN_ID: &str = "local";

/// Values supplied at expansion time.
///
/// Resolution order for `${NAME}`: a matrix value; else `--var NAME=...`; else the
/// environment variable `NAME` (only when the scenario declares `NAME` under `vars`); else
/// the `vars` default; else the built-in value; else the inline `:-default`.
#[derive(Debug, Clone, Default)]
pub struct VarOverrides {
    cli: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    builtins: BTreeMap<String, String>,
}

impl VarOverrides {
    /// No overrides: defaults everywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `--var NAME=value` override; a later one for the same name wins.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cli.insert(name.into(), value.into());
        self
    }

    /// Adds a `--var` argument in `NAME=value` form.
    pub fn with_assignment(self, assignment: &str) -> Result<Self, VarAssignmentError> {
        let (name, value) = parse_var_assignment(assignment)?;
        Ok(self.with_var(name, value))
    }

    /// Sets the environment consulted for declared variables, such as `std::env::vars()`.
    pub fn with_env<I, K, V>(mut self, env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// Sets the built-in `RUN_ID`.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.builtins.insert("RUN_ID".to_owned(), run_id.into());
        self
    }

    /// Sets the built-in `HOST_ARCH`.
    pub fn with_host_arch(mut self, arch: impl Into<String>) -> Self {
        self.builtins.insert("HOST_ARCH".to_owned(), arch.into());
        self
    }

    /// Sets the built-ins `QUS_VERSION` (`version`) and `QUS_VERSION_SUFFIX`
    /// (`-<version>`) for the instances of one QEMU of a `--qemu` run.
    pub fn with_qemu_version(mut self, version: &str) -> Self {
        self.builtins
            .insert("QUS_VERSION".to_owned(), version.to_owned());
        self.builtins
            .insert("QUS_VERSION_SUFFIX".to_owned(), format!("-{version}"));
        self
    }

    /// Sets the built-in `REGISTRAR_BIN`.
    pub fn with_registrar_bin(mut self, path: impl Into<String>) -> Self {
        self.builtins
            .insert("REGISTRAR_BIN".to_owned(), path.into());
        self
    }

    /// The `--var` value for `name`.
    pub(crate) fn cli(&self, name: &str) -> Option<&str> {
        self.cli.get(name).map(String::as_str)
    }

    /// The environment value for `name`.
    pub(crate) fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// The harness-supplied built-in `name`, or its default.
    pub(crate) fn builtin(&self, name: &str) -> Option<String> {
        if let Some(value) = self.builtins.get(name) {
            return Some(value.clone());
        }
        match name {
            "HOST_ARCH" => Some(std::env::consts::ARCH.to_owned()),
            "QUS_VERSION" => Some(DEFAULT_QUS_VERSION.to_owned()),
            "QUS_VERSION_SUFFIX" => Some(String::new()),
            "REGISTRAR_BIN" => Some(DEFAULT_REGISTRAR_BIN.to_owned()),
            "RUN_ID" => Some(DEFAULT_RUN_ID.to_owned()),
            _ => None,
        }
    }
}

/// A `--var` argument that is not `NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarAssignmentError {
    /// No `=`.
    #[error("invalid variable assignment `{0}`; expected `NAME=value`")]
    MissingEquals(String),
    /// The name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("invalid variable name `{0}`; use letters, digits and `_`, not starting with a digit")]
    BadName(String),
}

/// Splits `NAME=value` at the first `=`.
pub fn parse_var_assignment(s: &str) -> Result<(String, String), VarAssignmentError> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| VarAssignmentError::MissingEquals(s.to_owned()))?;
    if !is_identifier(name) {
        return Err(VarAssignmentError::BadName(name.to_owned()));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One part of a parsed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Literal text (with `$$` already turned into `$`).
    Lit(String),
    /// A `${...}` reference.
    Ref(VarRef),
}

/// A `${NAME}`, `${NAME:-default}` or `${key.field}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VarRef {
    /// The variable or matrix key.
    pub name: String,
    /// The matrix value's field, for `${key.field}`.
    pub field: Option<String>,
    /// The inline default, for `${NAME:-default}`.
    pub default: Option<String>,
}

/// A malformed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    /// What is wrong, as a lowercase message.
    pub message: String,
}

/// Splits a string into literal text and references.
pub(crate) fn parse_template(s: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            lit.push('$');
            rest = after_dollar;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = body_start.find('}').ok_or_else(|| TemplateError {
                message: format!(
                    "unterminated variable reference `${{{}`; close it with `}}` or write `$$` for a literal `$`",
                    shorten(body_start)
                ),
            })?;
            let reference = parse_reference(&body_start[..end])?;
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Ref(reference));
            rest = &body_start[end + 1..];
        } else {
            lit.push('$');
            rest = after;
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn shorten(s: &str) -> String {
    let short: String = s.chars().take(20).collect();
    if short.len() < s.len() {
        format!("{short}...")
    } else {
        short
    }
}

fn parse_reference(body: &str) -> Result<VarRef, TemplateError> {
    let (path, default) = match body.split_once(":-") {
        Some((path, default)) => (path, Some(default.to_owned())),
        None => (body, None),
    };
    let (name, field) = match path.split_once('.') {
        Some((name, field)) => (name, Some(field)),
        None => (path, None),
    };
    let bad = || TemplateError {
        message: format!(
            "invalid variable reference `${{{body}}}`; expected `${{NAME}}`, `${{NAME:-default}}` or `${{key.field}}` with names of letters, digits and `_`"
        ),
    };
    if !is_identifier(name) || field.is_some_and(|f| !is_identifier(f)) {
        return Err(bad());
    }
    Ok(VarRef {
        name: name.to_owned(),
        field: field.map(str::to_owned),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, field: Option<&str>, default: Option<&str>) -> Piece {
        Piece::Ref(VarRef {
            name: name.into(),
            field: field.map(Into::into),
            default: default.map(Into::into),
        })
    }

    #[test]
    fn parses_references_and_escapes() {
        assert_eq!(
            parse_template("qemu-${arch}-static").unwrap(),
            [
                Piece::Lit("qemu-".into()),
                var("arch", None, None),
                Piece::Lit("-static".into())
            ]
        );
        assert_eq!(
            parse_template("${A:-x y}${arch.uname}").unwrap(),
            [
                var("A", None, Some("x y")),
                var("arch", Some("uname"), None)
            ]
        );
        assert_eq!(
            parse_template("$${A} $HOME $").unwrap(),
            [Piece::Lit("${A} $HOME $".into())]
        );
        assert_eq!(parse_template("").unwrap(), []);
        assert_eq!(
            parse_template("${A:-}").unwrap(),
            [var("A", None, Some(""))]
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "${", "${A", "${}", "${1A}", "${A.}", "${A.b.c}", "${A B}", "${-x}",
        ] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assignments_split_at_the_first_equals() {
        assert_eq!(
            parse_var_assignment("A=b=c").unwrap(),
            ("A".to_owned(), "b=c".to_owned())
        );
        assert_eq!(
            parse_var_assignment("A=").unwrap(),
            ("A".to_owned(), String::new())
        );
        assert!(matches!(
            parse_var_assignment("A"),
            Err(VarAssignmentError::MissingEquals(_))
        ));
        assert!(matches!(
            parse_var_assignment("1A=x"),
            Err(VarAssignmentError::BadName(_))
        ));
    }

    #[test]
    fn builtins_have_defaults() {
        let o = VarOverrides::new();
        assert_eq!(o.builtin("RUN_ID").as_deref(), Some("local"));
        assert_eq!(o.builtin("REGISTRAR_BIN").as_deref(), Some("qus-register"));
        let o = o.with_run_id("r1").with_registrar_bin("/bin/reg");
        assert_eq!(o.builtin("RUN_ID").as_deref(), Some("r1"));
        assert_eq!(o.builtin("REGISTRAR_BIN").as_deref(), Some("/bin/reg"));
        assert_eq!(o.builtin("SCENARIO"), None);
        assert_eq!(o.builtin("QUS_VERSION").as_deref(), Some("latest"));
        assert_eq!(o.builtin("QUS_VERSION_SUFFIX").as_deref(), Some(""));
        let o = o.with_qemu_version("11.1.3-1");
        assert_eq!(o.builtin("QUS_VERSION").as_deref(), Some("11.1.3-1"));
        assert_eq!(
            o.builtin("QUS_VERSION_SUFFIX").as_deref(),
            Some("-11.1.3-1")
        );
    }

    #[test]
    fn builtin_list_is_sorted() {
        assert!(BUILTIN_VARS.windows(2).all(|w| w[0] < w[1]));
    }
}
