//! Running a plan: scheduling, instances, signals, cleanup, host restore.
//!
//! [`run`] is blocking: on the caller's tokio runtime (the one the engine
//! client was connected on), it runs the planned
//! instances (those that write binfmt_misc alone, the others up to `jobs` at
//! a time), hands every [`Event`] to the caller's callback, and at the end,
//! whatever happened (failures, `--timeout`, Ctrl-C, SIGTERM), removes every
//! container and image labelled with the run id and restores the host's
//! binfmt_misc entries. It never prints.
//!
//! A run stopped as a whole (the first Ctrl-C or SIGTERM, or `--timeout`)
//! starts no more instances and cuts the running ones short, which then
//! run their `teardown` as after any failure. A second Ctrl-C or SIGTERM,
//! or [`RunOptions::teardown_grace`] gone by, abandons those teardowns; the
//! label sweep and the host restore still follow.
//!
//! [`run_matrix`] runs a [`QemuMatrix`]: its groups one after another, each
//! scheduled as above after its QEMU's baseline registration, each instance
//! followed by the check of which QEMU ran it (see `qemu.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use qus_registrar::binfmt::Binfmt;
use tokio::sync::{RwLock, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::qemu::{QemuMatrix, QemuProbe, check_ran, register_baseline};
use super::step::{StepContext, error_chain, humantime, run_step};
use crate::host::HostGuard;
use crate::plan::Planned;
use crate::report::{
    Collector, Event, InstanceId, InstanceKey, Phase, QemuInfo, RunSummary, ScenarioResult, Status,
    StepResult, Stream, WorkloadAxis,
};
use crate::runtime::{RUN_LABEL, Runtime, RuntimeKind};
use crate::sandbox::{Namespace, Sandbox};
use crate::scenario::{Instance, Step};

/// How long the check of which QEMU ran may take.
const QEMU_CHECK_LIMIT: Duration = Duration::from_secs(30);

/// The scenario label of the baseline registration's container.
const BASELINE_SCENARIO: &str = "qemu-baseline";

/// The instances of one QEMU of the run (or of the whole run without
/// `--qemu`), with what to do before them.
struct Group {
    qemu: Option<QemuInfo>,
    baseline: Option<String>,
    planned: Vec<Planned>,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Labels every container and image; names the run in reports.
    pub run_id: String,
    /// How many instances may run at once.
    pub jobs: usize,
    /// Stop starting instances after the first failure.
    pub fail_fast: bool,
    /// Limit for the whole run.
    pub timeout: Option<Duration>,
    /// Limit for a step that sets none.
    pub step_timeout: Duration,
    /// Leave containers and images in place (`--keep`).
    pub keep: bool,
    /// How long the teardowns of a stopped run may take before they are
    /// abandoned ([`TEARDOWN_GRACE`] unless a test shortens it).
    pub teardown_grace: Duration,
    /// The host runtime's sandbox (`None` on container runtimes): where
    /// it gives private namespaces, every instance that writes binfmt_misc
    /// runs in one of its own, in parallel with the others.
    pub sandbox: Option<Arc<Sandbox>>,
}

/// How long, by default, the teardowns of a stopped run may take before
/// they are abandoned too.
pub const TEARDOWN_GRACE: Duration = Duration::from_secs(60);

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// The counts.
    pub summary: RunSummary,
    /// Why the run stopped early, if it did (`interrupted by SIGINT`).
    pub interrupted: Option<String>,
    /// Set when the host's binfmt_misc state could not be restored.
    pub restore_error: Option<String>,
}

/// Runs the plan on `runtime`; see the module documentation.
pub fn run<R: Runtime + 'static>(
    tokio: &tokio::runtime::Runtime,
    runtime: R,
    planned: Vec<Planned>,
    options: RunOptions,
    guard: Option<HostGuard>,
    on_event: impl FnMut(&Event),
) -> std::io::Result<RunEnd> {
    let group = Group {
        qemu: None,
        baseline: None,
        planned,
    };
    run_groups(tokio, runtime, vec![group], None, options, guard, on_event)
}

