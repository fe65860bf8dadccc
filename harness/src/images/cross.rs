//! [`cross_registrars`]: static `qus-register` binaries for other CPUs
//! (aarch64, ppc64le, riscv64, s390x), compiled on this host without
//! rustup targets, cached by recipe.
//!
//! Each target has a builder image holding Debian's own Rust toolchain,
//! the target's prebuilt standard library and its cross gcc
//! (`cross_builder.rs`). The registrar is compiled in a container of that
//! image, with no network: the workspace mounted read-only, the crates of
//! `Cargo.lock` vendored from the host's cargo registry, `--locked`, glibc
//! linked statically (`-C target-feature=+crt-static -C
//! linker=<triple>-gcc`), into a target directory kept in the cache so that
//! a source change recompiles only the registrar (`cross_sources.rs`).
//!
//! A binary is cached at `<cache>/registrar/<cpu>-<recipe>/qus-register`;
//! the recipe hashes the builder's recipe, the target, the cargo command
//! and the registrar's sources, so the binary is rebuilt exactly when one
//! of them changes. Cached or new, every binary is checked with
//! `qus_registrar::elf`: static, and for the target's CPU. Nothing here
//! runs the binaries or builds the images that will hold them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qus_registrar::binfmt::HostFacts;
use qus_registrar::targets;

use super::cross_builder::{BuilderPlan, DEFAULT_CROSS_SUITE, ensure_builder};
use super::cross_sources::{
    CargoBuild, SRC_MOUNT, TARGET_MOUNT, VENDOR_MOUNT, built_binary, sources_recipe, vendor,
};
use super::engine::{Engine, ImageEngine};
use super::error::ImageBuildError;
use super::mirror::{DEFAULT_MIRROR, mirror_from_sources};
use super::paths::{default_cache_dir, workspace_root};
use super::progress::{Progress, Step, StepOutcome, StepTimer};
use super::recipe::Recipe;
use super::registrar::check_static;
use super::rootfs::DebianArch;
use super::session;
use super::tags::validate_tag;
use super::tool::last_lines;
use super::workdir::WorkDir;
use crate::runtime::RunSpec;

/// Part of every cross binary's recipe: bump it when the way a binary is
/// made changes outside the builder and the cargo command.
const CROSS_VERSION: &str = "1";

/// Bound on one cross build (a cold release build with LTO takes about
/// two minutes on two busy cores).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(1800);

/// How many lines of a failed build's output an error keeps.
const OUTPUT_TAIL_LINES: usize = 30;

/// The binary's name in its cache directory.
const BINARY: &str = "qus-register";

/// A CPU the registrar can be cross-compiled for, and the names each tool
/// gives it.
#[derive(Debug, PartialEq, Eq)]
pub struct CrossTarget {
    /// QEMU's name, also `uname -m` (`aarch64`).
    pub machine: &'static str,
    /// Debian's name (`arm64`).
    pub debian_arch: &'static str,
    /// The GNU triple of Debian's cross gcc (`aarch64-linux-gnu`).
    pub gnu_triple: &'static str,
    /// Rust's target (`aarch64-unknown-linux-gnu`).
    pub rust_target: &'static str,
}

/// Every target, sorted by machine. Debian testing ships a cross gcc and
/// `libstd-rust-dev` for each.
pub const CROSS_TARGETS: [CrossTarget; 4] = [
    CrossTarget {
        machine: "aarch64",
        debian_arch: "arm64",
        gnu_triple: "aarch64-linux-gnu",
        rust_target: "aarch64-unknown-linux-gnu",
    },
    CrossTarget {
        machine: "ppc64le",
        debian_arch: "ppc64el",
        gnu_triple: "powerpc64le-linux-gnu",
        rust_target: "powerpc64le-unknown-linux-gnu",
    },
    CrossTarget {
        machine: "riscv64",
        debian_arch: "riscv64",
        gnu_triple: "riscv64-linux-gnu",
        rust_target: "riscv64gc-unknown-linux-gnu",
    },
    CrossTarget {
        machine: "s390x",
        debian_arch: "s390x",
        gnu_triple: "s390x-linux-gnu",
        rust_target: "s390x-unknown-linux-gnu",
    },
];

