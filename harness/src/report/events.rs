//! The interface between the runner and the reporters.
//!
//! The runner never prints: it describes what happened as a stream of
//! [`Event`]s, past-tense facts handed to a callback, and each reporter turns
//! them into its own output. The types here are deliberately self-contained
//! (plain strings for ids, matrix values and tags) so that reporters do not
//! depend on the scenario model or the runtime. This module does not decide
//! what a result means; that is [`super::model`].

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::model::{RunSummary, ScenarioResult, StepResult};

/// Something that happened during a run, in the order the runner saw it.
///
/// Events of different instances interleave when instances run in parallel;
/// reporters that need a stable order sort by [`InstanceId::id`].
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
    /// The run ended; no event follows.
    RunFinished {
        /// The counts and the total duration.
        summary: RunSummary,
    },
}

/// One scenario expanded for one point of its matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    /// The unique, human-readable id, e.g. `persistent-registration[arch=aarch64]`.
    pub id: String,
    /// The scenario name, e.g. `persistent-registration`.
    pub scenario: String,
    /// The matrix values of this instance, in the scenario's order.
    pub matrix: Vec<(String, String)>,
    /// The scenario's tags.
    pub tags: Vec<String>,
    /// The scenario file the instance comes from.
    pub file: PathBuf,
}

impl InstanceId {
    /// Builds an instance whose id is `scenario[key=value,…]`, or just
    /// `scenario` when the matrix is empty.
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
        }
    }
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
    fn instance_id_without_matrix_is_the_scenario_name() {
        let id = InstanceId::new("smoke", vec![], vec![], "scenarios/smoke.yaml");
        assert_eq!(id.id, "smoke");
    }
}
