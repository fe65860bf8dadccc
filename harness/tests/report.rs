//! The report pipeline through the public API, as the runner drives it.
//!
//! A scripted run (every outcome: pass, failure, skip, timeout, error,
//! failed teardown, retried step) goes through [`Reporters`] into the
//! console, JUnit and JSON reporters at once. The JUnit file is compared with
//! `tests/golden/junit.xml`; set `QUS_BLESS=1` to rewrite it after an
//! intended change, then review the diff. The JUnit file is also parsed back
//! and checked against the JSON report, so an instance reported with the
//! wrong outcome (e.g. a skip shown as a pass) fails here.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use quick_junit::{NonSuccessKind, TestCaseStatus};
use qus_harness::report::{
    ConsoleMode, ConsoleReporter, Event, InstanceId, JsonReporter, JunitReporter, Phase, QemuInfo,
    QemuRan, Reporter, Reporters, RunSummary, ScenarioResult, Status, StepResult, Stream,
    WorkloadAxis,
};

/// The same script the unit-level snapshots use; it names the report types
/// through `super::`, which here is this crate's root.
#[path = "../src/report/script.rs"]
#[expect(dead_code, reason = "the script carries helpers only unit tests use")]
mod script;

/// Keeps the imports the script needs from `super::` in use.
#[expect(dead_code, reason = "names the types the script imports")]
fn script_types(_: QemuInfo, _: QemuRan, _: WorkloadAxis) {}

/// A console writer the test can read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The files and console output of one run.
struct Outputs {
    _dir: tempfile::TempDir,
    junit: PathBuf,
    json: PathBuf,
    console: String,
}

/// Feeds `events` to all three reporters through the fan-out.
fn run(events: &[Event]) -> Outputs {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("reports/junit.xml");
    let json = dir.path().join("reports/report.json");
    let console = Buffer::default();
    let mut reporters = Reporters::new()
        .with(ConsoleReporter::new(
            Box::new(console.clone()),
            ConsoleMode::Plain,
            false,
        ))
        .with(JunitReporter::new(&junit))
        .with(JsonReporter::new(&json));
    for event in events {
        reporters.handle(event);
    }
    reporters.finish().unwrap();
    let console = String::from_utf8(console.0.lock().unwrap().clone()).unwrap();
    Outputs {
        _dir: dir,
        junit,
        json,
        console,
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file `name` (`QUS_BLESS=1` rewrites it).
fn check_golden(name: &str, actual: &str) {
    let golden = golden(name);
    if std::env::var_os("QUS_BLESS").is_some() {
        std::fs::write(&golden, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "cannot read `{}` (QUS_BLESS=1 creates it): {e}",
            golden.display()
        )
    });
    assert!(
        actual == expected,
        "JUnit output differs from `{}`; rerun with QUS_BLESS=1 and review the diff\n--- actual ---\n{actual}",
        golden.display()
    );
}

#[test]
fn junit_file_matches_the_golden_file() {
    let outputs = run(&script::events());
    check_golden(
        "junit.xml",
        &std::fs::read_to_string(&outputs.junit).unwrap(),
    );
}

#[test]
fn junit_file_of_a_qemu_matrix_matches_the_golden_file() {
    let outputs = run(&script::matrix_events());
    check_golden(
        "junit-qemu-matrix.xml",
        &std::fs::read_to_string(&outputs.junit).unwrap(),
    );
}

#[test]
fn junit_and_json_agree_on_the_qemu_of_every_instance() {
    let outputs = run(&script::matrix_events());
    let xml = std::fs::read_to_string(&outputs.junit).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs.json).unwrap()).unwrap();
    let qemus = json["qemus"].as_array().unwrap();
    assert_eq!(junit.test_suites.len(), qemus.len());
    let instances = json["instances"].as_array().unwrap();
    let mut cases = Vec::new();
    for (suite, qemu) in junit.test_suites.iter().zip(qemus) {
        let version = qemu["version"].as_str().unwrap();
        assert_eq!(suite.name.as_str(), format!("qus-docker (qemu {version})"));
        for case in &suite.test_cases {
            cases.push((version.to_owned(), case.name.as_str().to_owned()));
        }
    }
    let listed: Vec<(String, String)> = instances
        .iter()
        .map(|i| {
            (
                i["qemu"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(cases, listed, "the same instances, in the same order");
}

/// The outcome a JUnit test case records, in the JSON report's words.
fn junit_outcome(status: &TestCaseStatus) -> &'static str {
    match status {
        TestCaseStatus::Success { .. } => "passed",
        TestCaseStatus::Skipped { .. } => "skipped",
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Failure,
            ..
        } => "failed",
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Error,
            ..
        } => "errored",
    }
}

