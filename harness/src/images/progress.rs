//! What the image builders report while they work.
//!
//! The main types are [`ImagesEvent`] (a step started or finished) and the
//! [`Progress`] trait that receives them. Builders never print: the CLI
//! renders events (a spinner per step, elapsed times), tests collect them.
//! Several steps may run at once (images are built concurrently), so a
//! `StepStarted` is not necessarily followed by its own `StepFinished`.

use std::path::PathBuf;
use std::time::Duration;

use super::suite::Suite;

/// One unit of work, as a reporter names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Refresh the package lists of a suite's private APT directory with
    /// `apt-get update`; skipped while they are younger than the refresh
    /// age.
    UpdateLists {
        /// The suite.
        suite: Suite,
        /// Its private APT directory.
        dir: PathBuf,
    },
    /// Read what the suites offer and choose the package and version.
    SelectPackage {
        /// What `--qemu-version` asked for; `None` for the newest.
        wanted: Option<String>,
        /// The suites searched.
        suites: Vec<Suite>,
    },
    /// Download a QEMU package with `apt-get download`; skipped when the
    /// suite's private directory already holds it.
    FetchDeb {
        /// `qemu-user-static` or `qemu-user`.
        package: String,
        /// The Debian version, or the host's candidate when `None`.
        version: Option<String>,
        /// The suite it comes from; `None` for the host's APT sources.
        suite: Option<Suite>,
        /// Its size in bytes, when the lists say.
        size: Option<u64>,
        /// Why this package, when it is not the one asked for (a
        /// transitional `qemu-user-static` resolved to `qemu-user`).
        reason: Option<String>,
    },
    /// Read the package's control fields and unpack it.
    UnpackDeb {
        /// The `.deb` file.
        path: PathBuf,
    },
    /// Check that every emulator is a static ELF executable for the
    /// images' host CPU.
    CheckEmulators {
        /// The package they come from.
        package: String,
        /// How many.
        count: usize,
        /// The host CPU (`x86_64`, `aarch64`).
        machine: String,
    },
    /// Compile the static `qus-register` with cargo.
    CompileRegistrar {
        /// The workspace compiled.
        workspace: PathBuf,
    },
    /// Check that a registrar binary is static and for this host.
    CheckRegistrar {
        /// The binary.
        path: PathBuf,
    },
    /// Hash the emulators and the registrar (the recipes' inputs).
    HashInputs,
    /// Build one image, or import one root filesystem, and tag it.
    Image {
        /// Every tag the image gets; the first is its primary name.
        tags: Vec<String>,
    },
    /// Write the release artifacts and `SHA256SUMS`.
    WriteArtifacts {
        /// The output directory.
        dir: PathBuf,
    },
    /// Register binfmt_misc handlers (flag `F`) for `debootstrap`'s
    /// second stage; they are restored when the fixtures are done.
    RegisterHandlers {
        /// Entry names (`qemu-aarch64`).
        entries: Vec<String>,
    },
    /// Make a root filesystem tarball with `debootstrap` (or find it cached).
    Rootfs {
        /// The fixture's name: its Debian architecture (`arm64`), with its
        /// flavour for a workload fixture (`workload-arm64`).
        arch: String,
        /// The cache file.
        tarball: PathBuf,
    },
    /// Copy the crates `Cargo.lock` names out of the host's cargo registry
    /// (`cargo vendor`), for the cross builds, which run offline.
    VendorCrates {
        /// The workspace whose lock file is vendored.
        workspace: PathBuf,
    },
    /// Copy one image from the engine into an OCI layout (skopeo), or
    /// find its layout cached.
    ExportImage {
        /// The image (`qus/qemu-user-static-aarch64:latest`).
        image: String,
        /// Its layout in the cache.
        layout: PathBuf,
    },
    /// Push one tag to a registry (skopeo) and read its digest back.
    PushTag {
        /// `<registry>/<repository>:<tag>`.
        reference: String,
    },
    /// Compile a static `qus-register` for another CPU in its cross
    /// builder image (or find it cached).
    CrossCompile {
        /// The target CPU (`aarch64`).
        machine: String,
        /// The cached binary.
        binary: PathBuf,
    },
}

