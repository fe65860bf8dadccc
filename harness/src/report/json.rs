//! The machine-readable report: [`JsonReporter`], written for `--json FILE`.
//!
//! The document mirrors [`RunReport`]: run metadata, the summary, the QEMUs
//! of a `--qemu` matrix (`qemus`), and every instance (sorted by QEMU, then
//! id) with its QEMU, which QEMU actually ran it, its workload timing, and
//! its steps with their captured output. It carries `schema_version`; bump
//! [`SCHEMA_VERSION`] whenever a field changes meaning or disappears (adding
//! a field does not need a bump). Version 2: an instance is unique by
//! `qemu` and `id` together (an id repeats once per QEMU), with `qemus`,
//! `qemu`, `qemu_ran` and `workload` added. Durations are whole milliseconds
//! (workload times are seconds, to the millisecond) and `started_at` is RFC
//! 3339 in UTC. Absent values are `null`, never left out, so every document
//! has the same shape. The report is written once, by [`Reporter::finish`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::ser::SerializeMap;

use super::events::{Event, Phase};
use super::model::{
    Collector, InstanceResult, QemuRan, QemuReport, RunReport, RunSummary, Status, StepResult,
};
use super::reporter::{ReportError, Reporter, write_file};
use super::workload::WorkloadResult;

/// The version of the JSON document's shape.
pub const SCHEMA_VERSION: u32 = 2;

/// Writes the JSON report to a file at the end of the run.
#[derive(Debug)]
pub struct JsonReporter {
    path: PathBuf,
    collector: Collector,
    /// Built at `RunFinished`; written by `finish`.
    report: Option<RunReport>,
}

impl JsonReporter {
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

impl Reporter for JsonReporter {
    fn handle(&mut self, event: &Event) {
        self.collector.handle(event);
        match event {
            Event::RunFinished { .. } => self.report = Some(self.collector.report()),
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
            .unwrap_or_else(|| self.collector.report());
        let mut text = to_string(&report).map_err(|source| ReportError::SerializeJson {
            path: self.path.clone(),
            source,
        })?;
        text.push('\n');
        write_file(&self.path, text.as_bytes()).map_err(|source| ReportError::WriteFile {
            format: "JSON",
            path: self.path.clone(),
            source,
        })
    }
}

/// Serializes a run as the pretty-printed JSON document.
pub fn to_string(report: &RunReport) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&Document::new(report))
}

/// Whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Seconds, to the millisecond.
fn seconds(duration: Duration) -> f64 {
    // Whole milliseconds first, so the value prints without float noise.
    millis(duration) as f64 / 1000.0
}

/// A ratio, to three decimals.
fn ratio(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g.
/// `2024-05-01T12:00:00.250Z`.
pub(crate) fn rfc3339_utc(time: SystemTime) -> String {
    // Whole seconds and milliseconds relative to the epoch, with the
    // milliseconds always non-negative, so times before 1970 work too.
    let (secs, millis) = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_millis(),
        ),
        Err(before) => {
            let before = before.duration();
            let secs = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_millis() {
                0 => (secs, 0),
                ms => (secs - 1, 1000 - ms),
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, after
/// Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift the epoch to 0000-03-01, so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The top-level document.
#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    run_id: &'a str,
    runtime: &'a str,
    started_at: String,
    duration_ms: u64,
    summary: Summary,
    qemus: Vec<Qemu<'a>>,
    instances: Vec<Instance<'a>>,
}

impl<'a> Document<'a> {
    fn new(report: &'a RunReport) -> Self {
        let summary = &report.summary;
        Self {
            schema_version: SCHEMA_VERSION,
            run_id: &report.info.run_id,
            runtime: &report.info.runtime,
            started_at: rfc3339_utc(report.info.started_at),
            duration_ms: millis(summary.duration),
            summary: Summary::new(summary),
            qemus: report.qemus.iter().map(Qemu::new).collect(),
            instances: report.instances.iter().map(Instance::new).collect(),
        }
    }
}

#[derive(Serialize)]
struct Summary {
    passed: usize,
    failed: usize,
    skipped: usize,
    errored: usize,
    timed_out: usize,
    host_state_restored: Option<bool>,
    host_state_checked: Option<HostChecked>,
    exit_code: i32,
}

/// The comparison of the host's entries around a run whose instances
/// wrote only private registries.
#[derive(Serialize)]
struct HostChecked {
    entries: usize,
    untouched: bool,
    changed: Vec<String>,
    private_instances: usize,
}

impl Summary {
    fn new(summary: &RunSummary) -> Self {
        Self {
            passed: summary.passed,
            failed: summary.failed,
            skipped: summary.skipped,
            errored: summary.errored,
            timed_out: summary.timed_out,
            host_state_restored: summary.host_state_restored,
            host_state_checked: summary.host_state_checked.as_ref().map(|c| HostChecked {
                entries: c.entries,
                untouched: c.is_untouched(),
                changed: c.changed.clone(),
                private_instances: c.private_instances,
            }),
            exit_code: summary.exit_code(),
        }
    }
}

/// One QEMU of the matrix: the name asked for, the image version it
/// resolved to, Debian's package version, the baseline registration and
/// the counts of its instances.
#[derive(Serialize)]
struct Qemu<'a> {
    name: &'a str,
    version: &'a str,
    debian_version: Option<&'a str>,
    baseline: Option<Baseline<'a>>,
    summary: QemuCounts,
}

impl<'a> Qemu<'a> {
    fn new(qemu: &'a QemuReport) -> Self {
        let s = &qemu.summary;
        Self {
            name: &qemu.info.name,
            version: &qemu.info.version,
            debian_version: qemu.info.debian_version.as_deref(),
            baseline: qemu.baseline.as_ref().map(|b| Baseline {
                status: b.status,
                duration_ms: millis(b.duration),
                command: b.command.as_deref(),
                message: b.message.as_deref(),
            }),
            summary: QemuCounts {
                passed: s.passed,
                failed: s.failed,
                skipped: s.skipped,
                errored: s.errored,
                timed_out: s.timed_out,
            },
        }
    }
}

#[derive(Serialize)]
struct Baseline<'a> {
    status: Status,
    duration_ms: u64,
    command: Option<&'a str>,
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct QemuCounts {
    passed: usize,
    failed: usize,
    skipped: usize,
    errored: usize,
    timed_out: usize,
}

/// Which QEMU ran an instance.
#[derive(Serialize)]
struct Ran<'a> {
    versions: &'a [String],
    mismatch: Option<&'a str>,
    error: Option<&'a str>,
}

