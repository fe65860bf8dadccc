//! The one result model every reporter shares.
//!
//! Step and scenario results travel inside [`Event`]s; the [`Collector`]
//! folds the event stream into a [`RunReport`], the final model the JUnit and
//! JSON writers serialize. Instances are sorted by QEMU and id there (see
//! [`InstanceKey`]), so a report does not depend on which instance happened
//! to finish first. Workload timings are turned into slowdowns by
//! [`super::workload`]. This module does no I/O and no formatting.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::events::{Event, InstanceId, InstanceKey, Phase, QemuInfo};
use super::workload::{self, WorkloadResult};

/// The outcome of a step or of a scenario instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every assertion held.
    Passed,
    /// An assertion did not hold: the behaviour under test is wrong.
    Failed,
    /// Not run, e.g. a requirement the host does not meet.
    Skipped,
    /// A step ran past its timeout.
    TimedOut,
    /// The harness or the engine broke, so nothing was proven either way.
    Errored,
}

impl Status {
    /// The snake_case name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::TimedOut => "timed_out",
            Self::Errored => "errored",
        }
    }

    /// Whether this outcome makes the run fail.
    pub fn is_failure(self) -> bool {
        match self {
            Self::Passed | Self::Skipped => false,
            Self::Failed | Self::TimedOut | Self::Errored => true,
        }
    }
}

/// Displays the outcome as words for people, e.g. `timed out`; use
/// [`Status::as_str`] for machine-readable output.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TimedOut => "timed out",
            Self::Passed | Self::Failed | Self::Skipped | Self::Errored => self.as_str(),
        })
    }
}

/// The outcome of one step, after any retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    /// The outcome of the last attempt.
    pub status: Status,
    /// Time spent on the step, all attempts included.
    pub duration: Duration,
    /// How many times the step ran; 1 when it was not retried.
    pub attempts: u32,
    /// A readable reason for a failure, e.g.
    /// `stdout: expected "aarch64\n", got "x86_64\n"`.
    pub message: Option<String>,
    /// The command the step ran, when it ran one.
    pub command: Option<String>,
    /// The exit code of the command, when it exited.
    pub exit_code: Option<i64>,
    /// Captured standard output of the last attempt.
    pub stdout: String,
    /// Captured standard error of the last attempt.
    pub stderr: String,
}

impl StepResult {
    /// A result with one attempt, no message, no command and no output.
    pub fn new(status: Status, duration: Duration) -> Self {
        Self {
            status,
            duration,
            attempts: 1,
            message: None,
            command: None,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

/// One step of a finished scenario: phase, index within the phase, name and
/// result.
pub type StepRecord = (Phase, usize, String, StepResult);

/// The outcome of one scenario instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioResult {
    /// The overall outcome.
    pub status: Status,
    /// Time from the first step's start to the last step's end.
    pub duration: Duration,
    /// Every step that ran, in the order it ran.
    pub steps: Vec<StepRecord>,
    /// A readable reason for a failure that is not a step's own message,
    /// e.g. an engine error before the first step.
    pub failure: Option<String>,
    /// Wall time of the `steps` phase, recorded for the instances of a
    /// workload scenario whose steps phase ran to its end (passed or not).
    pub workload_time: Option<Duration>,
    /// Which QEMU ran, as the registered handlers said after the `steps`
    /// phase; recorded in a run with `--qemu`.
    pub qemu_ran: Option<QemuRan>,
}

/// Which QEMU binary ran an instance: the version lines the registered
/// interpreters printed (`qemu-aarch64 version 7.2.22 (Debian
/// 1:7.2+dfsg-7+deb12u18+b3)`), and whether that is the QEMU asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuRan {
    /// The distinct version lines, in the order the targets were probed.
    pub lines: Vec<String>,
    /// Why that is not the QEMU asked for, when it is not.
    pub mismatch: Option<String>,
    /// Why no line could be read, when none could.
    pub error: Option<String>,
}

impl ScenarioResult {
    /// A result with no workload time and no QEMU check.
    pub fn new(
        status: Status,
        duration: Duration,
        steps: Vec<StepRecord>,
        failure: Option<String>,
    ) -> Self {
        Self {
            status,
            duration,
            steps,
            failure,
            workload_time: None,
            qemu_ran: None,
        }
    }

