//! `qus-harness compare BASE.json CANDIDATE.json`: the release gate's
//! verdict on two runs (or two QEMUs of one run).
//!
//! The pipeline: [`input`] reads each JSON report (schema version 2) and
//! keeps the QEMU asked for; [`known`] loads the known differences;
//! [`diff`] compares, by instance id: regressions, fixes, other changes,
//! new and removed instances, workload slowdowns over the threshold;
//! [`render`] writes the listing and the Markdown tables. [`load`] does the
//! reading for the command line. Nothing here prints or exits: the caller
//! decides where the text goes and turns [`Comparison::fails`] and
//! [`CompareError`] into exit statuses (1 and 2).

pub mod diff;
pub mod input;
pub mod known;
pub mod render;

use std::path::{Path, PathBuf};

pub use diff::{Change, Comparison, Presence, Slowdown, compare};
pub use input::{Side, SideInstance, SideQemu, read_side};
pub use known::{Known, KnownEntry, KnownLoadError};
pub use render::{listing, markdown};

use crate::report::SCHEMA_VERSION;
use crate::scenario::LoadError;

/// Why two reports could not be compared (all usage errors: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A report cannot be read.
    #[error("failed to read the report `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A report is not JSON, or not a qus report.
    #[error("`{}` is not a qus JSON report: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A report of another schema version.
    #[error(
        "`{}` is a report of schema version {found}; `compare` reads version {SCHEMA_VERSION} \
         (rerun the suite with this qus-harness)",
        path.display()
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// Its `schema_version`, as written.
        found: String,
    },
    /// A report of several QEMUs, and none named.
    #[error("`{}` holds several QEMUs ({present}); pick one with `{flag}`", path.display())]
    NeedQemu {
        /// The file.
        path: PathBuf,
        /// The option that names one.
        flag: &'static str,
        /// The QEMUs it holds.
        present: String,
    },
    /// The QEMU named is not in the report.
    #[error("`{}` holds no QEMU `{wanted}` (`{flag}`); it holds {present}", path.display())]
    UnknownQemu {
        /// The file.
        path: PathBuf,
        /// The option.
        flag: &'static str,
        /// The name given.
        wanted: String,
        /// The QEMUs it holds.
        present: String,
    },
    /// The QEMU named matches several of the report's.
    #[error(
        "`{wanted}` (`{flag}`) names more than one QEMU of `{}` ({present}); give an image version",
        path.display()
    )]
    AmbiguousQemu {
        /// The file.
        path: PathBuf,
        /// The option.
        flag: &'static str,
        /// The name given.
        wanted: String,
        /// The QEMUs it holds.
        present: String,
    },
    /// The known-differences file cannot be read.
    #[error("failed to read the known differences `{}`", path.display())]
    ReadKnown {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The known-differences file does not load.
    #[error("{} error(s) in the known differences `{}`", errors.len(), path.display())]
    Known {
        /// The file.
        path: PathBuf,
        /// Every mistake, each at its `file:line:col`.
        errors: Vec<LoadError>,
    },
}

/// What `compare` reads.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The reference report.
    pub base: PathBuf,
    /// The report under judgement.
    pub candidate: PathBuf,
    /// The QEMU of `base`, when it holds several.
    pub base_qemu: Option<String>,
    /// The QEMU of `candidate`, when it holds several.
    pub candidate_qemu: Option<String>,
    /// The known differences, if any.
    pub known: Option<PathBuf>,
    /// The slowdown growth above which a workload regressed (`0.25`).
    pub threshold: f64,
}

/// Reads both reports and the known differences, and compares.
///
/// # Errors
///
/// [`CompareError`], for the first input that cannot be used.
pub fn load(options: &CompareOptions) -> Result<Comparison, CompareError> {
    let base = read_side(&options.base, options.base_qemu.as_deref(), "--base-qemu")?;
    let candidate = read_side(
        &options.candidate,
        options.candidate_qemu.as_deref(),
        "--candidate-qemu",
    )?;
    let known = match &options.known {
        Some(path) => load_known(path)?,
        None => Known::default(),
    };
    Ok(compare(base, candidate, options.threshold, &known))
}

fn load_known(path: &Path) -> Result<Known, CompareError> {
    Known::load(path).map_err(|e| match e {
        KnownLoadError::Read(source) => CompareError::ReadKnown {
            path: path.to_owned(),
            source,
        },
        KnownLoadError::Invalid(errors) => CompareError::Known {
            path: path.to_owned(),
            errors,
        },
    })
}
