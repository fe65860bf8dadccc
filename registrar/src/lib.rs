//! qus-registrar: registers QEMU user-mode handlers in binfmt_misc.
//!
//! This crate is the domain core of qus. Everything about binfmt_misc lives
//! here once, and the harness imports it rather than parsing the mount again:
//!
//! - [`targets`]: the QEMU target table as data, host families, aliases;
//! - [`entry`]: one entry, its register line and its readback;
//! - [`binfmt`]: the kernel interface over a mount point;
//! - [`registry`]: the registry as a trait, an in-memory model of the
//!   kernel and a fault-injecting wrapper for tests;
//! - [`plan`]: options + host + current entries → actions (pure);
//! - [`export`]: the `--systemd` and `--debian` writers;
//! - [`status`]: the `--status` table and JSON document;
//! - [`elf`]: ELF header inspection and the table's matcher;
//! - [`guard`]: detecting that the registrar itself runs under emulation;
//! - [`interpreter`]: which interpreter file a target uses;
//! - [`verify`]: embedded probes run through the registered handlers;
//! - [`platform`]: the OCI platforms this host runs, as buildkit lists them;
//! - [`compat`]: the tonistiigi/binfmt-compatible command (`binfmt`);
//! - [`private`]: `--private`, a registry of one's own in a user namespace;
//! - [`daemon`]: `--wait`, keeping the registration and a health file;
//! - [`cli`]: the `qus-register` command line.
#![warn(missing_docs)]

pub mod app;
mod apply;
pub mod binfmt;
pub mod cli;
pub mod compat;
pub mod daemon;
pub mod elf;
pub mod entry;
pub mod export;
pub mod guard;
pub mod interpreter;
pub mod plan;
pub mod platform;
pub mod private;
pub mod registry;
pub mod status;
pub mod targets;
pub mod verify;
