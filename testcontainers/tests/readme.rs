//! The README's testcontainers example, and what [`Registration`] promises,
//! on a real Docker engine and the host's binfmt_misc.
//!
//! Compiled with `--features docker`. The example runs as the README shows
//! it, with `qus-fixtures/arm64:bookworm` (built by `qus-harness images
//! fixtures`) for the user's `arm64v8/ubuntu`; another trial checks that
//! the README still shows this code. The registrar image is
//! `${QUS_REPO:-qus/qemu-user-static}:latest` (`qus-harness images build`).
//! Each trial saves the registry, sets up its starting state, checks that
//! the registration removed exactly what it added, and puts the saved
//! registry back in a guard, whatever happens. Trials run one at a time;
//! run the binary under the machine's binfmt lock where others share the
//! host. Without root, Docker or the images they are *ignored* with the
//! reason, a failure with `QUS_REQUIRE_ENGINES=1`.
#![cfg(feature = "docker")]

use std::path::Path;
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};
use qus_registrar::entry::{self, Flags};
use qus_registrar::targets;
use qus_testcontainers::{RegisterError, Registration, RunForeignError, run_foreign};

/// The fixture standing in for `arm64v8/ubuntu`.
const ARM64_IMAGE: &str = "qus-fixtures/arm64:bookworm";

// README-EXAMPLE-BEGIN (README.md, "Foreign containers in cargo test";
// the README has `#[tokio::test]` above and `arm64v8/ubuntu` for the image)
async fn arm64_container_runs() -> Result<(), Box<dyn std::error::Error>> {
    // Registers qemu-aarch64 with the qus registrar image; dropping `_qemu`
    // removes it again (unless it was registered before).
    let _qemu = Registration::start(["linux/arm64"]).await?;
    let out = run_foreign(
        "qus-fixtures/arm64:bookworm",
        "linux/arm64",
        ["uname", "-m"],
    )
    .await?;
    assert_eq!(out.stdout, "aarch64\n");
    Ok(())
}
// README-EXAMPLE-END

type Body = fn() -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    // One registry for every trial.
    args.test_threads = Some(1);
    let mut trials = vec![Trial::test(
        "the_readme_shows_this_example",
        the_readme_shows_this_example,
    )];
    let engine: &[(&str, Body)] = &[
        ("the_readme_example_runs_and_cleans_up", the_example_runs),
        (
            "an_entry_registered_before_is_kept",
            an_entry_registered_before_is_kept,
        ),
        (
            "a_different_entry_is_refused_with_the_registrars_message",
            a_different_entry_is_refused,
        ),
        (
            "two_registrations_share_an_entry_until_the_last_is_dropped",
            two_registrations_share_an_entry,
        ),
        (
            "absent_and_wrong_platform_images_are_named_not_pulled",
            absent_and_wrong_platform_images,
        ),
    ];
    trials.extend(engine.iter().map(|&(name, body)| {
        Trial::ignorable_test(name, move || match prerequisites() {
            Ok(()) => body().map(|()| Completion::Completed),
            Err(reason) if require_engines() => {
                Err(format!("QUS_REQUIRE_ENGINES=1 but {reason}").into())
            }
            Err(reason) => Ok(Completion::ignored_with(reason)),
        })
        .with_kind("docker")
    }));
    libtest_mimic::run(&args, trials).exit();
}

fn require_engines() -> bool {
    std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1")
}

fn registrar_image() -> String {
    let repo = std::env::var("QUS_REPO")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| qus_testcontainers::DEFAULT_NAME.to_owned());
    format!("{repo}:{}", qus_testcontainers::DEFAULT_TAG)
}

/// `Ok` when the trials can run here, else why not (checked once).
fn prerequisites() -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if !rustix::process::geteuid().is_root() {
                return Err("needs root (binfmt_misc)".into());
            }
            let binfmt = Binfmt::default();
            match binfmt.state() {
                MountState::Missing => return Err("the kernel has no binfmt_misc".into()),
                MountState::NotMounted => binfmt
                    .mount()
                    .map_err(|e| format!("cannot mount binfmt_misc: {e}"))?,
                MountState::Mounted => {}
            }
            block_on(async {
                let docker = testcontainers::core::client::docker_client_instance()
                    .await
                    .map_err(|e| format!("docker is unavailable: {e}"))?;
                docker
                    .ping()
                    .await
                    .map_err(|e| format!("docker is unavailable: {e}"))?;
                for (image, how) in [
                    (registrar_image(), "qus-harness images build"),
                    (ARM64_IMAGE.to_owned(), "qus-harness images fixtures"),
                ] {
                    if docker.inspect_image(&image).await.is_err() {
                        return Err(format!(
                            "`{image}` is not in Docker (build it with `{how}`)"
                        ));
                    }
                }
                Ok(())
            })
        })
        .clone()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

/// Puts the registry back as it was when taken, on every path.
struct RegistryGuard {
    binfmt: Binfmt,
    saved: Snapshot,
}

impl RegistryGuard {
    fn take() -> Result<Self, Failed> {
        let binfmt = Binfmt::default();
        let saved = binfmt.snapshot().map_err(|e| e.to_string())?;
        Ok(Self { binfmt, saved })
    }
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        match self.binfmt.restore(&self.saved) {
            Ok(_) if self.binfmt.snapshot().ok().as_ref() == Some(&self.saved) => {}
            Ok(_) => eprintln!("error: the registry differs from the saved one after the restore"),
            Err(e) => eprintln!("error: failed to restore the host's binfmt_misc entries: {e}"),
        }
    }
}

