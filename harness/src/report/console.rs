//! The human-facing report: [`ConsoleReporter`].
//!
//! On a terminal it shows progress: a bar of instances done out of planned,
//! and a spinner per running instance with its current step and how long it
//! has been running. Elsewhere (CI logs) it writes one block per finished
//! instance. Either way a finished instance prints the same lines, a failure
//! shows its message and the tail of the failing step's output, and the run
//! ends with a summary whose first line, `N passed, N failed, N skipped`, CI
//! parsers read. A run with `--qemu` names each QEMU in its header, each
//! baseline registration, the QEMU of every instance line when there are
//! several, a warning when another QEMU ran than the one asked for, and a
//! count line per QEMU; workload scenarios end with a table of their
//! timings ([`super::tables`]). The caller decides the mode and owns the
//! writer; this module does not decide whether it runs on a terminal.
//!
//! Every result line goes to the caller's writer. The interactive progress
//! display is the one exception: indicatif redraws it by letting lines wrap
//! at the terminal's right edge, so it must know the real width, and only its
//! own stdout target can find that out. So by default the display is drawn on
//! stdout's terminal (and hidden when stdout is not one), and result lines
//! are written while it is cleared. [`ConsoleReporter::with_term_width`]
//! draws it into the writer instead, for a caller that knows the width.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use super::events::{Event, InstanceId, InstanceKey, QemuInfo, Stream};
use super::model::{Collector, HostState, RunSummary, ScenarioResult, Status, StepRecord};
use super::reporter::{ReportError, Reporter};
use super::skips::SkipCauses;
use super::tables;

/// How many lines of a failing step's stdout and stderr a failure shows.
const TAIL_LINES: usize = 10;

/// The indentation of the detail lines under an instance's status line.
const INDENT: &str = "    ";

/// How often spinners and elapsed times are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Whether the console can redraw lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// A terminal: progress bar and spinners.
    Interactive,
    /// A log (CI, a pipe): append-only lines.
    Plain,
}

/// Writes progress and results for people, to a writer the caller gives.
pub struct ConsoleReporter {
    /// Where every byte goes, shared with the progress drawer.
    out: SharedOut,
    /// Progress display or append-only lines.
    mode: ConsoleMode,
    /// Whether to stream step output and step results.
    verbose: bool,
    /// Draw progress into `out` for a terminal this wide, instead of on
    /// stdout's terminal.
    term_width: Option<u16>,
    /// Bars and spinners; present in interactive mode between
    /// `RunStarted` and `RunFinished`.
    progress: Option<Progress>,
    /// Streamed output not yet ending in a newline, per instance and stream.
    partial: BTreeMap<(InstanceKey, Stream), String>,
    /// Instances that did not pass or skip (their label and outcome), for
    /// the recap at the end.
    not_passed: BTreeMap<InstanceKey, (String, Status)>,
    /// The host restore, once reported.
    host_state: Option<HostState>,
    /// The QEMUs of the run, from `RunStarted`.
    qemus: Vec<QemuInfo>,
    /// The results so far, for the per-QEMU counts and workload tables.
    collector: Collector,
    /// Skips by cause, for the summary.
    skip_causes: SkipCauses,
}

impl ConsoleReporter {
    /// A reporter writing to `out`; `verbose` streams step output.
    pub fn new(out: Box<dyn Write + Send>, mode: ConsoleMode, verbose: bool) -> Self {
        Self {
            out: SharedOut::new(out),
            mode,
            verbose,
            term_width: None,
            progress: None,
            partial: BTreeMap::new(),
            not_passed: BTreeMap::new(),
            host_state: None,
            qemus: Vec::new(),
            collector: Collector::new(),
            skip_causes: SkipCauses::default(),
        }
    }

    /// How lines name `instance`: with its QEMU when the run has several.
    fn label(&self, instance: &InstanceId) -> String {
        instance.label(self.qemus.len() > 1)
    }

