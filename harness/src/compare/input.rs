//! Reading one side of a comparison: a JSON report (`run --json`, schema
//! version 2) narrowed to one QEMU.
//!
//! The main function is [`read_side`]. It reads only what `compare` needs
//! (ids, outcomes, QEMUs, slowdowns) and checks the schema version before
//! anything else, so a report of another version is named as such rather
//! than as a missing field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::CompareError;
use crate::images::qemu_version_matches;
use crate::report::{SCHEMA_VERSION, Status};

/// The QEMU of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideQemu {
    /// The name the run asked for (`11.1`).
    pub name: String,
    /// The image version (`11.1.3-1`).
    pub version: String,
    /// Debian's package version, when the report says.
    pub debian_version: Option<String>,
}

/// One instance of one side.
#[derive(Debug, Clone, PartialEq)]
pub struct SideInstance {
    /// Its outcome.
    pub status: Status,
    /// Its workload slowdown (emulated time over native time), when both
    /// ran and passed.
    pub slowdown: Option<f64>,
    /// The wall time of its timed phase, in seconds, when it was timed.
    pub seconds: Option<f64>,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The report file.
    pub path: PathBuf,
    /// The run id.
    pub run_id: String,
    /// The engine the run used.
    pub runtime: String,
    /// The QEMU compared, or `None` for a report of a run without `--qemu`.
    pub qemu: Option<SideQemu>,
    /// The instances of that QEMU, by id.
    pub instances: BTreeMap<String, SideInstance>,
}

impl Side {
    /// How many instances have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.instances
            .values()
            .filter(|i| i.status == status)
            .count()
    }
}

#[derive(Deserialize)]
struct Document {
    run_id: String,
    runtime: String,
    qemus: Vec<DocQemu>,
    instances: Vec<DocInstance>,
}

#[derive(Deserialize)]
struct DocQemu {
    name: String,
    version: String,
    debian_version: Option<String>,
}

#[derive(Deserialize)]
struct DocInstance {
    id: String,
    qemu: Option<String>,
    status: String,
    workload: Option<DocWorkload>,
}

#[derive(Deserialize)]
struct DocWorkload {
    slowdown: Option<f64>,
    seconds: Option<f64>,
}

/// A status as the JSON report spells it.
fn parse_status(text: &str) -> Option<Status> {
    Some(match text {
        "passed" => Status::Passed,
        "failed" => Status::Failed,
        "skipped" => Status::Skipped,
        "timed_out" => Status::TimedOut,
        "errored" => Status::Errored,
        _ => return None,
    })
}

/// Reads the report at `path` and keeps the QEMU `wanted` names (see
/// [`pick_qemu`]); `flag` is the option that gave `wanted`, for messages.
///
/// # Errors
///
/// [`CompareError`]: unreadable file, not JSON, another schema version, a
/// malformed report, a QEMU that is not there or not unique.
pub fn read_side(
    path: &Path,
    wanted: Option<&str>,
    flag: &'static str,
) -> Result<Side, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|source| CompareError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_side(path, &text, wanted, flag)
}

/// [`read_side`] on text already read.
pub(crate) fn parse_side(
    path: &Path,
    text: &str,
    wanted: Option<&str>,
    flag: &'static str,
) -> Result<Side, CompareError> {
    let parse = |message: String| CompareError::Parse {
        path: path.to_owned(),
        message,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| parse(e.to_string()))?;
    match value.get("schema_version") {
        Some(v) if *v == SCHEMA_VERSION => {}
        Some(v) => {
            return Err(CompareError::SchemaVersion {
                path: path.to_owned(),
                found: v.to_string(),
            });
        }
        None => return Err(parse("it has no `schema_version`".to_owned())),
    }
    let doc: Document = serde_json::from_value(value).map_err(|e| parse(e.to_string()))?;
    let qemu = pick_qemu(path, &doc.qemus, wanted, flag)?;
    let mut instances = BTreeMap::new();
    for instance in doc.instances {
        if instance.qemu.as_deref() != qemu.as_ref().map(|q| q.version.as_str()) {
            continue;
        }
        let status = parse_status(&instance.status).ok_or_else(|| {
            parse(format!(
                "instance `{}` has the unknown status `{}`",
                instance.id, instance.status
            ))
        })?;
        let (slowdown, seconds) = instance
            .workload
            .map_or((None, None), |w| (w.slowdown, w.seconds));
        let entry = SideInstance {
            status,
            slowdown,
            seconds,
        };
        if instances.insert(instance.id.clone(), entry).is_some() {
            return Err(parse(format!("instance `{}` appears twice", instance.id)));
        }
    }
    Ok(Side {
        path: path.to_owned(),
        run_id: doc.run_id,
        runtime: doc.runtime,
        qemu,
        instances,
    })
}

