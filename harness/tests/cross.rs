//! `qus_harness::images::cross_registrar` against a real Docker Engine: the
//! aarch64 `qus-register` compiled in its Debian builder image (or taken
//! from the cache), checked as an ELF file and run under QEMU user mode.
//!
//! Compiled only with `--features docker`. The trials need Docker, root
//! (`debootstrap` of the builder's root filesystem on a cold cache),
//! `cargo` (to vendor the crates) and Debian's `qemu-aarch64-static`;
//! without them every trial reports *ignored* with the reason, and with
//! `QUS_REQUIRE_ENGINES=1` that is a failure instead. They use the shared
//! cache (`$QUS_CACHE_DIR`, `/var/cache/qus`) and the shared builder image
//! `qus-builders/rust-cross:testing-arm64`, both keyed by recipe and kept
//! for the next run; a binary compiled from a modified copy of the
//! workspace is removed by a guard. The emulated registrar runs with
//! `--dry-run` on a temporary mount point, except in the emulation guard's
//! trial: there it is asked for a real registration on the host's
//! binfmt_misc, which its guard must refuse; the trial compares the
//! registry with a snapshot taken before and puts the snapshot back
//! whatever happened. Trials run one at a time (one cargo target
//! directory).

#![cfg(feature = "docker")]

#[path = "common/gated.rs"]
mod gated;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use qus_harness::images::{
    CrossOptions, CrossTarget, ImagesEvent, Step, StepOutcome, cross_registrar, cross_registrars,
};
use qus_harness::runtime::DockerRuntime;
use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};
use qus_registrar::elf;
use qus_registrar::targets::{Class, Endian};

/// Debian's emulator that runs the aarch64 binary here.
const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// `e_machine` of AArch64 (`EM_AARCH64`).
const EM_AARCH64: u16 = 183;

/// The registrar's version, which `--version` must print.
const VERSION: &str = env!("CARGO_PKG_VERSION");

type Body = fn() -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    let tests: &[(&str, Body)] = &[
        (
            "aarch64_registrar_is_a_static_aarch64_executable",
            aarch64_registrar_is_a_static_aarch64_executable,
        ),
        (
            "aarch64_registrar_runs_under_qemu_and_plans_for_an_aarch64_host",
            aarch64_registrar_runs_under_qemu_and_plans_for_an_aarch64_host,
        ),
        (
            "the_emulated_registrar_refuses_the_real_hosts_family_and_changes_nothing",
            the_emulated_registrar_refuses_the_real_hosts_family_and_changes_nothing,
        ),
        (
            "a_second_request_is_a_cache_hit_without_an_engine_step",
            a_second_request_is_a_cache_hit_without_an_engine_step,
        ),
        (
            "a_changed_registrar_source_is_compiled_anew",
            a_changed_registrar_source_is_compiled_anew,
        ),
    ];
    let trials = tests
        .iter()
        .map(|&(name, body)| gated::trial(name, prerequisites, move |()| body()))
        .collect();
    // One cargo target directory and one builder: one trial at a time.
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials).exit();
}

/// `Ok` when the trials can run here, else why not (checked once).
fn prerequisites() -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if !rustix::process::geteuid().is_root() {
                return Err("needs root (debootstrap of the builder)".into());
            }
            for tool in ["cargo", "debootstrap", "tar"] {
                if which::which(tool).is_err() {
                    return Err(format!("`{tool}` is not installed"));
                }
            }
            if !Path::new(QEMU_AARCH64).is_file() {
                return Err(format!(
                    "`{QEMU_AARCH64}` is missing (Debian package qemu-user-static)"
                ));
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime starts")
                .block_on(DockerRuntime::connect())
                .map(drop)
                .map_err(|e| format!("docker is unavailable: {}", chain(&e)))
        })
        .clone()
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

/// Records events and prints every finished step with its time (the
/// timings the README quotes).
#[derive(Default)]
struct Recorder(Mutex<Vec<ImagesEvent>>);

impl Recorder {
    fn record(&self, event: &ImagesEvent) {
        if let ImagesEvent::StepFinished {
            step,
            outcome,
            elapsed,
        } = event
        {
            eprintln!("    {:>7.1}s {step:?} {outcome:?}", elapsed.as_secs_f64());
        }
        self.0.lock().unwrap().push(event.clone());
    }

    fn finished(&self) -> Vec<(Step, StepOutcome)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ImagesEvent::StepFinished { step, outcome, .. } => {
                    Some((step.clone(), outcome.clone()))
                }
                ImagesEvent::StepStarted { .. } => None,
            })
            .collect()
    }
}

/// The aarch64 registrar of this workspace, compiled once per process
/// (or taken from the cache).
fn aarch64() -> Result<PathBuf, Failed> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let recorder = Recorder::default();
            let progress = |e: &ImagesEvent| recorder.record(e);
            let began = Instant::now();
            let result = cross_registrar("aarch64", &CrossOptions::default(), &progress)
                .map_err(|e| chain(&e));
            eprintln!(
                "    aarch64 registrar ready in {:.1}s",
                began.elapsed().as_secs_f64()
            );
            result
        })
        .clone()
        .map_err(Failed::from)
}

