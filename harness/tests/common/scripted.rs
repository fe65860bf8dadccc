//! The scripted engine and the event-order checks that the runner tests
//! share (`runner.rs`, `qemu_matrix.rs`).
//!
//! [`Scripted`] wraps a [`FakeRuntime`] shared with the test (the runner
//! takes its runtime by value), gives each run a delay chosen from its
//! spec, and records when each container "ran". [`execute`] and
//! [`execute_matrix`] run a plan through the runner with no host guard and
//! check the event stream with [`check_order`]: `RunStarted` first,
//! `RunFinished` last, and per instance (by QEMU and id) either one
//! `ScenarioSkipped`, or `ScenarioStarted`, `StepStarted`/`StepFinished`
//! pairs in phase order and `ScenarioFinished` carrying exactly the
//! finished steps; a QEMU's baseline comes while no instance runs, before
//! that QEMU's instances.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use qus_harness::host::HostInfo;
use qus_harness::plan::{self, Planned};
use qus_harness::report::{Event, InstanceKey, Phase, ScenarioResult, StepResult};
use qus_harness::runner::{self, QemuMatrix, RunEnd, RunOptions, TEARDOWN_GRACE};
use qus_harness::runtime::{
    BuildOutcome, BuildSpec, EngineInfo, FakeRuntime, Operation, RunOutcome, RunSpec, Runtime,
    RuntimeError, RuntimeKind, SCENARIO_LABEL, StepCapability,
};
use qus_harness::scenario::{self, Instance, KernelVersion, VarOverrides};
use qus_registrar::binfmt::MountState;

/// The run id of every test run.
pub const RUN_ID: &str = "runner-test";

/// Chooses how long a run takes from its spec.
pub type Delay = dyn Fn(&RunSpec) -> Duration + Send + Sync;

/// One container run as the engine saw it: its command and when it ran.
#[derive(Debug, Clone)]
pub struct Span {
    pub command: Vec<String>,
    pub scenario: String,
    pub start: Instant,
    pub end: Instant,
}

/// A [`FakeRuntime`] shared with the test, with per-spec delays.
///
/// The fake decides the outcome and records the spec; this wrapper then
/// waits the spec's delay, bounded by the spec's timeout (past it the
/// outcome becomes a timeout, exit 137, as an engine reports a killed
/// container), and records the span.
#[derive(Clone)]
pub struct Scripted {
    pub fake: Arc<FakeRuntime>,
    delay: Arc<Delay>,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Scripted {
    pub fn new(
        fake: FakeRuntime,
        delay: impl Fn(&RunSpec) -> Duration + Send + Sync + 'static,
    ) -> Self {
        Self {
            fake: Arc::new(fake),
            delay: Arc::new(delay),
            spans: Arc::default(),
        }
    }

    /// Every run, with no delay.
    pub fn instant(fake: FakeRuntime) -> Self {
        Self::new(fake, |_| Duration::ZERO)
    }

    /// Runs of the `hanging` commands (joined with spaces) take a minute;
    /// every other run, no time.
    pub fn hanging(fake: FakeRuntime, hanging: &'static [&'static str]) -> Self {
        Self::new(fake, move |spec| {
            if hanging.contains(&spec.command.join(" ").as_str()) {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            }
        })
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The commands of every run the engine received, in order, joined.
    pub fn commands(&self) -> Vec<String> {
        self.fake
            .runs()
            .iter()
            .map(|s| s.command.join(" "))
            .collect()
    }
}

impl Runtime for Scripted {
    fn kind(&self) -> RuntimeKind {
        self.fake.kind()
    }

    fn supports(&self, capability: StepCapability) -> Result<(), String> {
        self.fake.supports(capability)
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        self.fake.probe().await
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        let start = Instant::now();
        let delay = (self.delay)(spec);
        let result = self.fake.run(spec).await;
        tokio::time::sleep(delay.min(spec.timeout)).await;
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Span {
                command: spec.command.clone(),
                scenario: spec.labels.get(SCENARIO_LABEL).cloned().unwrap_or_default(),
                start,
                end: Instant::now(),
            });
        if delay > spec.timeout {
            return result.map(|o| RunOutcome {
                exit_code: 137,
                timed_out: true,
                duration: spec.timeout,
                ..o
            });
        }
        result
    }

    async fn build(&self, spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        self.fake.build(spec).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        self.fake.image_exists(image).await
    }

    async fn remove_labelled(&self, key: &str, value: &str) -> Result<usize, RuntimeError> {
        self.fake.remove_labelled(key, value).await
    }
}

/// Root, binfmt_misc mounted, kernel 5.10.
pub fn root_host() -> HostInfo {
    HostInfo {
        is_root: true,
        kernel: KernelVersion::parse("5.10"),
        binfmt: MountState::Mounted,
        machine: "x86_64".to_owned(),
    }
}