/// The QEMU of `qemus` that `wanted` names (its name, its image version,
/// or a version name it is a version of); without `wanted`, the only one.
fn pick_qemu(
    path: &Path,
    qemus: &[DocQemu],
    wanted: Option<&str>,
    flag: &'static str,
) -> Result<Option<SideQemu>, CompareError> {
    let present = || {
        if qemus.is_empty() {
            "no QEMU matrix".to_owned()
        } else {
            qemus
                .iter()
                .map(|q| format!("`{}` ({})", q.version, q.name))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let side = |q: &DocQemu| SideQemu {
        name: q.name.clone(),
        version: q.version.clone(),
        debian_version: q.debian_version.clone(),
    };
    let Some(wanted) = wanted else {
        return match qemus {
            [] => Ok(None),
            [only] => Ok(Some(side(only))),
            _ => Err(CompareError::NeedQemu {
                path: path.to_owned(),
                flag,
                present: present(),
            }),
        };
    };
    let exact: Vec<&DocQemu> = qemus
        .iter()
        .filter(|q| q.version == wanted || q.name == wanted)
        .collect();
    let matching: Vec<&DocQemu> = if exact.is_empty() {
        qemus
            .iter()
            .filter(|q| qemu_version_matches(wanted, &q.version))
            .collect()
    } else {
        exact
    };
    match matching.as_slice() {
        [one] => Ok(Some(side(one))),
        [] => Err(CompareError::UnknownQemu {
            path: path.to_owned(),
            flag,
            wanted: wanted.to_owned(),
            present: present(),
        }),
        _ => Err(CompareError::AmbiguousQemu {
            path: path.to_owned(),
            flag,
            wanted: wanted.to_owned(),
            present: present(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(qemus: &str, instances: &str) -> String {
        format!(
            r#"{{"schema_version": 2, "run_id": "r", "runtime": "docker", "qemus": [{qemus}], "instances": [{instances}]}}"#
        )
    }

    const QEMUS: &str = r#"{"name": "7.2", "version": "7.2.0-1", "debian_version": "1:7.2+dfsg-7"},
        {"name": "10.0", "version": "10.0.2-1", "debian_version": null}"#;

    const INSTANCES: &str = r#"{"id": "a", "qemu": "7.2.0-1", "status": "passed", "workload": null},
        {"id": "a", "qemu": "10.0.2-1", "status": "failed", "workload": null},
        {"id": "w", "qemu": "10.0.2-1", "status": "passed", "workload": {"slowdown": 3.5}}"#;

    fn side(text: &str, wanted: Option<&str>) -> Result<Side, CompareError> {
        parse_side(Path::new("r.json"), text, wanted, "--base-qemu")
    }

    #[test]
    fn a_qemu_is_picked_by_name_version_or_version_name() {
        let text = report(QEMUS, INSTANCES);
        for wanted in ["10.0", "10.0.2-1", "10.0.2", "10"] {
            let side = side(&text, Some(wanted)).unwrap();
            assert_eq!(side.qemu.as_ref().unwrap().version, "10.0.2-1", "{wanted}");
            assert_eq!(side.instances.len(), 2);
            assert_eq!(side.instances["a"].status, Status::Failed);
            assert_eq!(side.instances["w"].slowdown, Some(3.5));
        }
        let old = side(&text, Some("7.2")).unwrap();
        assert_eq!(old.count(Status::Passed), 1);
        assert_eq!(
            old.qemu.unwrap().debian_version.as_deref(),
            Some("1:7.2+dfsg-7")
        );
    }

    #[test]
    fn a_report_of_several_qemus_needs_one_named() {
        let text = report(QEMUS, INSTANCES);
        let err = side(&text, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`r.json` holds several QEMUs (`7.2.0-1` (7.2), `10.0.2-1` (10.0)); pick one with \
             `--base-qemu`"
        );
        let err = side(&text, Some("11.1")).unwrap_err();
        assert!(err.to_string().contains("holds no QEMU `11.1`"), "{err}");
        let err = side(
            &report(
                "",
                r#"{"id": "a", "qemu": null, "status": "passed", "workload": null}"#,
            ),
            Some("7.2"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no QEMU matrix"), "{err}");
        let plain = side(
            &report(
                "",
                r#"{"id": "a", "qemu": null, "status": "passed", "workload": null}"#,
            ),
            None,
        )
        .unwrap();
        assert_eq!((plain.qemu, plain.instances.len()), (None, 1));
    }

    #[test]
    fn other_schema_versions_and_malformed_reports_are_named() {
        let err = side(r#"{"schema_version": 1, "instances": []}"#, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`r.json` is a report of schema version 1; `compare` reads version 2 (rerun the \
             suite with this qus-harness)"
        );
        assert!(
            side("not json", None)
                .unwrap_err()
                .to_string()
                .contains("is not a qus JSON report")
        );
        let twice = report(
            "",
            r#"{"id": "a", "qemu": null, "status": "passed", "workload": null},
            {"id": "a", "qemu": null, "status": "failed", "workload": null}"#,
        );
        assert!(
            side(&twice, None)
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        let odd = report(
            "",
            r#"{"id": "a", "qemu": null, "status": "great", "workload": null}"#,
        );
        assert!(
            side(&odd, None)
                .unwrap_err()
                .to_string()
                .contains("unknown status `great`")
        );
    }
}
