//! The machine-readable report: [`JsonReporter`], written for `--json FILE`.
//!
//! The document mirrors [`RunReport`]: run metadata, the summary, and every
//! instance (sorted by id) with its steps and their captured output. It
//! carries `schema_version`; bump [`SCHEMA_VERSION`] whenever a field changes
//! meaning or disappears (adding a field does not need a bump). Durations are
//! whole milliseconds and `started_at` is RFC 3339 in UTC. Absent values are
//! `null`, never left out, so every document has the same shape. The report
//! is written once, by [`Reporter::finish`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::ser::SerializeMap;

use super::events::{Event, Phase};
use super::model::{Collector, InstanceResult, RunReport, Status, StepResult};
use super::reporter::{ReportError, Reporter, write_file};

/// The version of the JSON document's shape.
pub const SCHEMA_VERSION: u32 = 1;

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
            | Event::ScenarioStarted { .. }
            | Event::StepStarted { .. }
            | Event::StepOutput { .. }
            | Event::StepFinished { .. }
            | Event::ScenarioFinished { .. }
            | Event::ScenarioSkipped { .. }
            | Event::HostStateRestored { .. } => {}
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
            summary: Summary {
                passed: summary.passed,
                failed: summary.failed,
                skipped: summary.skipped,
                errored: summary.errored,
                timed_out: summary.timed_out,
                host_state_restored: summary.host_state_restored,
                exit_code: summary.exit_code(),
            },
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
    exit_code: i32,
}

#[derive(Serialize)]
struct Instance<'a> {
    id: &'a str,
    scenario: &'a str,
    file: String,
    matrix: Matrix<'a>,
    tags: &'a [String],
    status: Status,
    duration_ms: u64,
    skip_reason: Option<&'a str>,
    failure: Option<&'a str>,
    steps: Vec<Step<'a>>,
}

impl<'a> Instance<'a> {
    fn new(instance: &'a InstanceResult) -> Self {
        let id = &instance.instance;
        let result = &instance.result;
        Self {
            id: &id.id,
            scenario: &id.scenario,
            file: id.file.display().to_string(),
            matrix: Matrix(&id.matrix),
            tags: &id.tags,
            status: result.status,
            duration_ms: millis(result.duration),
            skip_reason: instance.skip_reason.as_deref(),
            failure: result.failure.as_deref(),
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

    #[test]
    fn json_report_has_the_documented_shape() {
        let value: serde_json::Value =
            serde_json::from_str(&to_string(&scripted_report()).unwrap()).unwrap();
        assert_eq!(value["schema_version"], 1);
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
                "scenario",
                "matrix",
                "tags",
                "status",
                "duration_ms",
                "skip_reason",
                "failure",
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