    /// Draws the interactive progress display into the writer, as ANSI
    /// cursor movement for a terminal exactly `width` columns wide, instead
    /// of on stdout's terminal. A wrong width garbles the display.
    pub fn with_term_width(mut self, width: u16) -> Self {
        self.term_width = Some(width.max(20));
        self
    }

    /// Writes finished lines, above the progress display when there is one.
    fn emit(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        match &self.progress {
            Some(progress) => progress.multi.suspend(|| self.out.write(text)),
            None => self.out.write(text),
        }
        self.out.flush();
    }

    /// Appends a chunk of streamed output and prints the lines it completes.
    fn stream(&mut self, instance: &InstanceId, stream: Stream, chunk: &str) {
        let label = self.label(instance);
        let buffer = self.partial.entry((instance.key(), stream)).or_default();
        buffer.push_str(chunk);
        let Some(end) = buffer.rfind('\n') else {
            return;
        };
        let complete: String = buffer.drain(..=end).collect();
        let mut text = String::new();
        for line in complete.lines() {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{label} {stream}: {line}");
        }
        self.emit(&text);
    }

    /// Prints what is left of an instance's streamed output.
    fn flush_stream(&mut self, instance: &InstanceId) {
        let mut text = String::new();
        let label = self.label(instance);
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(rest) = self.partial.remove(&(instance.key(), stream))
                && !rest.is_empty()
            {
                let _ = writeln!(text, "{label} {stream}: {rest}");
            }
        }
        self.emit(&text);
    }

    /// Counts an instance as done on the progress bar and drops its spinner.
    fn instance_done(&mut self, instance: &InstanceId) {
        if let Some(progress) = &mut self.progress {
            if let Some(spinner) = progress.spinners.remove(&instance.key()) {
                spinner.finish_and_clear();
                progress.multi.remove(&spinner);
            }
            progress.bar.inc(1);
        }
    }
}

