//! Load-time checks that turn a [`RawScenario`] into a [`Scenario`].
//!
//! The main function is [`validate`]. It checks the top-level values (apiVersion, name,
//! tags, runtimes, requirements, variables, matrix, steps, timeout, workload), then resolves every
//! matrix instance with the declared defaults (`expand::check`) so that step errors,
//! unknown variables and bad regexes surface here, before any container starts. All errors
//! of a file are collected, each at its own position. Cross-file checks live in `load.rs`.

use std::path::Path;
use std::sync::Arc;

use super::error::{Diags, LoadError, LoadErrorKind};
use super::expand;
use super::model::{
    KernelVersion, MatrixAxis, MatrixValue, Requires, Scenario, VarDecl, parse_duration,
};
use super::raw::{MatrixItem, RawScenario, RuntimeKind, Scalar};
use super::span::{Mark, Sp};
use super::vars::{BUILTIN_VARS, is_identifier};
use super::workload;

/// The only supported `apiVersion`.
pub const API_VERSION: &str = "qus/v1";

/// Most instances one scenario may expand to.
pub const MAX_INSTANCES: usize = 1000;

/// Words a tag may not be, because tag expressions use them as operators.
const TAG_KEYWORDS: &[&str] = &["and", "or", "not"];

/// Checks a parsed file and builds the scenario; `doc` is the position of the top-level
/// mapping, where missing top-level keys are reported.
pub(crate) fn validate(
    path: &Path,
    dir: &Path,
    source: &Arc<str>,
    raw: RawScenario,
    doc: &Mark,
) -> Result<Scenario, Vec<LoadError>> {
    let mut diags = Diags::new(path, source);
    let d = &mut diags;

    match &raw.api_version {
        None => missing(d, doc, "apiVersion"),
        Some(v) if v.value != API_VERSION => d.push(
            &v.mark,
            LoadErrorKind::UnknownApiVersion {
                found: v.value.clone(),
            },
        ),
        Some(_) => {}
    }
    let name = match &raw.name {
        None => {
            missing(d, doc, "name");
            None
        }
        Some(name) => {
            if let Err(reason) = check_name(&name.value) {
                d.push(
                    &name.mark,
                    LoadErrorKind::BadName {
                        name: name.value.clone(),
                        reason,
                    },
                );
            }
            Some(name)
        }
    };
    let tags = tags(d, raw.tags.as_deref().unwrap_or_default());
    let runtimes = runtimes(d, raw.runtimes.as_ref());
    let requires = requires(d, &raw);
    let vars = vars(d, &raw);
    let (matrix, matrix_ok) = matrix(d, &raw, &vars);
    let workload = workload::validate(d, raw.workload.as_ref(), &matrix, matrix_ok);
    let steps = match raw.steps {
        None => {
            missing(d, doc, "steps");
            Vec::new()
        }
        Some(steps) => {
            if steps.value.is_empty() {
                d.push(&steps.mark, LoadErrorKind::EmptySteps);
            }
            steps.value
        }
    };
    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|t| match parse_duration(&t.value) {
            Ok(timeout) => Some(timeout),
            Err(reason) => {
                d.push(
                    &t.mark,
                    LoadErrorKind::BadDuration {
                        value: t.value.clone(),
                        reason,
                    },
                );
                None
            }
        });

    let scenario = Scenario {
        path: path.to_owned(),
        dir: dir.to_owned(),
        source: Arc::clone(source),
        name: name.map(|n| n.value.clone()).unwrap_or_default(),
        name_position: name.and_then(Sp::position),
        description: raw.description,
        tags,
        runtimes,
        requires,
        vars,
        matrix,
        timeout,
        setup: raw.setup.unwrap_or_default().into(),
        steps: steps.into(),
        teardown: raw.teardown.unwrap_or_default().into(),
        workload,
    };
    let mut errors = diags.into_errors();
    // Steps are resolved per matrix instance, which needs a sound matrix.
    if matrix_ok {
        errors.extend(expand::check(&scenario));
    }
    if errors.is_empty() {
        Ok(scenario)
    } else {
        errors.sort_by_key(LoadError::position);
        Err(errors)
    }
}

fn missing(d: &mut Diags<'_>, doc: &Mark, key: &str) {
    d.push(
        doc,
        LoadErrorKind::MissingField {
            key: key.to_owned(),
            context: "the scenario".to_owned(),
        },
    );
}