/// Loads and expands scenario texts (each a whole file).
pub fn instances(files: &[&str]) -> Vec<Instance> {
    let mut all = Vec::new();
    for (i, text) in files.iter().enumerate() {
        let source = format!("/virtual/runner-test/{i}.yaml");
        let scenario = scenario::load_str(&source, text)
            .unwrap_or_else(|e| panic!("scenario {i} does not load: {e}\n{text}"));
        all.extend(scenario::expand(&scenario, &VarOverrides::new()).expect("scenario expands"));
    }
    all
}

/// Selects everything (sorted by id) and plans it on `runtime`.
pub fn planned<R: Runtime>(
    files: &[&str],
    runtime: &R,
    engine: Result<(), String>,
    host: &HostInfo,
) -> Vec<Planned> {
    let selected = plan::select(instances(files), &plan::Selection::default());
    plan::plan(selected, runtime, engine, host)
}

pub fn options(jobs: usize) -> RunOptions {
    RunOptions {
        run_id: RUN_ID.to_owned(),
        jobs,
        fail_fast: false,
        timeout: None,
        step_timeout: Duration::from_secs(10),
        keep: false,
        teardown_grace: TEARDOWN_GRACE,
        sandbox: None,
    }
}

/// What a run produced.
pub struct Ran {
    pub end: RunEnd,
    pub events: Vec<Event>,
    pub elapsed: Duration,
}