impl Reporter for ConsoleReporter {
    fn handle(&mut self, event: &Event) {
        self.collector.handle(event);
        match event {
            Event::RunStarted {
                run_id,
                runtime,
                instances,
                jobs,
                started_at: _,
                qemus,
            } => {
                self.qemus = qemus.clone();
                let mut text = format!(
                    "running {instances} {} on `{runtime}` with {jobs} {} (run {run_id})\n",
                    plural(*instances, "instance", "instances"),
                    plural(*jobs, "job", "jobs"),
                );
                for qemu in qemus {
                    let debian = qemu
                        .debian_version
                        .as_deref()
                        .map(|d| format!(" (Debian {d})"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        text,
                        "{INDENT}qemu {}: image version {}{debian}",
                        qemu.name, qemu.version
                    );
                }
                self.emit(&text);
                if self.mode == ConsoleMode::Interactive {
                    self.progress = Some(Progress::new(&self.out, self.term_width, *instances));
                }
            }
            Event::QemuBaselineRegistered { qemu, result } => {
                self.emit(&tables::baseline_line(qemu, result));
            }
            Event::ScenarioStarted { instance } => {
                let label = self.label(instance);
                if let Some(progress) = &mut self.progress {
                    progress.start(instance.key(), label);
                }
            }
            Event::StepStarted {
                instance,
                phase,
                index,
                name,
            } => {
                if let Some(progress) = &self.progress
                    && let Some(spinner) = progress.spinners.get(&instance.key())
                {
                    spinner.set_message(format!("{phase}[{index}] {name}"));
                    spinner.reset_elapsed();
                }
            }
            Event::StepOutput {
                instance,
                stream,
                chunk,
            } => {
                if self.verbose {
                    self.stream(instance, *stream, chunk);
                }
            }
            Event::StepFinished {
                instance,
                phase,
                index,
                name,
                result,
            } => {
                if self.verbose {
                    self.flush_stream(instance);
                    let attempts = match result.attempts {
                        0 | 1 => String::new(),
                        n => format!(", {n} attempts"),
                    };
                    self.emit(&format!(
                        "{} {phase}[{index}] {name}: {} ({}{attempts})\n",
                        self.label(instance),
                        result.status,
                        Secs(result.duration),
                    ));
                }
            }
            Event::ScenarioFinished { instance, result } => {
                self.flush_stream(instance);
                let label = self.label(instance);
                if result.status.is_failure() {
                    self.not_passed
                        .insert(instance.key(), (label.clone(), result.status));
                }
                if result.status == Status::Skipped {
                    self.skip_causes
                        .add(result.failure.as_deref().unwrap_or("skipped at run time"));
                }
                self.instance_done(instance);
                self.emit(&finished_block(&label, result));
            }
            Event::ScenarioSkipped { instance, reason } => {
                self.skip_causes.add(reason);
                self.instance_done(instance);
                self.emit(&format!("SKIP  {}: {reason}\n", self.label(instance)));
            }
            Event::HostStateRestored { entries, changed } => {
                self.host_state = Some(HostState {
                    entries: *entries,
                    changed: *changed,
                });
            }
            // The summary carries the comparison.
            Event::HostStateChecked { .. } => {}
            Event::RunFinished { summary } => {
                if let Some(progress) = self.progress.take() {
                    progress.clear();
                }
                let report = self.collector.report();
                let mut text = tables::workload_tables(&report);
                text.push_str(&summary_block(summary, self.host_state, &self.not_passed));
                let mut extra = tables::qemu_summary_lines(&report);
                extra.push_str(&self.skip_causes.lines());
                // The per-QEMU counts and the skips by cause follow the
                // counts line, which stays the first line of the summary.
                if let Some(at) = text.find("\nfinished in ") {
                    text.insert_str(at + 1, &extra);
                }
                self.emit(&text);
            }
        }
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        // A run cut short leaves its progress display behind; clear it.
        if let Some(progress) = self.progress.take() {
            progress.clear();
        }
        self.out.flush();
        match self.out.take_error() {
            Some(error) => Err(ReportError::Console(error)),
            None => Ok(()),
        }
    }
}

/// The status word that starts an instance's line.
fn label(status: Status) -> &'static str {
    match status {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Skipped => "SKIP",
        Status::TimedOut => "TIMEOUT",
        Status::Errored => "ERROR",
    }
}

/// `instance` or `instances`.
fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// A duration as seconds with two decimals, e.g. `1.23s`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}s", self.0.as_secs_f64())
    }
}

/// The lines for a finished instance (`name` is how it is shown): its
/// status line, then for a failure the reason and the failing step's
/// command and output tail, for a pass the steps that needed retries, and a
/// warning when another QEMU ran than the one asked for.
fn finished_block(name: &str, result: &ScenarioResult) -> String {
    if result.status == Status::Skipped {
        // Skipped after starting, e.g. a requirement found unmet on the host:
        // the same line as an instance skipped up front.
        let reason = result.failure.as_deref().unwrap_or("skipped at run time");
        return format!("SKIP  {name}: {reason}\n");
    }
    let mut text = format!(
        "{}  {}  {name}\n",
        label(result.status),
        Secs(result.duration),
    );
    if let Some(ran) = &result.qemu_ran {
        if let Some(mismatch) = &ran.mismatch {
            let _ = writeln!(text, "{INDENT}warning: {mismatch}");
        }
        if let Some(error) = &ran.error {
            let _ = writeln!(text, "{INDENT}note: cannot tell which QEMU ran: {error}");
        }
    }
    if let Some(failure) = &result.failure {
        push_indented(&mut text, INDENT, failure);
    }
    if result.status.is_failure()
        && let Some(step) = result.failing_step()
    {
        failing_step_lines(&mut text, step);
    }
    for (phase, index, name, step) in &result.steps {
        if step.attempts > 1 && !step.status.is_failure() {
            let _ = writeln!(
                text,
                "{INDENT}{phase}[{index}] `{name}` {} after {} attempts",
                step.status, step.attempts
            );
        }
    }
    text
}