    /// The first step whose outcome fails the instance, if any.
    pub fn failing_step(&self) -> Option<&StepRecord> {
        self.steps.iter().find(|(_, _, _, r)| r.status.is_failure())
    }

    /// The readable reason the instance failed: the scenario's own failure,
    /// else the failing step's message.
    pub fn failure_message(&self) -> Option<&str> {
        self.failure.as_deref().or_else(|| {
            self.failing_step()
                .and_then(|(_, _, _, r)| r.message.as_deref())
        })
    }
}

/// Counts and totals of a whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Instances that passed.
    pub passed: usize,
    /// Instances that failed an assertion.
    pub failed: usize,
    /// Instances that were not run.
    pub skipped: usize,
    /// Instances the harness or the engine could not complete.
    pub errored: usize,
    /// Instances with a step that ran past its timeout.
    pub timed_out: usize,
    /// Wall-clock time of the whole run.
    pub duration: Duration,
    /// Whether the host's binfmt_misc state was restored after the run;
    /// `None` when no scenario needed a snapshot.
    pub host_state_restored: Option<bool>,
    /// The comparison of the host's entries before and after a run whose
    /// instances wrote only private registries; `None` otherwise.
    pub host_state_checked: Option<HostCheck>,
}

/// What `HostStateChecked` reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCheck {
    /// How many entries the snapshot held.
    pub entries: usize,
    /// The entries that differed after the run (restored as root).
    pub changed: Vec<String>,
    /// How many instances ran in private binfmt_misc registries.
    pub private_instances: usize,
}

impl HostCheck {
    /// Whether the host's registry was untouched.
    pub fn is_untouched(&self) -> bool {
        self.changed.is_empty()
    }
}

impl RunSummary {
    /// The process exit code the results call for: 0 when every instance
    /// passed or was skipped, 1 when any failed, errored or timed out.
    ///
    /// Usage, configuration and environment errors (exit codes 2 and 3) are
    /// errors of the run, not results, and are decided by the caller.
    pub fn exit_code(&self) -> i32 {
        if self.failed + self.errored + self.timed_out == 0 {
            0
        } else {
            1
        }
    }

    /// Adds one instance outcome to the counts.
    fn count(&mut self, status: Status) {
        let counter = match status {
            Status::Passed => &mut self.passed,
            Status::Failed => &mut self.failed,
            Status::Skipped => &mut self.skipped,
            Status::TimedOut => &mut self.timed_out,
            Status::Errored => &mut self.errored,
        };
        *counter += 1;
    }
}

/// What `RunStarted` told about the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// The container engine.
    pub runtime: String,
    /// Wall-clock start of the run.
    pub started_at: SystemTime,
    /// How many instances the plan held.
    pub instances: usize,
    /// How many instances could run at once.
    pub jobs: usize,
    /// The QEMUs of a `--qemu` matrix, oldest first; empty without one.
    pub qemus: Vec<QemuInfo>,
}

/// The host binfmt_misc restore, as `HostStateRestored` reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostState {
    /// How many entries the snapshot held.
    pub entries: usize,
    /// Whether the run had changed anything that needed restoring.
    pub changed: bool,
}

/// The final result of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceResult {
    /// The instance.
    pub instance: InstanceId,
    /// Its outcome; an instance that was skipped has status
    /// [`Status::Skipped`], no steps and a zero duration.
    pub result: ScenarioResult,
    /// Why the instance was skipped, when it was.
    pub skip_reason: Option<String>,
    /// Its workload timing and slowdown, for an instance of a workload
    /// scenario whose `steps` phase was timed.
    pub workload: Option<WorkloadResult>,
}

