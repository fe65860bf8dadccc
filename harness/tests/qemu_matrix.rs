//! The QEMU matrix of a run (`run --qemu`), proven on a scripted engine:
//! groups run one QEMU after another, each after its baseline registration;
//! a failed baseline fails only its QEMU's instances; the QEMU that ran each
//! instance is asked after its `steps` phase and before its teardown, and a
//! mismatch is flagged; a workload's `steps` phase is timed and its
//! slowdown computed against the native run of the same QEMU.
//!
//! As in `runner.rs`, scenarios are YAML text, planned against a
//! `FakeRuntime` inside `Scripted` (`common/scripted.rs`) with made-up host
//! facts, and run through `runner::run_matrix` without a host guard; the
//! probe of which QEMU ran is a scripted [`QemuProbe`]. The real probe runs
//! on the host in `qus_harness::qemu` and in the Docker trials.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use qus_harness::plan::{self, Selection};
use qus_harness::report::{Collector, Event, QemuInfo, ScenarioResult, Status};
use qus_harness::runner::{BASELINE_ARGS, QemuGroup, QemuMatrix, QemuProbe, RunOptions};
use qus_harness::runtime::{RunOutcome, RunSpec};
use qus_harness::scenario::{self, VarOverrides};

#[path = "common/scripted.rs"]
#[expect(dead_code, reason = "the shared helpers serve runner.rs too")]
mod scripted;

use scripted::{Ran, Scripted, engine, execute_matrix, options, root_host};

/// The registrar repository of the test scenarios.
const REPO: &str = "qus-test/qemu";

fn qemu(name: &str, version: &str, debian: &str) -> QemuInfo {
    QemuInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        debian_version: Some(debian.to_owned()),
    }
}

/// QEMU 7.2 and 10.0, oldest first.
fn two_qemus() -> Vec<QemuInfo> {
    vec![
        qemu("7.2", "7.2.0-1", "1:7.2+dfsg-7"),
        qemu("10.0", "10.0.2-1", "1:10.0.2+ds-1"),
    ]
}

/// One group per QEMU: every file expanded with that QEMU's version,
/// selected and planned on `runtime`; with a baseline image when asked.
fn groups(
    files: &[&str],
    runtime: &Scripted,
    qemus: &[QemuInfo],
    baseline: bool,
) -> Vec<QemuGroup> {
    qemus
        .iter()
        .map(|q| {
            let vars = VarOverrides::new().with_qemu_version(&q.version);
            let mut instances = Vec::new();
            for (i, text) in files.iter().enumerate() {
                let source = format!("/virtual/qemu-matrix/{i}.yaml");
                let scenario = scenario::load_str(&source, text)
                    .unwrap_or_else(|e| panic!("scenario {i} does not load: {e}"));
                instances.extend(scenario::expand(&scenario, &vars).expect("it expands"));
            }
            let selected = plan::select(instances, &Selection::default());
            QemuGroup {
                qemu: q.clone(),
                baseline: baseline.then(|| format!("{REPO}:{}", q.version)),
                planned: plan::plan(selected, runtime, Ok(()), &root_host()),
            }
        })
        .collect()
}

/// A reader of binfmt_misc on the QEMU's image, and a writer that
/// registers from it, both over a matrix of two targets.
const READER: &str = r#"
apiVersion: qus/v1
name: reader
requires: { binfmt: read }
vars: { QUS_REPO: qus-test/qemu }
matrix: { arch: [aarch64, s390x] }
steps:
  - run: { image: "${QUS_REPO}:${arch}${QUS_VERSION_SUFFIX}", command: [work, "${arch}"] }
teardown:
  - run: { image: "${QUS_REPO}:${QUS_VERSION}", command: [teardown, "${arch}"] }
"#;

const WRITER: &str = r#"
apiVersion: qus/v1
name: writer
requires: { root: true, binfmt: write }
vars: { QUS_REPO: qus-test/qemu }
steps:
  - register: { image: "${QUS_REPO}:${QUS_VERSION}", args: [--reset, -p, "yes"] }
"#;

/// What the scripted probe was asked, and what happened around it, in
/// order: each probe as `probe <targets>`, each container as its command.
type Log = Arc<Mutex<Vec<String>>>;

