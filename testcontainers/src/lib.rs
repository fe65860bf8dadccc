//! qus-testcontainers: foreign-architecture containers in `cargo test`, with
//! [testcontainers-rs](https://docs.rs/testcontainers).
//!
//! Two things a test needs to run, say, an arm64 container on an x86_64
//! machine:
//!
//! - [`Registration`]: QEMU's handlers registered in the host's binfmt_misc
//!   by the qus registrar image ([`QusRegistrar`], a
//!   [`testcontainers::Image`]), and removed again when the registration is
//!   dropped: only the entries it registered, never ones that were there
//!   before;
//! - [`run_foreign`]: one command in a foreign-architecture image, its exit
//!   code and output. The image must be in the local engine: it is looked
//!   up first, and a missing one is an error saying how to get it, where
//!   testcontainers would try (and, without a registry, fail) to pull it.
//!
//! ```no_run
//! use qus_testcontainers::{Registration, run_foreign};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let _qemu = Registration::start(&["linux/arm64"]).await?;
//! let out = run_foreign("arm64v8/ubuntu:24.04", "linux/arm64", ["uname", "-m"]).await?;
//! assert_eq!(out.stdout, "aarch64\n");
//! # Ok(())
//! # }
//! ```
//!
//! Registering writes the host kernel's registry, which every container and
//! process on the host shares: it needs a Docker engine that grants
//! `--privileged` (where the host's capability bounding set is incomplete,
//! every capability it has is granted instead, as qus-harness does), on a
//! host whose binfmt_misc the engine's containers see (a rootful engine).
//! Registrations made by one process are counted, so parallel tests of one
//! binary can register the same platform; separate processes registering at
//! once (two `cargo test` binaries) must be serialised by the caller.
//!
//! This crate does not build images; `qus-harness images build` builds the
//! registrar images and `qus-harness images fixtures` foreign Debian images.
#![warn(missing_docs)]

mod container;
mod error;
mod foreign;
mod registrar;

pub use error::{BoxError, ContainerError, RegisterError, RunForeignError};
pub use foreign::{ForeignOutput, run_foreign, run_foreign_with_timeout};
pub use registrar::{DEFAULT_NAME, DEFAULT_TAG, QusRegistrar, Registration};
