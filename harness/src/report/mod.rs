//! Reporting: the one result model and the outputs built from it.
//!
//! The runner emits [`Event`]s; each [`Reporter`] turns them into one output:
//! [`ConsoleReporter`] for people, [`JunitReporter`] for CI, [`JsonReporter`]
//! for tools. [`Reporters`] fans events out to several. The [`Collector`]
//! folds events into the [`RunReport`] that the file writers serialize. A run
//! with `--qemu` carries the QEMU of every instance ([`InstanceId::qemu`]),
//! and workload scenarios their timings ([`WorkloadResult`]). This module
//! does not run anything and does not decide where output goes.

mod console;
mod events;
mod json;
mod junit;
mod model;
mod reporter;
#[cfg(test)]
mod script;
mod skips;
mod tables;
mod workload;

pub use console::{ConsoleMode, ConsoleReporter};
pub use events::{Event, InstanceId, InstanceKey, Phase, QemuInfo, Stream, WorkloadAxis};
pub use json::{JsonReporter, SCHEMA_VERSION, to_string as to_json_string};
pub use junit::{JunitReporter, build_report as build_junit_report};
pub use model::{
    Collector, HostCheck, HostState, INTERRUPTED_FAILURE, InstanceResult, QemuRan, QemuReport,
    RunInfo, RunReport, RunSummary, ScenarioResult, Status, StepRecord, StepResult,
};
pub use reporter::{ReportError, Reporter, Reporters};
pub use workload::WorkloadResult;
