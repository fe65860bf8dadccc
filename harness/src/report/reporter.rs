//! The [`Reporter`] trait, the [`Reporters`] fan-out and [`ReportError`].
//!
//! A reporter consumes events as they happen and writes its output at the
//! latest in [`Reporter::finish`]. `handle` cannot fail: a reporter keeps its
//! first error and returns it from `finish`, so a broken report never stops
//! the run and is never silently lost.

use std::io;
use std::path::{Path, PathBuf};

use super::events::Event;

/// Turns events into one kind of output.
///
/// Implementations match every [`Event`] variant without a wildcard arm, so
/// adding an event forces a decision in each reporter.
pub trait Reporter {
    /// Takes one event into account.
    fn handle(&mut self, event: &Event);

    /// Writes whatever is still pending and reports the first error met.
    ///
    /// Called once, after the last event; a run that was cut short (e.g. by
    /// Ctrl-C) still calls it, without a `RunFinished` event.
    fn finish(&mut self) -> Result<(), ReportError>;
}

/// A failure to produce a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing to the console failed.
    #[error("failed to write the console report")]
    Console(#[source] io::Error),
    /// The JUnit report could not be serialized.
    #[error("failed to serialize the JUnit report `{}`", path.display())]
    SerializeJunit {
        /// The file the report was meant for.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: quick_junit::SerializeError,
    },
    /// The JSON report could not be serialized.
    #[error("failed to serialize the JSON report `{}`", path.display())]
    SerializeJson {
        /// The file the report was meant for.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A report file could not be written.
    #[error("failed to write the {format} report `{}`", path.display())]
    WriteFile {
        /// `JUnit` or `JSON`.
        format: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl ReportError {
    /// Whether the console's reader went away (e.g. `qus-harness run | head`),
    /// which the binary treats as a quiet exit.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Self::Console(e) => e.kind() == io::ErrorKind::BrokenPipe,
            Self::SerializeJunit { .. } | Self::SerializeJson { .. } | Self::WriteFile { .. } => {
                false
            }
        }
    }
}

/// Hands every event to each of several reporters, in the order they were
/// added.
#[derive(Default)]
pub struct Reporters {
    reporters: Vec<Box<dyn Reporter + Send>>,
}

impl Reporters {
    /// No reporters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reporter.
    pub fn with(mut self, reporter: impl Reporter + Send + 'static) -> Self {
        self.push(reporter);
        self
    }

    /// Adds a reporter.
    pub fn push(&mut self, reporter: impl Reporter + Send + 'static) {
        self.reporters.push(Box::new(reporter));
    }
}

impl Reporter for Reporters {
    fn handle(&mut self, event: &Event) {
        for reporter in &mut self.reporters {
            reporter.handle(event);
        }
    }

    /// Finishes every reporter, even after one failed, and returns the first
    /// error; later errors go to the diagnostics log.
    fn finish(&mut self) -> Result<(), ReportError> {
        let mut first = None;
        for reporter in &mut self.reporters {
            if let Err(error) = reporter.finish() {
                if first.is_none() {
                    first = Some(error);
                } else {
                    tracing::error!(error = &error as &dyn std::error::Error, "report failed");
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Writes `contents` to `path`, creating the parent directory first.
pub(crate) fn write_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records the events it sees and fails on finish when told to.
    struct Recording {
        seen: Arc<Mutex<Vec<String>>>,
        fail_with: Option<&'static str>,
    }

    impl Reporter for Recording {
        fn handle(&mut self, event: &Event) {
            let name = match event {
                Event::RunStarted { .. } => "run_started",
                Event::QemuBaselineRegistered { .. } => "qemu_baseline_registered",
                Event::ScenarioStarted { .. } => "scenario_started",
                Event::StepStarted { .. } => "step_started",
                Event::StepOutput { .. } => "step_output",
                Event::StepFinished { .. } => "step_finished",
                Event::ScenarioFinished { .. } => "scenario_finished",
                Event::ScenarioSkipped { .. } => "scenario_skipped",
                Event::HostStateRestored { .. } => "host_state_restored",
                Event::HostStateChecked { .. } => "host_state_checked",
                Event::RunFinished { .. } => "run_finished",
            };
            self.seen.lock().unwrap().push(name.to_owned());
        }

        fn finish(&mut self) -> Result<(), ReportError> {
            self.seen.lock().unwrap().push("finish".to_owned());
            match self.fail_with {
                None => Ok(()),
                Some(path) => Err(ReportError::WriteFile {
                    format: "JSON",
                    path: path.into(),
                    source: io::Error::other("disk full"),
                }),
            }
        }
    }

    #[test]
    fn fan_out_forwards_every_event_and_finishes_every_reporter() {
        let a = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(Mutex::new(Vec::new()));
        let mut reporters = Reporters::new()
            .with(Recording {
                seen: a.clone(),
                fail_with: Some("first.json"),
            })
            .with(Recording {
                seen: b.clone(),
                fail_with: Some("second.json"),
            });
        reporters.handle(&Event::HostStateRestored {
            entries: 1,
            changed: false,
        });
        let error = reporters.finish().unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to write the JSON report `first.json`"
        );
        assert!(!error.is_broken_pipe());
        for seen in [a, b] {
            assert_eq!(*seen.lock().unwrap(), ["host_state_restored", "finish"]);
        }
    }

    #[test]
    fn only_a_console_broken_pipe_is_a_broken_pipe() {
        let pipe = ReportError::Console(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        let full = ReportError::Console(io::Error::other("disk full"));
        assert!(!full.is_broken_pipe());
    }
}