fn run(program: &str, args: &[&str]) -> Result<Output, Failed> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("failed to run `{program}`: {e}").into())
}

fn aarch64_registrar_is_a_static_aarch64_executable() -> Result<(), Failed> {
    let binary = aarch64()?;
    check(
        binary.starts_with(CrossOptions::default().cache_dir.join("registrar")),
        format!("{} is not in the cache", binary.display()),
    )?;
    let header = elf::read_file(&binary).map_err(|e| chain(&e))?;
    check(header.class == Class::Elf64, format!("{header:?}"))?;
    check(header.endian == Endian::Little, format!("{header:?}"))?;
    check(header.machine == EM_AARCH64, format!("{header:?}"))?;
    check(header.is_static(), format!("dynamic: {header:?}"))?;
    let bytes = std::fs::read(&binary)?;
    let aarch64 = qus_registrar::targets::find("aarch64").unwrap();
    check(
        elf::matches(aarch64, &bytes),
        "aarch64's magic does not match",
    )?;
    let matching: Vec<&str> = elf::matching_targets(&bytes)
        .iter()
        .map(|t| t.name)
        .collect();
    check(matching == ["aarch64"], format!("matches {matching:?}"))?;
    // Release profile, stripped: about 1.2 MB; a debug build is 10 times that.
    check(
        bytes.len() < 3 * 1024 * 1024,
        format!("{} bytes", bytes.len()),
    )?;
    eprintln!("    aarch64 qus-register: {} bytes", bytes.len());
    Ok(())
}

fn aarch64_registrar_runs_under_qemu_and_plans_for_an_aarch64_host() -> Result<(), Failed> {
    let binary = aarch64()?;
    let binary = binary.to_str().unwrap();
    let version = run(QEMU_AARCH64, &[binary, "--version"])?;
    check(version.status.success(), format!("--version: {version:?}"))?;
    let stdout = String::from_utf8_lossy(&version.stdout);
    check(
        stdout == format!("qus-register {VERSION}\n"),
        format!("--version printed {stdout:?}"),
    )?;

    let mount = tempfile::tempdir()?;
    let plan = run(
        QEMU_AARCH64,
        &[
            binary,
            "--dry-run",
            "--reset",
            "-p",
            "yes",
            "--mount",
            mount.path().to_str().unwrap(),
        ],
    )?;
    let stdout = String::from_utf8_lossy(&plan.stdout);
    check(
        plan.status.success(),
        format!("--dry-run: {plan:?}\n{stdout}"),
    )?;
    // Under QEMU the registrar sees `uname -m` = aarch64: the aarch64
    // family is the host's own and is not registered; a CPU foreign to
    // both that host and this one is.
    let registers = |name: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with("register") && l.contains(&format!(":{name}:")))
    };
    check(registers("qemu-riscv64"), format!("no riscv64:\n{stdout}"))?;
    check(registers("qemu-s390x"), format!("no s390x:\n{stdout}"))?;
    for own in ["qemu-aarch64", "qemu-arm"] {
        check(!registers(own), format!("registers {own}:\n{stdout}"))?;
    }
    // The mount point was only read.
    check(
        std::fs::read_dir(mount.path())?.next().is_none(),
        "the dry run wrote to its mount point",
    )?;
    Ok(())
}

/// Puts the host's binfmt_misc entries back as they were, whatever the
/// trial did (the emulated registrar must not change them at all).
struct RestoreBinfmt {
    binfmt: Binfmt,
    snapshot: Snapshot,
}

impl Drop for RestoreBinfmt {
    fn drop(&mut self) {
        if let Err(e) = self.binfmt.restore(&self.snapshot) {
            eprintln!("failed to restore binfmt_misc: {}", chain(&e));
        }
    }
}

/// Issue 12's emulation guard, for real: the aarch64 registrar run by
/// Debian's `qemu-aarch64-static` on this x86_64 host sees `uname -m` =
/// `aarch64`, and would register `qemu-x86_64` and `qemu-i386` (capturing
/// every native binary of the host) but for the guard. Asked for a real
/// `--reset -p yes` on the host's binfmt_misc, it refuses, names both
/// architectures, exits 1 and changes nothing.
fn the_emulated_registrar_refuses_the_real_hosts_family_and_changes_nothing() -> Result<(), Failed>
{
    let host = std::env::consts::ARCH;
    check(
        host == "x86_64",
        format!("the trial is written for an x86_64 host, not `{host}`"),
    )?;
    let binary = aarch64()?;
    let binary = binary.to_str().unwrap();
    let binfmt = Binfmt::default();
    if binfmt.state() == MountState::NotMounted {
        binfmt.mount().map_err(|e| chain(&e))?;
    }
    let before = binfmt.snapshot().map_err(|e| chain(&e))?;
    let _restore = RestoreBinfmt {
        binfmt: binfmt.clone(),
        snapshot: before.clone(),
    };

    // The dry run shows the emulated host's plan and what a real run refuses.
    let dry = run(QEMU_AARCH64, &[binary, "--dry-run", "--reset", "-p", "yes"])?;
    let (out, err) = (
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr),
    );
    check(dry.status.success(), format!("dry run: {dry:?}"))?;
    for target in ["qemu-x86_64", "qemu-i386"] {
        check(
            err.contains(&format!("note: a real run refuses `{target}`")),
            format!("no note for {target}:\n{err}"),
        )?;
    }

    let real = run(QEMU_AARCH64, &[binary, "--reset", "-p", "yes"])?;
    let (out2, err2) = (
        String::from_utf8_lossy(&real.stdout),
        String::from_utf8_lossy(&real.stderr),
    );
    let after = binfmt.snapshot().map_err(|e| chain(&e))?;
    check(
        after == before,
        format!(
            "the registry changed under the emulated registrar:\nstdout: {out2}\nstderr: {err2}"
        ),
    )?;
    check(
        real.status.code() == Some(1),
        format!("exit status {:?}, expected 1:\n{err2}", real.status.code()),
    )?;
    check(
        err2.contains("error: refused `qemu-x86_64`")
            && err2.contains("an `aarch64` build on a `x86_64` host"),
        format!("the refusal does not name both architectures:\n{err2}"),
    )?;
    check(
        err2.contains("nothing was changed"),
        format!("no \"nothing was changed\":\n{err2}"),
    )?;
    eprintln!("    dry run: {} plan lines", out.lines().count());
    Ok(())
}

