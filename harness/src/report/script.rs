//! A scripted event sequence shared by the reporter tests.
//!
//! It covers every outcome a reporter must render: a pass, a failed
//! assertion with a diff and captured output, a skip, a timeout, an engine
//! error, a failed teardown step and a step that passed on its second
//! attempt. Instances run two at a time and finish out of id order, as in a
//! parallel run. Durations and the start time are fixed, so no output needs
//! redacting. [`matrix_events`] is a run over two QEMUs: baselines, the
//! QEMU that ran each instance (once another than asked for), and a
//! workload with its native runs.
//!
//! The file is also compiled into `tests/report.rs` with `#[path]`, so it
//! names the report types only through `super::`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{
    Event, InstanceId, Phase, QemuInfo, QemuRan, RunSummary, ScenarioResult, Status, StepResult,
    Stream, WorkloadAxis,
};

/// 2024-05-01T12:00:00.250Z.
pub(crate) fn started_at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_564_800_250)
}

fn instance(scenario: &str, arch: Option<&str>, tags: &[&str]) -> InstanceId {
    let matrix = arch
        .map(|a| vec![("arch".to_owned(), a.to_owned())])
        .unwrap_or_default();
    InstanceId::new(
        scenario,
        matrix,
        tags.iter().map(|t| (*t).to_owned()).collect(),
        PathBuf::from(format!("scenarios/{scenario}.yaml")),
    )
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn passed(millis: u64) -> StepResult {
    StepResult::new(Status::Passed, ms(millis))
}

/// One planned step: phase, index, name, result, and the chunks its output
/// streams in.
struct Step {
    phase: Phase,
    index: usize,
    name: &'static str,
    result: StepResult,
    chunks: Vec<(Stream, &'static str)>,
}

fn step(phase: Phase, index: usize, name: &'static str, result: StepResult) -> Step {
    Step {
        phase,
        index,
        name,
        result,
        chunks: Vec::new(),
    }
}

/// The events of one instance that runs, in order.
fn run_instance(
    instance: &InstanceId,
    status: Status,
    failure: Option<&str>,
    steps: Vec<Step>,
) -> Vec<Event> {
    let mut events = vec![Event::ScenarioStarted {
        instance: instance.clone(),
    }];
    let mut records = Vec::new();
    for step in steps {
        events.push(Event::StepStarted {
            instance: instance.clone(),
            phase: step.phase,
            index: step.index,
            name: step.name.to_owned(),
        });
        for (stream, chunk) in &step.chunks {
            events.push(Event::StepOutput {
                instance: instance.clone(),
                stream: *stream,
                chunk: (*chunk).to_owned(),
            });
        }
        events.push(Event::StepFinished {
            instance: instance.clone(),
            phase: step.phase,
            index: step.index,
            name: step.name.to_owned(),
            result: step.result.clone(),
        });
        records.push((step.phase, step.index, step.name.to_owned(), step.result));
    }
    let duration = records.iter().map(|(_, _, _, r)| r.duration).sum();
    events.push(Event::ScenarioFinished {
        instance: instance.clone(),
        result: ScenarioResult::new(status, duration, records, failure.map(str::to_owned)),
    });
    events
}

/// Alternates the events of two instances, as two parallel jobs would.
fn interleave(a: Vec<Event>, b: Vec<Event>) -> Vec<Event> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter();
    let mut b = b.into_iter();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// The id of the instance an event is about, if any.
pub(crate) fn instance_of(event: &Event) -> Option<&str> {
    match event {
        Event::ScenarioStarted { instance }
        | Event::StepStarted { instance, .. }
        | Event::StepOutput { instance, .. }
        | Event::StepFinished { instance, .. }
        | Event::ScenarioFinished { instance, .. }
        | Event::ScenarioSkipped { instance, .. } => Some(&instance.id),
        Event::RunStarted { .. }
        | Event::QemuBaselineRegistered { .. }
        | Event::HostStateRestored { .. }
        | Event::HostStateChecked { .. }
        | Event::RunFinished { .. } => None,
    }
}

fn aarch64_passes() -> Vec<Event> {
    let id = instance(
        "persistent-registration",
        Some("aarch64"),
        &["register", "smoke"],
    );
    let mut probe = passed(640);
    probe.command = Some("docker run --rm qus/probe:aarch64 /probe".to_owned());
    probe.exit_code = Some(0);
    probe.stdout = "aarch64\n".to_owned();
    let mut probe_step = step(Phase::Main, 1, "run: /probe", probe);
    probe_step.chunks = vec![(Stream::Stdout, "aarch64\n")];
    run_instance(
        &id,
        Status::Passed,
        None,
        vec![
            step(Phase::Setup, 0, "register: --reset -p yes", passed(1_200)),
            step(Phase::Main, 0, "binfmt: qemu-aarch64", passed(10)),
            probe_step,
            step(Phase::Teardown, 0, "unregister: qemu-aarch64", passed(150)),
        ],
    )
}

fn riscv64_fails() -> Vec<Event> {
    let id = instance(
        "persistent-registration",
        Some("riscv64"),
        &["register", "smoke"],
    );
    let mut probe = StepResult::new(Status::Failed, ms(830));
    probe.message = Some(r#"stdout: expected "riscv64\n", got "x86_64\n""#.to_owned());
    probe.command = Some("docker run --rm qus/probe:riscv64 /probe".to_owned());
    probe.exit_code = Some(0);
    probe.stdout = "x86_64\n".to_owned();
    probe.stderr =
        "WARNING: image platform (linux/riscv64) does not match host (linux/amd64)\n".to_owned();
    let mut probe_step = step(Phase::Main, 1, "run: /probe", probe);
    // Output arrives in pieces that are not whole lines.
    probe_step.chunks = vec![
        (Stream::Stdout, "x86"),
        (
            Stream::Stderr,
            "WARNING: image platform (linux/riscv64) does not match host (linux/amd64)\n",
        ),
        (Stream::Stdout, "_64\n"),
    ];
    run_instance(
        &id,
        Status::Failed,
        None,
        vec![
            step(Phase::Setup, 0, "register: --reset -p yes", passed(1_100)),
            step(Phase::Main, 0, "binfmt: qemu-riscv64", passed(10)),
            probe_step,
            step(Phase::Teardown, 0, "unregister: qemu-riscv64", passed(140)),
        ],
    )
}

fn singularity_skipped() -> Vec<Event> {
    vec![Event::ScenarioSkipped {
        instance: instance("singularity-exec", None, &["singularity"]),
        reason: "requires runtime `singularity`, running on `docker`".to_owned(),
    }]
}

fn teardown_fails() -> Vec<Event> {
    let id = instance("unregister-on-exit", Some("arm"), &["register"]);
    let mut remove = StepResult::new(Status::Failed, ms(90));
    remove.message = Some("binfmt: entry `qemu-arm` still registered".to_owned());
    run_instance(
        &id,
        Status::Failed,
        None,
        vec![
            step(Phase::Main, 0, "register: -p yes qemu-arm", passed(900)),
            step(Phase::Teardown, 0, "binfmt: qemu-arm absent", remove),
        ],
    )
}

fn ppc64le_times_out() -> Vec<Event> {
    let id = instance("slow-emulation", Some("ppc64le"), &["slow"]);
    let mut probe = StepResult::new(Status::TimedOut, ms(30_000));
    probe.message = Some("timed out after 30s".to_owned());
    probe.command = Some("docker run --rm qus/probe:ppc64le /probe --loop".to_owned());
    probe.stdout = "iteration 1\niteration 2\nitera".to_owned();
    let mut probe_step = step(Phase::Main, 0, "run: /probe --loop", probe);
    probe_step.chunks = vec![
        (Stream::Stdout, "iteration 1\n"),
        (Stream::Stdout, "iteration 2\nitera"),
    ];
    run_instance(
        &id,
        Status::TimedOut,
        None,
        vec![
            probe_step,
            step(Phase::Teardown, 0, "remove: containers", passed(300)),
        ],
    )
}

fn s390x_retried() -> Vec<Event> {
    let id = instance("pull-retry", Some("s390x"), &["network"]);
    let mut pull = passed(2_500);
    pull.attempts = 2;
    pull.command = Some("docker pull qus/probe:s390x".to_owned());
    pull.exit_code = Some(0);
    run_instance(
        &id,
        Status::Passed,
        None,
        vec![step(Phase::Setup, 0, "pull: qus/probe:s390x", pull)],
    )
}

fn engine_errors() -> Vec<Event> {
    let id = instance("engine-error", None, &[]);
    let mut create = StepResult::new(Status::Errored, ms(20));
    create.message =
        Some("engine: `docker` returned status 500: no space left on device".to_owned());
    create.command = Some("docker create qus/probe:amd64".to_owned());
    run_instance(
        &id,
        Status::Errored,
        Some("failed to create a container on `docker`"),
        vec![step(Phase::Setup, 0, "create: qus/probe:amd64", create)],
    )
}

/// The scripted run: seven instances, two jobs, every outcome.
pub(crate) fn events() -> Vec<Event> {
    let mut events = vec![Event::RunStarted {
        run_id: "run-0001".to_owned(),
        runtime: "docker".to_owned(),
        started_at: started_at(),
        instances: 7,
        jobs: 2,
        qemus: Vec::new(),
    }];
    events.extend(interleave(riscv64_fails(), aarch64_passes()));
    events.extend(singularity_skipped());
    events.extend(interleave(teardown_fails(), ppc64le_times_out()));
    events.extend(interleave(s390x_retried(), engine_errors()));
    events.push(Event::HostStateRestored {
        entries: 3,
        changed: true,
    });
    events.push(Event::RunFinished {
        summary: RunSummary {
            passed: 2,
            failed: 2,
            skipped: 1,
            errored: 1,
            timed_out: 1,
            duration: ms(42_500),
            host_state_restored: Some(true),
            host_state_checked: None,
        },
    });
    events
}

/// The two QEMUs of [`matrix_events`], oldest first.
pub(crate) fn matrix_qemus() -> Vec<QemuInfo> {
    vec![
        QemuInfo {
            name: "7.2".to_owned(),
            version: "7.2.0-1".to_owned(),
            debian_version: Some("1:7.2+dfsg-7+deb12u18".to_owned()),
        },
        QemuInfo {
            name: "10.0".to_owned(),
            version: "10.0.2-1".to_owned(),
            debian_version: Some("1:10.0.2+ds-1~bpo12+1".to_owned()),
        },
    ]
}

/// The baseline registration of `qemu`.
fn baseline(qemu: &QemuInfo) -> Event {
    let mut result = passed(1_300);
    result.command = Some(format!(
        "docker run --privileged qus/qemu-user-static:{} --reset -p yes",
        qemu.version
    ));
    result.exit_code = Some(0);
    Event::QemuBaselineRegistered {
        qemu: qemu.version.clone(),
        result,
    }
}

/// One instance of the matrix run on `qemu`: `ran` is the QEMU version that
/// ran it, `steps_ms` the time of its `steps` phase.
fn on_qemu(
    scenario: &str,
    arch: &str,
    qemu: &QemuInfo,
    ran: &QemuInfo,
    steps_ms: u64,
    status: Status,
) -> Vec<Event> {
    let mut id = instance(scenario, Some(arch), &["matrix"]).with_qemu(qemu.version.clone());
    if scenario == "gcc-build" {
        id = id.with_workload(WorkloadAxis {
            key: "arch".to_owned(),
            native: "native".to_owned(),
        });
    }
    let mut step_result = StepResult::new(status, ms(steps_ms));
    if status == Status::Failed {
        step_result.message =
            Some(r#"stdout: expected "ok\n", got "Illegal instruction\n""#.to_owned());
    }
    let mut events = run_instance(
        &id,
        status,
        None,
        vec![step(Phase::Main, 0, "run: /work", step_result)],
    );
    if let Some(Event::ScenarioFinished { result, .. }) = events.last_mut() {
        if id.workload.is_some() {
            result.workload_time = Some(ms(steps_ms));
        }
        let debian = ran.debian_version.as_deref().unwrap_or_default();
        let line = format!(
            "qemu-aarch64 version {} (Debian {debian})",
            ran.version.trim_end_matches("-1")
        );
        let mismatch = (ran != qemu).then(|| {
            format!(
                "asked for QEMU {} (Debian {}), but `{line}` ran",
                qemu.version,
                qemu.debian_version.as_deref().unwrap_or_default()
            )
        });
        result.qemu_ran = Some(QemuRan {
            lines: vec![line],
            mismatch,
            error: None,
        });
    }
    events
}

/// A run over two QEMUs: each baseline, then each QEMU's instances (two at
/// a time): a probe (which on the newer QEMU fails, run by the older one),
/// and a workload built natively and on aarch64.
pub(crate) fn matrix_events() -> Vec<Event> {
    let qemus = matrix_qemus();
    let (old, new) = (&qemus[0], &qemus[1]);
    let mut events = vec![Event::RunStarted {
        run_id: "run-0003".to_owned(),
        runtime: "docker".to_owned(),
        started_at: started_at(),
        instances: 6,
        jobs: 2,
        qemus: qemus.clone(),
    }];
    events.push(baseline(old));
    events.extend(interleave(
        on_qemu("probe", "aarch64", old, old, 400, Status::Passed),
        on_qemu("gcc-build", "native", old, old, 2_000, Status::Passed),
    ));
    events.extend(on_qemu(
        "gcc-build",
        "aarch64",
        old,
        old,
        8_000,
        Status::Passed,
    ));
    events.push(baseline(new));
    events.extend(interleave(
        on_qemu("probe", "aarch64", new, old, 450, Status::Failed),
        on_qemu("gcc-build", "aarch64", new, new, 5_000, Status::Passed),
    ));
    events.extend(on_qemu(
        "gcc-build",
        "native",
        new,
        new,
        2_500,
        Status::Passed,
    ));
    events.push(Event::HostStateRestored {
        entries: 0,
        changed: true,
    });
    events.push(Event::RunFinished {
        summary: RunSummary {
            passed: 5,
            failed: 1,
            duration: ms(21_000),
            host_state_restored: Some(true),
            ..RunSummary::default()
        },
    });
    events
}