/// The failing step: which one, why, what it ran, and what it printed last.
fn failing_step_lines(text: &mut String, (phase, index, name, step): &StepRecord) {
    let attempts = match step.attempts {
        0 | 1 => String::new(),
        n => format!(" after {n} attempts"),
    };
    let _ = write!(
        text,
        "{INDENT}{phase}[{index}] `{name}` {}{attempts}",
        step.status
    );
    match step.message.as_deref() {
        Some(message) if !message.contains('\n') => {
            let _ = writeln!(text, ": {message}");
        }
        Some(message) => {
            text.push_str(":\n");
            push_indented(text, &format!("{INDENT}  "), message);
        }
        None => text.push('\n'),
    }
    if let Some(command) = &step.command {
        let _ = write!(text, "{INDENT}command: {command}");
        match step.exit_code {
            Some(code) => {
                let _ = writeln!(text, " (exit code {code})");
            }
            None => text.push('\n'),
        }
    }
    for (stream, output) in [
        (Stream::Stdout, &step.stdout),
        (Stream::Stderr, &step.stderr),
    ] {
        let lines: Vec<&str> = output.lines().collect();
        if lines.is_empty() {
            continue;
        }
        let shown = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        if shown.len() < lines.len() {
            let _ = writeln!(
                text,
                "{INDENT}{stream} (last {} of {} lines):",
                shown.len(),
                lines.len()
            );
        } else {
            let _ = writeln!(text, "{INDENT}{stream}:");
        }
        for line in shown {
            let _ = writeln!(text, "{INDENT}| {line}");
        }
    }
}

/// Appends each line of `message` with `indent` in front.
fn push_indented(text: &mut String, indent: &str, message: &str) {
    for line in message.lines() {
        let _ = writeln!(text, "{indent}{line}");
    }
}

/// The end of the run: a sorted recap of what did not pass, the counts line
/// CI parsers read, the rarer counts, the total time and the host state.
fn summary_block(
    summary: &RunSummary,
    host_state: Option<HostState>,
    not_passed: &BTreeMap<InstanceKey, (String, Status)>,
) -> String {
    let mut text = String::from("\n");
    if !not_passed.is_empty() {
        text.push_str("not passed:\n");
        for (name, status) in not_passed.values() {
            let _ = writeln!(text, "{INDENT}{:<7}  {name}", label(*status));
        }
    }
    // This line's shape is a contract with CI log parsers: keep it alone on
    // its line and keep its wording.
    let _ = writeln!(
        text,
        "{} passed, {} failed, {} skipped",
        summary.passed, summary.failed, summary.skipped
    );
    let mut rare = Vec::new();
    if summary.errored > 0 {
        rare.push(format!("{} errored", summary.errored));
    }
    if summary.timed_out > 0 {
        rare.push(format!("{} timed out", summary.timed_out));
    }
    if !rare.is_empty() {
        let _ = writeln!(text, "{}", rare.join(", "));
    }
    let _ = writeln!(text, "finished in {}", Secs(summary.duration));
    if let Some(check) = &summary.host_state_checked {
        let private = match check.private_instances {
            0 => String::new(),
            1 => "; 1 instance wrote binfmt_misc in a private registry".to_owned(),
            n => format!("; {n} instances wrote binfmt_misc in private registries"),
        };
        if check.is_untouched() {
            let _ = writeln!(
                text,
                "host binfmt state untouched ({} entries, the same before and after{private})",
                check.entries
            );
        } else {
            let _ = writeln!(
                text,
                "host binfmt state CHANGED during the run: {} (restored where possible)",
                check.changed.join(", ")
            );
        }
        return text;
    }
    // A restore event without a verdict in the summary still means the
    // runner restored the state.
    let restored = summary.host_state_restored.or(host_state.map(|_| true));
    let host = match (restored, host_state) {
        (None, _) => "host binfmt state not touched".to_owned(),
        (
            Some(true),
            Some(HostState {
                entries,
                changed: true,
            }),
        ) => {
            format!("host binfmt state restored ({entries} entries, changes undone)")
        }
        (
            Some(true),
            Some(HostState {
                entries,
                changed: false,
            }),
        ) => {
            format!("host binfmt state restored ({entries} entries, nothing had changed)")
        }
        (Some(true), None) => "host binfmt state restored".to_owned(),
        (Some(false), _) => {
            "host binfmt state NOT restored: check /proc/sys/fs/binfmt_misc".to_owned()
        }
    };
    let _ = writeln!(text, "{host}");
    text
}

