//! Matrix expansion and variable substitution: a [`Scenario`] becomes [`Instance`]s.
//!
//! The main entry point is [`expand`]. The same resolver runs at load time in "check" mode
//! ([`check`]), with each matrix combination and the declared defaults, so that unknown
//! variables, bad regexes and malformed values are load errors at their exact position.
//! At expansion time it runs again with the `--var`, environment and built-in values, and
//! an error there (say, an override that breaks a regex) is an [`ExpandError`].
//! Nothing here touches the file system or the environment; [`VarOverrides`] carries them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use super::error::{Diags, ExpandError, LoadError, LoadErrorKind};
use super::model::{
    MatrixValue, Requires, Scenario, Workload, parse_duration, serialize_opt_duration,
};
use super::raw::{
    OneOrMany, OrderedMap, RawBinfmt, RawBuild, RawExec, RawExit, RawExpect, RawMatcher, RawProbe,
    RawRegister, RawReset, RawRun, RawStep, RuntimeKind, Scalar,
};
use super::span::{Mark, Sp, Text};
use super::step::{
    Action, Bind, BinfmtCheck, Build, BuildExpect, BuildSource, Exec, ExitExpectation, Expect,
    Matcher, Probe, Register, Registrar, Reset, Run, Step, default_probe_image, probe_user,
};
use super::vars::{BUILTIN_VARS, Piece, VarOverrides, VarRef, is_identifier, parse_template};

/// One runnable instance of a scenario: one matrix combination, all variables substituted.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    /// `name`, or `name[key=label,...]` with the matrix values in file order; a map value's
    /// label is its first field.
    pub id: String,
    /// The scenario name.
    pub scenario: String,
    /// The scenario file.
    pub path: PathBuf,
    /// The description, substituted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The matrix values of this instance, in file order.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_pairs"
    )]
    pub matrix: Vec<(String, MatrixValue)>,
    /// Tags.
    pub tags: Vec<String>,
    /// What it needs from the host.
    pub requires: Requires,
    /// The runtimes it applies to.
    pub runtimes: Vec<RuntimeKind>,
    /// The value of every declared and built-in variable that has one.
    pub variables: BTreeMap<String, String>,
    /// Steps run first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<Step>,
    /// The test steps.
    pub steps: Vec<Step>,
    /// Steps that always run at the end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teardown: Vec<Step>,
    /// Time limit for the whole instance.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_duration"
    )]
    pub timeout: Option<Duration>,
    /// The workload axis, for an instance of a workload scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
}

/// Expands the matrix (first key slowest, values in file order) and substitutes variables.
///
/// Returns one instance per combination, or one without a matrix.
pub fn expand(scenario: &Scenario, vars: &VarOverrides) -> Result<Vec<Instance>, ExpandError> {
    combinations(scenario)
        .into_iter()
        .map(|combo| {
            let id = instance_id(scenario.name(), &combo);
            let mut diags = Diags::new(&scenario.path, &scenario.source);
            let mut resolver = Resolver {
                scenario,
                combo: &combo,
                overrides: Some(vars),
                diags: &mut diags,
            };
            let instance = resolver.instance(id.clone());
            let first = diags.into_errors().into_iter().next();
            match (instance, first) {
                (Some(instance), None) => Ok(instance),
                (_, Some(error)) => Err(ExpandError {
                    instance: id,
                    error,
                }),
                // The resolver records an error whenever it gives up; this is a fallback.
                (None, None) => Err(ExpandError {
                    instance: id,
                    error: LoadError::file(
                        &scenario.path,
                        LoadErrorKind::invalid("failed to resolve the scenario's steps"),
                    ),
                }),
            }
        })
        .collect()
}

/// Resolves every matrix combination with the declared defaults and returns the errors.
pub(crate) fn check(scenario: &Scenario) -> Vec<LoadError> {
    let mut diags = Diags::new(&scenario.path, &scenario.source);
    for combo in combinations(scenario) {
        let mut resolver = Resolver {
            scenario,
            combo: &combo,
            overrides: None,
            diags: &mut diags,
        };
        resolver.instance(String::new());
    }
    diags.into_errors()
}

/// Serializes ordered pairs as a mapping, keeping their order.
fn serialize_pairs<S: serde::Serializer>(
    pairs: &[(String, MatrixValue)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

type Combo<'s> = Vec<(&'s str, &'s MatrixValue)>;

/// Every combination of matrix values; the first axis varies slowest.
fn combinations(scenario: &Scenario) -> Vec<Combo<'_>> {
    let mut combos: Vec<Combo<'_>> = vec![Vec::new()];
    for axis in scenario.matrix() {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                axis.values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.push((axis.name.as_str(), value));
                    next
                })
            })
            .collect();
    }
    combos
}

fn instance_id(name: &str, combo: &Combo<'_>) -> String {
    if combo.is_empty() {
        return name.to_owned();
    }
    let parts: Vec<String> = combo
        .iter()
        .map(|(k, v)| format!("{k}={}", v.label()))
        .collect();
    format!("{name}[{}]", parts.join(","))
}

/// How values are inserted into a string.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// As they are.
    None,
    /// As literal text inside a regular expression.
    Regex,
}

/// A substituted string.
struct Subst {
    value: String,
    /// `false` when a value was unknown at load time (a variable with no default), in which
    /// case checks on the value are skipped until expansion.
    exact: bool,
}