/// One QEMU of a matrix run: what it is, its baseline registration, and
/// the counts of its instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuReport {
    /// The QEMU.
    pub info: QemuInfo,
    /// The baseline registration, when there was one.
    pub baseline: Option<StepResult>,
    /// Its instances' outcomes (the duration and host state are the
    /// run's).
    pub summary: RunSummary,
}

/// The final model of a run, built by a [`Collector`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// What the run was.
    pub info: RunInfo,
    /// Every instance that finished, was skipped or was interrupted, sorted
    /// by QEMU, then id.
    pub instances: Vec<InstanceResult>,
    /// Each QEMU of a matrix run, oldest first; empty without `--qemu`.
    pub qemus: Vec<QemuReport>,
    /// The host restore, when there was one.
    pub host_state: Option<HostState>,
    /// The summary from `RunFinished`, or one counted from the instances
    /// when the run ended without it.
    pub summary: RunSummary,
    /// Whether `RunFinished` arrived.
    pub is_complete: bool,
}

/// The failure recorded for an instance that started but never finished,
/// e.g. after Ctrl-C.
pub const INTERRUPTED_FAILURE: &str = "the run ended before this instance finished";

/// Folds events into a [`RunReport`].
///
/// Feed it every event with [`Collector::handle`], then call
/// [`Collector::report`]. The order events arrive in does not change the
/// report: instances are kept sorted by [`InstanceKey`]. An instance that started but
/// never finished is reported as errored with the steps it completed, so an
/// interrupted run still accounts for everything it began.
#[derive(Debug, Default)]
pub struct Collector {
    /// From `RunStarted`.
    info: Option<RunInfo>,
    /// Started, not yet finished: the steps finished so far.
    running: BTreeMap<InstanceKey, (InstanceId, Vec<StepRecord>)>,
    /// Finished or skipped, keyed for a stable order.
    done: BTreeMap<InstanceKey, InstanceResult>,
    /// Baseline registrations, by QEMU version.
    baselines: BTreeMap<String, StepResult>,
    /// From `HostStateRestored`.
    host_state: Option<HostState>,
    /// From `HostStateChecked`.
    host_check: Option<HostCheck>,
    /// From `RunFinished`.
    summary: Option<RunSummary>,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event into account.
    pub fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                runtime,
                started_at,
                instances,
                jobs,
                qemus,
            } => {
                self.info = Some(RunInfo {
                    run_id: run_id.clone(),
                    runtime: runtime.clone(),
                    started_at: *started_at,
                    instances: *instances,
                    jobs: *jobs,
                    qemus: qemus.clone(),
                });
            }
            Event::QemuBaselineRegistered { qemu, result } => {
                self.baselines.insert(qemu.clone(), result.clone());
            }
            Event::ScenarioStarted { instance } => {
                self.running
                    .insert(instance.key(), (instance.clone(), Vec::new()));
            }
            // Step starts and streamed output change no result: the captured
            // output arrives again, complete, in the step's result.
            Event::StepStarted { .. } | Event::StepOutput { .. } => {}
            Event::StepFinished {
                instance,
                phase,
                index,
                name,
                result,
            } => {
                let (_, steps) = self
                    .running
                    .entry(instance.key())
                    .or_insert_with(|| (instance.clone(), Vec::new()));
                steps.push((*phase, *index, name.clone(), result.clone()));
            }
            Event::ScenarioFinished { instance, result } => {
                self.running.remove(&instance.key());
                self.done.insert(
                    instance.key(),
                    InstanceResult {
                        instance: instance.clone(),
                        result: result.clone(),
                        skip_reason: None,
                        workload: None,
                    },
                );
            }
            Event::ScenarioSkipped { instance, reason } => {
                self.running.remove(&instance.key());
                self.done.insert(
                    instance.key(),
                    InstanceResult {
                        instance: instance.clone(),
                        result: ScenarioResult::new(
                            Status::Skipped,
                            Duration::ZERO,
                            Vec::new(),
                            None,
                        ),
                        skip_reason: Some(reason.clone()),
                        workload: None,
                    },
                );
            }
            Event::HostStateRestored { entries, changed } => {
                self.host_state = Some(HostState {
                    entries: *entries,
                    changed: *changed,
                });
            }
            Event::HostStateChecked {
                entries,
                changed,
                private_instances,
            } => {
                self.host_check = Some(HostCheck {
                    entries: *entries,
                    changed: changed.clone(),
                    private_instances: *private_instances,
                });
            }
            Event::RunFinished { summary } => {
                self.summary = Some(summary.clone());
            }
        }
    }

    /// Every instance seen so far, sorted by QEMU and id, with their
    /// workload slowdowns; instances still running are reported as
    /// interrupted.
    pub fn instances(&self) -> Vec<InstanceResult> {
        let mut all = self.done.clone();
        for (key, (instance, steps)) in &self.running {
            let duration = steps.iter().map(|(_, _, _, r)| r.duration).sum();
            // A late event for an instance that already finished does not
            // reopen it.
            all.entry(key.clone()).or_insert_with(|| InstanceResult {
                instance: instance.clone(),
                result: ScenarioResult::new(
                    Status::Errored,
                    duration,
                    steps.clone(),
                    Some(INTERRUPTED_FAILURE.to_owned()),
                ),
                skip_reason: None,
                workload: None,
            });
        }
        let mut instances: Vec<InstanceResult> = all.into_values().collect();
        workload::fill(&mut instances);
        instances
    }

    /// Counts the instances seen so far into a summary; the runner can use
    /// this to build `RunFinished`.
    pub fn summary(&self, duration: Duration, host_state_restored: Option<bool>) -> RunSummary {
        let mut summary = RunSummary {
            duration,
            host_state_restored,
            host_state_checked: self.host_check.clone(),
            ..RunSummary::default()
        };
        for instance in self.instances() {
            summary.count(instance.result.status);
        }
        summary
    }

    /// The final model. Before `RunFinished` it is still usable: the summary
    /// is counted from the instances, timed up to now, and `is_complete` is
    /// false.
    pub fn report(&self) -> RunReport {
        let info = self.info.clone().unwrap_or_else(|| RunInfo {
            run_id: String::new(),
            runtime: "unknown".to_owned(),
            started_at: SystemTime::UNIX_EPOCH,
            instances: 0,
            jobs: 0,
            qemus: Vec::new(),
        });
        let summary = match &self.summary {
            Some(summary) => summary.clone(),
            None => {
                let elapsed = SystemTime::now()
                    .duration_since(info.started_at)
                    .unwrap_or_default();
                let restored = self.host_state.map(|_| true);
                self.summary(elapsed, restored)
            }
        };
        let instances = self.instances();
        let qemus = info
            .qemus
            .iter()
            .map(|qemu| {
                let mut counts = RunSummary {
                    duration: summary.duration,
                    host_state_restored: summary.host_state_restored,
                    host_state_checked: summary.host_state_checked.clone(),
                    ..RunSummary::default()
                };
                for i in &instances {
                    if i.instance.qemu.as_deref() == Some(qemu.version.as_str()) {
                        counts.count(i.result.status);
                    }
                }
                QemuReport {
                    info: qemu.clone(),
                    baseline: self.baselines.get(&qemu.version).cloned(),
                    summary: counts,
                }
            })
            .collect();
        RunReport {
            info,
            instances,
            qemus,
            host_state: self.host_state,
            summary,
            is_complete: self.summary.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::script;

    #[test]
    fn exit_code_is_zero_when_everything_passed_or_was_skipped() {
        let summary = RunSummary {
            passed: 3,
            skipped: 2,
            ..RunSummary::default()
        };
        assert_eq!(summary.exit_code(), 0);
        assert_eq!(RunSummary::default().exit_code(), 0);
    }

    #[test]
    fn exit_code_is_one_for_any_failure_error_or_timeout() {
        for summary in [
            RunSummary {
                passed: 3,
                failed: 1,
                ..RunSummary::default()
            },
            RunSummary {
                passed: 3,
                errored: 1,
                ..RunSummary::default()
            },
            RunSummary {
                passed: 3,
                timed_out: 1,
                ..RunSummary::default()
            },
        ] {
            assert_eq!(summary.exit_code(), 1, "{summary:?}");
        }
    }

    #[test]
    fn collector_sorts_instances_by_id_whatever_the_arrival_order() {
        let events = script::events();
        let mut forward = Collector::new();
        for event in &events {
            forward.handle(event);
        }
        let ids: Vec<String> = forward
            .instances()
            .into_iter()
            .map(|i| i.instance.id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        // The script finishes instances out of id order, so sorting did work.
        let finish_order: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::ScenarioFinished { instance, .. }
                | Event::ScenarioSkipped { instance, .. } => Some(instance.id.as_str()),
                _ => None,
            })
            .collect();
        assert_ne!(
            finish_order,
            ids.iter().map(String::as_str).collect::<Vec<_>>()
        );

        // Whole instances fed in reverse id order give the same report.
        let mut by_instance: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
        let mut run_events = Vec::new();
        for event in &events {
            match script::instance_of(event) {
                Some(id) => by_instance.entry(id.to_owned()).or_default().push(event),
                None => run_events.push(event),
            }
        }
        let (first, last) = run_events.split_at(1);
        let mut backward = Collector::new();
        let reordered = first
            .iter()
            .copied()
            .chain(by_instance.values().rev().flatten().copied())
            .chain(last.iter().copied());
        for event in reordered {
            backward.handle(event);
        }
        assert_eq!(forward.report(), backward.report());
    }

    #[test]
    fn collector_counts_match_the_scripted_summary() {
        let mut collector = Collector::new();
        for event in script::events() {
            collector.handle(&event);
        }
        let report = collector.report();
        assert!(report.is_complete);
        let counted =
            collector.summary(report.summary.duration, report.summary.host_state_restored);
        assert_eq!(counted, report.summary);
    }

    #[test]
    fn collector_reports_unfinished_instances_as_errored() {
        let instance = InstanceId::new("slow", vec![], vec![], "scenarios/slow.yaml");
        let mut collector = Collector::new();
        collector.handle(&Event::ScenarioStarted {
            instance: instance.clone(),
        });
        collector.handle(&Event::StepFinished {
            instance: instance.clone(),
            phase: Phase::Setup,
            index: 0,
            name: "pull: alpine".to_owned(),
            result: StepResult::new(Status::Passed, Duration::from_millis(300)),
        });
        let report = collector.report();
        assert!(!report.is_complete);
        assert_eq!(report.instances.len(), 1);
        let result = &report.instances[0].result;
        assert_eq!(result.status, Status::Errored);
        assert_eq!(result.failure.as_deref(), Some(INTERRUPTED_FAILURE));
        assert_eq!(result.steps.len(), 1);
        assert_eq!(report.summary.errored, 1);
        assert_eq!(report.summary.exit_code(), 1);
    }

    #[test]
    fn failure_message_prefers_the_scenario_failure_then_the_failing_step() {
        let mut step = StepResult::new(Status::Failed, Duration::ZERO);
        step.message = Some("exit code: expected 0, got 1".to_owned());
        let mut result = ScenarioResult::new(
            Status::Failed,
            Duration::ZERO,
            vec![
                (
                    Phase::Setup,
                    0,
                    "ok".to_owned(),
                    StepResult::new(Status::Passed, Duration::ZERO),
                ),
                (Phase::Main, 0, "run: false".to_owned(), step),
            ],
            None,
        );
        assert_eq!(result.failing_step().map(|s| s.1), Some(0));
        assert_eq!(result.failing_step().map(|s| s.0), Some(Phase::Main));
        assert_eq!(
            result.failure_message(),
            Some("exit code: expected 0, got 1")
        );
        result.failure = Some("engine went away".to_owned());
        assert_eq!(result.failure_message(), Some("engine went away"));
    }
}