/// Scenario names: lowercase letters, digits and single inner dashes.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{c}` is not allowed; use lowercase letters, digits and `-`"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("dashes must separate letters or digits".to_owned());
    }
    if name.len() > 100 {
        return Err("it is longer than 100 characters".to_owned());
    }
    Ok(())
}

fn tags(d: &mut Diags<'_>, raw: &[Sp<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in raw {
        let value = &tag.value;
        let valid = value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && value.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if !valid || TAG_KEYWORDS.contains(&value.as_str()) {
            d.push(
                &tag.mark,
                LoadErrorKind::invalid(format!(
                    "invalid tag `{value}`; tags use lowercase letters, digits, `-`, `_` and `.`, start with a letter or digit, and are not `and`, `or` or `not`"
                )),
            );
        } else if out.contains(value) {
            d.push(
                &tag.mark,
                LoadErrorKind::invalid(format!("duplicate tag `{value}`")),
            );
        } else {
            out.push(value.clone());
        }
    }
    out
}

fn runtimes(d: &mut Diags<'_>, raw: Option<&Sp<Vec<Sp<RuntimeKind>>>>) -> Vec<RuntimeKind> {
    let Some(raw) = raw else {
        return RuntimeKind::ALL.to_vec();
    };
    if raw.value.is_empty() {
        d.push(
            &raw.mark,
            LoadErrorKind::invalid(
                "`runtimes` is empty; remove it to run everywhere, or name at least one of `docker`, `podman`, `singularity`, `host`",
            ),
        );
    }
    let mut seen = Vec::new();
    for runtime in &raw.value {
        if seen.contains(&runtime.value) {
            d.push(
                &runtime.mark,
                LoadErrorKind::invalid(format!("duplicate runtime `{}`", runtime.value)),
            );
        } else {
            seen.push(runtime.value);
        }
    }
    RuntimeKind::ALL
        .into_iter()
        .filter(|r| seen.contains(r))
        .collect()
}

fn requires(d: &mut Diags<'_>, raw: &RawScenario) -> Requires {
    let Some(req) = &raw.requires else {
        return Requires::default();
    };
    let kernel = req.kernel.as_ref().and_then(|k| {
        let parsed = KernelVersion::parse(&k.value);
        if parsed.is_none() {
            d.push(
                &k.mark,
                LoadErrorKind::invalid(format!(
                    "invalid kernel version `{}`; expected numbers separated by dots, such as `4.8`",
                    k.value
                )),
            );
        }
        parsed
    });
    Requires {
        root: req.root.unwrap_or(false),
        binfmt: req.binfmt.unwrap_or_default(),
        kernel,
        network: req.network.unwrap_or(false),
    }
}

fn vars(d: &mut Diags<'_>, raw: &RawScenario) -> Vec<VarDecl> {
    let Some(vars) = &raw.vars else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, default) in &vars.0 {
        if !is_identifier(&name.value) {
            d.push(
                &name.mark,
                LoadErrorKind::invalid(format!(
                    "invalid variable name `{}`; use letters, digits and `_`, not starting with a digit",
                    name.value
                )),
            );
        } else if BUILTIN_VARS.contains(&name.value.as_str()) {
            d.push(
                &name.mark,
                LoadErrorKind::invalid(format!(
                    "`{}` is a built-in variable and cannot be declared; override it with `--var {}=...`",
                    name.value, name.value
                )),
            );
        } else {
            out.push(VarDecl {
                name: name.value.clone(),
                default: default.value.clone(),
            });
        }
    }
    out
}