impl CrossTarget {
    /// The target a CPU name designates: a QEMU name or any alias
    /// `qus_registrar::targets` knows (`arm64`, `ppc64el`, `linux/arm64`),
    /// ignoring case.
    ///
    /// # Errors
    ///
    /// [`ImageBuildError::InvalidOption`] naming the supported CPUs.
    pub fn find(name: &str) -> Result<&'static CrossTarget, ImageBuildError> {
        let machine = targets::find(name).map_or("", |t| t.name);
        CROSS_TARGETS
            .iter()
            .find(|t| t.machine == machine)
            .ok_or_else(|| ImageBuildError::InvalidOption {
                what: "cross-compilation target",
                value: name.to_owned(),
                reason: format!(
                    "expected one of {}",
                    CROSS_TARGETS.map(|t| t.machine).join(", ")
                ),
            })
    }
}

/// How to cross-compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossOptions {
    /// The workspace compiled (the one this harness was built from).
    pub workspace: PathBuf,
    /// Cache of builder root filesystems, binaries and the cargo target
    /// directory: `$QUS_CACHE_DIR` or `/var/cache/qus` by default.
    pub cache_dir: PathBuf,
    /// Debian suite of the builder images ([`DEFAULT_CROSS_SUITE`]).
    pub suite: String,
    /// Debian mirror; `None` takes the host's APT source for the suite, or
    /// [`DEFAULT_MIRROR`].
    pub mirror: Option<String>,
    /// Compile again even when the cache holds a binary with the recipe
    /// (the builder images are reused all the same).
    pub force: bool,
    /// The engine that builds the builders and runs the compiler.
    pub engine: ImageEngine,
    /// Whether Ctrl-C cancels (then cleans up); for CLIs only.
    pub handle_ctrl_c: bool,
}

impl Default for CrossOptions {
    fn default() -> Self {
        Self {
            workspace: workspace_root(),
            cache_dir: default_cache_dir(),
            suite: DEFAULT_CROSS_SUITE.to_owned(),
            mirror: None,
            force: false,
            engine: ImageEngine::default(),
            handle_ctrl_c: false,
        }
    }
}

/// One cross-compiled registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossRegistrar {
    /// Its CPU (`aarch64`).
    pub machine: String,
    /// The checked binary in the cache.
    pub path: PathBuf,
    /// Its recipe (part of the path).
    pub recipe: String,
    /// The builder image that compiles it.
    pub builder: String,
    /// Whether it was compiled now (else it came from the cache).
    pub compiled: bool,
    /// Its size in bytes.
    pub size: u64,
}

/// The static registrar for `machine` (`aarch64`, or an alias such as
/// `arm64`): its path in the cache, compiled first when the cache has none
/// for the current sources. A shorthand for [`cross_registrars`].
///
/// Blocking. A cache hit needs no engine; a build needs Docker (or Podman)
/// and, the first time, root for `debootstrap` and network access to
/// Debian's archive (from containers) and crates.io (from the host).
///
/// ```no_run
/// use qus_harness::images::{CrossOptions, NoProgress, cross_registrar};
///
/// let binary = cross_registrar("aarch64", &CrossOptions::default(), &NoProgress)?;
/// // Run it with `qemu-aarch64-static <binary> --version`.
/// # Ok::<(), qus_harness::images::ImageBuildError>(())
/// ```
///
/// # Errors
///
/// As [`cross_registrars`].
pub fn cross_registrar(
    machine: &str,
    options: &CrossOptions,
    progress: &dyn Progress,
) -> Result<PathBuf, ImageBuildError> {
    let target = CrossTarget::find(machine)?;
    let mut built = cross_registrars(&[target], options, progress)?;
    Ok(built.remove(0).path)
}