/// Removes `name` when it is registered.
fn remove(binfmt: &Binfmt, name: &str) -> Result<(), Failed> {
    if binfmt.read(name).map_err(|e| e.to_string())?.is_some() {
        binfmt.remove(name).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Registers `qemu-aarch64` as the registrar image would with `persistent`
/// (`F`) or without, from the host's `/usr/bin/qemu-aarch64-static`.
fn register_aarch64(binfmt: &Binfmt, persistent: bool) -> Result<(), Failed> {
    let target = targets::find("aarch64").ok_or("no aarch64 target")?;
    remove(binfmt, "qemu-aarch64")?;
    let line = entry::register_line(
        target,
        &entry::interpreter_path("/usr/bin", target, "-static"),
        Flags::requested(false, persistent, false),
    );
    Ok(binfmt
        .register("qemu-aarch64", &line)
        .map_err(|e| e.to_string())?)
}

fn snapshot(binfmt: &Binfmt) -> Result<Snapshot, Failed> {
    Ok(binfmt.snapshot().map_err(|e| e.to_string())?)
}

fn the_readme_shows_this_example() -> Result<(), Failed> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let this = std::fs::read_to_string(root.join("tests/readme.rs"))?;
    let readme = std::fs::read_to_string(root.join("../README.md"))?;
    let begin = this
        .find("async fn arm64_container_runs")
        .ok_or("no example here")?;
    let end = this.find("// README-EXAMPLE-END").ok_or("no end marker")?;
    let example = this[begin..end].replace(ARM64_IMAGE, "arm64v8/ubuntu");
    let shown = format!("#[tokio::test]\n{example}");
    check(
        readme.contains(&shown),
        format!("README.md does not show this example:\n{shown}"),
    )?;
    check(
        readme.contains("use qus_testcontainers::{Registration, run_foreign};"),
        "README.md does not show the `use` line",
    )
}

fn the_example_runs() -> Result<(), Failed> {
    let guard = RegistryGuard::take()?;
    remove(&guard.binfmt, "qemu-aarch64")?;
    let before = snapshot(&guard.binfmt)?;
    block_on(arm64_container_runs()).map_err(|e| e.to_string())?;
    // The registration is dropped: the registry is as before it.
    check(
        snapshot(&guard.binfmt)? == before,
        "the registry differs from before the example",
    )
}

fn an_entry_registered_before_is_kept() -> Result<(), Failed> {
    let guard = RegistryGuard::take()?;
    register_aarch64(&guard.binfmt, true)?;
    let before = snapshot(&guard.binfmt)?;
    block_on(async {
        let registration = Registration::start(["arm64"])
            .await
            .map_err(|e| e.to_string())?;
        check(
            registration.entries().is_empty(),
            format!("holds {:?}", registration.entries()),
        )?;
        let removed = registration.uninstall().await.map_err(|e| e.to_string())?;
        check(removed.is_empty(), format!("removed {removed:?}"))
    })?;
    check(
        snapshot(&guard.binfmt)? == before,
        "an entry registered before was changed",
    )
}

fn a_different_entry_is_refused() -> Result<(), Failed> {
    let guard = RegistryGuard::take()?;
    register_aarch64(&guard.binfmt, false)?;
    let before = snapshot(&guard.binfmt)?;
    let err = block_on(Registration::start(["linux/arm64"]))
        .err()
        .ok_or("a different entry was accepted")?;
    check(
        matches!(&err, RegisterError::Registrar { exit_code: 1, stderr, .. }
            if stderr.contains("qemu-aarch64") && stderr.contains("--replace")),
        format!("{err}"),
    )?;
    check(
        snapshot(&guard.binfmt)? == before,
        "a refused registration changed the registry",
    )
}

fn two_registrations_share_an_entry() -> Result<(), Failed> {
    let guard = RegistryGuard::take()?;
    remove(&guard.binfmt, "qemu-aarch64")?;
    remove(&guard.binfmt, "qemu-s390x")?;
    let before = snapshot(&guard.binfmt)?;
    block_on(async {
        let first = Registration::start(["linux/arm64"])
            .await
            .map_err(|e| e.to_string())?;
        let second = Registration::start(["linux/arm64", "linux/s390x"])
            .await
            .map_err(|e| e.to_string())?;
        check(
            first.entries() == ["qemu-aarch64"],
            format!("{:?}", first.entries()),
        )?;
        check(
            second.entries() == ["qemu-aarch64", "qemu-s390x"],
            format!("{:?}", second.entries()),
        )?;
        // The first goes: the second still holds qemu-aarch64.
        let removed = first.uninstall().await.map_err(|e| e.to_string())?;
        check(removed.is_empty(), format!("removed {removed:?}"))?;
        let out = run_foreign(ARM64_IMAGE, "linux/arm64", ["uname", "-m"])
            .await
            .map_err(|e| e.to_string())?;
        check(out.stdout == "aarch64\n", format!("{out:?}"))?;
        // Dropped, not uninstalled: the drop removes both.
        drop(second);
        Ok::<(), Failed>(())
    })?;
    check(
        snapshot(&guard.binfmt)? == before,
        "the registry differs from before the registrations",
    )
}

fn absent_and_wrong_platform_images() -> Result<(), Failed> {
    block_on(async {
        let err = run_foreign("qus-test/absent:none", "linux/arm64", ["true"])
            .await
            .err()
            .ok_or("an absent image ran")?;
        check(
            matches!(&err, RunForeignError::ImageMissing { image } if image == "qus-test/absent:none")
                && err.to_string().contains("qus-harness images fixtures"),
            err.to_string(),
        )?;
        let err = run_foreign(ARM64_IMAGE, "linux/s390x", ["true"])
            .await
            .err()
            .ok_or("an arm64 image ran as s390x")?;
        check(
            matches!(&err, RunForeignError::WrongPlatform { found, .. } if found.starts_with("linux/arm64")),
            err.to_string(),
        )
    })
}