impl<'a> Ran<'a> {
    fn new(ran: &'a QemuRan) -> Self {
        Self {
            versions: &ran.lines,
            mismatch: ran.mismatch.as_deref(),
            error: ran.error.as_deref(),
        }
    }
}

/// A workload instance's timing.
#[derive(Serialize)]
struct Workload {
    seconds: f64,
    native: bool,
    native_seconds: Option<f64>,
    slowdown: Option<f64>,
}

impl Workload {
    fn new(workload: &WorkloadResult) -> Self {
        Self {
            seconds: seconds(workload.time),
            native: workload.is_native,
            native_seconds: workload.native_time.map(seconds),
            slowdown: workload.slowdown().map(ratio),
        }
    }
}

#[derive(Serialize)]
struct Instance<'a> {
    id: &'a str,
    qemu: Option<&'a str>,
    scenario: &'a str,
    file: String,
    matrix: Matrix<'a>,
    tags: &'a [String],
    status: Status,
    duration_ms: u64,
    skip_reason: Option<&'a str>,
    failure: Option<&'a str>,
    qemu_ran: Option<Ran<'a>>,
    workload: Option<Workload>,
    steps: Vec<Step<'a>>,
}

impl<'a> Instance<'a> {
    fn new(instance: &'a InstanceResult) -> Self {
        let id = &instance.instance;
        let result = &instance.result;
        Self {
            id: &id.id,
            qemu: id.qemu.as_deref(),
            scenario: &id.scenario,
            file: id.file.display().to_string(),
            matrix: Matrix(&id.matrix),
            tags: &id.tags,
            status: result.status,
            duration_ms: millis(result.duration),
            skip_reason: instance.skip_reason.as_deref(),
            failure: result.failure.as_deref(),
            qemu_ran: result.qemu_ran.as_ref().map(Ran::new),
            workload: instance.workload.as_ref().map(Workload::new),
            steps: result
                .steps
                .iter()
                .map(|(phase, index, name, step)| Step::new(*phase, *index, name, step))
                .collect(),
        }
    }
}

/// Matrix values as a JSON object, keys in the scenario's order (the order
/// the instance id shows them in).
struct Matrix<'a>(&'a [(String, String)]);

impl Serialize for Matrix<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Step<'a> {
    phase: Phase,
    index: usize,
    name: &'a str,
    status: Status,
    duration_ms: u64,
    attempts: u32,
    command: Option<&'a str>,
    exit_code: Option<i64>,
    message: Option<&'a str>,
    stdout: &'a str,
    stderr: &'a str,
}

