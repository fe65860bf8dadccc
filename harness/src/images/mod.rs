//! Building the images qus ships and the fixtures its scenarios use.
//!
//! Four entry points, all blocking (each runs its own tokio runtime):
//!
//! - [`build`]: the registrar images from Debian's QEMU package
//!   (`qemu-user-static` up to QEMU 9.0, `qemu-user` from 9.1; from the
//!   host's APT, a file, or a Debian [`Suite`] through a private APT
//!   directory) and a static `qus-register` (`<repo>:latest`, `:<version>`,
//!   `:binfmt`, `:binfmt-<version>`, `:register`, and four tags per
//!   emulator), plus the release artifacts
//!   (`<from>_qemu-<to>-static.tar.gz`, and on x86_64 `qemu-<to>-static`
//!   and `qemu-<to>-static.tar.gz`; one `SHA256SUMS`), for this host or,
//!   with [`BuildOptions::host_arch`], another (`<repo>-<cpu>`, its
//!   platform, a cross-compiled registrar, Debian's package for its
//!   architecture);
//!   several QEMU versions live side by side in one repository, `latest`
//!   on the newest ([`qemu_version_matches`] and [`compare_image_versions`]
//!   let callers pick among them);
//! - [`fixtures`]: Debian root filesystems made with `debootstrap` and
//!   added `FROM scratch` for their platform as `qus-fixtures/<arch>:<suite>`
//!   (and `qus-fixtures/workload-<arch>:<suite>` with compilers, Python,
//!   Node.js and sudo), and one `FROM scratch` image per probe program
//!   (`qus-fixtures/probe:<target>`);
//! - [`cross_registrars`]: static `qus-register` binaries for other CPUs,
//!   compiled in Debian builder images (`qus-builders/rust-cross:<suite>-<arch>`)
//!   and cached by recipe, for the images of other hosts;
//! - [`index`]: every host's images pushed to a registry as one name, the
//!   tags several hosts have as OCI image indexes (with skopeo).
//!
//! [`cached_emulators`] fetches Debian's QEMU package the same way as
//! [`build`] and unpacks its emulators into the cache, for the host
//! runtime on hosts without interpreters of their own (async).
//!
//! All are idempotent: every image carries a recipe label (a hash of its
//! inputs) and is skipped when its tags already name an image with that
//! recipe; root filesystems and binaries are cached keyed by recipe. All
//! report [`ImagesEvent`]s to a [`Progress`] and never print. Nothing is
//! pulled: every image is `FROM scratch`. The Containerfiles
//! live in `images/` at the repository root and are compiled in.
//!
//! This module builds with Docker Engine, or with Podman through its
//! Docker-compatible API ([`ImageEngine`]); a run on another engine takes
//! Docker's images from there (Podman loads a `docker save`; Apptainer
//! unpacks an exported container into a sandbox). It does not run
//! scenarios.

mod apt;
mod artifacts;
mod build;
mod containerfile;
mod cross;
mod cross_builder;
mod cross_sources;
mod deb;
mod emulator;
mod engine;
mod error;
mod fetch;
mod fixtures;
mod handler;
mod host;
mod index;
mod labels;
mod listing;
mod mirror;
mod oci;
mod paths;
mod probes;
mod progress;
mod qemu_cache;
mod recipe;
mod registrar;
mod rootfs;
mod select;
mod session;
mod suite;
mod tags;
#[cfg(test)]
mod testdeb;
mod tool;
mod version;
mod workdir;

pub use apt::LIST_MAX_AGE;
pub use build::{BuildOptions, BuildReport, DEFAULT_REPO, build};
pub use cross::{
    CROSS_TARGETS, CrossOptions, CrossRegistrar, CrossTarget, cross_registrar, cross_registrars,
};
pub use cross_builder::{BUILDER_REPO, DEFAULT_CROSS_SUITE};
pub use deb::DebSource;
pub use engine::{BuiltImage, ImageEngine};
pub use error::ImageBuildError;
pub use fixtures::{
    DEFAULT_FIXTURE_REPO, DebianArch, FixtureOptions, FixturesReport, Flavor, RootfsReport,
    WORKLOAD_PACKAGES, fixtures,
};
pub use index::{IndexHost, IndexOptions, IndexReport, PushedTag, index};
pub use labels::{
    LABEL_CREATED, LABEL_DEBIAN_ARCH, LABEL_DESCRIPTION, LABEL_LICENSES, LABEL_QEMU_TARGET,
    LABEL_QEMU_VERSION, LABEL_RECIPE, LABEL_REGISTRAR_VERSION, LABEL_REVISION, LABEL_SOURCE,
    LABEL_TITLE, LABEL_UNAME, LABEL_VERSION,
};
pub use listing::{RepositoryTag, repository_tags};
pub use mirror::{DEFAULT_MIRROR, mirror_from_sources};
pub use paths::{CACHE_DIR_ENV, DEFAULT_CACHE_DIR, default_cache_dir, workspace_root};
pub use probes::{ProbeRow, read_probe_table};
pub use progress::{ImageStatus, ImagesEvent, NoProgress, Progress, Step, StepOutcome};
pub use qemu_cache::{CachedEmulators, cached_emulators};
pub use registrar::RegistrarSource;
pub use suite::{ParseSuiteError, Suite};
pub use tags::{binfmt_tags, latest_tags, register_tags, target_tags};
pub use version::{
    ImageVersion, QemuVersion, compare_image_versions, image_version, qemu_version_matches,
};
