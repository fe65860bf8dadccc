//! The CI report: [`JunitReporter`], JUnit XML built with `quick-junit`.
//!
//! One `<testsuite>` per run, named `qus-<runtime>`, so reports from a CI
//! matrix of engines merge without clashing; a run with `--qemu` has one
//! per QEMU instead, named `qus-<runtime> (qemu <version>)`, each holding
//! that QEMU's instances. One `<testcase>` per scenario instance, named by
//! instance id with the scenario as class name, with properties for the
//! QEMU that actually ran it and its workload timing. Failed
//! and timed-out instances are `<failure>`s, errored ones `<error>`s (the
//! harness or engine broke, the behaviour under test is unproven), skipped
//! ones `<skipped>` with the reason. Each test case carries the captured
//! output of its steps, each under a header naming the step. The report is
//! built at `RunFinished` and written once, by [`Reporter::finish`].
//!
//! The suite's start time is the `started_at` property (RFC 3339, UTC)
//! rather than the `timestamp` attribute, which `quick-junit` only accepts
//! as a `chrono` value.

use std::fmt::Write as _;
use std::path::PathBuf;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::events::Event;
use super::json::rfc3339_utc;
use super::model::{Collector, InstanceResult, QemuReport, RunReport, Status, StepRecord};
use super::reporter::{ReportError, Reporter, write_file};

/// Writes the JUnit report to a file at the end of the run.
#[derive(Debug)]
pub struct JunitReporter {
    path: PathBuf,
    collector: Collector,
    /// Built at `RunFinished`; written by `finish`.
    report: Option<Report>,
}

impl JunitReporter {
    /// A reporter that will write to `path`, creating its parent directory
    /// if needed.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            collector: Collector::new(),
            report: None,
        }
    }
}

impl Reporter for JunitReporter {
    fn handle(&mut self, event: &Event) {
        self.collector.handle(event);
        match event {
            Event::RunFinished { .. } => {
                self.report = Some(build_report(&self.collector.report()));
            }
            Event::RunStarted { .. }
            | Event::QemuBaselineRegistered { .. }
            | Event::ScenarioStarted { .. }
            | Event::StepStarted { .. }
            | Event::StepOutput { .. }
            | Event::StepFinished { .. }
            | Event::ScenarioFinished { .. }
            | Event::ScenarioSkipped { .. }
            | Event::HostStateRestored { .. }
            | Event::HostStateChecked { .. } => {}
        }
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        // A run cut short still gets a report of what it did.
        let report = self
            .report
            .take()
            .unwrap_or_else(|| build_report(&self.collector.report()));
        let mut xml = report
            .to_string()
            .map_err(|source| ReportError::SerializeJunit {
                path: self.path.clone(),
                source,
            })?;
        xml.push('\n');
        write_file(&self.path, xml.as_bytes()).map_err(|source| ReportError::WriteFile {
            format: "JUnit",
            path: self.path.clone(),
            source,
        })
    }
}

/// Builds the JUnit report of a run: one test suite, or one per QEMU.
pub fn build_report(run: &RunReport) -> Report {
    let mut report = Report::new("qus");
    report.set_time(run.summary.duration);
    if run.qemus.is_empty() {
        let mut suite = suite(run, format!("qus-{}", run.info.runtime));
        suite.add_test_cases(run.instances.iter().map(test_case));
        report.add_test_suite(suite);
        return report;
    }
    for qemu in &run.qemus {
        let mut suite = suite(
            run,
            format!("qus-{} (qemu {})", run.info.runtime, qemu.info.version),
        );
        suite.add_properties(qemu_properties(qemu));
        suite.add_test_cases(
            run.instances
                .iter()
                .filter(|i| i.instance.qemu.as_deref() == Some(qemu.info.version.as_str()))
                .map(test_case),
        );
        report.add_test_suite(suite);
    }
    report
}