impl<'a> Step<'a> {
    fn new(phase: Phase, index: usize, name: &'a str, step: &'a StepResult) -> Self {
        Self {
            phase,
            index,
            name,
            status: step.status,
            duration_ms: millis(step.duration),
            attempts: step.attempts,
            command: step.command.as_deref(),
            exit_code: step.exit_code,
            message: step.message.as_deref(),
            stdout: &step.stdout,
            stderr: &step.stderr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::script;

    fn scripted_report() -> RunReport {
        let mut collector = Collector::new();
        for event in script::events() {
            collector.handle(&event);
        }
        collector.report()
    }

    #[test]
    fn json_report() {
        insta::assert_snapshot!(to_string(&scripted_report()).unwrap());
    }

    fn matrix_report() -> RunReport {
        let mut collector = Collector::new();
        for event in script::matrix_events() {
            collector.handle(&event);
        }
        collector.report()
    }

    #[test]
    fn json_matrix_report() {
        insta::assert_snapshot!(to_string(&matrix_report()).unwrap());
    }

    #[test]
    fn json_matrix_report_carries_qemus_what_ran_and_slowdowns() {
        let value: serde_json::Value =
            serde_json::from_str(&to_string(&matrix_report()).unwrap()).unwrap();
        let qemus = value["qemus"].as_array().unwrap();
        assert_eq!(qemus.len(), 2);
        assert_eq!(qemus[0]["name"], "7.2");
        assert_eq!(qemus[0]["version"], "7.2.0-1");
        assert_eq!(qemus[1]["debian_version"], "1:10.0.2+ds-1~bpo12+1");
        assert_eq!(qemus[1]["baseline"]["status"], "passed");
        assert_eq!(qemus[1]["summary"]["failed"], 1);
        let instances = value["instances"].as_array().unwrap();
        // Sorted by QEMU (oldest first), then id; ids repeat once per QEMU.
        let keys: Vec<(String, String)> = instances
            .iter()
            .map(|i| {
                (
                    i["qemu"].as_str().unwrap().into(),
                    i["id"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            keys[0],
            ("7.2.0-1".into(), "gcc-build[arch=aarch64]".into())
        );
        assert_eq!(
            keys[3],
            ("10.0.2-1".into(), "gcc-build[arch=aarch64]".into())
        );
        assert_eq!(instances[0]["workload"]["seconds"], 8.0);
        assert_eq!(instances[0]["workload"]["native_seconds"], 2.0);
        assert_eq!(instances[0]["workload"]["slowdown"], 4.0);
        assert_eq!(instances[1]["workload"]["native"], true);
        assert_eq!(
            instances[1]["workload"]["slowdown"],
            serde_json::Value::Null
        );
        assert_eq!(instances[3]["workload"]["slowdown"], 2.0);
        assert!(
            instances[5]["qemu_ran"]["mismatch"]
                .as_str()
                .unwrap()
                .contains("7.2.0")
        );
        assert_eq!(
            instances[2]["qemu_ran"]["mismatch"],
            serde_json::Value::Null
        );
        assert_eq!(instances[2]["workload"], serde_json::Value::Null);
    }

    #[test]
    fn json_report_has_the_documented_shape() {
        let value: serde_json::Value =
            serde_json::from_str(&to_string(&scripted_report()).unwrap()).unwrap();
        assert_eq!(value["schema_version"], 2);
        assert_eq!(value["qemus"], serde_json::json!([]));
        assert_eq!(value["started_at"], "2024-05-01T12:00:00.250Z");
        assert_eq!(value["summary"]["exit_code"], 1);
        let instances = value["instances"].as_array().unwrap();
        assert_eq!(instances.len(), 7);
        let skipped = instances
            .iter()
            .find(|i| i["id"] == "singularity-exec")
            .unwrap();
        assert_eq!(skipped["status"], "skipped");
        assert!(skipped["skip_reason"].is_string());
        for instance in instances {
            for key in [
                "id",
                "qemu",
                "scenario",
                "matrix",
                "tags",
                "status",
                "duration_ms",
                "skip_reason",
                "failure",
                "qemu_ran",
                "workload",
                "steps",
            ] {
                assert!(instance.get(key).is_some(), "{key} missing in {instance}");
            }
        }
    }

    #[test]
    fn writer_creates_the_parent_directory_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports/run.json");
        let mut reporter = JsonReporter::new(&path);
        for event in script::events() {
            reporter.handle(&event);
        }
        reporter.finish().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, to_string(&scripted_report()).unwrap() + "\n");

        // A directory where the file should be cannot be written.
        let mut reporter = JsonReporter::new(dir.path());
        let error = reporter.finish().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("failed to write the JSON report `{}`", dir.path().display())
        );
    }

    #[test]
    fn rfc3339_formats_utc_with_milliseconds() {
        let at = |ms: i64| {
            if ms >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
            }
        };
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(script::started_at()),
            "2024-05-01T12:00:00.250Z"
        );
        // A leap day, and the day after.
        assert_eq!(rfc3339_utc(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(at(951_868_800_000)), "2000-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(at(253_402_300_799_999)),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_utc(at(-500)), "1969-12-31T23:59:59.500Z");
        assert_eq!(rfc3339_utc(at(-86_400_000)), "1969-12-31T00:00:00.000Z");
    }
}
