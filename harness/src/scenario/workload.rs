//! The `workload` key: which matrix value of a workload scenario runs natively.
//!
//! The main function is [`validate`]: `workload: { native: { arch: native } }` must name
//! exactly one matrix key and the label of one of its values, each error at its
//! `file:line:col`. What the harness does with a workload (timing the `steps` phase,
//! slowdowns against the native run) is the runner's and the reports' business.

use super::error::{Diags, LoadErrorKind};
use super::model::{MatrixAxis, Workload};
use super::raw::{RawWorkload, Scalar};
use super::span::Sp;

/// Checks `workload` against the matrix; `matrix_ok` is false when the matrix has errors
/// of its own, and then only the shape is checked.
pub(crate) fn validate(
    d: &mut Diags<'_>,
    raw: Option<&Sp<RawWorkload>>,
    matrix: &[MatrixAxis],
    matrix_ok: bool,
) -> Option<Workload> {
    let raw = raw?;
    let Some(native) = &raw.value.native else {
        d.push(
            &raw.mark,
            LoadErrorKind::MissingField {
                key: "native".to_owned(),
                context: "`workload`".to_owned(),
            },
        );
        return None;
    };
    let [(key, label)] = native.value.0.as_slice() else {
        d.push(
            &native.mark,
            LoadErrorKind::invalid(format!(
                "`native` names {} matrix keys; it names exactly one and the label of its \
                 native value, such as `{{ arch: native }}`",
                native.value.0.len()
            )),
        );
        return None;
    };
    let label_text = match &label.value {
        Scalar::Str(s) => s.clone(),
        Scalar::Other => label
            .defined
            .text(d.source())
            .unwrap_or_default()
            .to_owned(),
        Scalar::Null => {
            d.push(
                &label.mark,
                LoadErrorKind::invalid(format!(
                    "`native` gives `{}` no value; write the label of its native value",
                    key.value
                )),
            );
            return None;
        }
    };
    if !matrix_ok {
        return None;
    }
    let Some(axis) = matrix.iter().find(|a| a.name == key.value) else {
        let known: Vec<String> = matrix.iter().map(|a| format!("`{}`", a.name)).collect();
        let reason = if known.is_empty() {
            "the scenario has no matrix".to_owned()
        } else {
            format!("its matrix keys are {}", known.join(", "))
        };
        d.push(
            &key.mark,
            LoadErrorKind::invalid(format!(
                "`{}` is not a matrix key, so it cannot tell the native run; {reason}",
                key.value
            )),
        );
        return None;
    };
    if !axis.values.iter().any(|v| v.label() == label_text) {
        let labels: Vec<String> = axis
            .values
            .iter()
            .map(|v| format!("`{}`", v.label()))
            .collect();
        d.push(
            &label.mark,
            LoadErrorKind::invalid(format!(
                "`{label_text}` is not a value of the matrix key `{}`; its values are {}",
                key.value,
                labels.join(", ")
            )),
        );
        return None;
    }
    Some(Workload {
        key: key.value.clone(),
        native: label_text,
    })
}

#[cfg(test)]
mod tests {
    use crate::scenario::load::load_source_for_tests;

    const STEP: &str = "steps:\n  - exec: { command: [\"true\"] }\n";

    /// `(line, column, message)` of the one error of `body`.
    fn error(body: &str) -> (usize, usize, String) {
        let errors = load_source_for_tests(&format!("{body}{STEP}"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        (
            e.line().unwrap_or(0),
            e.column().unwrap_or(0),
            e.kind().to_string(),
        )
    }

    #[test]
    fn a_workload_names_a_matrix_key_and_one_of_its_labels() {
        let scenario = crate::scenario::load_str(
            "w.yaml",
            &format!(
                "apiVersion: qus/v1\nname: w\nmatrix:\n  arch: [native, {{ t: aarch64 }}]\n\
                 workload: {{ native: {{ arch: native }} }}\n{STEP}"
            ),
        );
        // Values of one key must share a shape; fix that first.
        assert!(scenario.is_err());
        let scenario = crate::scenario::load_str(
            "w.yaml",
            &format!(
                "apiVersion: qus/v1\nname: w\nmatrix:\n  v: [\"5.10\"]\n  arch: [native, aarch64]\n\
                 workload: {{ native: {{ arch: native }} }}\n{STEP}"
            ),
        )
        .unwrap();
        let workload = scenario.workload().unwrap();
        assert_eq!(
            (workload.key.as_str(), workload.native.as_str()),
            ("arch", "native")
        );
        let instances =
            crate::scenario::expand(&scenario, &crate::scenario::VarOverrides::new()).unwrap();
        assert!(
            instances
                .iter()
                .all(|i| i.workload.as_ref() == Some(workload))
        );
    }

    #[test]
    fn a_number_label_keeps_its_spelling() {
        let scenario = crate::scenario::load_str(
            "w.yaml",
            &format!(
                "apiVersion: qus/v1\nname: w\nmatrix:\n  k: [5.10, 6.1]\n\
                 workload: {{ native: {{ k: 5.10 }} }}\n{STEP}"
            ),
        )
        .unwrap();
        assert_eq!(scenario.workload().unwrap().native, "5.10");
    }

    #[test]
    fn errors_point_at_the_wrong_part() {
        let (line, col, message) =
            error("matrix: { arch: [native, aarch64] }\nworkload: { native: { cpu: native } }\n");
        assert_eq!((line, col), (4, 23));
        assert!(message.contains("`cpu` is not a matrix key"), "{message}");
        assert!(message.contains("`arch`"), "{message}");

        let (line, col, message) =
            error("matrix: { arch: [native, aarch64] }\nworkload: { native: { arch: host } }\n");
        assert_eq!((line, col), (4, 29));
        assert!(
            message.contains("`host` is not a value of the matrix key `arch`"),
            "{message}"
        );
        assert!(message.contains("`native`, `aarch64`"), "{message}");

        let (line, _, message) = error("workload: { native: { arch: native } }\n");
        assert_eq!(line, 3);
        assert!(message.contains("the scenario has no matrix"), "{message}");

        let (_, _, message) =
            error("matrix: { arch: [native] }\nworkload: { native: { arch: native, b: c } }\n");
        assert!(message.contains("names 2 matrix keys"), "{message}");

        let (line, col, message) = error("matrix: { arch: [native] }\nworkload: {}\n");
        assert_eq!((line, col), (4, 11));
        assert!(
            message.contains("missing required key `native`"),
            "{message}"
        );

        let (_, _, message) = error("workload: { natve: {} }\n");
        assert!(message.contains("unknown key `natve`"), "{message}");
    }
}
