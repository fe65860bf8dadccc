//! The interface between the runner and the reporters.
//!
//! The runner never prints: it describes what happened as a stream of
//! [`Event`]s, past-tense facts handed to a callback, and each reporter turns
//! them into its own output. The types here are deliberately self-contained
//! (plain strings for ids, matrix values and tags) so that reporters do not
//! depend on the scenario model or the runtime. This module does not decide
//! what a result means; that is [`super::model`].

use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::model::{RunSummary, ScenarioResult, StepResult};
use crate::qemu::cmp_optional_versions;

/// Something that happened during a run, in the order the runner saw it.
///
/// Events of different instances interleave when instances run in parallel;
/// reporters that need a stable order sort by [`InstanceId::key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The run began; no instance has started yet.
    RunStarted {
        /// The run id, also used to label containers.
        run_id: String,
        /// The container engine, e.g. `docker`, `podman` or `host`.
        runtime: String,
        /// Wall-clock start of the run.
        started_at: SystemTime,
        /// How many scenario instances the plan holds.
        instances: usize,
        /// How many instances may run at once.
        jobs: usize,
        /// The QEMUs of a `--qemu` matrix, oldest first; empty without one.
        qemus: Vec<QemuInfo>,
    },
    /// Before the first instance of a QEMU of the matrix, that QEMU's
    /// handlers were registered as the baseline its instances run on.
    QemuBaselineRegistered {
        /// The QEMU's image version (`11.1.3-1`).
        qemu: String,
        /// The registration, as a step's result (failed or errored when
        /// the handlers could not be registered).
        result: StepResult,
    },
    /// An instance began its first step.
    ScenarioStarted {
        /// The instance.
        instance: InstanceId,
    },
    /// A step began.
    StepStarted {
        /// The instance the step belongs to.
        instance: InstanceId,
        /// The phase the step belongs to.
        phase: Phase,
        /// The step's position within its phase, from 0.
        index: usize,
        /// A short description, e.g. `run: uname -m`.
        name: String,
    },
    /// A step wrote output; streamed only for `--verbose`.
    ///
    /// The full output of a step also arrives in [`StepResult`], so reporters
    /// that only need results can ignore this event.
    StepOutput {
        /// The instance the output belongs to.
        instance: InstanceId,
        /// Which stream the chunk came from.
        stream: Stream,
        /// A piece of output; not necessarily a whole line.
        chunk: String,
    },
    /// A step ended, whatever its outcome.
    StepFinished {
        /// The instance the step belongs to.
        instance: InstanceId,
        /// The phase the step belongs to.
        phase: Phase,
        /// The step's position within its phase, from 0.
        index: usize,
        /// A short description, e.g. `run: uname -m`.
        name: String,
        /// The outcome of the step.
        result: StepResult,
    },
    /// An instance ended after it started.
    ScenarioFinished {
        /// The instance.
        instance: InstanceId,
        /// The outcome, including every step that ran.
        result: ScenarioResult,
    },
    /// An instance was not run at all.
    ScenarioSkipped {
        /// The instance.
        instance: InstanceId,
        /// Why it was skipped, e.g. `requires binfmt write access`.
        reason: String,
    },
    /// The host's binfmt_misc entries were put back as they were before the run.
    HostStateRestored {
        /// How many entries the snapshot held.
        entries: usize,
        /// Whether the run had changed anything that needed restoring.
        changed: bool,
    },
    /// The run wrote no binfmt_misc entry of the host's (its instances that
    /// write binfmt_misc ran in private registries): the host's entries
    /// were compared after the run with a snapshot taken before it.
    HostStateChecked {
        /// How many entries the snapshot held.
        entries: usize,
        /// The entries that differed (restored as root); empty when none.
        changed: Vec<String>,
        /// How many instances ran in private binfmt_misc registries.
        private_instances: usize,
    },
    /// The run ended; no event follows.
    RunFinished {
        /// The counts and the total duration.
        summary: RunSummary,
    },
}

/// One scenario expanded for one point of its matrix, run on one QEMU.
///
/// Instances are unique, and sorted, by [`InstanceId::key`]: the QEMU, then
/// the id. The id itself does not name the QEMU, so the reports of two
/// QEMUs compare instance by instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceId {
    /// The human-readable id, unique within one QEMU, e.g.
    /// `persistent-registration[arch=aarch64]`.
    pub id: String,
    /// The scenario name, e.g. `persistent-registration`.
    pub scenario: String,
    /// The matrix values of this instance, in the scenario's order.
    pub matrix: Vec<(String, String)>,
    /// The scenario's tags.
    pub tags: Vec<String>,
    /// The scenario file the instance comes from.
    pub file: PathBuf,
    /// The image version of the QEMU it runs on (`11.1.3-1`), in a run
    /// with `--qemu`; `None` otherwise.
    pub qemu: Option<String>,
    /// The workload axis of a scenario with `workload`: which matrix key
    /// tells the native run from the emulated ones.
    pub workload: Option<WorkloadAxis>,
}