/// A suite with the run's properties.
fn suite(run: &RunReport, name: String) -> TestSuite {
    let mut suite = TestSuite::new(name);
    suite.set_time(run.summary.duration);
    suite.add_properties([
        Property::new("run_id", run.info.run_id.as_str()),
        Property::new("started_at", rfc3339_utc(run.info.started_at)),
        Property::new("jobs", run.info.jobs.to_string()),
    ]);
    if let Some(restored) = run.summary.host_state_restored {
        suite.add_property(Property::new("host_state_restored", restored.to_string()));
    }
    if let Some(check) = &run.summary.host_state_checked {
        suite.add_property(Property::new(
            "host_state_untouched",
            check.is_untouched().to_string(),
        ));
        suite.add_property(Property::new(
            "private_instances",
            check.private_instances.to_string(),
        ));
    }
    suite
}

/// What a QEMU suite says about its QEMU.
fn qemu_properties(qemu: &QemuReport) -> Vec<Property> {
    let mut properties = vec![
        Property::new("qemu.name", qemu.info.name.as_str()),
        Property::new("qemu.version", qemu.info.version.as_str()),
    ];
    if let Some(debian) = &qemu.info.debian_version {
        properties.push(Property::new("qemu.debian_version", debian.as_str()));
    }
    if let Some(baseline) = &qemu.baseline {
        properties.push(Property::new("qemu.baseline", baseline.status.as_str()));
        if let Some(message) = &baseline.message {
            properties.push(Property::new("qemu.baseline.message", message.as_str()));
        }
    }
    properties
}

/// One instance as a test case.
fn test_case(instance: &InstanceResult) -> TestCase {
    let result = &instance.result;
    let status = match result.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Skipped => {
            let mut status = TestCaseStatus::skipped();
            if let Some(reason) = instance
                .skip_reason
                .as_deref()
                .or(result.failure.as_deref())
            {
                status.set_message(reason);
            }
            status
        }
        Status::Failed | Status::TimedOut => non_success(NonSuccessKind::Failure, instance),
        Status::Errored => non_success(NonSuccessKind::Error, instance),
    };

    let id = &instance.instance;
    let mut case = TestCase::new(id.id.as_str(), status);
    case.set_classname(id.scenario.as_str());
    case.set_time(result.duration);
    case.add_property(Property::new("file", id.file.display().to_string()));
    for (key, value) in &id.matrix {
        case.add_property(Property::new(format!("matrix.{key}"), value.as_str()));
    }
    if !id.tags.is_empty() {
        case.add_property(Property::new("tags", id.tags.join(",")));
    }
    if let Some(qemu) = &id.qemu {
        case.add_property(Property::new("qemu", qemu.as_str()));
    }
    if let Some(ran) = &result.qemu_ran {
        for line in &ran.lines {
            case.add_property(Property::new("qemu_ran", line.as_str()));
        }
        if let Some(mismatch) = &ran.mismatch {
            case.add_property(Property::new("qemu_mismatch", mismatch.as_str()));
        }
        if let Some(error) = &ran.error {
            case.add_property(Property::new("qemu_ran_error", error.as_str()));
        }
    }
    if let Some(workload) = &instance.workload {
        case.add_property(Property::new(
            "workload.seconds",
            format!("{:.3}", workload.time.as_secs_f64()),
        ));
        if workload.is_native {
            case.add_property(Property::new("workload.native", "true"));
        }
        if let Some(native) = workload.native_time {
            case.add_property(Property::new(
                "workload.native_seconds",
                format!("{:.3}", native.as_secs_f64()),
            ));
        }
        if let Some(slowdown) = workload.slowdown() {
            case.add_property(Property::new("workload.slowdown", format!("{slowdown:.3}")));
        }
    }

    let (stdout, stderr) = captured_output(&result.steps);
    if !stdout.is_empty() {
        case.set_system_out(stdout);
    }
    if !stderr.is_empty() {
        case.set_system_err(stderr);
    }
    case
}

/// A failure or error: the readable reason as message, the status as type,
/// and the failing step's details as description.
fn non_success(kind: NonSuccessKind, instance: &InstanceResult) -> TestCaseStatus {
    let result = &instance.result;
    let mut status = TestCaseStatus::non_success(kind);
    status.set_type(result.status.as_str());
    let failing = result.failing_step();
    let message = match (result.failure_message(), failing) {
        (Some(message), _) => message.to_owned(),
        (None, Some((phase, index, name, step))) => {
            format!("{phase}[{index}] `{name}` {}", step.status)
        }
        (None, None) => result.status.to_string(),
    };
    status.set_message(message);
    if let Some(step) = failing {
        status.set_description(step_details(step));
    }
    status
}