fn log_lines(log: &Log) -> Vec<String> {
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Answers with the version line of the QEMU `ran` says for each call.
struct Probe {
    log: Log,
    answer: Box<dyn Fn() -> Result<Vec<String>, String> + Send + Sync>,
}

impl QemuProbe for Probe {
    fn ran<'a>(&'a self, targets: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, String>> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("probe {}", targets.join(" ")));
        let answer = (self.answer)();
        Box::pin(async move { answer })
    }
}

/// A scripted engine that also logs every container's command into `log`.
fn logging_engine(log: &Log) -> Scripted {
    let log = log.clone();
    Scripted::instant(scripted::engine().with_run_handler(move |spec: &RunSpec| {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{} {}", spec.image, spec.command.join(" ")));
        Ok(RunOutcome::exited(0, "", ""))
    }))
}

/// The result of every finished instance, by QEMU version and id.
fn results(ran: &Ran) -> BTreeMap<(String, String), ScenarioResult> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            Event::ScenarioFinished { instance, result } => Some((
                (
                    instance.qemu.clone().unwrap_or_default(),
                    instance.id.clone(),
                ),
                result.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn each_qemu_runs_every_instance_after_registering_its_handlers() {
    let runtime = Scripted::instant(engine());
    let matrix = QemuMatrix {
        groups: groups(&[READER, WRITER], &runtime, &two_qemus(), true),
        probe: None,
    };
    let ran = execute_matrix(runtime.clone(), matrix, options(4));
    assert_eq!(ran.end.summary.exit_code(), 0);
    assert_eq!(
        ran.end.summary.passed, 6,
        "three instances on each of two QEMUs"
    );

    // The engine saw: a baseline, that QEMU's containers only, the next
    // baseline, the next QEMU's containers only.
    let runs: Vec<(String, String, bool)> = runtime
        .fake
        .runs()
        .iter()
        .map(|s| (s.image.clone(), s.command.join(" "), s.privileged))
        .collect();
    let baseline_args = BASELINE_ARGS.join(" ");
    assert_eq!(
        runs[0],
        (format!("{REPO}:7.2.0-1"), baseline_args.clone(), true)
    );
    let second = runs
        .iter()
        .position(|r| r.0 == format!("{REPO}:10.0.2-1") && r.1 == baseline_args && r.2)
        .expect("the second QEMU's baseline ran");
    assert!(
        runs[1..second].iter().all(|r| r.0.ends_with("7.2.0-1")),
        "{runs:#?}"
    );
    assert!(
        runs[second + 1..].iter().all(|r| r.0.ends_with("10.0.2-1")),
        "{runs:#?}"
    );
    // Per-target images carry the version suffix.
    assert!(
        runs.iter()
            .any(|r| r.0 == format!("{REPO}:aarch64-10.0.2-1")),
        "{runs:#?}"
    );

    // The same ids on both QEMUs, told apart by their QEMU.
    let keys: Vec<(String, String)> = results(&ran).into_keys().collect();
    assert_eq!(
        keys,
        [
            ("10.0.2-1", "reader[arch=aarch64]"),
            ("10.0.2-1", "reader[arch=s390x]"),
            ("10.0.2-1", "writer"),
            ("7.2.0-1", "reader[arch=aarch64]"),
            ("7.2.0-1", "reader[arch=s390x]"),
            ("7.2.0-1", "writer"),
        ]
        .map(|(q, i)| (q.to_owned(), i.to_owned()))
    );
    let baselines: Vec<(&str, Status)> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::QemuBaselineRegistered { qemu, result } => Some((qemu.as_str(), result.status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        baselines,
        [("7.2.0-1", Status::Passed), ("10.0.2-1", Status::Passed)]
    );
}

#[test]
fn qemus_run_one_after_another_even_with_free_jobs() {
    // The first QEMU's containers are slow; with eight jobs the second
    // QEMU's could start at once, and must not.
    let runtime = Scripted::new(engine(), |spec| {
        if spec.image.ends_with("7.2.0-1") && spec.command.first().is_some_and(|c| c == "work") {
            Duration::from_millis(300)
        } else {
            Duration::ZERO
        }
    });
    let matrix = QemuMatrix {
        groups: groups(&[READER], &runtime, &two_qemus(), true),
        probe: None,
    };
    let ran = execute_matrix(runtime.clone(), matrix, options(8));
    assert_eq!(ran.end.summary.passed, 4);
    let spans = runtime.spans();
    let first_done = spans
        .iter()
        .filter(|s| {
            s.command
                .first()
                .is_some_and(|c| c == "work" || c == "teardown")
        })
        .filter(|s| !s.command.iter().any(|c| c == "--reset"))
        .take(4)
        .map(|s| s.end)
        .max()
        .unwrap();
    let later: Vec<_> = spans.iter().skip(5).collect();
    assert!(
        later.iter().all(|s| s.start >= first_done),
        "a container of the second QEMU started before the first QEMU's ended"
    );
}

#[test]
fn a_failed_baseline_errors_only_its_qemus_instances() {
    let runtime = Scripted::instant(engine().with_run_handler(|spec: &RunSpec| {
        if spec.image == format!("{REPO}:10.0.2-1") && spec.command.join(" ") == "--reset -p yes" {
            Ok(RunOutcome::exited(
                1,
                "",
                "failed to register qemu-aarch64: No such file",
            ))
        } else {
            Ok(RunOutcome::exited(0, "", ""))
        }
    }));
    const HOST_ONLY: &str = "apiVersion: qus/v1\nname: host-only\nruntimes: [host]\nsteps:\n  - exec: { command: [\"true\"] }\n";
    let matrix = QemuMatrix {
        groups: groups(&[READER, HOST_ONLY], &runtime, &two_qemus(), true),
        probe: None,
    };
    let ran = execute_matrix(runtime.clone(), matrix, options(2));
    assert_eq!(ran.end.summary.exit_code(), 1);
    let results = results(&ran);
    for arch in ["aarch64", "s390x"] {
        let id = format!("reader[arch={arch}]");
        assert_eq!(
            results[&("7.2.0-1".to_owned(), id.clone())].status,
            Status::Passed
        );
        let failed = &results[&("10.0.2-1".to_owned(), id)];
        assert_eq!(failed.status, Status::Errored);
        let message = failed.failure.as_deref().unwrap();
        assert!(
            message.contains("the handlers of QEMU 10.0.2-1"),
            "{message}"
        );
        assert!(message.contains("qus-test/qemu:10.0.2-1"), "{message}");
        assert!(failed.steps.is_empty(), "nothing ran on the wrong handlers");
    }
    // The plan's own skips stay skips.
    let skipped = ran
        .events
        .iter()
        .filter(
            |e| matches!(e, Event::ScenarioSkipped { instance, .. } if instance.id == "host-only"),
        )
        .count();
    assert_eq!(skipped, 2);
    // No container of the failed QEMU ran after its baseline.
    let images: Vec<String> = runtime
        .fake
        .runs()
        .iter()
        .map(|s| s.image.clone())
        .collect();
    assert_eq!(
        images.last().unwrap(),
        &format!("{REPO}:10.0.2-1"),
        "{images:#?}"
    );
}

#[test]
fn without_a_baseline_image_nothing_is_registered() {
    let runtime = Scripted::instant(engine());
    let matrix = QemuMatrix {
        groups: groups(&[READER], &runtime, &two_qemus(), false),
        probe: None,
    };
    let ran = execute_matrix(runtime.clone(), matrix, options(2));
    assert_eq!(ran.end.summary.passed, 4);
    assert!(
        !ran.events
            .iter()
            .any(|e| matches!(e, Event::QemuBaselineRegistered { .. }))
    );
    assert!(
        runtime.fake.runs().iter().all(|s| !s.privileged),
        "no registration ran"
    );
}

#[test]
fn the_qemu_that_ran_is_asked_between_steps_and_teardown_and_a_mismatch_flagged() {
    let log: Log = Arc::default();
    let runtime = logging_engine(&log);
    let probe = Probe {
        log: log.clone(),
        // The host runs 7.2 whatever was asked.
        answer: Box::new(|| {
            Ok(vec![
                "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7)".to_owned(),
            ])
        }),
    };
    let matrix = QemuMatrix {
        groups: groups(&[READER], &runtime, &two_qemus(), false),
        probe: Some(Arc::new(probe)),
    };
    let ran = execute_matrix(runtime.clone(), matrix, options(1));
    // One job: each instance's work, its probe (with its matrix target),
    // then its teardown.
    let lines = log_lines(&log);
    assert_eq!(
        lines[..3],
        [
            format!("{REPO}:aarch64-7.2.0-1 work aarch64"),
            "probe aarch64".to_owned(),
            format!("{REPO}:7.2.0-1 teardown aarch64"),
        ]
    );
    assert_eq!(lines.len(), 12);
    let results = results(&ran);
    let old = results[&("7.2.0-1".to_owned(), "reader[arch=s390x]".to_owned())]
        .qemu_ran
        .clone()
        .unwrap();
    assert_eq!(
        old.lines,
        ["qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7)"]
    );
    assert_eq!((old.mismatch, old.error), (None, None));
    let new = results[&("10.0.2-1".to_owned(), "reader[arch=s390x]".to_owned())]
        .qemu_ran
        .clone()
        .unwrap();
    let mismatch = new.mismatch.expect("10.0 was asked for, 7.2 ran");
    assert!(
        mismatch.contains("asked for QEMU 10.0.2-1 (Debian 1:10.0.2+ds-1)"),
        "{mismatch}"
    );
    // A mismatch is a finding, not a failure of the instance.
    assert_eq!(ran.end.summary.exit_code(), 0);
}

#[test]
fn a_probe_that_cannot_tell_is_recorded_as_such() {
    let log: Log = Arc::default();
    let runtime = logging_engine(&log);
    let probe = Probe {
        log: log.clone(),
        answer: Box::new(|| Err("no enabled `qemu-*` handler is registered".to_owned())),
    };
    let matrix = QemuMatrix {
        groups: groups(&[WRITER], &runtime, &two_qemus()[..1], false),
        probe: Some(Arc::new(probe)),
    };
    let ran = execute_matrix(runtime, matrix, options(1));
    let ran_qemu = results(&ran)[&("7.2.0-1".to_owned(), "writer".to_owned())]
        .qemu_ran
        .clone()
        .unwrap();
    assert!(ran_qemu.lines.is_empty());
    assert!(ran_qemu.error.unwrap().contains("no enabled"));
    // Without a matrix value the probe is asked with no preferred target.
    assert!(log_lines(&log).contains(&"probe ".to_owned()));
}

/// A workload scenario: the native run takes 100 ms, the emulated one
/// 400 ms, in its `steps` phase; setup and teardown take 300 ms each and
/// must not count.
const WORKLOAD: &str = r#"
apiVersion: qus/v1
name: build
vars: { QUS_REPO: qus-test/qemu }
matrix: { arch: [native, aarch64] }
workload: { native: { arch: native } }
setup:
  - run: { image: "${QUS_REPO}:${QUS_VERSION}", command: [slow-setup] }
steps:
  - run: { image: "${QUS_REPO}:${QUS_VERSION}", command: [build, "${arch}"] }
teardown:
  - run: { image: "${QUS_REPO}:${QUS_VERSION}", command: [slow-teardown] }
"#;

#[test]
fn a_workload_times_its_steps_phase_and_gets_its_slowdown_per_qemu() {
    let runtime = Scripted::new(engine(), |spec| match spec.command.join(" ").as_str() {
        "build native" => Duration::from_millis(100),
        "build aarch64" => Duration::from_millis(400),
        "slow-setup" | "slow-teardown" => Duration::from_millis(300),
        _ => Duration::ZERO,
    });
    let matrix = QemuMatrix {
        groups: groups(&[WORKLOAD], &runtime, &two_qemus(), false),
        probe: None,
    };
    let ran = execute_matrix(runtime, matrix, options(2));
    assert_eq!(ran.end.summary.passed, 4);
    let results = results(&ran);
    for qemu in ["7.2.0-1", "10.0.2-1"] {
        let time = |arch: &str| {
            results[&(qemu.to_owned(), format!("build[arch={arch}]"))]
                .workload_time
                .expect("a workload is timed")
        };
        let (native, emulated) = (time("native"), time("aarch64"));
        assert!(
            native >= Duration::from_millis(100) && native < Duration::from_millis(400),
            "{native:?}"
        );
        assert!(
            emulated >= Duration::from_millis(400) && emulated < Duration::from_millis(700),
            "{emulated:?}"
        );
    }
    // The report pairs each emulated run with its own QEMU's native run.
    let mut collector = Collector::new();
    for event in &ran.events {
        collector.handle(event);
    }
    for instance in collector.report().instances {
        let workload = instance
            .workload
            .expect("every instance is a timed workload");
        let qemu = instance.instance.qemu.clone().unwrap();
        if instance.instance.id == "build[arch=native]" {
            assert!(workload.is_native && workload.slowdown().is_none());
            continue;
        }
        let native = results[&(qemu, "build[arch=native]".to_owned())]
            .workload_time
            .unwrap();
        assert_eq!(workload.native_time, Some(native));
        let expected = workload.time.as_secs_f64() / native.as_secs_f64();
        assert!((workload.slowdown().unwrap() - expected).abs() < 1e-9);
    }
}

#[test]
fn a_run_stopped_during_one_qemu_starts_no_later_one() {
    const HANGING: &str = r#"
apiVersion: qus/v1
name: hang
vars: { QUS_REPO: qus-test/qemu }
steps:
  - run: { image: "${QUS_REPO}:${QUS_VERSION}", command: [hang] }
"#;
    const HOST_ONLY: &str = "apiVersion: qus/v1\nname: host-only\nruntimes: [host]\nsteps:\n  - exec: { command: [\"true\"] }\n";
    let runtime = Scripted::hanging(engine(), &["hang"]);
    let matrix = QemuMatrix {
        groups: groups(&[HANGING, HOST_ONLY], &runtime, &two_qemus(), true),
        probe: None,
    };
    let ran = execute_matrix(
        runtime.clone(),
        matrix,
        RunOptions {
            timeout: Some(Duration::from_millis(300)),
            ..options(1)
        },
    );
    assert!(ran.end.interrupted.is_some());
    assert!(ran.elapsed < Duration::from_secs(10), "{:?}", ran.elapsed);
    let not_run: Vec<String> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ScenarioSkipped { instance, reason } if reason.starts_with("not run") => {
                instance.qemu.clone()
            }
            _ => None,
        })
        .collect();
    assert_eq!(not_run, ["10.0.2-1"]);
    // The plan's own skips keep their reason, in the later QEMU too.
    let plan_skips = ran
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::ScenarioSkipped { instance, reason }
                if instance.id == "host-only" && reason.starts_with("applies to runtimes"))
        })
        .count();
    assert_eq!(plan_skips, 2);
    // The second QEMU's handlers were never registered.
    assert!(
        !runtime
            .fake
            .runs()
            .iter()
            .any(|s| s.image.ends_with("10.0.2-1")),
        "{:#?}",
        runtime.fake.runs()
    );
}