/// Runs every group of `matrix` on `runtime`, one QEMU after another; see
/// the module documentation.
pub fn run_matrix<R: Runtime + 'static>(
    tokio: &tokio::runtime::Runtime,
    runtime: R,
    matrix: QemuMatrix,
    options: RunOptions,
    guard: Option<HostGuard>,
    on_event: impl FnMut(&Event),
) -> std::io::Result<RunEnd> {
    let groups = matrix
        .groups
        .into_iter()
        .map(|g| Group {
            qemu: Some(g.qemu),
            baseline: g.baseline,
            planned: g.planned,
        })
        .collect();
    run_groups(
        tokio,
        runtime,
        groups,
        matrix.probe,
        options,
        guard,
        on_event,
    )
}

fn run_groups<R: Runtime + 'static>(
    tokio: &tokio::runtime::Runtime,
    runtime: R,
    groups: Vec<Group>,
    probe: Option<Arc<dyn QemuProbe>>,
    options: RunOptions,
    guard: Option<HostGuard>,
    mut on_event: impl FnMut(&Event),
) -> std::io::Result<RunEnd> {
    tokio.block_on(async move {
        let start = Instant::now();
        let runtime = Arc::new(runtime);
        let mut collector = Collector::new();
        let mut emit = |event: Event, collector: &mut Collector| {
            collector.handle(&event);
            on_event(&event);
        };
        emit(
            Event::RunStarted {
                run_id: options.run_id.clone(),
                runtime: runtime.kind().as_str().to_owned(),
                started_at: SystemTime::now(),
                instances: groups.iter().map(|g| g.planned.len()).sum(),
                jobs: options.jobs,
                qemus: groups.iter().filter_map(|g| g.qemu.clone()).collect(),
            },
            &mut collector,
        );
        let all_ids: Vec<InstanceId> = groups
            .iter()
            .flat_map(|g| {
                let qemu = g.qemu.as_ref().map(|q| q.version.as_str());
                g.planned.iter().map(move |p| instance_id_on(&p.instance, qemu))
            })
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Holds why the run was stopped, once it is.
        let (stop_tx, stop_rx) = watch::channel(None::<String>);
        let private_instances = Arc::new(AtomicUsize::new(0));
        let mut scheduler = tokio::spawn(schedule(
            runtime.clone(),
            groups,
            probe,
            options.clone(),
            tx,
            stop_rx,
            private_instances.clone(),
        ));
        let mut interrupted: Option<String> = None;
        let mut abandoned = false;
        let mut grace_armed = false;
        let mut scheduler_done = false;
        let deadline = async {
            match options.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        // Armed by the first stop: how long teardowns may still take.
        let grace = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(grace);
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut started: BTreeSet<InstanceKey> = BTreeSet::new();
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        if let Event::ScenarioStarted { instance } | Event::ScenarioSkipped { instance, .. } = &event {
                            started.insert(instance.key());
                        }
                        emit(event, &mut collector);
                    }
                    // Every sender is gone: the scheduler and its tasks ended.
                    None => break,
                },
                _ = &mut scheduler, if !scheduler_done => scheduler_done = true,
                _ = tokio::signal::ctrl_c(), if !abandoned => {
                    stop(&mut interrupted, &mut abandoned, &stop_tx, &scheduler, "interrupted by SIGINT".to_owned());
                }
                _ = sigterm.recv(), if !abandoned => {
                    stop(&mut interrupted, &mut abandoned, &stop_tx, &scheduler, "interrupted by SIGTERM".to_owned());
                }
                _ = &mut deadline, if interrupted.is_none() => {
                    let reason = format!("the run timed out after {}", humantime(options.timeout.unwrap_or_default()));
                    stop(&mut interrupted, &mut abandoned, &stop_tx, &scheduler, reason);
                }
                _ = &mut grace, if interrupted.is_some() && !abandoned => {
                    let reason = format!("teardown still running {} after the stop", humantime(options.teardown_grace));
                    stop(&mut interrupted, &mut abandoned, &stop_tx, &scheduler, reason);
                }
            }
            if interrupted.is_some() && !grace_armed {
                grace.as_mut().reset(tokio::time::Instant::now() + options.teardown_grace);
                grace_armed = true;
            }
        }
        if let Some(reason) = &interrupted {
            for id in all_ids.into_iter().filter(|id| !started.contains(&id.key())) {
                emit(
                    Event::ScenarioSkipped {
                        instance: id,
                        reason: format!("not run: {reason}"),
                    },
                    &mut collector,
                );
            }
        }
        // The backstop for containers whose own guard could not finish.
        if !options.keep
            && let Err(e) = runtime.remove_labelled(RUN_LABEL, &options.run_id).await
        {
            tracing::warn!("failed to remove the run's containers and images: {}", error_chain(&e));
        }
        let mut restore_error = None;
        let mut restored = None;
        match guard {
            // Nothing of the run was to write the host's registry: compare.
            Some(mut guard) if guard.is_watching() => match guard.check() {
                Ok(changed) => {
                    if !changed.is_empty() {
                        restore_error = Some(format!(
                            "the host's binfmt_misc entries changed during a run whose \
                             instances write only private registries: {}",
                            changed.join(", ")
                        ));
                    }
                    emit(
                        Event::HostStateChecked {
                            entries: guard.entries(),
                            changed,
                            private_instances: private_instances.load(Ordering::SeqCst),
                        },
                        &mut collector,
                    );
                }
                Err(e) => restore_error = Some(error_chain(&e)),
            },
            Some(mut guard) => match guard.restore() {
                Ok(report) => {
                    restored = Some(true);
                    emit(
                        Event::HostStateRestored {
                            entries: guard.entries(),
                            changed: report.changed(),
                        },
                        &mut collector,
                    );
                }
                Err(e) => {
                    restored = Some(false);
                    restore_error = Some(error_chain(&e));
                }
            },
            None => {}
        }
        let summary = collector.summary(start.elapsed(), restored);
        emit(Event::RunFinished { summary: summary.clone() }, &mut collector);
        Ok(RunEnd {
            summary,
            interrupted,
            restore_error,
        })
    })
}