struct Resolver<'r, 's> {
    scenario: &'s Scenario,
    combo: &'r Combo<'s>,
    /// `None` in load-time check mode.
    overrides: Option<&'r VarOverrides>,
    diags: &'r mut Diags<'s>,
}

impl Resolver<'_, '_> {
    fn push(&mut self, mark: &Mark, kind: LoadErrorKind) {
        self.diags.push(mark, kind);
    }

    fn instance(&mut self, id: String) -> Option<Instance> {
        let errors_before = self.diags.len();
        let scenario = self.scenario;
        let description = scenario
            .description
            .as_ref()
            .and_then(|d| self.text(d, Escape::None))
            .map(|s| s.value);
        let setup = self.steps(&scenario.setup);
        let steps = self.steps(&scenario.steps);
        let teardown = self.steps(&scenario.teardown);
        let variables = self.variables();
        if self.diags.len() > errors_before {
            return None;
        }
        Some(Instance {
            id,
            scenario: scenario.name.clone(),
            path: scenario.path.clone(),
            description,
            matrix: self
                .combo
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).clone()))
                .collect(),
            tags: scenario.tags.clone(),
            requires: scenario.requires.clone(),
            runtimes: scenario.runtimes.clone(),
            variables,
            setup: setup?,
            steps: steps?,
            teardown: teardown?,
            timeout: scenario.timeout,
            workload: scenario.workload.clone(),
        })
    }

    /// Values of the declared and built-in variables, for reports.
    fn variables(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let names = self
            .scenario
            .vars
            .iter()
            .map(|d| d.name.as_str())
            .chain(BUILTIN_VARS.iter().copied());
        for name in names {
            let reference = VarRef {
                name: name.to_owned(),
                field: None,
                default: None,
            };
            if let Ok(subst) = self.lookup(&reference) {
                out.insert(name.to_owned(), subst.value);
            }
        }
        out
    }

    /// The value of one reference.
    fn lookup(&self, r: &VarRef) -> Result<Subst, LoadErrorKind> {
        let exact = |value: String| Subst { value, exact: true };
        if let Some((key, value)) = self.combo.iter().find(|(k, _)| *k == r.name) {
            return match (value, &r.field) {
                (MatrixValue::Scalar(v), None) => Ok(exact(v.clone())),
                (MatrixValue::Scalar(_), Some(field)) => Err(LoadErrorKind::BadVariable {
                    message: format!(
                        "matrix key `{key}` has plain values, so `${{{key}.{field}}}` has no field to read; use `${{{key}}}`"
                    ),
                }),
                (MatrixValue::Map(fields), None) => Err(LoadErrorKind::BadVariable {
                    message: format!(
                        "matrix key `{key}` has mapping values; read a field with `${{{key}.<field>}}` (fields: {})",
                        field_list(fields)
                    ),
                }),
                (MatrixValue::Map(fields), Some(field)) => match value.field(field) {
                    Some(v) => Ok(exact(v.to_owned())),
                    None => Err(LoadErrorKind::BadVariable {
                        message: format!(
                            "matrix key `{key}` has no field `{field}`; its fields are {}",
                            field_list(fields)
                        ),
                    }),
                },
            };
        }
        if let Some(field) = &r.field {
            return Err(LoadErrorKind::BadVariable {
                message: format!(
                    "`${{{}.{field}}}` reads a field, but `{}` is not a matrix key",
                    r.name, r.name
                ),
            });
        }
        let name = r.name.as_str();
        if let Some(value) = self.overrides.and_then(|o| o.cli(name)) {
            return Ok(exact(value.to_owned()));
        }
        if let Some(decl) = self.scenario.vars.iter().find(|d| d.name == name) {
            if let Some(value) = self.overrides.and_then(|o| o.env(name)) {
                return Ok(exact(value.to_owned()));
            }
            if let Some(value) = decl.default.as_ref().or(r.default.as_ref()) {
                return Ok(exact(value.clone()));
            }
            return match self.overrides {
                None => Ok(Subst {
                    value: String::new(),
                    exact: false,
                }),
                Some(_) => Err(LoadErrorKind::UnsetVariable {
                    name: name.to_owned(),
                }),
            };
        }
        match name {
            "SCENARIO" => return Ok(exact(self.scenario.name.clone())),
            "SCENARIO_DIR" => return Ok(exact(self.scenario.dir.display().to_string())),
            _ => {}
        }
        if BUILTIN_VARS.contains(&name) {
            let defaults = VarOverrides::new();
            let overrides = self.overrides.unwrap_or(&defaults);
            return Ok(exact(overrides.builtin(name).unwrap_or_default()));
        }
        if let Some(value) = &r.default {
            return Ok(exact(value.clone()));
        }
        let known = self
            .scenario
            .vars
            .iter()
            .map(|d| d.name.clone())
            .chain(self.combo.iter().map(|(k, _)| (*k).to_owned()))
            .chain(BUILTIN_VARS.iter().map(|s| (*s).to_owned()))
            .collect();
        Err(LoadErrorKind::UnknownVariable {
            name: name.to_owned(),
            known,
            builtins: BUILTIN_VARS.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// Substitutes the references in `text`; `None` after recording an error.
    fn text(&mut self, text: &Text, escape: Escape) -> Option<Subst> {
        self.template(&text.value, &text.mark, escape)
    }

    fn template(&mut self, template: &str, mark: &Mark, escape: Escape) -> Option<Subst> {
        let pieces = match parse_template(template) {
            Ok(pieces) => pieces,
            Err(err) => {
                self.push(
                    mark,
                    LoadErrorKind::BadVariable {
                        message: err.message,
                    },
                );
                return None;
            }
        };
        let mut out = Subst {
            value: String::new(),
            exact: true,
        };
        let mut ok = true;
        for piece in pieces {
            match piece {
                Piece::Lit(lit) => out.value.push_str(&lit),
                Piece::Ref(reference) => match self.lookup(&reference) {
                    Ok(subst) => {
                        out.exact &= subst.exact;
                        match escape {
                            Escape::None => out.value.push_str(&subst.value),
                            Escape::Regex => out.value.push_str(&regex::escape(&subst.value)),
                        }
                    }
                    Err(kind) => {
                        self.push(mark, kind);
                        ok = false;
                    }
                },
            }
        }
        ok.then_some(out)
    }

    fn string(&mut self, text: &Text) -> Option<String> {
        self.text(text, Escape::None).map(|s| s.value)
    }

    fn opt_string(&mut self, text: Option<&Text>) -> Option<Option<String>> {
        match text {
            Some(text) => self.string(text).map(Some),
            None => Some(None),
        }
    }

    fn strings(&mut self, texts: &[Text]) -> Option<Vec<String>> {
        // Resolve every item so that all errors are recorded, then give up if any failed.
        let resolved: Vec<Option<String>> = texts.iter().map(|t| self.string(t)).collect();
        resolved.into_iter().collect()
    }

    fn opt_strings(&mut self, texts: Option<&Vec<Text>>) -> Option<Option<Vec<String>>> {
        match texts {
            Some(texts) => self.strings(texts).map(Some),
            None => Some(None),
        }
    }

    /// An `env` or `build_args` mapping: keys must be variable names.
    fn env(
        &mut self,
        map: Option<&OrderedMap<Text>>,
        what: &str,
    ) -> Option<BTreeMap<String, String>> {
        let Some(map) = map else {
            return Some(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in &map.0 {
            if !is_identifier(&key.value) {
                self.push(
                    &key.mark,
                    LoadErrorKind::invalid(format!(
                        "invalid {what} name `{}`; use letters, digits and `_`, not starting with a digit",
                        key.value
                    )),
                );
                ok = false;
            }
            match self.string(value) {
                Some(v) => {
                    out.insert(key.value.clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The text of a scalar read through `deserialize_any`.
    fn scalar(
        &mut self,
        scalar: &Scalar,
        sp_mark: &Mark,
        defined: &Mark,
        escape: Escape,
    ) -> Option<Subst> {
        match scalar {
            Scalar::Str(s) => self.template(s, sp_mark, escape),
            // A number or boolean has no references; its spelling is in the source.
            Scalar::Other => Some(Subst {
                value: defined
                    .text(&self.scenario.source)
                    .unwrap_or_default()
                    .to_owned(),
                exact: true,
            }),
            Scalar::Null => {
                self.push(
                    sp_mark,
                    LoadErrorKind::WrongType {
                        expected: "a string".to_owned(),
                        found: Some("nothing (null)".to_owned()),
                    },
                );
                None
            }
        }
    }

    fn steps(&mut self, steps: &[Sp<RawStep>]) -> Option<Vec<Step>> {
        let resolved: Vec<Option<Step>> = steps.iter().map(|s| self.step(s)).collect();
        resolved.into_iter().collect()
    }

    fn step(&mut self, step: &Sp<RawStep>) -> Option<Step> {
        let common = step.value.common();
        let name = self.opt_string(common.name);
        let timeout = match common.timeout {
            Some(t) => self.duration(t).map(Some),
            None => Some(None),
        };
        let action = match &step.value {
            RawStep::Register(s) => self.register(s, &step.mark).map(Action::Register),
            RawStep::Reset(s) => self.reset(s).map(Action::Reset),
            RawStep::Binfmt(s) => self.binfmt(s, &step.mark).map(Action::Binfmt),
            RawStep::Run(s) => self.run(s, &step.mark).map(Action::Run),
            RawStep::Build(s) => self.build(s, &step.mark).map(Action::Build),
            RawStep::Exec(s) => self.exec(s, &step.mark).map(Action::Exec),
            RawStep::Probe(s) => self.probe(s, &step.mark).map(Action::Probe),
        };
        Some(Step {
            name: name?,
            timeout: timeout?,
            retries: common.retries.unwrap_or(0),
            position: step.position(),
            action: action?,
        })
    }

    fn duration(&mut self, text: &Sp<String>) -> Option<Duration> {
        match parse_duration(&text.value) {
            Ok(d) => Some(d),
            Err(reason) => {
                self.push(
                    &text.mark,
                    LoadErrorKind::BadDuration {
                        value: text.value.clone(),
                        reason,
                    },
                );
                None
            }
        }
    }

    fn missing(&mut self, mark: &Mark, key: &str, kind: &str) {
        self.push(
            mark,
            LoadErrorKind::MissingField {
                key: key.to_owned(),
                context: format!("the `{kind}` step"),
            },
        );
    }

    fn register(&mut self, s: &RawRegister, mark: &Mark) -> Option<Register> {
        let registrar = match (&s.image, s.host.unwrap_or(false)) {
            (Some(image), true) => {
                self.push(
                    &image.mark,
                    LoadErrorKind::invalid(
                        "`image` and `host: true` exclude each other; `host: true` runs the binary named by `REGISTRAR_BIN`",
                    ),
                );
                None
            }
            (Some(image), false) => self.non_empty(image, "image").map(Registrar::Image),
            (None, true) => {
                let reference = VarRef {
                    name: "REGISTRAR_BIN".to_owned(),
                    field: None,
                    default: None,
                };
                match self.lookup(&reference) {
                    Ok(subst) => Some(Registrar::Host {
                        binary: subst.value,
                    }),
                    Err(kind) => {
                        self.push(mark, kind);
                        None
                    }
                }
            }
            (None, false) => {
                self.push(
                    mark,
                    LoadErrorKind::MissingField {
                        key: "image".to_owned(),
                        context: "the `register` step (or set `host: true` to run `REGISTRAR_BIN`)"
                            .to_owned(),
                    },
                );
                None
            }
        };
        let args = self.opt_strings(s.args.as_ref());
        let expect = self.expect(s.expect.as_ref());
        Some(Register {
            registrar: registrar?,
            args: args?.unwrap_or_default(),
            expect: expect?,
        })
    }

    fn reset(&mut self, s: &RawReset) -> Option<Reset> {
        let image = match &s.image {
            Some(image) => Some(self.non_empty(image, "image")?),
            None => None,
        };
        Some(Reset { image })
    }

    /// A substituted string that must not be empty.
    fn non_empty(&mut self, text: &Text, key: &str) -> Option<String> {
        let subst = self.text(text, Escape::None)?;
        if subst.exact && subst.value.trim().is_empty() {
            self.push(
                &text.mark,
                LoadErrorKind::invalid(format!("`{key}` is empty")),
            );
            return None;
        }
        Some(subst.value)
    }

    /// A substituted string checked by `check` (which returns a message on failure).
    fn checked(
        &mut self,
        text: Option<&Text>,
        check: impl Fn(&str) -> Result<String, String>,
    ) -> Option<Option<String>> {
        let Some(text) = text else {
            return Some(None);
        };
        let subst = self.text(text, Escape::None)?;
        if !subst.exact {
            return Some(Some(subst.value));
        }
        match check(&subst.value) {
            Ok(value) => Some(Some(value)),
            Err(message) => {
                self.push(&text.mark, LoadErrorKind::invalid(message));
                None
            }
        }
    }

    fn binfmt(&mut self, s: &RawBinfmt, mark: &Mark) -> Option<BinfmtCheck> {
        let present = s.present.unwrap_or(true);
        let mut conflict = false;
        if !present {
            let others = [
                ("enabled", s.enabled.is_some()),
                ("flags", s.flags.is_some()),
                ("interpreter", s.interpreter.is_some()),
                ("magic", s.magic.is_some()),
                ("mask", s.mask.is_some()),
            ];
            let set: Vec<&str> = others
                .iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| *k)
                .collect();
            if !set.is_empty() {
                conflict = true;
                let listed: Vec<String> = set.iter().map(|k| format!("`{k}`")).collect();
                self.push(
                    mark,
                    LoadErrorKind::invalid(format!(
                        "`present: false` allows no other assertion; remove {}",
                        listed.join(", ")
                    )),
                );
            }
        }
        let entry = match &s.entry {
            Some(entry) => self
                .checked(Some(entry), check_entry_name)
                .map(Option::unwrap_or_default),
            None => {
                self.missing(mark, "entry", "binfmt");
                None
            }
        };
        let flags = self.checked(s.flags.as_ref(), check_flags);
        let interpreter = self.checked(s.interpreter.as_ref(), |v| {
            if v.starts_with('/') {
                Ok(v.to_owned())
            } else {
                Err(format!(
                    "invalid interpreter `{v}`; expected an absolute path"
                ))
            }
        });
        let magic = self.checked(s.magic.as_ref(), |v| check_hex(v, "magic"));
        let mask = self.checked(s.mask.as_ref(), |v| check_hex(v, "mask"));
        if let (Some(Some(magic)), Some(Some(mask)), Some(mask_text)) = (&magic, &mask, &s.mask) {
            // Values unknown until expansion are empty here and skip the comparison.
            let both_hex = check_hex(magic, "magic").is_ok() && check_hex(mask, "mask").is_ok();
            if both_hex && magic.len() != mask.len() {
                self.push(
                    &mask_text.mark,
                    LoadErrorKind::invalid(format!(
                        "`mask` has {} bytes but `magic` has {}; they must be the same length",
                        mask.len() / 2,
                        magic.len() / 2
                    )),
                );
                return None;
            }
        }
        if conflict {
            return None;
        }
        Some(BinfmtCheck {
            entry: entry?,
            present,
            enabled: s.enabled,
            flags: flags?,
            interpreter: interpreter?,
            magic: magic?,
            mask: mask?,
        })
    }

    fn run(&mut self, s: &RawRun, mark: &Mark) -> Option<Run> {
        let image = match &s.image {
            Some(image) => self.non_empty(image, "image"),
            None => {
                self.missing(mark, "image", "run");
                None
            }
        };
        let command = self.opt_strings(s.command.as_ref());
        let entrypoint = self.opt_strings(s.entrypoint.as_ref());
        let env = self.env(s.env.as_ref(), "environment variable");
        let binds = self.binds(s.binds.as_deref());
        let platform = self.checked(s.platform.as_ref(), check_platform);
        let user = self.opt_string(s.user.as_ref());
        let expect = self.expect(s.expect.as_ref());
        Some(Run {
            image: image?,
            command: command?,
            entrypoint: entrypoint?,
            env: env?,
            binds: binds?,
            network: s.network,
            privileged: s.privileged.unwrap_or(false),
            platform: platform?,
            user: user?,
            expect: expect?,
        })
    }

    fn binds(&mut self, binds: Option<&[Text]>) -> Option<Vec<Bind>> {
        let dir = self.scenario.dir.clone();
        let resolved: Vec<Option<Bind>> = binds
            .unwrap_or_default()
            .iter()
            .map(|text| {
                let subst = self.text(text, Escape::None)?;
                match parse_bind(&subst.value, &dir) {
                    Ok(bind) => Some(bind),
                    Err(message) => {
                        if subst.exact {
                            self.push(&text.mark, LoadErrorKind::invalid(message));
                        }
                        None
                    }
                }
            })
            .collect();
        resolved.into_iter().collect()
    }

    fn build(&mut self, s: &RawBuild, mark: &Mark) -> Option<Build> {
        let source = match (&s.containerfile, &s.context) {
            (Some(_), Some(_)) | (None, None) => {
                self.push(
                    mark,
                    LoadErrorKind::BuildSource {
                        both: s.containerfile.is_some(),
                    },
                );
                None
            }
            (Some(text), None) => self.string(text).map(BuildSource::Containerfile),
            (None, Some(dir)) => {
                let base = self.scenario.dir.clone();
                self.non_empty(dir, "context")
                    .map(|d| BuildSource::Context(base.join(d)))
            }
        };
        let tag = self.opt_string(s.tag.as_ref());
        let build_args = self.env(s.build_args.as_ref(), "build argument");
        let platform = self.checked(s.platform.as_ref(), check_platform);
        let (success, output) = match &s.expect {
            Some(expect) => (
                expect.success.unwrap_or(true),
                self.opt_matcher(expect.output.as_ref()),
            ),
            None => (true, Some(None)),
        };
        Some(Build {
            source: source?,
            tag: tag?,
            build_args: build_args?,
            platform: platform?,
            expect: BuildExpect {
                success,
                output: output?,
            },
        })
    }

    fn exec(&mut self, s: &RawExec, mark: &Mark) -> Option<Exec> {
        let command = match &s.command {
            Some(command) if command.value.is_empty() => {
                self.push(
                    &command.mark,
                    LoadErrorKind::invalid(
                        "`command` is empty; give the program and its arguments",
                    ),
                );
                None
            }
            Some(command) => self.strings(&command.value),
            None => {
                self.missing(mark, "command", "exec");
                None
            }
        };
        let env = self.env(s.env.as_ref(), "environment variable");
        let expect = self.expect(s.expect.as_ref());
        Some(Exec {
            command: command?,
            env: env?,
            expect: expect?,
        })
    }

    fn probe(&mut self, s: &RawProbe, mark: &Mark) -> Option<Probe> {
        let target = match &s.target {
            Some(target) => self.checked(Some(target), check_probe_target),
            None => {
                self.missing(mark, "target", "probe");
                None
            }
        };
        let image = self.opt_string(s.image.as_ref());
        let args = self.opt_strings(s.args.as_ref());
        let user = self.checked(s.user.as_ref(), |u| probe_user(u).map(|_| u.to_owned()));
        let expect = self.expect(s.expect.as_ref());
        let target = target??;
        Some(Probe {
            image: image?.unwrap_or_else(|| default_probe_image(&target)),
            target,
            args: args?.unwrap_or_default(),
            setuid: s.setuid.unwrap_or(false),
            user: user?,
            expect: expect?,
        })
    }

    fn expect(&mut self, expect: Option<&RawExpect>) -> Option<Expect> {
        let Some(expect) = expect else {
            return Some(Expect::default());
        };
        let exit = match &expect.exit {
            Some(exit) => self.exit(exit),
            None => Some(ExitExpectation::Code(0)),
        };
        let stdout = self.opt_matcher(expect.stdout.as_ref());
        let stderr = self.opt_matcher(expect.stderr.as_ref());
        Some(Expect {
            exit: exit?,
            stdout: stdout?,
            stderr: stderr?,
        })
    }

    fn exit(&mut self, exit: &Sp<RawExit>) -> Option<ExitExpectation> {
        let found = match &exit.value {
            RawExit::Code(code) => match u8::try_from(*code) {
                Ok(code) => return Some(ExitExpectation::Code(code)),
                Err(_) => code.to_string(),
            },
            RawExit::Word(word) if word == "nonzero" => return Some(ExitExpectation::NonZero),
            RawExit::Word(word) if word == "any" => return Some(ExitExpectation::Any),
            RawExit::Word(word) => word.clone(),
            RawExit::Other => exit
                .defined
                .text(&self.scenario.source)
                .unwrap_or("null")
                .to_owned(),
        };
        self.push(
            &exit.mark,
            LoadErrorKind::invalid(format!(
                "invalid exit status `{found}`; expected an integer 0-255, `nonzero` or `any`"
            )),
        );
        None
    }

    fn opt_matcher(&mut self, matcher: Option<&Sp<RawMatcher>>) -> Option<Option<Matcher>> {
        match matcher {
            Some(m) => self.matcher(m).map(Some),
            None => Some(None),
        }
    }

    fn matcher(&mut self, matcher: &Sp<RawMatcher>) -> Option<Matcher> {
        let map = match &matcher.value {
            RawMatcher::Equals(scalar) => {
                let equals = self.scalar(scalar, &matcher.mark, &matcher.defined, Escape::None)?;
                return Some(Matcher {
                    equals: Some(equals.value),
                    ..Matcher::default()
                });
            }
            RawMatcher::Map(map) => map,
        };
        if map.equals.is_none()
            && map.contains.is_none()
            && map.regex.is_none()
            && map.not_contains.is_none()
            && map.not_regex.is_none()
        {
            self.push(
                &matcher.mark,
                LoadErrorKind::invalid(
                    "empty matcher; give at least one of `equals`, `contains`, `regex`, `not_contains`, `not_regex`",
                ),
            );
            return None;
        }
        let equals = self.opt_string(map.equals.as_ref());
        let contains = self.list(map.contains.as_ref(), "contains", Escape::None);
        let not_contains = self.list(map.not_contains.as_ref(), "not_contains", Escape::None);
        let regex = self.regexes(map.regex.as_ref(), "regex");
        let not_regex = self.regexes(map.not_regex.as_ref(), "not_regex");
        Some(Matcher {
            equals: equals?,
            contains: contains?.into_iter().map(|(s, _)| s.value).collect(),
            regex: regex?,
            not_contains: not_contains?.into_iter().map(|(s, _)| s.value).collect(),
            not_regex: not_regex?,
        })
    }

    /// The items of a one-or-many value, substituted, with the mark of each.
    fn list(
        &mut self,
        value: Option<&Sp<OneOrMany>>,
        key: &str,
        escape: Escape,
    ) -> Option<Vec<(Subst, Mark)>> {
        let Some(value) = value else {
            return Some(Vec::new());
        };
        let resolved: Vec<Option<(Subst, Mark)>> = match &value.value {
            OneOrMany::One(scalar) => vec![
                self.scalar(scalar, &value.mark, &value.defined, escape)
                    .map(|s| (s, value.mark)),
            ],
            OneOrMany::Many(items) if items.is_empty() => {
                self.push(
                    &value.mark,
                    LoadErrorKind::invalid(format!(
                        "`{key}` is an empty list; remove it or add items"
                    )),
                );
                return None;
            }
            OneOrMany::Many(items) => items
                .iter()
                .map(|item| {
                    self.scalar(&item.value, &item.mark, &item.defined, escape)
                        .map(|s| (s, item.mark))
                })
                .collect(),
        };
        resolved.into_iter().collect()
    }

    fn regexes(&mut self, value: Option<&Sp<OneOrMany>>, key: &str) -> Option<Vec<Regex>> {
        let items = self.list(value, key, Escape::Regex)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (subst, mark) in items {
            match Regex::new(&subst.value) {
                Ok(re) => out.push(re),
                Err(source) => {
                    if subst.exact {
                        self.push(
                            &mark,
                            LoadErrorKind::BadRegex {
                                regex: subst.value,
                                source,
                            },
                        );
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

fn field_list(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_entry_name(name: &str) -> Result<String, String> {
    if name.is_empty()
        || name.contains('/')
        || name == "register"
        || name == "status"
        || name == "."
        || name == ".."
    {
        return Err(format!(
            "invalid binfmt entry name `{name}`; expected a file name such as `qemu-aarch64`"
        ));
    }
    Ok(name.to_owned())
}

fn check_flags(flags: &str) -> Result<String, String> {
    let mut seen = String::new();
    for c in flags.chars() {
        if !"POCF".contains(c) {
            return Err(format!(
                "invalid binfmt flags `{flags}`: unknown flag `{c}`; flags are letters from `POCF`"
            ));
        }
        if seen.contains(c) {
            return Err(format!(
                "invalid binfmt flags `{flags}`: `{c}` appears twice"
            ));
        }
        seen.push(c);
    }
    Ok(flags.to_owned())
}

fn check_hex(value: &str, key: &str) -> Result<String, String> {
    let hex = value.to_ascii_lowercase();
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(format!(
            "invalid `{key}` `{value}`; expected an even number of hex digits, such as `7f454c46`"
        ));
    }
    Ok(hex)
}

/// A target whose probe the registrar embeds (`fixtures/probes/bin/`).
fn check_probe_target(target: &str) -> Result<String, String> {
    if qus_registrar::verify::probe(target).is_some() {
        return Ok(target.to_owned());
    }
    let known: Vec<&str> = qus_registrar::verify::probed_targets().collect();
    Err(format!(
        "`{target}` has no probe program; targets with one: {}",
        known.join(", ")
    ))
}

fn check_platform(platform: &str) -> Result<String, String> {
    let parts: Vec<&str> = platform.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if (2..=3).contains(&parts.len()) && parts.iter().all(part_ok) {
        Ok(platform.to_owned())
    } else {
        Err(format!(
            "invalid platform `{platform}`; expected `os/arch` or `os/arch/variant`, such as `linux/arm64`"
        ))
    }
}

/// Parses `host:container[:ro|rw]`; a relative host path is relative to `dir`.
fn parse_bind(bind: &str, dir: &Path) -> Result<Bind, String> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [host, container] => (*host, *container, None),
        [host, container, mode] => (*host, *container, Some(*mode)),
        _ => {
            return Err(format!(
                "invalid bind `{bind}`; expected `host:container` or `host:container:ro`"
            ));
        }
    };
    if host.is_empty() {
        return Err(format!("invalid bind `{bind}`: the host path is empty"));
    }
    if !container.starts_with('/') {
        return Err(format!(
            "invalid bind `{bind}`: the container path must be absolute"
        ));
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => {
            return Err(format!(
                "invalid bind `{bind}`: unknown mode `{other}`; expected `ro` or `rw`"
            ));
        }
    };
    Ok(Bind {
        host: dir.join(host),
        container: container.to_owned(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    const HEAD: &str = "apiVersion: qus/v1\nname: t\n";

    fn scenario(body: &str) -> Scenario {
        load_str("/s/t.yaml", &format!("{HEAD}{body}")).unwrap()
    }

    fn load_err(body: &str) -> LoadError {
        load_str("/s/t.yaml", &format!("{HEAD}{body}")).unwrap_err()
    }

    /// The command of the first step of the first instance.
    fn command(s: &Scenario, vars: &VarOverrides) -> Vec<String> {
        let instances = expand(s, vars).unwrap();
        match &instances[0].steps[0].action {
            Action::Exec(exec) => exec.command.clone(),
            other => panic!("expected exec, got {other:?}"),
        }
    }

    #[test]
    fn resolution_order_is_var_then_env_then_default_then_inline() {
        let s = scenario(
            "vars: { A: from-default, B: ~ }\nsteps:\n  - exec: { command: [\"${A}\", \"${B:-inline}\", \"${C:-inline}\"] }\n",
        );
        let none = VarOverrides::new();
        assert_eq!(command(&s, &none), ["from-default", "inline", "inline"]);
        let env = VarOverrides::new().with_env([("A", "from-env"), ("B", "env-b"), ("C", "env-c")]);
        // The environment applies only to declared variables: `C` keeps its inline default.
        assert_eq!(command(&s, &env), ["from-env", "env-b", "inline"]);
        let cli = env.clone().with_var("A", "from-cli").with_var("C", "cli-c");
        assert_eq!(command(&s, &cli), ["from-cli", "env-b", "cli-c"]);
    }

    #[test]
    fn builtins_and_escapes() {
        let s = scenario(
            "steps:\n  - exec: { command: [\"${SCENARIO}\", \"${SCENARIO_DIR}\", \"${RUN_ID}\", \"${HOST_ARCH}\", \"$${X}\", \"$HOME\"] }\n",
        );
        let vars = VarOverrides::new()
            .with_run_id("r9")
            .with_host_arch("riscv64");
        assert_eq!(
            command(&s, &vars),
            ["t", "/s", "r9", "riscv64", "${X}", "$HOME"]
        );
        // `--var` overrides a built-in too.
        assert_eq!(command(&s, &vars.with_var("RUN_ID", "r10"))[2], "r10");
    }

    #[test]
    fn probe_steps_default_their_image_and_check_target_and_user() {
        let s = scenario(
            "steps:\n  - probe: { target: s390x, args: [--argv0], setuid: true }\n  - probe: { target: mips, image: my/probe, user: \"1000:100\" }\n",
        );
        let instances = expand(&s, &VarOverrides::new()).unwrap();
        let probes: Vec<&Probe> = instances[0]
            .steps
            .iter()
            .map(|step| match &step.action {
                Action::Probe(p) => p,
                other => panic!("expected probe, got {other:?}"),
            })
            .collect();
        assert_eq!(probes[0].image, "qus-fixtures/probe:s390x");
        assert_eq!(probes[0].args, ["--argv0"]);
        assert_eq!(probes[0].credentials(), Ok(Some((65534, 65534))));
        assert_eq!(probes[1].image, "my/probe");
        assert_eq!(probes[1].credentials(), Ok(Some((1000, 100))));
        assert_eq!(instances[0].steps[0].label(), "probe s390x");
        let err = load_err("steps:\n  - probe: { target: aarch64, user: nobody }\n");
        assert!(err.to_string().contains("`nobody` is not a uid"), "{err}");
        let err = load_err("steps:\n  - probe: { target: qemu-aarch64 }\n");
        assert!(err.to_string().contains("has no probe program"), "{err}");
        let err = load_err("steps:\n  - probe: { args: [x] }\n");
        assert_eq!(err.kind().code(), "missing-field");
    }

    #[test]
    fn a_variable_without_default_must_be_given_at_expansion() {
        let s = scenario("vars: { IMAGE: ~ }\nsteps:\n  - run: { image: \"${IMAGE}\" }\n");
        let err = expand(&s, &VarOverrides::new()).unwrap_err();
        assert_eq!(err.instance, "t");
        assert_eq!(err.error.kind().code(), "unset-variable");
        assert_eq!((err.error.line(), err.error.column()), (Some(5), Some(19)));
        assert_eq!(err.to_string(), "failed to expand scenario `t`");
        let ok = expand(&s, &VarOverrides::new().with_env([("IMAGE", "alpine")])).unwrap();
        let Action::Run(run) = &ok[0].steps[0].action else {
            panic!("expected run")
        };
        assert_eq!(run.image, "alpine");
    }

    #[test]
    fn checks_wait_for_values_unknown_at_load() {
        // `FLAGS` has no default, so `flags` cannot be checked until expansion.
        let s = scenario(
            "vars: { FLAGS: ~ }\nsteps:\n  - binfmt: { entry: qemu-arm, flags: \"${FLAGS}\" }\n",
        );
        let err = expand(&s, &VarOverrides::new().with_var("FLAGS", "Z")).unwrap_err();
        assert_eq!(err.error.kind().code(), "invalid-value");
        assert!(
            err.error.to_string().contains("unknown flag `Z`"),
            "{}",
            err.error
        );
        assert!(expand(&s, &VarOverrides::new().with_var("FLAGS", "OCF")).is_ok());
    }

    #[test]
    fn regex_values_are_literal_text() {
        let s = scenario(
            "vars: { V: \"1.0\" }\nsteps:\n  - exec:\n      command: [\"true\"]\n      expect: { stdout: { regex: \"^v${V}$\" } }\n",
        );
        let instances = expand(&s, &VarOverrides::new().with_var("V", "(")).unwrap();
        let Action::Exec(exec) = &instances[0].steps[0].action else {
            panic!("expected exec")
        };
        let matcher = exec.expect.stdout.as_ref().unwrap();
        assert_eq!(matcher.regex[0].as_str(), "^v\\($");
        assert!(matcher.is_match("v("));
    }

    #[test]
    fn matrix_field_references_are_checked() {
        let body = |reference: &str| {
            format!(
                "matrix:\n  arch: [{{ target: arm, uname: armv7l }}]\n  bits: [32]\nsteps:\n  - exec: {{ command: [\"{reference}\"] }}\n"
            )
        };
        let s = scenario(&body("${arch.uname}-${bits}"));
        assert_eq!(command(&s, &VarOverrides::new()), ["armv7l-32"]);
        for (reference, needle) in [
            ("${arch}", "has mapping values"),
            ("${arch.bits}", "has no field `bits`"),
            ("${bits.x}", "has plain values"),
            ("${RUN_ID.x}", "is not a matrix key"),
            ("${arhc.target}", "is not a matrix key"),
        ] {
            let err = load_err(&body(reference));
            assert_eq!(err.kind().code(), "bad-variable", "{reference}");
            assert!(err.to_string().contains(needle), "{reference}: {err}");
        }
    }

    #[test]
    fn unknown_variables_suggest_a_near_name() {
        let err = load_err("vars: { IMAGE: x }\nsteps:\n  - run: { image: \"${IMAGES}\" }\n");
        assert!(
            err.to_string()
                .starts_with("/s/t.yaml:5:19: unknown variable `IMAGES` (did you mean `IMAGE`?)"),
            "{err}"
        );
    }

    #[test]
    fn description_is_substituted() {
        let s = scenario(
            "description: \"on ${arch}\"\nmatrix: { arch: [arm] }\nsteps:\n  - exec: { command: [\"true\"] }\n",
        );
        assert_eq!(s.description(), Some("on ${arch}"));
        let instances = expand(&s, &VarOverrides::new()).unwrap();
        assert_eq!(instances[0].description.as_deref(), Some("on arm"));
        assert_eq!(instances[0].id, "t[arch=arm]");
    }

    #[test]
    fn step_errors_are_reported_once_per_place() {
        // Two instances, one bad regex: one error.
        let body = "matrix: { n: [1, 2] }\nsteps:\n  - exec:\n      command: [\"true\"]\n      expect: { stderr: { regex: \"(\" } }\n";
        let errors = crate::scenario::load::load_source_for_tests(body);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn register_needs_an_image_or_host() {
        let err = load_err("steps:\n  - register: { args: [--reset] }\n");
        assert_eq!(err.kind().code(), "missing-field");
        let err = load_err("steps:\n  - register: { image: x, host: true }\n");
        assert_eq!(err.kind().code(), "invalid-value");
        let s = scenario("steps:\n  - register: { host: true }\n");
        let instances = expand(&s, &VarOverrides::new().with_registrar_bin("/r")).unwrap();
        let Action::Register(register) = &instances[0].steps[0].action else {
            panic!("expected register")
        };
        assert_eq!(
            register.registrar,
            Registrar::Host {
                binary: "/r".into()
            }
        );
    }

    #[test]
    fn binfmt_absence_allows_no_other_assertion() {
        let err = load_err("steps:\n  - binfmt: { entry: qemu-arm, present: false, flags: F }\n");
        assert!(err.to_string().contains("remove `flags`"), "{err}");
        let err = load_err("steps:\n  - binfmt: { entry: x, magic: \"7f45\", mask: \"ff\" }\n");
        assert!(
            err.to_string()
                .contains("`mask` has 1 bytes but `magic` has 2"),
            "{err}"
        );
    }

    #[test]
    fn binds_parse() {
        let dir = Path::new("/s");
        assert_eq!(
            parse_bind("data:/data:ro", dir).unwrap(),
            Bind {
                host: "/s/data".into(),
                container: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_bind("/abs:/x", dir).unwrap().host,
            PathBuf::from("/abs")
        );
        for bad in ["x", ":/x", "a:b", "a:/b:rx", "a:/b:ro:z"] {
            assert!(parse_bind(bad, dir).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_checks() {
        assert!(check_flags("").is_ok());
        assert!(check_flags("FOC").is_ok());
        assert!(check_flags("FF").is_err());
        assert!(check_flags("X").is_err());
        assert_eq!(check_hex("7F45", "magic").unwrap(), "7f45");
        assert!(check_hex("7f4", "magic").is_err());
        assert!(check_hex("zz", "magic").is_err());
        assert!(check_platform("linux/arm/v7").is_ok());
        assert!(check_platform("linux").is_err());
        assert!(check_platform("linux/ARM").is_err());
        assert!(check_entry_name("qemu-arm").is_ok());
        assert!(check_entry_name("status").is_err());
        assert!(check_entry_name("a/b").is_err());
    }
}