/// The static registrars for `targets`, in that order (duplicates
/// dropped): from the cache when it holds a binary with the recipe, else
/// compiled in the target's builder image (built first when missing).
///
/// Blocking: it runs its own tokio runtime; call it from synchronous code.
///
/// # Errors
///
/// An invalid option (before any work), a missing tool (`cargo`,
/// `debootstrap`), not root when a builder's root filesystem must be made,
/// an engine failure, a failed builder image or compilation (with the end
/// of its output), a binary that is not static or not for its CPU. Work
/// directories and scratch tags are removed whatever fails.
pub fn cross_registrars(
    targets: &[&'static CrossTarget],
    options: &CrossOptions,
    progress: &dyn Progress,
) -> Result<Vec<CrossRegistrar>, ImageBuildError> {
    validate(options)?;
    let mirror = options
        .mirror
        .clone()
        .or_else(|| mirror_from_sources(Path::new("/"), &options.suite))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned());
    let host = host_debian_arch(&HostFacts::read(None).machine)?;
    let sources = sources_recipe(&options.workspace)?;
    let mut plans: Vec<CrossPlan> = Vec::new();
    for &target in targets {
        if plans
            .iter()
            .all(|p| !std::ptr::eq(p.builder.target, target))
        {
            let builder =
                BuilderPlan::new(target, host, &options.suite, &mirror, &options.cache_dir);
            plans.push(CrossPlan::new(builder, &sources, &options.cache_dir));
        }
    }

    // Cache hits need no engine: a machine without one can still use them.
    let mut done: Vec<Option<CrossRegistrar>> = Vec::with_capacity(plans.len());
    for plan in &plans {
        done.push(if options.force {
            None
        } else {
            from_cache(plan, progress)?
        });
    }
    if done.iter().all(Option::is_some) {
        return Ok(done.into_iter().flatten().collect());
    }
    session::run(
        &options.engine,
        options.handle_ctrl_c,
        |engine| async move {
            let mut vendored: Option<WorkDir> = None;
            let mut results = Vec::with_capacity(plans.len());
            for (plan, cached) in plans.iter().zip(done) {
                let result = match cached {
                    Some(hit) => hit,
                    None => compile(&engine, plan, options, &mut vendored, progress).await?,
                };
                results.push(result);
            }
            Ok(results)
        },
    )
}

fn validate(options: &CrossOptions) -> Result<(), ImageBuildError> {
    validate_tag(&options.suite).map_err(|reason| ImageBuildError::InvalidOption {
        what: "suite",
        value: options.suite.clone(),
        reason,
    })?;
    if let Some(mirror) = &options.mirror {
        let usable = ["http://", "https://", "ftp://", "file:"]
            .iter()
            .any(|s| mirror.starts_with(s));
        if !usable {
            return Err(ImageBuildError::InvalidOption {
                what: "mirror",
                value: mirror.clone(),
                reason: "expected an http(s)://, ftp:// or file: URL".into(),
            });
        }
    }
    Ok(())
}

/// The Debian architecture of this host's builder root filesystems.
fn host_debian_arch(machine: &str) -> Result<DebianArch, ImageBuildError> {
    let target = targets::find(machine).map_or("", |t| t.name);
    DebianArch::ALL
        .into_iter()
        .find(|a| a.qemu_target().name == target)
        .ok_or_else(|| ImageBuildError::InvalidOption {
            what: "host architecture",
            value: machine.to_owned(),
            reason: "no Debian architecture runs natively on it".to_owned(),
        })
}

/// One target's builder, recipe and cache place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrossPlan {
    builder: BuilderPlan,
    cargo: CargoBuild,
    recipe: String,
    /// `<cache>/registrar/<cpu>-<recipe>/qus-register`.
    binary: PathBuf,
    /// `<cache>/registrar/target`, shared by every target.
    target_dir: PathBuf,
}

impl CrossPlan {
    fn new(builder: BuilderPlan, sources: &str, cache_dir: &Path) -> Self {
        let target = builder.target;
        let cargo = CargoBuild::new(target);
        let recipe = Recipe::new("qus-registrar/cross")
            .field("version", CROSS_VERSION)
            .field("builder", &builder.recipe)
            .field("machine", target.machine)
            .field("cargo", cargo.display())
            .field("sources", sources)
            .finish();
        let dir = cache_dir.join("registrar");
        Self {
            binary: dir
                .join(format!("{}-{recipe}", target.machine))
                .join(BINARY),
            target_dir: dir.join("target"),
            builder,
            cargo,
            recipe,
        }
    }