/// The first stop asks every instance to stop and teardown (`stop_tx`); a
/// later signal abandons the teardowns by aborting the scheduler, whose
/// tasks go with it.
fn stop(
    interrupted: &mut Option<String>,
    abandoned: &mut bool,
    stop_tx: &watch::Sender<Option<String>>,
    scheduler: &tokio::task::JoinHandle<()>,
    reason: String,
) {
    if interrupted.is_none() {
        tracing::warn!("{reason}: stopping the running scenarios after their teardown");
        stop_tx.send_replace(Some(reason.clone()));
        *interrupted = Some(reason);
    } else {
        tracing::warn!("{reason} again: abandoning the running teardowns");
        *abandoned = true;
        scheduler.abort();
    }
}

/// Resolves with the reason once the run is stopped; never, otherwise.
async fn stopped(mut rx: watch::Receiver<Option<String>>) -> String {
    let reason = rx
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|r| r.clone());
    match reason {
        Some(reason) => reason,
        // The run ended without a stop.
        None => std::future::pending().await,
    }
}

/// Starts every instance as its turn comes, group after group; returns when
/// all ended. Once the run is stopped it starts no more (the caller reports
/// them as not run) but still reports the plan's own skips.
async fn schedule<R: Runtime + 'static>(
    runtime: Arc<R>,
    groups: Vec<Group>,
    probe: Option<Arc<dyn QemuProbe>>,
    options: RunOptions,
    tx: mpsc::UnboundedSender<Event>,
    stop_rx: watch::Receiver<Option<String>>,
    private_instances: Arc<AtomicUsize>,
) {
    // Readers share the host; an instance that writes binfmt_misc takes the
    // write side and so runs alone.
    let host = Arc::new(RwLock::new(()));
    // Instances that write binfmt_misc get registries of their own.
    let private = runtime.kind() == RuntimeKind::Host
        && options.sandbox.as_ref().is_some_and(|s| s.is_private());
    let slots = Arc::new(Semaphore::new(options.jobs.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let builds = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for group in groups {
        // A group starts when the previous one ended: its baseline rewrites
        // the handlers the previous group's instances run on.
        while tasks.join_next().await.is_some() {}
        let qemu = group.qemu.as_ref().map(|q| q.version.clone());
        // Nothing of the group runs once the run is stopped, or after
        // `--fail-fast`: its handlers need no registering (the plan's own
        // skips are still reported below).
        let runnable = group.planned.iter().any(|p| p.skip.is_none())
            && stop_rx.borrow().is_none()
            && !stop.load(Ordering::SeqCst);
        let mut baseline_failure = None;
        if let (Some(info), Some(image), true) = (&group.qemu, &group.baseline, runnable) {
            let binfmt = Binfmt::default();
            let ctx = StepContext {
                runtime: runtime.as_ref(),
                run_id: &options.run_id,
                scenario: BASELINE_SCENARIO,
                binfmt: &binfmt,
                default_timeout: options.step_timeout,
                builds: &builds,
                fresh_builds: true,
                sandbox: options.sandbox.as_deref(),
                namespace: None,
            };
            // A stop during the registration abandons it; the instances
            // below then see the stop.
            let registered = tokio::select! {
                result = register_baseline(&ctx, image) => Some(result),
                _ = stopped(stop_rx.clone()) => None,
            };
            if let Some(result) = registered {
                if result.status != Status::Passed {
                    baseline_failure = Some(format!(
                        "not run: the handlers of QEMU {} (`{image}`) could not be registered: {}",
                        info.version,
                        result.message.as_deref().unwrap_or(result.status.as_str())
                    ));
                }
                let _ = tx.send(Event::QemuBaselineRegistered {
                    qemu: info.version.clone(),
                    result,
                });
            }
        }
        for p in group.planned {
            let id = instance_id_on(&p.instance, qemu.as_deref());
            if let Some(reason) = p.skip.clone() {
                let _ = tx.send(Event::ScenarioSkipped {
                    instance: id,
                    reason,
                });
                continue;
            }
            if stop_rx.borrow().is_some() {
                continue;
            }
            if let Some(failure) = &baseline_failure {
                // The instance would run on whatever handlers were there:
                // it proves nothing about this QEMU, and says so.
                let _ = tx.send(Event::ScenarioStarted {
                    instance: id.clone(),
                });
                let _ = tx.send(Event::ScenarioFinished {
                    instance: id,
                    result: ScenarioResult::new(
                        Status::Errored,
                        Duration::ZERO,
                        Vec::new(),
                        Some(failure.clone()),
                    ),
                });
                continue;
            }
            // Slots and host access are taken here, in plan order, so that
            // instances start in the order of the plan (`-j 1` runs them
            // sorted by id, and `--fail-fast` skips the later ones), whichever
            // task the tokio scheduler would have polled first.
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            // A private registry is the instance's alone: it shares the
            // host with the others.
            let hermetic = private && p.is_disruptive();
            let access = if p.is_disruptive() && !hermetic {
                HostAccess::Exclusive(host.clone().write_owned().await)
            } else {
                HostAccess::Shared(host.clone().read_owned().await)
            };
            if stop_rx.borrow().is_some() {
                continue;
            }
            if stop.load(Ordering::SeqCst) {
                let _ = tx.send(Event::ScenarioSkipped {
                    instance: id,
                    reason: "not run: --fail-fast after an earlier failure".into(),
                });
                continue;
            }
            // Each QEMU builds afresh: a `RUN` another QEMU ran, cached,
            // would not run under this one.
            let fresh_builds = group.qemu.is_some();
            let check = match (&probe, &group.qemu) {
                (Some(probe), Some(info)) => Some((probe.clone(), info.clone())),
                _ => None,
            };
            let (runtime, stop, builds, tx, options, stop_rx, private_instances) = (
                runtime.clone(),
                stop.clone(),
                builds.clone(),
                tx.clone(),
                options.clone(),
                stop_rx.clone(),
                private_instances.clone(),
            );
            tasks.spawn(async move {
                // Released when the instance ends, whatever the outcome.
                let _held = (slot, access);
                let sandbox = options.sandbox.as_deref();
                let namespace = match (hermetic, sandbox) {
                    (true, Some(sandbox)) => match Namespace::create(sandbox.helper()).await {
                        Ok(namespace) => {
                            private_instances.fetch_add(1, Ordering::SeqCst);
                            Some(namespace)
                        }
                        Err(e) => {
                            let message = format!(
                                "failed to set up the instance's private binfmt_misc: {}",
                                error_chain(&e)
                            );
                            let _ = tx.send(Event::ScenarioStarted {
                                instance: id.clone(),
                            });
                            let _ = tx.send(Event::ScenarioFinished {
                                instance: id,
                                result: ScenarioResult::new(
                                    Status::Errored,
                                    Duration::ZERO,
                                    Vec::new(),
                                    Some(message),
                                ),
                            });
                            return;
                        }
                    },
                    _ => None,
                };
                let binfmt = namespace
                    .as_ref()
                    .map_or_else(Binfmt::default, Namespace::binfmt);
                let ctx = StepContext {
                    runtime: runtime.as_ref(),
                    run_id: &options.run_id,
                    scenario: &p.instance.scenario,
                    binfmt: &binfmt,
                    default_timeout: options.step_timeout,
                    builds: &builds,
                    fresh_builds,
                    sandbox,
                    namespace: namespace.as_ref(),
                };
                let check = check.as_ref().map(|(probe, info)| (probe.as_ref(), info));
                let result =
                    run_instance(&ctx, &p.instance, &id, &tx, stopped(stop_rx), check).await;
                if result.status.is_failure() && options.fail_fast {
                    stop.store(true, Ordering::SeqCst);
                }
                let _ = tx.send(Event::ScenarioFinished {
                    instance: id,
                    result,
                });
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Held while an instance runs.
enum HostAccess {
    Shared(
        #[expect(dead_code, reason = "held for its drop")] tokio::sync::OwnedRwLockReadGuard<()>,
    ),
    Exclusive(
        #[expect(dead_code, reason = "held for its drop")] tokio::sync::OwnedRwLockWriteGuard<()>,
    ),
}

/// Setup and steps until the first failure (within the instance's time
/// limit, and until `run_stopped` resolves), then, with `check`, which QEMU
/// ran, then every teardown step. A workload instance's `steps` phase is
/// timed.
async fn run_instance<R: Runtime>(
    ctx: &StepContext<'_, R>,
    instance: &Instance,
    id: &InstanceId,
    tx: &mpsc::UnboundedSender<Event>,
    run_stopped: impl Future<Output = String>,
    check: Option<(&dyn QemuProbe, &QemuInfo)>,
) -> ScenarioResult {
    let _ = tx.send(Event::ScenarioStarted {
        instance: id.clone(),
    });
    let start = Instant::now();
    let mut steps = Vec::new();
    let mut failure = None;
    // The step running when the instance was cut short.
    let mut in_flight: Option<(Phase, usize, String, Instant)> = None;
    // When the `steps` phase began, and how long it took once it ended.
    let mut main_started = None;
    let mut main_time = None;
    let body = async {
        for (phase, list) in [
            (Phase::Setup, &instance.setup),
            (Phase::Main, &instance.steps),
        ] {
            if phase == Phase::Main {
                main_started = Some(Instant::now());
            }
            for (index, step) in list.iter().enumerate() {
                in_flight = Some((phase, index, step.label(), Instant::now()));
                let status = one_step(ctx, id, tx, phase, index, step, &mut steps).await;
                in_flight = None;
                if status.is_failure() {
                    break;
                }
            }
            if phase == Phase::Main {
                main_time = main_started.map(|t: Instant| t.elapsed());
            }
            if steps
                .last()
                .is_some_and(|(_, _, _, r)| r.status.is_failure())
            {
                return;
            }
        }
    };
    let limit = async {
        match instance.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    // Why the body was cut short, and the status that gives.
    let cut = tokio::select! {
        biased;
        () = body => None,
        () = limit => Some((
            Status::TimedOut,
            format!(
                "the scenario timed out after {}",
                humantime(instance.timeout.unwrap_or_default())
            ),
        )),
        reason = run_stopped => Some((Status::Errored, reason)),
    };
    if let Some((status, message)) = &cut {
        // Close the step that was cut short, so every `StepStarted` has
        // its `StepFinished` and the report shows where it stopped.
        if let Some((phase, index, name, started)) = in_flight.take() {
            let mut result = StepResult::new(*status, started.elapsed());
            result.message = Some(message.clone());
            let _ = tx.send(Event::StepFinished {
                instance: id.clone(),
                phase,
                index,
                name: name.clone(),
                result: result.clone(),
            });
            steps.push((phase, index, name, result));
        }
        failure = Some(message.clone());
    }
    let qemu_ran = match (check, &cut) {
        (Some((probe, qemu)), None) => {
            Some(check_ran(probe, qemu, instance, QEMU_CHECK_LIMIT).await)
        }
        _ => None,
    };
    for (index, step) in instance.teardown.iter().enumerate() {
        one_step(ctx, id, tx, Phase::Teardown, index, step, &mut steps).await;
    }
    let status = if let Some((status, _)) = cut {
        status
    } else {
        steps
            .iter()
            .map(|(_, _, _, r): &crate::report::StepRecord| r.status)
            .find(|s| s.is_failure())
            .unwrap_or(Status::Passed)
    };
    let mut result = ScenarioResult::new(status, start.elapsed(), steps, failure);
    result.qemu_ran = qemu_ran;
    if instance.workload.is_some() && cut.is_none() {
        result.workload_time = main_time;
    }
    result
}

async fn one_step<R: Runtime>(
    ctx: &StepContext<'_, R>,
    id: &InstanceId,
    tx: &mpsc::UnboundedSender<Event>,
    phase: Phase,
    index: usize,
    step: &Step,
    steps: &mut Vec<crate::report::StepRecord>,
) -> Status {
    let name = step.label();
    let _ = tx.send(Event::StepStarted {
        instance: id.clone(),
        phase,
        index,
        name: name.clone(),
    });
    let result = run_step(ctx, step).await;
    for (stream, text) in [
        (Stream::Stdout, &result.stdout),
        (Stream::Stderr, &result.stderr),
    ] {
        if !text.is_empty() {
            let _ = tx.send(Event::StepOutput {
                instance: id.clone(),
                stream,
                chunk: text.clone(),
            });
        }
    }
    let status = result.status;
    let _ = tx.send(Event::StepFinished {
        instance: id.clone(),
        phase,
        index,
        name: name.clone(),
        result: result.clone(),
    });
    steps.push((phase, index, name, result));
    status
}

/// The reporting identity of an instance (of a run without `--qemu`).
pub fn instance_id(instance: &Instance) -> InstanceId {
    instance_id_on(instance, None)
}

/// The reporting identity of an instance run on the QEMU of image version
/// `qemu`.
pub fn instance_id_on(instance: &Instance, qemu: Option<&str>) -> InstanceId {
    let mut id = InstanceId::new(
        instance.scenario.clone(),
        instance
            .matrix
            .iter()
            .map(|(k, v)| (k.clone(), v.label().to_owned()))
            .collect(),
        instance.tags.clone(),
        instance.path.clone(),
    );
    // The scenario module names instances; keep its id so filters, plans
    // and reports agree.
    id.id = instance.id.clone();
    id.qemu = qemu.map(str::to_owned);
    id.workload = instance.workload.as_ref().map(|w| WorkloadAxis {
        key: w.key.clone(),
        native: w.native.clone(),
    });
    id
}