/// The caller's writer, shared between the reporter and the progress
/// drawer, keeping the first write error instead of failing every call.
#[derive(Clone)]
struct SharedOut {
    inner: Arc<Mutex<OutState>>,
}

struct OutState {
    writer: Box<dyn Write + Send>,
    /// The first error; once set, nothing more is written.
    error: Option<io::Error>,
}

impl SharedOut {
    fn new(writer: Box<dyn Write + Send>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutState {
                writer,
                error: None,
            })),
        }
    }

    fn with(&self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        // A panic elsewhere while holding the lock leaves the writer usable.
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if state.error.is_none()
            && let Err(error) = f(&mut state.writer)
        {
            state.error = Some(error);
        }
    }

    fn write(&self, text: &str) {
        self.with(|w| w.write_all(text.as_bytes()));
    }

    fn flush(&self) {
        self.with(|w| w.flush());
    }

    fn take_error(&self) -> Option<io::Error> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .error
            .take()
    }
}

/// The progress display of interactive mode.
struct Progress {
    multi: MultiProgress,
    /// Instances done out of planned; kept below the spinners.
    bar: ProgressBar,
    /// One per running instance.
    spinners: BTreeMap<InstanceKey, ProgressBar>,
    spinner_style: ProgressStyle,
}

impl Progress {
    fn new(out: &SharedOut, width: Option<u16>, instances: usize) -> Self {
        let target = match width {
            Some(width) => ProgressDrawTarget::term_like(Box::new(OutTerm {
                out: out.clone(),
                width,
            })),
            None => ProgressDrawTarget::stdout(),
        };
        let multi = MultiProgress::with_draw_target(target);
        let bar_style = ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30} {pos}/{len} instances {wide_msg}",
        )
        .expect("the bar template is a valid indicatif template")
        .progress_chars("=> ");
        let spinner_style =
            ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {wide_msg}")
                .expect("the spinner template is a valid indicatif template");
        let bar = multi.add(
            ProgressBar::new(u64::try_from(instances).unwrap_or(u64::MAX)).with_style(bar_style),
        );
        bar.enable_steady_tick(TICK);
        Self {
            multi,
            bar,
            spinners: BTreeMap::new(),
            spinner_style,
        }
    }

    fn start(&mut self, key: InstanceKey, label: String) {
        let spinner = self.multi.insert_before(
            &self.bar,
            ProgressBar::new_spinner()
                .with_style(self.spinner_style.clone())
                .with_prefix(label)
                .with_message("starting"),
        );
        spinner.enable_steady_tick(TICK);
        self.spinners.insert(key, spinner);
    }

    fn clear(self) {
        for spinner in self.spinners.values() {
            spinner.finish_and_clear();
        }
        self.bar.finish_and_clear();
        // Nothing useful can be done if clearing fails; the error, if it came
        // from the writer, is kept by `SharedOut`.
        let _ = self.multi.clear();
    }
}

