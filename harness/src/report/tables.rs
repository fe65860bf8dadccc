//! The console's QEMU-matrix and workload text: the baseline line of each
//! QEMU, one count line per QEMU, and the workload timing tables.
//!
//! Pure functions over the result model, returning text for
//! [`super::ConsoleReporter`] to write; columns are sized from the rows, so
//! the text depends only on the results.

use std::fmt::Write as _;

use super::model::{RunReport, Status, StepResult};

/// The indentation of lines under a heading.
const INDENT: &str = "    ";

/// What the baseline registration of a QEMU did.
pub(crate) fn baseline_line(qemu: &str, result: &StepResult) -> String {
    let command = result
        .command
        .as_deref()
        .map(|c| format!("`{c}`, "))
        .unwrap_or_default();
    let secs = result.duration.as_secs_f64();
    if result.status == Status::Passed {
        return format!("qemu {qemu}: handlers registered ({command}{secs:.2}s)\n");
    }
    let mut text = format!(
        "ERROR qemu {qemu}: handlers not registered ({command}{secs:.2}s); its instances do not run\n"
    );
    if let Some(message) = &result.message {
        for line in message.lines() {
            let _ = writeln!(text, "{INDENT}{line}");
        }
    }
    text
}

/// One count line per QEMU of a matrix run (empty without one). Their
/// wording differs from the run's `N passed, N failed, N skipped` line, so
/// log parsers that look for that line still find only one.
pub(crate) fn qemu_summary_lines(report: &RunReport) -> String {
    let mut text = String::new();
    for qemu in &report.qemus {
        let s = &qemu.summary;
        let _ = write!(
            text,
            "qemu {} ({}): passed {}, failed {}, skipped {}",
            qemu.info.version, qemu.info.name, s.passed, s.failed, s.skipped
        );
        if s.errored > 0 {
            let _ = write!(text, ", errored {}", s.errored);
        }
        if s.timed_out > 0 {
            let _ = write!(text, ", timed out {}", s.timed_out);
        }
        let mismatched = report
            .instances
            .iter()
            .filter(|i| i.instance.qemu.as_deref() == Some(qemu.info.version.as_str()))
            .filter(|i| {
                i.result
                    .qemu_ran
                    .as_ref()
                    .is_some_and(|r| r.mismatch.is_some())
            })
            .count();
        if mismatched > 0 {
            let _ = write!(text, "; {mismatched} ran another QEMU");
        }
        text.push('\n');
    }
    text
}

/// The workload tables, one per QEMU (or one for a run without `--qemu`):
/// workload, the workload key's value, seconds, native seconds, slowdown.
/// Empty when no instance was a timed workload.
pub(crate) fn workload_tables(report: &RunReport) -> String {
    // Rows in report order (QEMU, then id), grouped by QEMU.
    let mut groups: Vec<(Option<&str>, Vec<[String; 5]>)> = Vec::new();
    for instance in &report.instances {
        let (Some(workload), Some(axis)) = (&instance.workload, &instance.instance.workload) else {
            continue;
        };
        let id = &instance.instance;
        let others: Vec<String> = id
            .matrix
            .iter()
            .filter(|(k, _)| *k != axis.key)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let name = if others.is_empty() {
            id.scenario.clone()
        } else {
            format!("{}[{}]", id.scenario, others.join(","))
        };
        let value = id
            .matrix
            .iter()
            .find(|(k, _)| *k == axis.key)
            .map_or_else(String::new, |(_, v)| v.clone());
        let seconds = if instance.result.status == Status::Passed {
            format!("{:.2}s", workload.time.as_secs_f64())
        } else {
            format!(
                "{:.2}s {}",
                workload.time.as_secs_f64(),
                instance.result.status
            )
        };
        let row = [
            name,
            value,
            seconds,
            workload
                .native_time
                .map_or_else(|| "-".to_owned(), |t| format!("{:.2}s", t.as_secs_f64())),
            workload
                .slowdown()
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}x")),
        ];
        let qemu = id.qemu.as_deref();
        match groups.last_mut() {
            Some((q, rows)) if *q == qemu => rows.push(row),
            _ => groups.push((qemu, vec![row])),
        }
    }
    // The second column is named after the workload key when every
    // workload scenario uses the same one (`arch`).
    let keys: std::collections::BTreeSet<&str> = report
        .instances
        .iter()
        .filter_map(|i| i.instance.workload.as_ref())
        .map(|a| a.key.as_str())
        .collect();
    let axis = match keys.len() {
        1 => keys.first().copied().unwrap_or("value"),
        _ => "value",
    };
    let mut text = String::new();
    for (qemu, rows) in groups {
        let header = [
            "workload".to_owned(),
            axis.to_owned(),
            "seconds".to_owned(),
            "native".to_owned(),
            "slowdown".to_owned(),
        ];
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        match qemu {
            Some(qemu) => {
                let _ = writeln!(text, "\nworkloads (qemu {qemu}):");
            }
            None => text.push_str("\nworkloads:\n"),
        }
        for row in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                text,
                "{INDENT}{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_failed_baseline_says_so_with_its_message() {
        let mut result = StepResult::new(Status::Errored, Duration::from_millis(1_250));
        result.command = Some("docker run --privileged r:7.2.0-1 --reset -p yes".into());
        result.message = Some("engine: no such image".into());
        assert_eq!(
            baseline_line("7.2.0-1", &result),
            "ERROR qemu 7.2.0-1: handlers not registered (`docker run --privileged r:7.2.0-1 \
             --reset -p yes`, 1.25s); its instances do not run\n    engine: no such image\n"
        );
        result.status = Status::Passed;
        result.message = None;
        assert_eq!(
            baseline_line("7.2.0-1", &result),
            "qemu 7.2.0-1: handlers registered (`docker run --privileged r:7.2.0-1 --reset -p \
             yes`, 1.25s)\n"
        );
    }
}
