//! The QEMU dimension of a run: which QEMUs `--qemu` names, and which QEMU
//! actually ran.
//!
//! `version.rs` checks the QEMU names of `--qemu` and matches them against
//! image versions with the images module's rules (pure); [`resolve`] turns the names of `--qemu 7.2,11.1` into image
//! versions of the registrar repository, building those missing;
//! [`HostQemuProbe`] asks the host's registered handlers which QEMU they
//! run. Scheduling the QEMUs one after another is the runner's
//! (`runner::run_matrix`); showing them is the reports'.

mod probe;
mod resolve;
mod version;

pub use probe::{HostQemuProbe, choose_targets, version_line};
pub use resolve::{ResolveError, ResolveOptions, match_tags, order, resolve};
pub use version::{QemuSelector, cmp_optional_versions, newest_match, ran_mismatch};