/// indicatif's view of the caller's writer, for a terminal of a known width:
/// ANSI cursor movement over [`SharedOut`]. Write errors are kept by `SharedOut` and reported as
/// success here, because indicatif panics on a failed redraw.
struct OutTerm {
    out: SharedOut,
    width: u16,
}

impl fmt::Debug for OutTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutTerm")
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl OutTerm {
    fn escape(&self, n: usize, code: char) -> io::Result<()> {
        if n > 0 {
            self.out.write(&format!("\x1b[{n}{code}"));
        }
        Ok(())
    }
}

impl TermLike for OutTerm {
    fn width(&self) -> u16 {
        self.width
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.escape(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.escape(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.escape(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.escape(n, 'D')
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.out.write(s);
        self.out.write("\n");
        Ok(())
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.out.write(s);
        Ok(())
    }

    fn clear_line(&self) -> io::Result<()> {
        self.out.write("\r\x1b[2K");
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.out.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::script;
    use crate::report::{Phase, StepResult};

    /// A writer the test can read back.
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

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn render(mode: ConsoleMode, verbose: bool) -> String {
        let buffer = Buffer::default();
        // A fixed width keeps the progress display in the buffer.
        let mut reporter =
            ConsoleReporter::new(Box::new(buffer.clone()), mode, verbose).with_term_width(100);
        for event in script::events() {
            reporter.handle(&event);
        }
        reporter.finish().unwrap();
        buffer.text()
    }

    #[test]
    fn plain_output() {
        insta::assert_snapshot!(render(ConsoleMode::Plain, false));
    }

    fn render_matrix() -> String {
        let buffer = Buffer::default();
        let mut reporter =
            ConsoleReporter::new(Box::new(buffer.clone()), ConsoleMode::Plain, false);
        for event in script::matrix_events() {
            reporter.handle(&event);
        }
        reporter.finish().unwrap();
        buffer.text()
    }

    #[test]
    fn plain_matrix_output() {
        insta::assert_snapshot!(render_matrix());
    }

    #[test]
    fn a_matrix_run_names_its_qemus_and_keeps_one_counts_line() {
        let output = render_matrix();
        assert!(
            output
                .contains("    qemu 10.0: image version 10.0.2-1 (Debian 1:10.0.2+ds-1~bpo12+1)\n"),
            "{output}"
        );
        assert!(
            output.contains("FAIL  0.45s  probe[arch=aarch64] (qemu 10.0.2-1)\n"),
            "{output}"
        );
        assert!(
            output.contains("    warning: asked for QEMU 10.0.2-1"),
            "{output}"
        );
        let counts: Vec<&str> = output
            .lines()
            .filter(|l| l.contains(" passed, ") && l.contains(" skipped"))
            .collect();
        assert_eq!(counts, ["5 passed, 1 failed, 0 skipped"]);
        assert!(
            output.contains("qemu 7.2.0-1 (7.2): passed 3, failed 0, skipped 0\n"),
            "{output}"
        );
        assert!(
            output.contains(
                "qemu 10.0.2-1 (10.0): passed 2, failed 1, skipped 0; 1 ran another QEMU\n"
            ),
            "{output}"
        );
        // Workloads: the slowdown against the same QEMU's native run.
        assert!(
            output.contains("gcc-build  aarch64    8.00s   2.00s     4.00x"),
            "{output}"
        );
        assert!(
            output.contains("gcc-build  aarch64    5.00s   2.50s     2.00x"),
            "{output}"
        );
    }

    #[test]
    fn plain_verbose_output() {
        insta::assert_snapshot!(render(ConsoleMode::Plain, true));
    }

    #[test]
    fn summary_line_stands_alone_for_ci_parsers() {
        let output = render(ConsoleMode::Plain, false);
        let matching: Vec<&str> = output
            .lines()
            .filter(|l| l.contains(" passed, ") && l.contains(" skipped"))
            .collect();
        assert_eq!(matching, ["2 passed, 2 failed, 1 skipped"]);
    }

    #[test]
    fn interactive_output_ends_with_the_same_results_and_summary() {
        let output = render(ConsoleMode::Interactive, false);
        let plain = render(ConsoleMode::Plain, false);
        assert!(
            output.contains("/7 instances"),
            "no progress bar in {output:?}"
        );
        // Redraws come and go; every finished line and the summary remain.
        for line in plain.lines().filter(|l| !l.is_empty()) {
            assert!(output.contains(line), "missing {line:?} in {output:?}");
        }
        let summary_start = plain.find("\nnot passed:").unwrap();
        assert!(output.ends_with(&plain[summary_start..]), "{output:?}");
    }

    #[test]
    fn failure_tail_keeps_the_last_lines() {
        let instance = InstanceId::new("noisy", vec![], vec![], "scenarios/noisy.yaml");
        let mut step = StepResult::new(Status::Failed, Duration::from_millis(1_500));
        step.message = Some("exit code: expected 0, got 2\nsecond line".to_owned());
        step.stdout = (1..=25).map(|i| format!("line {i}\n")).collect();
        let result = ScenarioResult::new(
            Status::Failed,
            Duration::from_millis(1_500),
            vec![(Phase::Main, 0, "run: noisy".to_owned(), step)],
            None,
        );
        let block = finished_block(&instance.id, &result);
        assert!(block.starts_with("FAIL  1.50s  noisy\n"), "{block}");
        assert!(block.contains("    main[0] `run: noisy` failed:\n      exit code: expected 0, got 2\n      second line\n"), "{block}");
        assert!(block.contains("stdout (last 10 of 25 lines):"), "{block}");
        assert!(block.contains("| line 16\n") && block.contains("| line 25\n"));
        assert!(!block.contains("| line 15\n"), "{block}");
    }

    #[test]
    fn summary_says_what_happened_to_the_host_state() {
        let host_line = |restored, state| {
            let summary = RunSummary {
                host_state_restored: restored,
                ..RunSummary::default()
            };
            let text = summary_block(&summary, state, &BTreeMap::new());
            text.lines().last().unwrap().to_owned()
        };
        assert_eq!(host_line(None, None), "host binfmt state not touched");
        assert_eq!(
            host_line(Some(false), None),
            "host binfmt state NOT restored: check /proc/sys/fs/binfmt_misc"
        );
        let unchanged = HostState {
            entries: 2,
            changed: false,
        };
        assert_eq!(
            host_line(None, Some(unchanged)),
            "host binfmt state restored (2 entries, nothing had changed)"
        );
    }

    #[test]
    fn summary_omits_zero_errored_and_timed_out_counts() {
        let summary = RunSummary {
            passed: 4,
            skipped: 1,
            duration: Duration::from_millis(1_234),
            ..RunSummary::default()
        };
        let text = summary_block(&summary, None, &BTreeMap::new());
        assert_eq!(
            text,
            "\n4 passed, 0 failed, 1 skipped\nfinished in 1.23s\nhost binfmt state not touched\n"
        );
    }

    #[test]
    fn an_instance_skipped_after_starting_prints_a_skip_line() {
        let instance = InstanceId::new("needs-kvm", vec![], vec![], "scenarios/needs-kvm.yaml");
        let result = ScenarioResult::new(
            Status::Skipped,
            Duration::from_millis(40),
            vec![],
            Some("requires `/dev/kvm`".to_owned()),
        );
        assert_eq!(
            finished_block(&instance.id, &result),
            "SKIP  needs-kvm: requires `/dev/kvm`\n"
        );
    }

    #[test]
    fn write_errors_surface_at_finish() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut reporter = ConsoleReporter::new(Box::new(Broken), ConsoleMode::Plain, false);
        for event in script::events() {
            reporter.handle(&event);
        }
        let error = reporter.finish().unwrap_err();
        assert!(error.is_broken_pipe());
    }
}