fn a_second_request_is_a_cache_hit_without_an_engine_step() -> Result<(), Failed> {
    let first = aarch64()?;
    let before = std::fs::metadata(&first)?.modified()?;
    let recorder = Recorder::default();
    let progress = |e: &ImagesEvent| recorder.record(e);
    let began = Instant::now();
    let target = CrossTarget::find("arm64").map_err(|e| chain(&e))?;
    let again = cross_registrars(&[target, target], &CrossOptions::default(), &progress)
        .map_err(|e| chain(&e))?;
    let took = began.elapsed();
    check(again.len() == 1, format!("{again:?}"))?;
    check(again[0].path == first, format!("{again:?} vs {first:?}"))?;
    check(!again[0].compiled, "compiled again")?;
    check(
        again[0].builder == "qus-builders/rust-cross:testing-arm64",
        &again[0].builder,
    )?;
    let steps = recorder.finished();
    check(
        matches!(
            steps.as_slice(),
            [(Step::CrossCompile { machine, .. }, StepOutcome::Skipped { reason })]
                if machine == "aarch64" && reason.ends_with("cached")
        ),
        format!("{steps:?}"),
    )?;
    check(
        std::fs::metadata(&first)?.modified()? == before,
        "the cached binary was rewritten",
    )?;
    check(took < Duration::from_secs(5), format!("took {took:?}"))?;
    eprintln!("    warm: {:.3}s", took.as_secs_f64());
    Ok(())
}

/// Removes a cache directory the trial made.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("failed to remove `{}`: {e}", self.0.display());
        }
    }
}

/// Copies the workspace's files (not `target/` or `.git/`).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

fn a_changed_registrar_source_is_compiled_anew() -> Result<(), Failed> {
    let original = aarch64()?;
    let copy = tempfile::tempdir()?;
    let workspace = copy.path().join("qus");
    copy_tree(&qus_harness::images::workspace_root(), &workspace)?;
    // A copy with the same content has the same recipe: the same binary.
    let options = CrossOptions {
        workspace: workspace.clone(),
        ..CrossOptions::default()
    };
    let same = cross_registrar("aarch64", &options, &qus_harness::images::NoProgress)
        .map_err(|e| chain(&e))?;
    check(same == original, format!("{same:?} vs {original:?}"))?;

    let lib = workspace.join("registrar/src/lib.rs");
    let mut text = std::fs::read_to_string(&lib)?;
    text.push_str("\n// A change the cross build must notice.\n");
    std::fs::write(&lib, text)?;
    let recorder = Recorder::default();
    let progress = |e: &ImagesEvent| recorder.record(e);
    let built = cross_registrars(
        &[CrossTarget::find("aarch64").map_err(|e| chain(&e))?],
        &options,
        &progress,
    )
    .map_err(|e| chain(&e))?;
    let new = built[0].path.clone();
    let _remove = RemoveDir(new.parent().unwrap().to_owned());
    check(new != original, "the recipe did not change")?;
    check(built[0].compiled, "not compiled")?;
    check(original.is_file(), "the original binary is gone")?;
    let steps = recorder.finished();
    let compiled = steps.iter().any(|(step, outcome)| {
        matches!(step, Step::CrossCompile { .. }) && *outcome == StepOutcome::Done
    });
    check(compiled, format!("{steps:?}"))?;
    // The builder image was already there.
    let image_built = steps
        .iter()
        .any(|(step, outcome)| matches!(step, Step::Image { .. }) && *outcome == StepOutcome::Done);
    check(!image_built, format!("{steps:?}"))?;
    let version = run(QEMU_AARCH64, &[new.to_str().unwrap(), "--version"])?;
    check(
        String::from_utf8_lossy(&version.stdout) == format!("qus-register {VERSION}\n"),
        format!("{version:?}"),
    )?;
    Ok(())
}
