//! [`ImageBuildError`]: why [`build`](super::build) or
//! [`fixtures`](super::fixtures) stopped.
//!
//! Every variant names the object concerned; causes are chained through
//! `#[source]`, never repeated in the message. [`ImageBuildError::is_environment`]
//! and [`ImageBuildError::is_usage`] let the CLI choose its exit code.

use std::path::PathBuf;
use std::time::Duration;

use qus_registrar::binfmt::BinfmtError;
use qus_registrar::elf::ElfError;

use super::suite::Suite;
use crate::runtime::RuntimeError;

/// Why building images or fixtures failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageBuildError {
    /// An option is invalid; nothing was done.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidOption {
        /// Which option (`repository name`, `architecture`).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A program this step needs is not installed.
    #[error("`{program}` is not installed: {hint}")]
    MissingTool {
        /// The program (`debootstrap`).
        program: String,
        /// How to get it (`install the Debian package \`debootstrap\``).
        hint: String,
    },

    /// An operation that needs root was asked of another user.
    #[error("{operation} needs root")]
    NotRoot {
        /// What needed it.
        operation: &'static str,
    },

    /// A program could not be started.
    #[error("failed to run `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The error of `exec`.
        #[source]
        source: std::io::Error,
    },

    /// A program ran and failed.
    #[error("`{command}` failed ({status}){}{}", last_line(.output), hint_suffix(.hint.as_deref()))]
    CommandFailed {
        /// The command line.
        command: String,
        /// `exit status 1`, `signal 9`.
        status: String,
        /// The end of its output (stderr, then stdout).
        output: String,
        /// What usually fixes it.
        hint: Option<String>,
    },

    /// A program ran past its time limit and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    CommandTimedOut {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },

    /// A local file operation failed.
    #[error("failed to {operation} `{}`", path.display())]
    Io {
        /// What was being done (`create directory`).
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The package is not one `build` can use.
    #[error("`{}` is not a usable QEMU package: {reason}", path.display())]
    InvalidDeb {
        /// The `.deb` file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// One of the package's emulators cannot go into an image.
    #[error("the emulator `{file}` of `{}` cannot go into an image: {reason}", deb.display())]
    UnusableEmulator {
        /// The `.deb` it came from.
        deb: PathBuf,
        /// Its path in the package (`usr/bin/qemu-aarch64`).
        file: String,
        /// Why (dynamically linked, another CPU, not ELF).
        reason: String,
    },

    /// No suite offers a package that `--qemu-version` (or a transitional
    /// package's version) selects.
    #[error("no Debian QEMU package matches {wanted}: {}", describe_offers(.offered))]
    NoPackage {
        /// What was asked for (`` `--qemu-version 11.2` ``).
        wanted: String,
        /// Each suite searched, with the usable packages it offers
        /// (`qemu-user 1:11.1.3+ds-1`), newest first.
        offered: Vec<(Suite, Vec<String>)>,
    },

    /// No image version can be derived from the package version.
    #[error("cannot derive an image version from QEMU version `{version}`: {reason}")]
    Version {
        /// The package version (`1:7.2+dfsg-7+deb12u18`).
        version: String,
        /// Why.
        reason: String,
    },

    /// The registrar binary cannot go into the images.
    #[error("the registrar `{}` cannot go into an image: {reason}", path.display())]
    UnusableRegistrar {
        /// The binary.
        path: PathBuf,
        /// Why (dynamically linked, another architecture).
        reason: String,
    },

    /// A binary could not be inspected.
    #[error("failed to inspect `{}`", path.display())]
    Elf {
        /// The binary.
        path: PathBuf,
        /// The inspection error.
        #[source]
        source: ElfError,
    },

    /// The probe table does not parse.
    #[error("invalid probe table `{}` line {line}: {reason}", path.display())]
    ProbeTable {
        /// `fixtures/probes/probes.tsv`.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// The container engine failed (unreachable, or a build it could not run).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),

    /// The engine refused an image operation.
    #[error("failed to {operation} `{object}`{}: {message}", .status.map(|s| format!(" (status {s})")).unwrap_or_default())]
    Engine {
        /// What was being done (`tag image`).
        operation: &'static str,
        /// The image or tag.
        object: String,
        /// The engine's HTTP status, when it sent one.
        status: Option<u16>,
        /// The engine's message.
        message: String,
    },

    /// The builder ran the Containerfile and it failed.
    #[error("failed to build image `{tag}`: {}", last_line(.output).trim_start_matches(": "))]
    BuildFailed {
        /// The image's primary tag.
        tag: String,
        /// The builder's whole output.
        output: String,
    },

    /// An OCI image layout does not hold what it should.
    #[error("invalid OCI image layout `{}`: {reason}", path.display())]
    InvalidLayout {
        /// The file (`index.json`, a blob).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// An image was built with another platform than its host's.
    #[error("image `{tag}` records the platform `{actual}`, not `{expected}`")]
    WrongPlatform {
        /// The image's primary tag.
        tag: String,
        /// The host's platform (`linux/arm64`).
        expected: String,
        /// What its config says.
        actual: String,
    },

    /// binfmt_misc could not be changed or restored.
    #[error("failed to {operation}")]
    Binfmt {
        /// What was being done.
        operation: String,
        /// The kernel interface's error.
        #[source]
        source: BinfmtError,
    },

    /// An interpreter needed for a foreign `debootstrap` is not usable.
    #[error("the interpreter `{}` for `{target}` {reason}: install the Debian package `qemu-user-static`", path.display())]
    Interpreter {
        /// The QEMU target (`aarch64`).
        target: String,
        /// `/usr/bin/qemu-aarch64-static`.
        path: PathBuf,
        /// `is missing`, `is dynamically linked`.
        reason: String,
    },

    /// Ctrl-C: the work was abandoned and cleaned up.
    #[error("cancelled")]
    Cancelled,
}

impl ImageBuildError {
    /// Whether the host lacks something (a tool, root, the engine,
    /// binfmt_misc), as opposed to a bad input or a failed build. The CLI
    /// exits 3 on these.
    pub fn is_environment(&self) -> bool {
        match self {
            ImageBuildError::MissingTool { .. }
            | ImageBuildError::NotRoot { .. }
            | ImageBuildError::Binfmt { .. }
            | ImageBuildError::Interpreter { .. } => true,
            ImageBuildError::Runtime(err) => matches!(err, RuntimeError::Unreachable { .. }),
            ImageBuildError::InvalidOption { .. }
            | ImageBuildError::Spawn { .. }
            | ImageBuildError::CommandFailed { .. }
            | ImageBuildError::CommandTimedOut { .. }
            | ImageBuildError::Io { .. }
            | ImageBuildError::InvalidDeb { .. }
            | ImageBuildError::UnusableEmulator { .. }
            | ImageBuildError::NoPackage { .. }
            | ImageBuildError::Version { .. }
            | ImageBuildError::UnusableRegistrar { .. }
            | ImageBuildError::Elf { .. }
            | ImageBuildError::ProbeTable { .. }
            | ImageBuildError::Engine { .. }
            | ImageBuildError::BuildFailed { .. }
            | ImageBuildError::WrongPlatform { .. }
            | ImageBuildError::InvalidLayout { .. }
            | ImageBuildError::Cancelled => false,
        }
    }

    /// Whether the options were wrong (exit 2): rejected before any work,
    /// or asking for a QEMU version no suite offers.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ImageBuildError::InvalidOption { .. } | ImageBuildError::NoPackage { .. }
        )
    }

    /// An [`ImageBuildError::Io`] for `path`.
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageBuildError::Io {
            operation,
            path,
            source,
        }
    }
}