/// Checks the matrix; the flag is `false` when it has errors.
fn matrix(d: &mut Diags<'_>, raw: &RawScenario, vars: &[VarDecl]) -> (Vec<MatrixAxis>, bool) {
    let Some(matrix) = &raw.matrix else {
        return (Vec::new(), true);
    };
    let errors_before = d.len();
    let invalid = |reason: String| LoadErrorKind::InvalidMatrix { reason };
    let mut axes = Vec::new();
    for (key, values) in &matrix.value.0 {
        let name = &key.value;
        if !is_identifier(name) {
            d.push(
                &key.mark,
                invalid(format!(
                    "invalid key `{name}`; use letters, digits and `_`, not starting with a digit"
                )),
            );
            continue;
        }
        if BUILTIN_VARS.contains(&name.as_str()) || vars.iter().any(|v| v.name == *name) {
            d.push(
                &key.mark,
                invalid(format!(
                    "key `{name}` is also a variable; matrix keys and variables share one namespace"
                )),
            );
            continue;
        }
        if values.value.is_empty() {
            d.push(
                &values.mark,
                invalid(format!("`{name}` has no values; give at least one")),
            );
            continue;
        }
        let mut axis = MatrixAxis {
            name: name.clone(),
            values: Vec::new(),
        };
        for item in &values.value {
            let Some(value) = matrix_value(d, name, item) else {
                continue;
            };
            if let Some(reason) = shape_conflict(name, axis.values.first(), &value) {
                d.push(&item.mark, invalid(reason));
            } else if axis.values.iter().any(|v| v.label() == value.label()) {
                let reason = match &value {
                    MatrixValue::Scalar(v) => format!("`{name}` lists the value `{v}` twice"),
                    MatrixValue::Map(fields) => format!(
                        "`{name}` lists `{}: {}` twice; the first field names the instance, so it must be unique",
                        fields.first().map_or("", |(k, _)| k.as_str()),
                        value.label()
                    ),
                };
                d.push(&item.mark, invalid(reason));
            } else {
                axis.values.push(value);
            }
        }
        axes.push(axis);
    }
    let count = axes
        .iter()
        .try_fold(1usize, |n, axis| n.checked_mul(axis.values.len()));
    if count.is_none_or(|n| n > MAX_INSTANCES) {
        d.push(
            &matrix.mark,
            invalid(format!(
                "it expands to more than {MAX_INSTANCES} instances; split the scenario"
            )),
        );
    }
    (axes, d.len() == errors_before)
}

fn matrix_value(d: &mut Diags<'_>, key: &str, item: &Sp<MatrixItem>) -> Option<MatrixValue> {
    let invalid = |reason: String| LoadErrorKind::InvalidMatrix { reason };
    match &item.value {
        MatrixItem::Scalar(Scalar::Str(s)) => Some(MatrixValue::Scalar(s.clone())),
        MatrixItem::Scalar(Scalar::Other) => Some(MatrixValue::Scalar(
            item.defined.text(d.source()).unwrap_or_default().to_owned(),
        )),
        MatrixItem::Scalar(Scalar::Null) => {
            d.push(&item.mark, invalid(format!("`{key}` has an empty value")));
            None
        }
        MatrixItem::Map(fields) if fields.is_empty() => {
            d.push(
                &item.mark,
                invalid(format!("`{key}` has an empty mapping as a value")),
            );
            None
        }
        MatrixItem::Map(fields) => {
            let mut out = Vec::new();
            for (field, value) in fields {
                if !is_identifier(&field.value) {
                    d.push(
                        &field.mark,
                        invalid(format!(
                            "invalid field `{}`; use letters, digits and `_`, not starting with a digit",
                            field.value
                        )),
                    );
                    return None;
                }
                out.push((field.value.clone(), value.value.clone()));
            }
            Some(MatrixValue::Map(out))
        }
    }
}