/// The failing step in a few lines: which step, why, and what it ran.
fn step_details((phase, index, name, step): &StepRecord) -> String {
    let mut text = format!("{phase}[{index}] `{name}` {}", step.status);
    if step.attempts > 1 {
        let _ = write!(text, " after {} attempts", step.attempts);
    }
    text.push('\n');
    if let Some(message) = &step.message {
        let _ = writeln!(text, "{message}");
    }
    if let Some(command) = &step.command {
        let _ = writeln!(text, "command: {command}");
    }
    if let Some(code) = step.exit_code {
        let _ = writeln!(text, "exit code: {code}");
    }
    text
}

/// The steps' stdout and stderr, each step's under a header naming it and
/// its outcome. Every step appears in stdout, so it reads as a timeline;
/// only steps that wrote to stderr appear there.
fn captured_output(steps: &[StepRecord]) -> (String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    for (phase, index, name, step) in steps {
        let attempts = match step.attempts {
            0 | 1 => String::new(),
            n => format!(", {n} attempts"),
        };
        let header = format!(
            "=== {phase}[{index}] {name}: {} ({:.2}s{attempts})\n",
            step.status,
            step.duration.as_secs_f64()
        );
        stdout.push_str(&header);
        push_output(&mut stdout, &step.stdout);
        if !step.stderr.is_empty() {
            stderr.push_str(&header);
            push_output(&mut stderr, &step.stderr);
        }
    }
    (stdout, stderr)
}

/// Appends output, ending it with a newline so the next header starts a line.
fn push_output(text: &mut String, output: &str) {
    text.push_str(output);
    if !output.is_empty() && !output.ends_with('\n') {
        text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::script;

    fn scripted_xml() -> String {
        let mut collector = Collector::new();
        for event in script::events() {
            collector.handle(&event);
        }
        build_report(&collector.report()).to_string().unwrap()
    }

    #[test]
    fn junit_report() {
        insta::assert_snapshot!(scripted_xml());
    }

    fn matrix_xml() -> String {
        let mut collector = Collector::new();
        for event in script::matrix_events() {
            collector.handle(&event);
        }
        build_report(&collector.report()).to_string().unwrap()
    }

    #[test]
    fn junit_matrix_report() {
        insta::assert_snapshot!(matrix_xml());
    }

    #[test]
    fn junit_has_one_suite_per_qemu_with_its_instances() {
        let report = Report::deserialize_from_str(&matrix_xml()).unwrap();
        let suites: Vec<(&str, usize)> = report
            .test_suites
            .iter()
            .map(|s| (s.name.as_str(), s.test_cases.len()))
            .collect();
        assert_eq!(
            suites,
            [
                ("qus-docker (qemu 7.2.0-1)", 3),
                ("qus-docker (qemu 10.0.2-1)", 3)
            ]
        );
        assert_eq!((report.tests, report.failures), (6, 1));
        let failed = &report.test_suites[1].test_cases[2];
        assert_eq!(failed.name.as_str(), "probe[arch=aarch64]");
        let property = |name: &str| {
            failed
                .properties
                .iter()
                .find(|p| p.name.as_str() == name)
                .map(|p| p.value.as_str().to_owned())
        };
        assert_eq!(property("qemu").as_deref(), Some("10.0.2-1"));
        assert!(
            property("qemu_mismatch")
                .unwrap()
                .contains("asked for QEMU 10.0.2-1")
        );
        assert_eq!(
            property("qemu_ran").as_deref(),
            Some("qemu-aarch64 version 7.2.0 (Debian 1:7.2+dfsg-7+deb12u18)")
        );
    }

    #[test]
    fn junit_counts_every_outcome_where_it_belongs() {
        let report = Report::deserialize_from_str(&scripted_xml()).unwrap();
        assert_eq!(report.tests, 7);
        assert_eq!(report.failures, 3, "two failed and one timed out");
        assert_eq!(report.errors, 1);
        assert_eq!(report.skipped, 1);
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "qus-docker");
        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