/// `: <last non-empty line>` of `output`, or nothing.
fn last_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| format!(": {line}"))
        .unwrap_or_default()
}

/// `bookworm offers qemu-user-static 1:7.2+dfsg-7; sid offers none`.
fn describe_offers(offered: &[(Suite, Vec<String>)]) -> String {
    offered
        .iter()
        .map(|(suite, packages)| {
            if packages.is_empty() {
                format!("{suite} offers none")
            } else {
                format!("{suite} offers {}", packages.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|hint| format!(" (hint: {hint})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_failure_shows_the_last_line_and_the_hint() {
        let err = ImageBuildError::CommandFailed {
            command: "apt-get download qemu-user-static".into(),
            status: "exit status 100".into(),
            output: "W: something\nE: Unable to locate package qemu-user-static\n\n".into(),
            hint: Some("run `apt-get update` first".into()),
        };
        assert_eq!(
            err.to_string(),
            "`apt-get download qemu-user-static` failed (exit status 100): \
             E: Unable to locate package qemu-user-static (hint: run `apt-get update` first)"
        );
        assert!(!err.is_environment());
    }

    #[test]
    fn build_failure_shows_the_builder_error() {
        let err = ImageBuildError::BuildFailed {
            tag: "qus/x:latest".into(),
            output: "Step 1/2 : FROM scratch\nCOPY failed: no source files\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "failed to build image `qus/x:latest`: COPY failed: no source files"
        );
    }

    #[test]
    fn a_missing_version_names_what_each_suite_offers() {
        let err = ImageBuildError::NoPackage {
            wanted: "`--qemu-version 11.2`".into(),
            offered: vec![
                (
                    Suite::Bookworm,
                    vec!["qemu-user-static 1:7.2+dfsg-7".into()],
                ),
                (
                    Suite::Sid,
                    vec![
                        "qemu-user 1:11.1.3+ds-1".into(),
                        "qemu-user 1:11.1.2+ds-1".into(),
                    ],
                ),
                (Suite::Trixie, vec![]),
            ],
        };
        assert_eq!(
            err.to_string(),
            "no Debian QEMU package matches `--qemu-version 11.2`: bookworm offers \
             qemu-user-static 1:7.2+dfsg-7; sid offers qemu-user 1:11.1.3+ds-1, qemu-user \
             1:11.1.2+ds-1; trixie offers none"
        );
        assert!(err.is_usage());
        assert!(!err.is_environment());
    }

    #[test]
    fn missing_tool_names_the_package_and_is_environmental() {
        let err = ImageBuildError::MissingTool {
            program: "debootstrap".into(),
            hint: "install the Debian package `debootstrap`".into(),
        };
        assert_eq!(
            err.to_string(),
            "`debootstrap` is not installed: install the Debian package `debootstrap`"
        );
        assert!(err.is_environment());
        assert!(!err.is_usage());
    }
}