/// How an image step ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    /// Built and tagged.
    Built,
    /// An image with the same recipe existed under one of the tags; the
    /// missing tags were added to it.
    Retagged,
    /// Every tag already named an image with the same recipe.
    Unchanged,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The work was done.
    Done,
    /// Nothing had to be done.
    Skipped {
        /// Why (`recipe 1f2e… already built`, `cached`).
        reason: String,
    },
    /// The step failed; the error itself is returned by the entry point.
    Failed {
        /// The error's message, for the reporter's line.
        message: String,
    },
}

/// What a builder reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagesEvent {
    /// A step began.
    StepStarted {
        /// Which.
        step: Step,
    },
    /// A step ended.
    StepFinished {
        /// Which.
        step: Step,
        /// How.
        outcome: StepOutcome,
        /// Wall-clock time since its `StepStarted`.
        elapsed: Duration,
    },
}

/// Receives [`ImagesEvent`]s; called from several threads at once.
pub trait Progress: Sync {
    /// Handles one event.
    fn event(&self, event: &ImagesEvent);
}

impl<F: Fn(&ImagesEvent) + Sync> Progress for F {
    fn event(&self, event: &ImagesEvent) {
        self(event);
    }
}

/// A [`Progress`] that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &ImagesEvent) {}
}

/// Reports one step: `StepStarted` now, `StepFinished` with the elapsed
/// time when finished. Dropping it unfinished (a cancelled step) reports
/// nothing more.
pub(crate) struct StepTimer<'a> {
    progress: &'a dyn Progress,
    step: Option<Step>,
    started: std::time::Instant,
}

impl<'a> StepTimer<'a> {
    /// Reports `step` as started.
    pub(crate) fn start(progress: &'a dyn Progress, step: Step) -> Self {
        progress.event(&ImagesEvent::StepStarted { step: step.clone() });
        Self {
            progress,
            step: Some(step),
            started: std::time::Instant::now(),
        }
    }

    /// Reports the step as finished with `outcome`.
    pub(crate) fn finish(mut self, outcome: StepOutcome) {
        if let Some(step) = self.step.take() {
            self.progress.event(&ImagesEvent::StepFinished {
                step,
                outcome,
                elapsed: self.started.elapsed(),
            });
        }
    }

    /// Reports the step's `result`: `Done`, or `Failed` with the error's
    /// message; passes the result through.
    pub(crate) fn done<T, E: std::fmt::Display>(self, result: Result<T, E>) -> Result<T, E> {
        let outcome = match &result {
            Ok(_) => StepOutcome::Done,
            Err(err) => StepOutcome::Failed {
                message: err.to_string(),
            },
        };
        self.finish(outcome);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn timer_reports_start_then_finish() {
        let seen = Mutex::new(Vec::new());
        let progress = |event: &ImagesEvent| seen.lock().unwrap().push(event.clone());
        let timer = StepTimer::start(&progress, Step::HashInputs);
        let result: Result<(), String> = timer.done(Err("boom".into()));
        assert!(result.is_err());
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen[0],
            ImagesEvent::StepStarted {
                step: Step::HashInputs
            }
        );
        assert!(matches!(
            &seen[1],
            ImagesEvent::StepFinished {
                step: Step::HashInputs,
                outcome: StepOutcome::Failed { message },
                ..
            } if message == "boom"
        ));
    }

    #[test]
    fn dropped_timer_reports_no_finish() {
        let seen = Mutex::new(Vec::new());
        let progress = |event: &ImagesEvent| seen.lock().unwrap().push(event.clone());
        drop(StepTimer::start(&progress, Step::HashInputs));
        assert_eq!(seen.into_inner().unwrap().len(), 1);
    }
}