/// Why `value` cannot sit beside `first` in one axis: all plain, or all maps with the same
/// fields.
fn shape_conflict(key: &str, first: Option<&MatrixValue>, value: &MatrixValue) -> Option<String> {
    let fields = |v: &MatrixValue| match v {
        MatrixValue::Scalar(_) => None,
        MatrixValue::Map(f) => Some(f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()),
    };
    let first = first?;
    match (fields(first), fields(value)) {
        (None, None) => None,
        (Some(a), Some(b)) if a == b => None,
        (Some(a), Some(_)) => Some(format!(
            "every value of `{key}` must have the fields {} in that order",
            a.iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Some(format!(
            "`{key}` mixes plain values and mappings; use one shape"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::load_source_for_tests;

    const STEP: &str = "steps:\n  - exec: { command: [\"true\"] }\n";

    /// `(code, line, column, message)` of every error of `body` (after the usual header).
    fn errors(body: &str) -> Vec<(String, usize, usize, String)> {
        load_source_for_tests(body)
            .iter()
            .map(|e| {
                (
                    e.kind().code().to_owned(),
                    e.line().unwrap_or(0),
                    e.column().unwrap_or(0),
                    e.kind().to_string(),
                )
            })
            .collect()
    }

    fn single(body: &str) -> (String, usize, usize, String) {
        let mut all = errors(body);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn variables_may_not_shadow_built_ins_or_matrix_keys() {
        let e = single(&format!("vars: {{ RUN_ID: x }}\n{STEP}"));
        assert_eq!((e.0.as_str(), e.1, e.2), ("invalid-value", 3, 9));
        assert!(e.3.contains("built-in"), "{}", e.3);
        let e = single(&format!(
            "vars: {{ arch: x }}\nmatrix: {{ arch: [a] }}\n{STEP}"
        ));
        assert_eq!((e.0.as_str(), e.1, e.2), ("invalid-matrix", 4, 11));
        let e = single(&format!("vars: {{ 1X: x }}\n{STEP}"));
        assert_eq!(e.0, "invalid-value");
    }

    #[test]
    fn matrix_shapes() {
        let e = single(&format!("matrix:\n  a: [x, {{ f: 1 }}]\n{STEP}"));
        assert!(e.3.contains("mixes plain values and mappings"), "{}", e.3);
        let e = single(&format!("matrix:\n  a: [{{ f: 1 }}, {{ g: 1 }}]\n{STEP}"));
        assert!(e.3.contains("must have the fields `f`"), "{}", e.3);
        let e = single(&format!("matrix:\n  a: [x, x]\n{STEP}"));
        assert_eq!((e.1, e.2), (4, 10));
        assert!(e.3.contains("lists the value `x` twice"), "{}", e.3);
        let e = single(&format!(
            "matrix:\n  a: [{{ t: x, u: 1 }}, {{ t: x, u: 2 }}]\n{STEP}"
        ));
        assert!(e.3.contains("lists `t: x` twice"), "{}", e.3);
        let e = single(&format!("matrix:\n  a: [x, ~]\n{STEP}"));
        assert!(e.3.contains("empty value"), "{}", e.3);
        let e = single(&format!("matrix:\n  a: [{{}}]\n{STEP}"));
        assert!(e.3.contains("empty mapping"), "{}", e.3);
        let values: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let list = values.join(", ");
        let e = single(&format!("matrix:\n  a: [{list}]\n  b: [{list}]\n{STEP}"));
        assert!(e.3.contains("more than 1000 instances"), "{}", e.3);
    }

    #[test]
    fn matrix_numbers_keep_their_spelling() {
        let scenario = crate::scenario::load_str(
            "t.yaml",
            &format!("apiVersion: qus/v1\nname: t\nmatrix:\n  k: [5.10, 0x10, true]\n{STEP}"),
        )
        .unwrap();
        let labels: Vec<&str> = scenario.matrix()[0]
            .values
            .iter()
            .map(MatrixValue::label)
            .collect();
        assert_eq!(labels, ["5.10", "0x10", "true"]);
    }

    #[test]
    fn tags_and_runtimes() {
        let e = single(&format!("tags: [smoke, and]\n{STEP}"));
        assert_eq!((e.1, e.2), (3, 15));
        let e = single(&format!("tags: [Smoke]\n{STEP}"));
        assert_eq!(e.0, "invalid-value");
        let e = single(&format!("tags: [a, a]\n{STEP}"));
        assert!(e.3.contains("duplicate tag `a`"), "{}", e.3);
        let e = single(&format!("runtimes: []\n{STEP}"));
        assert!(e.3.contains("`runtimes` is empty"), "{}", e.3);
        let e = single(&format!("runtimes: [host, host]\n{STEP}"));
        assert!(e.3.contains("duplicate runtime `host`"), "{}", e.3);
        let e = single(&format!("runtimes: [kubernetes]\n{STEP}"));
        assert_eq!(e.0, "invalid-value");
    }

    #[test]
    fn requirements_and_timeouts() {
        let e = single(&format!("requires: {{ kernel: 4.x }}\n{STEP}"));
        assert!(e.3.contains("invalid kernel version `4.x`"), "{}", e.3);
        let e = single(&format!("timeout: 30\n{STEP}"));
        assert_eq!((e.0.as_str(), e.1, e.2), ("bad-duration", 3, 10));
    }

    #[test]
    fn all_errors_of_a_file_are_collected_in_order() {
        let all = errors(
            "timeout: 1x\nsteps:\n  - exec: { command: [\"${NOPE}\"], timeout: 0s }\n  - exec: { command: [] }\n",
        );
        let codes: Vec<(&str, usize)> = all.iter().map(|e| (e.0.as_str(), e.1)).collect();
        assert_eq!(
            codes,
            [
                ("bad-duration", 3),
                ("unknown-variable", 5),
                ("bad-duration", 5),
                ("invalid-value", 6)
            ]
        );
    }

    #[test]
    fn names() {
        assert!(check_name("persistent-registration").is_ok());
        assert!(check_name("a1").is_ok());
        for bad in ["", "Upper", "a_b", "-a", "a-", "a--b", "a b", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