#[test]
fn junit_and_json_agree_on_every_instance_outcome() {
    let outputs = run(&script::events());
    let xml = std::fs::read_to_string(&outputs.junit).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs.json).unwrap()).unwrap();

    // Totals: 7 instances; 2 failed + 1 timed out are failures; 1 error; 1 skip.
    assert_eq!(
        (junit.tests, junit.failures, junit.errors, junit.skipped),
        (7, 3, 1, 1)
    );
    let suite = &junit.test_suites[0];
    assert_eq!(suite.name.as_str(), "qus-docker");

    let instances = json["instances"].as_array().unwrap();
    assert_eq!(suite.test_cases.len(), instances.len());
    for (case, instance) in suite.test_cases.iter().zip(instances) {
        assert_eq!(case.name.as_str(), instance["id"].as_str().unwrap());
        assert_eq!(
            case.classname.as_ref().map(|c| c.as_str()),
            instance["scenario"].as_str()
        );
        // JUnit has no timeout kind: a timeout is a failure with its own type.
        let expected = match instance["status"].as_str().unwrap() {
            "timed_out" => "failed",
            other => other,
        };
        assert_eq!(
            junit_outcome(&case.status),
            expected,
            "{} has the wrong outcome in JUnit",
            case.name.as_str()
        );
    }
    let skipped = suite
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "singularity-exec")
        .unwrap();
    match &skipped.status {
        TestCaseStatus::Skipped { message, .. } => assert_eq!(
            message.as_ref().map(|m| m.as_str()),
            Some("requires runtime `singularity`, running on `docker`")
        ),
        other => panic!("skipped instance reported as {other:?}"),
    }
}

#[test]
fn json_summary_carries_the_schema_version_and_exit_code() {
    let outputs = run(&script::events());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs.json).unwrap()).unwrap();
    assert_eq!(json["schema_version"], qus_harness::report::SCHEMA_VERSION);
    assert_eq!(json["started_at"], "2024-05-01T12:00:00.250Z");
    assert_eq!(json["summary"]["exit_code"], 1);
    assert_eq!(json["summary"]["host_state_restored"], true);
}

#[test]
fn console_ends_with_the_summary_line() {
    let outputs = run(&script::events());
    assert!(
        outputs
            .console
            .lines()
            .any(|l| l == "2 passed, 2 failed, 1 skipped"),
        "{}",
        outputs.console
    );
}

#[test]
fn a_run_cut_short_still_writes_both_files() {
    let instance = InstanceId::new(
        "persistent-registration",
        vec![("arch".to_owned(), "aarch64".to_owned())],
        vec![],
        "scenarios/persistent-registration.yaml",
    );
    let mut probe = StepResult::new(Status::Passed, std::time::Duration::from_millis(5));
    probe.stdout = "aarch64\n".to_owned();
    let events = [
        Event::RunStarted {
            run_id: "run-0002".to_owned(),
            runtime: "podman".to_owned(),
            started_at: script::started_at(),
            instances: 3,
            jobs: 1,
            qemus: Vec::new(),
        },
        Event::ScenarioStarted {
            instance: instance.clone(),
        },
        Event::StepOutput {
            instance: instance.clone(),
            stream: Stream::Stdout,
            chunk: "aarch64\n".to_owned(),
        },
        Event::StepFinished {
            instance: instance.clone(),
            phase: Phase::Main,
            index: 0,
            name: "run: /probe".to_owned(),
            result: probe,
        },
        // Ctrl-C: no ScenarioFinished, no RunFinished.
    ];
    let outputs = run(&events);

    let xml = std::fs::read_to_string(&outputs.junit).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(junit.test_suites[0].name.as_str(), "qus-podman");
    assert_eq!((junit.tests, junit.errors), (1, 1));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs.json).unwrap()).unwrap();
    assert_eq!(json["instances"][0]["status"], "errored");
    assert_eq!(
        json["instances"][0]["failure"],
        qus_harness::report::INTERRUPTED_FAILURE
    );
    assert_eq!(json["instances"][0]["steps"][0]["stdout"], "aarch64\n");
    assert_eq!(json["summary"]["exit_code"], 1);
}

#[test]
fn a_clean_run_exits_zero() {
    let instance = InstanceId::new("smoke", vec![], vec![], "scenarios/smoke.yaml");
    let summary = RunSummary {
        passed: 1,
        ..RunSummary::default()
    };
    assert_eq!(summary.exit_code(), 0);
    let events = [
        Event::ScenarioFinished {
            instance,
            result: ScenarioResult::new(Status::Passed, std::time::Duration::ZERO, vec![], None),
        },
        Event::RunFinished { summary },
    ];
    let outputs = run(&events);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs.json).unwrap()).unwrap();
    assert_eq!(json["summary"]["exit_code"], 0);
    assert!(outputs.console.contains("PASS  0.00s  smoke\n"));
    assert!(
        outputs
            .console
            .contains("\n1 passed, 0 failed, 0 skipped\n")
    );
}