impl Ran {
    /// The result of every instance that finished, by id.
    pub fn results(&self) -> BTreeMap<String, ScenarioResult> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ScenarioFinished { instance, result } => {
                    Some((instance.id.clone(), result.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub fn result(&self, id: &str) -> ScenarioResult {
        self.results()
            .remove(id)
            .unwrap_or_else(|| panic!("`{id}` did not finish; events: {:#?}", self.events))
    }

    /// The skip reason of every skipped instance, by id.
    pub fn skips(&self) -> BTreeMap<String, String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ScenarioSkipped { instance, reason } => {
                    Some((instance.id.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// `[start, finish)` positions in the event stream of every instance
    /// that started.
    pub fn intervals(&self) -> BTreeMap<String, (usize, usize)> {
        let mut open = BTreeMap::new();
        let mut done = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate() {
            match e {
                Event::ScenarioStarted { instance } => {
                    open.insert(instance.id.clone(), i);
                }
                Event::ScenarioFinished { instance, .. } => {
                    let start = open.remove(&instance.id).expect("started before finished");
                    done.insert(instance.id.clone(), (start, i));
                }
                _ => {}
            }
        }
        done
    }
}

/// Runs `planned` on `runtime` on a fresh multi-threaded tokio runtime,
/// checks the event order, and returns what happened.
pub fn execute<R: Runtime + 'static>(
    runtime: R,
    planned: Vec<Planned>,
    options: RunOptions,
) -> Ran {
    let count = planned.len();
    run_checked(count, |tokio, on_event| {
        runner::run(tokio, runtime, planned, options, None, on_event)
    })
}

/// Runs `matrix` on `runtime` as [`execute`] runs a plan.
pub fn execute_matrix<R: Runtime + 'static>(
    runtime: R,
    matrix: QemuMatrix,
    options: RunOptions,
) -> Ran {
    let count = matrix.groups.iter().map(|g| g.planned.len()).sum();
    run_checked(count, |tokio, on_event| {
        runner::run_matrix(tokio, runtime, matrix, options, None, on_event)
    })
}

/// Runs `start` on a fresh multi-threaded tokio runtime, collecting its
/// events, and checks their order for `count` planned instances.
fn run_checked(
    count: usize,
    start: impl FnOnce(&tokio::runtime::Runtime, &mut dyn FnMut(&Event)) -> std::io::Result<RunEnd>,
) -> Ran {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime builds");
    let mut events = Vec::new();
    let began = Instant::now();
    let end = start(&tokio, &mut |e: &Event| events.push(e.clone())).expect("the run starts");
    let ran = Ran {
        end,
        events,
        elapsed: began.elapsed(),
    };
    check_order(&ran, count);
    ran
}

/// Where one instance is in its event sequence.
#[derive(Default)]
struct Seen {
    started: bool,
    finished: bool,
    skipped: bool,
    /// The step started and not yet finished.
    open: Option<(Phase, usize, String)>,
    /// The last finished step's position.
    last: Option<(Phase, usize)>,
    steps: Vec<(Phase, usize, String, StepResult)>,
}

/// Panics unless the events form a valid run (see the module docs). An
/// instance may stay unfinished only when the run was interrupted.
pub fn check_order(ran: &Ran, planned: usize) {
    let events = &ran.events;
    let qemus: Vec<String> = match events.first() {
        Some(Event::RunStarted {
            run_id,
            runtime,
            instances,
            qemus,
            ..
        }) => {
            assert_eq!(run_id, RUN_ID);
            assert_eq!(runtime, "docker");
            assert_eq!(*instances, planned, "RunStarted counts the plan");
            qemus.iter().map(|q| q.version.clone()).collect()
        }
        other => panic!("the first event is not RunStarted: {other:?}"),
    };
    match events.last() {
        Some(Event::RunFinished { summary }) => {
            assert_eq!(
                summary, &ran.end.summary,
                "RunFinished carries RunEnd's summary"
            );
        }
        other => panic!("the last event is not RunFinished: {other:?}"),
    }
    let mut seen: BTreeMap<InstanceKey, Seen> = BTreeMap::new();
    // The QEMU whose instances may run now (each baseline opens one).
    let mut current_qemu: Option<String> = None;
    for (i, event) in events[1..events.len() - 1].iter().enumerate() {
        let at = || format!("event {} ({event:?})", i + 1);
        match event {
            Event::RunStarted { .. } | Event::RunFinished { .. } => {
                panic!("run event in the middle: {}", at())
            }
            Event::HostStateRestored { .. } | Event::HostStateChecked { .. } => {
                panic!("a host state report without a guard: {}", at())
            }
            Event::QemuBaselineRegistered { qemu, .. } => {
                assert!(
                    qemus.contains(qemu),
                    "a baseline of an unknown QEMU: {}",
                    at()
                );
                let open = seen
                    .iter()
                    .filter(|(_, s)| s.started && !s.finished)
                    .count();
                assert_eq!(open, 0, "a baseline while instances run: {}", at());
                current_qemu = Some(qemu.clone());
            }
            Event::ScenarioStarted { instance } => {
                assert_eq!(
                    instance.qemu.is_some(),
                    !qemus.is_empty(),
                    "an instance's QEMU is that of the run: {}",
                    at()
                );
                if current_qemu.is_some() {
                    assert_eq!(
                        instance.qemu,
                        current_qemu,
                        "started under another QEMU's baseline: {}",
                        at()
                    );
                }
                let s = seen.entry(instance.key()).or_default();
                assert!(!s.started && !s.skipped, "started twice: {}", at());
                s.started = true;
            }
            Event::ScenarioSkipped { instance, reason } => {
                let s = seen.entry(instance.key()).or_default();
                assert!(!s.started && !s.skipped, "skipped after start: {}", at());
                assert!(!reason.is_empty(), "a skip without reason: {}", at());
                s.skipped = true;
            }
            Event::StepStarted {
                instance,
                phase,
                index,
                name,
            } => {
                let s = seen.entry(instance.key()).or_default();
                assert!(
                    s.started && !s.finished,
                    "step outside its scenario: {}",
                    at()
                );
                assert!(s.open.is_none(), "a step started inside another: {}", at());
                assert!(
                    s.last.is_none_or(|last| last < (*phase, *index)),
                    "steps out of order: {}",
                    at()
                );
                s.open = Some((*phase, *index, name.clone()));
            }
            Event::StepOutput { instance, .. } => {
                let s = seen.entry(instance.key()).or_default();
                assert!(s.open.is_some(), "output outside a step: {}", at());
            }
            Event::StepFinished {
                instance,
                phase,
                index,
                name,
                result,
            } => {
                let s = seen.entry(instance.key()).or_default();
                assert_eq!(
                    s.open.take(),
                    Some((*phase, *index, name.clone())),
                    "a step finished that had not started: {}",
                    at()
                );
                s.last = Some((*phase, *index));
                s.steps.push((*phase, *index, name.clone(), result.clone()));
            }
            Event::ScenarioFinished { instance, result } => {
                let s = seen.entry(instance.key()).or_default();
                assert!(s.started && !s.finished, "finished twice: {}", at());
                assert!(
                    s.open.is_none(),
                    "finished with step {:?} still open: {}",
                    s.open,
                    at()
                );
                assert_eq!(
                    result.steps,
                    s.steps,
                    "the result lists the steps: {}",
                    at()
                );
                s.finished = true;
            }
        }
    }
    assert_eq!(seen.len(), planned, "every planned instance appears");
    for (key, s) in &seen {
        let complete = (s.started && s.finished) || s.skipped;
        assert!(
            complete || ran.end.interrupted.is_some(),
            "`{key:?}` neither finished nor was skipped"
        );
    }
}

/// A scripted engine whose runs answer from the command:
/// `exit N [stdout]` exits N printing stdout; `broken` is an engine error;
/// anything else exits 0.
pub fn engine() -> FakeRuntime {
    FakeRuntime::new().with_run_handler(|spec| {
        let command: Vec<&str> = spec.command.iter().map(String::as_str).collect();
        match command.as_slice() {
            ["exit", code, rest @ ..] => Ok(RunOutcome::exited(
                code.parse().expect("an exit code"),
                rest.join(" "),
                "",
            )),
            ["broken", ..] => Err(RuntimeError::OperationFailed {
                operation: Operation::CreateContainer,
                object: spec.image.clone(),
                status: Some(500),
                message: "the daemon is broken".to_owned(),
            }),
            _ => Ok(RunOutcome::exited(0, "", "")),
        }
    })
}