#[test]
fn after_fail_fast_no_later_qemu_is_registered() {
    const FAILING: &str = r#"
apiVersion: qus/v1
name: failing
vars: { QUS_REPO: qus-test/qemu }
steps:
  - run: { image: "${QUS_REPO}:${QUS_VERSION}", command: [exit, "1"] }
"#;
    let runtime = Scripted::instant(engine());
    let matrix = QemuMatrix {
        groups: groups(&[FAILING], &runtime, &two_qemus(), true),
        probe: None,
    };
    let ran = execute_matrix(
        runtime.clone(),
        matrix,
        RunOptions {
            fail_fast: true,
            ..options(1)
        },
    );
    assert_eq!(ran.end.summary.failed, 1);
    assert_eq!(ran.end.summary.skipped, 1);
    let baselines: Vec<&str> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::QemuBaselineRegistered { qemu, .. } => Some(qemu.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(baselines, ["7.2.0-1"]);
}

#[test]
fn each_qemu_builds_without_the_layer_cache() {
    const BUILD: &str = r#"
apiVersion: qus/v1
name: build
vars: { QUS_REPO: qus-test/qemu }
steps:
  - build: { containerfile: "FROM scratch\n", tag: "qus-test/built:${QUS_VERSION}" }
"#;
    let runtime = Scripted::instant(engine());
    let matrix = QemuMatrix {
        groups: groups(&[BUILD], &runtime, &two_qemus(), false),
        probe: None,
    };
    let ran = execute_matrix(runtime.clone(), matrix, options(1));
    assert_eq!(ran.end.summary.passed, 2);
    let builds: Vec<(String, bool)> = runtime
        .fake
        .builds()
        .iter()
        .map(|b| (b.tag.clone(), b.no_cache))
        .collect();
    assert_eq!(
        builds,
        [
            ("qus-test/built:7.2.0-1".to_owned(), true),
            ("qus-test/built:10.0.2-1".to_owned(), true)
        ]
    );
    // A run without `--qemu` keeps the cache.
    let runtime = Scripted::instant(engine());
    let plain = scripted::planned(&[BUILD], &runtime, Ok(()), &root_host());
    scripted::execute(runtime.clone(), plain, options(1));
    assert!(!runtime.fake.builds()[0].no_cache);
}