    fn report(&self, compiled: bool, size: u64) -> CrossRegistrar {
        CrossRegistrar {
            machine: self.builder.target.machine.to_owned(),
            path: self.binary.clone(),
            recipe: self.recipe.clone(),
            builder: self.builder.tag.clone(),
            compiled,
            size,
        }
    }

    fn step(&self) -> Step {
        Step::CrossCompile {
            machine: self.builder.target.machine.to_owned(),
            binary: self.binary.clone(),
        }
    }
}

/// The cached binary of `plan`, checked, or `None` when there is none.
fn from_cache(
    plan: &CrossPlan,
    progress: &dyn Progress,
) -> Result<Option<CrossRegistrar>, ImageBuildError> {
    if !plan.binary.is_file() {
        return Ok(None);
    }
    let timer = StepTimer::start(progress, plan.step());
    let checked = check(&plan.binary, plan.builder.target);
    match checked {
        Ok(size) => {
            timer.finish(StepOutcome::Skipped {
                reason: format!("recipe {} cached", plan.recipe),
            });
            Ok(Some(plan.report(false, size)))
        }
        Err(err) => {
            timer.finish(StepOutcome::Failed {
                message: err.to_string(),
            });
            Err(err)
        }
    }
}

/// Checks a binary for `target`'s CPU; returns its size.
fn check(path: &Path, target: &CrossTarget) -> Result<u64, ImageBuildError> {
    let bytes = check_static(path, target.machine, "the target CPU")?;
    Ok(bytes.len() as u64)
}

/// Builds the builder if needed, vendors the crates once per call,
/// compiles, checks, and moves the binary into the cache.
async fn compile(
    engine: &Engine,
    plan: &CrossPlan,
    options: &CrossOptions,
    vendored: &mut Option<WorkDir>,
    progress: &dyn Progress,
) -> Result<CrossRegistrar, ImageBuildError> {
    ensure_builder(engine, &plan.builder, progress).await?;
    let registrar_dir = options.cache_dir.join("registrar");
    if vendored.is_none() {
        let timer = StepTimer::start(
            progress,
            Step::VendorCrates {
                workspace: options.workspace.clone(),
            },
        );
        let work = WorkDir::create(&registrar_dir, ".vendor")?;
        timer.done(vendor(&options.workspace, work.path()).await)?;
        *vendored = Some(work);
    }
    let vendor_dir = vendored
        .as_ref()
        .expect("the crates were vendored just above")
        .path()
        .to_owned();

    let timer = StepTimer::start(progress, plan.step());
    let result = compile_checked(engine, plan, options, &vendor_dir).await;
    timer.done(result)
}

async fn compile_checked(
    engine: &Engine,
    plan: &CrossPlan,
    options: &CrossOptions,
    vendor_dir: &Path,
) -> Result<CrossRegistrar, ImageBuildError> {
    std::fs::create_dir_all(&plan.target_dir)
        .map_err(ImageBuildError::io("create directory", &plan.target_dir))?;
    let spec = run_spec(plan, &options.workspace, vendor_dir);
    let outcome = engine.run(&spec).await?;
    let command = format!("{} (in `{}`)", plan.cargo.display(), plan.builder.tag);
    if outcome.timed_out {
        return Err(ImageBuildError::CommandTimedOut {
            command,
            timeout: COMPILE_TIMEOUT,
        });
    }
    if !outcome.is_success() {
        let output = if outcome.stderr.trim().is_empty() {
            &outcome.stdout
        } else {
            &outcome.stderr
        };
        return Err(ImageBuildError::CommandFailed {
            command,
            status: format!("exit status {}", outcome.exit_code),
            output: last_lines(output, OUTPUT_TAIL_LINES),
            hint: None,
        });
    }

    // Into a work directory first, checked, then renamed into place: the
    // cache never shows a partial or unchecked binary.
    let built = built_binary(&plan.target_dir, plan.builder.target);
    let final_dir = plan
        .binary
        .parent()
        .expect("a cached binary has a directory");
    let cache = final_dir
        .parent()
        .expect("a binary's directory is in the cache");
    let work = WorkDir::create(cache, &format!(".work-{}", plan.builder.target.machine))?;
    let staged = work.path().join(BINARY);
    std::fs::copy(&built, &staged).map_err(ImageBuildError::io("copy", &built))?;
    let size = check(&staged, plan.builder.target)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(final_dir).map_err(ImageBuildError::io("remove", final_dir))?;
    }
    std::fs::rename(work.path(), final_dir)
        .map_err(ImageBuildError::io("move into the cache", final_dir))?;
    Ok(plan.report(true, size))
}