/// The matrix key of a workload scenario and the label of its value whose
/// instance runs natively (`workload: { native: { arch: native } }`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadAxis {
    /// The matrix key (`arch`).
    pub key: String,
    /// The label of the native value (`native`).
    pub native: String,
}

/// What makes an instance unique in a run: its QEMU and its id. Ordered by
/// QEMU version (none first, then oldest first), then id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    /// The QEMU's image version, if the run has a QEMU matrix.
    pub qemu: Option<String>,
    /// The instance id.
    pub id: String,
}

impl Ord for InstanceKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_optional_versions(self.qemu.as_deref(), other.qemu.as_deref())
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for InstanceKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl InstanceId {
    /// Builds an instance whose id is `scenario[key=value,…]`, or just
    /// `scenario` when the matrix is empty; no QEMU, no workload.
    pub fn new(
        scenario: impl Into<String>,
        matrix: Vec<(String, String)>,
        tags: Vec<String>,
        file: impl Into<PathBuf>,
    ) -> Self {
        let scenario = scenario.into();
        let id = if matrix.is_empty() {
            scenario.clone()
        } else {
            let values: Vec<String> = matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{scenario}[{}]", values.join(","))
        };
        Self {
            id,
            scenario,
            matrix,
            tags,
            file: file.into(),
            qemu: None,
            workload: None,
        }
    }

    /// The same instance on the QEMU of image version `qemu`.
    pub fn with_qemu(mut self, qemu: impl Into<String>) -> Self {
        self.qemu = Some(qemu.into());
        self
    }

    /// The same instance, of a workload scenario.
    pub fn with_workload(mut self, axis: WorkloadAxis) -> Self {
        self.workload = Some(axis);
        self
    }

    /// What makes it unique in a run.
    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            qemu: self.qemu.clone(),
            id: self.id.clone(),
        }
    }

    /// The id, followed by ` (qemu <version>)` when `with_qemu` and the
    /// instance has a QEMU: how people tell the instances of several QEMUs
    /// apart.
    pub fn label(&self, with_qemu: bool) -> String {
        match (&self.qemu, with_qemu) {
            (Some(qemu), true) => format!("{} (qemu {qemu})", self.id),
            _ => self.id.clone(),
        }
    }
}

impl Ord for InstanceId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.scenario.cmp(&other.scenario))
            .then_with(|| self.matrix.cmp(&other.matrix))
            .then_with(|| self.tags.cmp(&other.tags))
            .then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.workload.cmp(&other.workload))
    }
}

impl PartialOrd for InstanceId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A QEMU of a `--qemu` matrix: the name asked for and what it resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QemuInfo {
    /// The name given to `--qemu` (`11.1`).
    pub name: String,
    /// The image version it resolved to (`11.1.3-1`).
    pub version: String,
    /// Debian's version of the QEMU package in that image
    /// (`1:11.1.3+ds-1`), when the image says.
    pub debian_version: Option<String>,
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The phase of a scenario a step belongs to.
///
/// Teardown steps run even when a main step failed, so reports keep the phase
/// to tell a failed check from a failed cleanup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Preparation before the steps under test.
    Setup,
    /// The steps under test.
    Main,
    /// Cleanup, run whatever happened before.
    Teardown,
}

impl Phase {
    /// The lowercase name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Main => "main",
            Self::Teardown => "teardown",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output stream of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The lowercase name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_joins_matrix_values_in_order() {
        let id = InstanceId::new(
            "persistent-registration",
            vec![
                ("arch".into(), "aarch64".into()),
                ("flags".into(), "F".into()),
            ],
            vec![],
            "scenarios/persistent.yaml",
        );
        assert_eq!(id.id, "persistent-registration[arch=aarch64,flags=F]");
        assert_eq!(id.to_string(), id.id);
    }

    #[test]
    fn instances_sort_by_qemu_version_then_id() {
        let at = |id: &str, qemu: Option<&str>| {
            let i = InstanceId::new(id, vec![], vec![], "f.yaml");
            match qemu {
                Some(q) => i.with_qemu(q),
                None => i,
            }
        };
        let mut ids = [
            at("b", Some("10.0.2-1")),
            at("a", Some("10.0.2-1")),
            at("b", Some("7.2.0-1")),
            at("z", None),
        ];
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|i| i.label(true)).collect();
        assert_eq!(
            keys,
            [
                "z",
                "b (qemu 7.2.0-1)",
                "a (qemu 10.0.2-1)",
                "b (qemu 10.0.2-1)"
            ]
        );
        assert_eq!(ids[1].label(false), "b");
        assert_ne!(ids[1].key(), ids[3].key());
    }

    #[test]
    fn instance_id_without_matrix_is_the_scenario_name() {
        let id = InstanceId::new("smoke", vec![], vec![], "scenarios/smoke.yaml");
        assert_eq!(id.id, "smoke");
    }
}
