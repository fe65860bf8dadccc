//! qus-harness: runs qus conformance scenarios against container engines.
//!
//! The pipeline: [`scenario`] loads and validates YAML files and expands
//! them into instances; [`plan`] selects them and decides skips; [`runner`]
//! executes them on a [`runtime`] (Docker, Podman, Apptainer or the host)
//! with the host's binfmt_misc state guarded by [`host`]; [`report`] turns
//! the events into console output, JUnit and JSON. [`images`] builds the
//! images qus ships and the fixtures scenarios use, and [`prepare`] builds
//! those a run lacks; [`qemu`] resolves the QEMUs of a `--qemu` matrix and
//! tells which one ran; [`compare`] is the release gate's verdict on two
//! reports; [`doctor`] checks a machine. [`sandbox`] gives the host
//! runtime private binfmt_misc namespaces and registrar images without an
//! engine.
#![warn(missing_docs)]

pub mod app;
pub mod capability;
pub mod cli;
pub mod compare;
pub mod doctor;
pub mod fallback;
pub mod host;
pub mod images;
pub mod plan;
pub mod prepare;
pub mod qemu;
pub mod report;
pub mod runner;
pub mod runtime;
pub mod sandbox;
pub mod scenario;