/// The container that compiles: the builder image, the workspace and the
/// vendored crates read-only, the shared target directory writable, no
/// network, this process's user and group (so the cache stays theirs).
fn run_spec(plan: &CrossPlan, workspace: &Path, vendor_dir: &Path) -> RunSpec {
    let user = format!(
        "{}:{}",
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw()
    );
    let mut spec = RunSpec::new(plan.builder.tag.clone(), plan.cargo.command.clone())
        .with_mount(workspace, SRC_MOUNT, true)
        .with_mount(vendor_dir, VENDOR_MOUNT, true)
        .with_mount(&plan.target_dir, TARGET_MOUNT, false)
        .with_network("none")
        .with_user(user)
        .with_timeout(COMPILE_TIMEOUT);
    for (key, value) in &plan.cargo.env {
        spec = spec.with_env(key, value);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(machine: &str, sources: &str) -> CrossPlan {
        let builder = BuilderPlan::new(
            CrossTarget::find(machine).unwrap(),
            DebianArch::Amd64,
            "testing",
            DEFAULT_MIRROR,
            Path::new("/c"),
        );
        CrossPlan::new(builder, sources, Path::new("/c"))
    }

    #[test]
    fn the_table_is_sorted_and_agrees_with_the_registrar() {
        let machines: Vec<&str> = CROSS_TARGETS.iter().map(|t| t.machine).collect();
        let mut sorted = machines.clone();
        sorted.sort_unstable();
        assert_eq!(machines, sorted);
        for target in &CROSS_TARGETS {
            // A QEMU target of its own, so the ELF check knows its machine.
            assert_eq!(targets::find(target.machine).unwrap().name, target.machine);
            // Debian's architecture name is an alias of it.
            assert_eq!(
                targets::find(target.debian_arch).unwrap().name,
                target.machine
            );
            let cpu = target.rust_target.split('-').next().unwrap();
            assert!(
                target.gnu_triple.starts_with(cpu.trim_end_matches("gc")),
                "{target:?}"
            );
            assert!(target.rust_target.ends_with("-unknown-linux-gnu"));
        }
    }

    #[test]
    fn targets_are_found_by_name_or_alias() {
        assert_eq!(CrossTarget::find("aarch64").unwrap().debian_arch, "arm64");
        assert_eq!(CrossTarget::find("ARM64").unwrap().machine, "aarch64");
        assert_eq!(CrossTarget::find("ppc64el").unwrap().machine, "ppc64le");
        assert_eq!(CrossTarget::find("linux/s390x").unwrap().machine, "s390x");
        for bad in ["x86_64", "mips", "nonsense", ""] {
            let err = CrossTarget::find(bad).unwrap_err();
            assert!(err.is_usage(), "{err}");
            assert!(
                err.to_string()
                    .ends_with("expected one of aarch64, ppc64le, riscv64, s390x"),
                "{err}"
            );
        }
    }

    #[test]
    fn options_are_checked_before_any_work() {
        assert!(validate(&CrossOptions::default()).is_ok());
        for bad in [
            CrossOptions {
                suite: "test ing".into(),
                ..CrossOptions::default()
            },
            CrossOptions {
                mirror: Some("deb.debian.org".into()),
                ..CrossOptions::default()
            },
        ] {
            assert!(validate(&bad).unwrap_err().is_usage());
        }
    }

    #[test]
    fn the_host_builds_with_its_own_debian_architecture() {
        assert_eq!(host_debian_arch("x86_64").unwrap(), DebianArch::Amd64);
        assert_eq!(host_debian_arch("aarch64").unwrap(), DebianArch::Arm64);
        assert!(host_debian_arch("riscv64").unwrap_err().is_usage());
    }

    #[test]
    fn binaries_are_cached_by_cpu_and_recipe() {
        let aarch64 = plan("aarch64", "s1");
        assert_eq!(
            aarch64.binary,
            PathBuf::from(format!(
                "/c/registrar/aarch64-{}/qus-register",
                aarch64.recipe
            ))
        );
        assert_eq!(aarch64.target_dir, PathBuf::from("/c/registrar/target"));
        assert_eq!(aarch64.recipe, plan("aarch64", "s1").recipe);
        // The sources, the target and the builder each change the recipe.
        assert_ne!(aarch64.recipe, plan("aarch64", "s2").recipe);
        assert_ne!(aarch64.recipe, plan("s390x", "s1").recipe);
        let sid = BuilderPlan::new(
            aarch64.builder.target,
            DebianArch::Amd64,
            "sid",
            DEFAULT_MIRROR,
            Path::new("/c"),
        );
        assert_ne!(
            aarch64.recipe,
            CrossPlan::new(sid, "s1", Path::new("/c")).recipe
        );
    }

    #[test]
    fn the_compiler_runs_offline_on_read_only_sources() {
        let plan = plan("riscv64", "s");
        let spec = run_spec(&plan, Path::new("/w"), Path::new("/v"));
        assert_eq!(spec.image, "qus-builders/rust-cross:testing-riscv64");
        assert_eq!(spec.command, plan.cargo.command);
        assert_eq!(
            spec.binds,
            ["/w:/src:ro", "/v:/vendor:ro", "/c/registrar/target:/target"]
        );
        assert_eq!(spec.network.as_deref(), Some("none"));
        assert!(!spec.privileged);
        let me = rustix::process::geteuid().as_raw();
        assert!(spec.user.as_deref().unwrap().starts_with(&format!("{me}:")));
        assert_eq!(spec.env, plan.cargo.env);
        assert_eq!(spec.timeout, COMPILE_TIMEOUT);
    }

    #[test]
    fn images_build_refuses_a_cross_registrar_for_another_host_before_any_work() {
        // An engine that cannot answer: the refusal must come first.
        let options = crate::images::BuildOptions {
            registrar: crate::images::RegistrarSource::Cross {
                machine: "s390x".into(),
            },
            host_arch: Some("arm64".into()),
            engine: ImageEngine::Docker(Some("unix:///nonexistent/qus.sock".into())),
            ..crate::images::BuildOptions::default()
        };
        let err = crate::images::build(&options, &super::super::NoProgress).unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert_eq!(
            err.to_string(),
            "invalid registrar source `cross:s390x`: the images are for `aarch64`"
        );
    }

    #[test]
    fn a_cached_binary_for_another_cpu_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let builder = BuilderPlan::new(
            CrossTarget::find("aarch64").unwrap(),
            DebianArch::Amd64,
            "testing",
            DEFAULT_MIRROR,
            dir.path(),
        );
        let plan = CrossPlan::new(builder, "s", dir.path());
        assert_eq!(from_cache(&plan, &super::super::NoProgress).unwrap(), None);
        // A static x86-64 executable (an ELF header with no program
        // header, so no `PT_INTERP`) is no aarch64 registrar.
        let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        header.resize(16, 0);
        header.extend(2u16.to_le_bytes()); // ET_EXEC
        header.extend(62u16.to_le_bytes()); // EM_X86_64
        header.extend(1u32.to_le_bytes());
        header.extend(0x40_0000u64.to_le_bytes());
        header.extend(64u64.to_le_bytes());
        header.extend(0u64.to_le_bytes());
        header.extend(0u32.to_le_bytes());
        for half in [64u16, 56, 0, 64, 0, 0] {
            header.extend(half.to_le_bytes());
        }
        std::fs::create_dir_all(plan.binary.parent().unwrap()).unwrap();
        std::fs::write(&plan.binary, header).unwrap();
        let err = from_cache(&plan, &super::super::NoProgress).unwrap_err();
        assert!(
            matches!(&err, ImageBuildError::UnusableRegistrar { reason, .. }
                if reason == "it is not an executable for the target CPU `aarch64`"),
            "{err:?}"
        );
    }
}
