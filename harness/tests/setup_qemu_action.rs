//! docker/setup-qemu-action against `<repo>:binfmt`, on the real engine and
//! the host's binfmt_misc (issue 11: "a test replays the action's exact
//! `docker` command sequence").
//!
//! The action (its `src/main.ts`) runs, with the `docker` CLI:
//! `docker image inspect <image>`, then `docker run --rm --privileged
//! <image> --version`, with `reset: true` `... --uninstall qemu-*`, then
//! `... --install <platforms>`, then `... <image>` with no argument, whose
//! stdout it parses with `JSON.parse(stdout.trim())` for `supported`.
//! After each run it throws, showing the last line of stderr, when the
//! exit status is non-zero (older releases: when stderr is non-empty *and*
//! the status non-zero). The trials replay exactly that and apply both
//! rules, which must agree: every failure here has a non-empty stderr.
//!
//! Where this host refuses `--privileged` ("unable to apply caps": its
//! capability bounding set lacks a capability), `--privileged` is replaced
//! by every capability the host has with AppArmor and seccomp unconfined,
//! as `action/run.sh` and qus-harness do; the rest of each command is the
//! action's.
//!
//! Compiled with `--features docker`. The trials need root, the `docker`
//! CLI, binfmt_misc and the image `${QUS_REPO:-qus/qemu-user-static}:binfmt`
//! (and `:register`), built beforehand by `qus-harness images build`;
//! without them they are *ignored* with the reason, a failure with
//! `QUS_REQUIRE_ENGINES=1`. Each trial removes every `qemu-*` entry after
//! taking a snapshot of the registry, and a guard puts the snapshot back
//! and checks it, whatever happens. The images the trials derive are
//! removed by a guard. Trials run one at a time (one registry); where others
//! share the host, run the binary under the machine's binfmt lock.

#![cfg(feature = "docker")]

#[path = "common/gated.rs"]
mod gated;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed};
use qus_harness::runtime::{BuildSpec, ContextFile, DockerRuntime, Runtime as _};
use qus_registrar::binfmt::{Binfmt, HostFacts, MountState, Snapshot};
use qus_registrar::entry::Entry;
use qus_registrar::targets;

/// Where the images this file derives live (removed at the end).
const TEST_REPO: &str = "qus-test-setup-qemu";

type Body = fn(&str) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    let tests: &[(&str, Body)] = &[
        (
            "the_sequence_without_reset_installs_all_and_an_arm64_container_runs",
            without_reset,
        ),
        (
            "the_sequence_with_reset_replaces_every_qemu_entry_and_keeps_others",
            with_reset,
        ),
        (
            "an_image_missing_an_interpreter_stops_the_action_and_changes_nothing",
            missing_interpreter,
        ),
        (
            "the_register_image_as_binfmt_stops_the_action_on_install_all",
            register_image_as_binfmt,
        ),
    ];
    let trials = tests
        .iter()
        .map(|&(name, body)| gated::trial(name, prerequisites, body).with_kind("docker"))
        .collect();
    // One registry: one trial at a time.
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    remove_derived();
    conclusion.exit();
}

fn repo() -> String {
    std::env::var("QUS_REPO")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "qus/qemu-user-static".to_owned())
}

/// `<repo>:binfmt`, when the trials can run here; else why not.
fn prerequisites() -> Result<&'static str, String> {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if !rustix::process::geteuid().is_root() {
                return Err("needs root (binfmt_misc)".into());
            }
            which::which("docker").map_err(|_| "the `docker` CLI is not installed".to_owned())?;
            let binfmt = Binfmt::default();
            match binfmt.state() {
                MountState::Missing => return Err("the kernel has no binfmt_misc".into()),
                MountState::NotMounted => binfmt
                    .mount()
                    .map_err(|e| format!("cannot mount binfmt_misc: {e}"))?,
                MountState::Mounted => {}
            }
            let repo = repo();
            for tag in ["binfmt", "register"] {
                let image = format!("{repo}:{tag}");
                let out = docker(&["image", "inspect", "--format", "{{.Id}}", &image])
                    .map_err(|e| format!("docker is unavailable: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "the image `{image}` is not in Docker (build it with `qus-harness \
                         images build`): {}",
                        text(&out.stderr).trim()
                    ));
                }
            }
            Ok(format!("{repo}:binfmt"))
        })
        .as_deref()
        .map_err(Clone::clone)
}

fn docker(args: &[&str]) -> std::io::Result<Output> {
    Command::new("docker").args(args).output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

// ---- the action's commands --------------------------------------------------

/// What replaces the action's `--privileged`: itself where the host grants
/// it, else the capability fallback (decided once, by trying).
fn privilege(image: &str) -> Result<&'static [String], Failed> {
    static MODE: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(mode) = MODE.get() {
        return Ok(mode);
    }
    let out = docker(&["run", "--rm", "--privileged", image, "--version"])?;
    let mode = if out.status.code().is_some_and(|c| c >= 125)
        && text(&out.stderr).contains("unable to apply caps")
    {
        let mut args = vec!["--cap-add".to_owned(), "ALL".to_owned()];
        for cap in missing_capabilities() {
            args.extend(["--cap-drop".to_owned(), cap]);
        }
        for opt in ["apparmor=unconfined", "seccomp=unconfined"] {
            args.extend(["--security-opt".to_owned(), opt.to_owned()]);
        }
        eprintln!(
            "    this host refuses --privileged; using {}",
            args.join(" ")
        );
        args
    } else {
        vec!["--privileged".to_owned()]
    };
    Ok(MODE.get_or_init(|| mode))
}

/// Capabilities (without `CAP_`) missing from this process's bounding
/// set; `SYS_RESOURCE` when none is (the refusal came from elsewhere).
fn missing_capabilities() -> Vec<String> {
    let missing = qus_harness::capability::missing_here();
    if missing.is_empty() {
        vec!["SYS_RESOURCE".to_owned()]
    } else {
        missing
    }
}

/// `docker run --rm --privileged <image> <args>`, as the action runs it.
fn action_run(image: &str, args: &[&str]) -> Result<Output, Failed> {
    let mut command = Command::new("docker");
    command.args(["run", "--rm"]).args(privilege(image)?);
    command.arg(image).args(args);
    Ok(command.output()?)
}

/// The action's verdict on one command: `Err` with what it would throw
/// (the last line of stderr). The two rules it has used must agree.
fn verdict(step: &str, out: &Output) -> Result<(), String> {
    let stderr = text(&out.stderr);
    let new_rule = out.status.code() != Some(0);
    let old_rule = !stderr.is_empty() && new_rule;
    if new_rule != old_rule {
        return Err(format!(
            "`{step}` exited {:?} with an empty stderr: the action's two rules disagree",
            out.status.code()
        ));
    }
    if new_rule {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim();
        return Err(format!("`{step}` failed: {last}"));
    }
    Ok(())
}

/// The result of replaying the action: where it stopped, or the platforms
/// it outputs.
#[derive(Debug)]
enum Replay {
    /// It threw at this step with this message; the step's output.
    Stopped { message: String, output: Output },
    /// It finished; `supported` joined with commas, as its output.
    Finished {
        platforms: String,
        steps: Vec<String>,
    },
}

/// The action's whole sequence against `image` with inputs `reset` and
/// `platforms`.
fn replay(image: &str, reset: bool, platforms: &str) -> Result<Replay, Failed> {
    let inspect = docker(&["image", "inspect", image])?;
    if let Err(message) = verdict("docker image inspect", &inspect) {
        return Ok(Replay::Stopped {
            message,
            output: inspect,
        });
    }
    let mut steps: Vec<Vec<&str>> = vec![vec!["--version"]];
    if reset {
        steps.push(vec!["--uninstall", "qemu-*"]);
    }
    steps.push(vec!["--install", platforms]);
    steps.push(vec![]);
    let mut names = Vec::new();
    let mut last = None;
    for step in steps {
        let name = format!("docker run ... {image} {}", step.join(" "));
        let out = action_run(image, &step)?;
        if let Err(message) = verdict(&name, &out) {
            return Ok(Replay::Stopped {
                message,
                output: out,
            });
        }
        names.push(name);
        last = Some(out);
    }
    let last = last.expect("the sequence has steps");
    // `JSON.parse(res.stdout.trim())`, then `platforms.supported.join(',')`.
    let doc: serde_json::Value = serde_json::from_str(text(&last.stdout).trim()).map_err(|e| {
        format!(
            "the action's JSON.parse fails ({e}):\n{}",
            text(&last.stdout)
        )
    })?;
    let supported: Vec<&str> = doc["supported"]
        .as_array()
        .ok_or("no `supported` array")?
        .iter()
        .map(|v| v.as_str().ok_or("a `supported` item is not a string"))
        .collect::<Result<_, _>>()?;
    Ok(Replay::Finished {
        platforms: supported.join(","),
        steps: names,
    })
}

fn finished(replay: Replay) -> Result<String, Failed> {
    match replay {
        Replay::Finished { platforms, steps } => {
            eprintln!("    the action ran {} docker commands", steps.len() + 1);
            Ok(platforms)
        }
        Replay::Stopped { message, output } => Err(format!(
            "the action stopped: {message}\nstdout:\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
        .into()),
    }
}

// ---- the registry -----------------------------------------------------------

/// Puts the registry back as it was; checked by [`guarded`], and on drop
/// as the last resort.
struct RegistryGuard {
    binfmt: Binfmt,
    before: Snapshot,
    restored: bool,
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        if !self.restored
            && let Err(e) = self.binfmt.restore(&self.before)
        {
            eprintln!("error: failed to restore the host's binfmt_misc entries: {e}");
        }
    }
}

/// Runs `body` with no `qemu-*` entry registered, between a snapshot of
/// the registry and its restore (checked against the snapshot).
fn guarded(body: impl FnOnce(&Binfmt) -> Result<(), Failed>) -> Result<(), Failed> {
    let binfmt = Binfmt::default();
    let mut guard = RegistryGuard {
        before: binfmt.snapshot().map_err(|e| e.to_string())?,
        binfmt,
        restored: false,
    };
    let result = (|| {
        for entry in list(&guard.binfmt)? {
            if entry.name.starts_with("qemu-") {
                guard
                    .binfmt
                    .remove(&entry.name)
                    .map_err(|e| e.to_string())?;
            }
        }
        body(&guard.binfmt)
    })();
    guard.restored = true;
    let restored = guard
        .binfmt
        .restore(&guard.before)
        .map_err(|e| format!("restore failed: {e}"))
        .and_then(|_| {
            let after = guard.binfmt.snapshot().map_err(|e| e.to_string())?;
            if after == guard.before {
                Ok(())
            } else {
                Err("the registry differs from before the trial after the restore".to_owned())
            }
        });
    result.and(restored.map_err(Failed::from))
}

fn list(binfmt: &Binfmt) -> Result<Vec<Entry>, Failed> {
    Ok(binfmt.list().map_err(|e| e.to_string())?)
}

fn qemu_entries(binfmt: &Binfmt) -> Result<Vec<Entry>, Failed> {
    Ok(list(binfmt)?
        .into_iter()
        .filter(|e| e.name.starts_with("qemu-"))
        .collect())
}

/// The foreign targets of this host, as entry names.
fn foreign_entries() -> BTreeSet<String> {
    let family = targets::host_family(&HostFacts::read(None).machine);
    targets::foreign_to(&family)
        .map(|t| t.entry_name())
        .collect()
}

// ---- images -----------------------------------------------------------------

/// Images derived here, removed at the end.
fn derived() -> &'static Mutex<Vec<String>> {
    static DERIVED: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    DERIVED.get_or_init(Mutex::default)
}

fn remove_derived() {
    for image in derived().lock().unwrap().drain(..) {
        let _ = docker(&["image", "rm", "--force", &image]);
    }
}

/// `image`'s file system without the paths of `remove`, plus the symlinks
/// `add` (`path`, target), imported as `tag` with the `binfmt` entrypoint:
/// what a user's own image derived from ours could be.
fn derive(image: &str, tag: &str, remove: &[&str], add: &[(&str, &str)]) -> Result<(), Failed> {
    let name = format!("{TEST_REPO}/{tag}");
    derived().lock().unwrap().push(name.clone());
    let created = docker(&["create", image])?;
    check(created.status.success(), text(&created.stderr))?;
    let id = text(&created.stdout).trim().to_owned();
    let exported = docker(&["export", &id]);
    let _ = docker(&["rm", &id]);
    let exported = exported?;
    check(exported.status.success(), text(&exported.stderr))?;

    let mut kept = tar::Builder::new(Vec::new());
    let mut removed = BTreeSet::new();
    for entry in tar::Archive::new(exported.stdout.as_slice()).entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if remove.contains(&path.as_str()) {
            removed.insert(path);
            continue;
        }
        let header = entry.header().clone();
        kept.append(&header, &mut entry)?;
    }
    check(
        removed.len() == remove.len(),
        format!("`{image}` lacks some of {remove:?}"),
    )?;
    for (path, target) in add {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        kept.append_link(&mut header, path, target)?;
    }
    let tarball = kept.into_inner()?;
    let mut import = Command::new("docker")
        .args([
            "import",
            "--change",
            r#"ENTRYPOINT ["/usr/bin/binfmt"]"#,
            "-",
            &name,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    import
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&tarball)?;
    let out = import.wait_with_output()?;
    check(out.status.success(), text(&out.stderr))
}

/// A `FROM scratch` image of the arm64 probe (`fixtures/probes/bin/aarch64`,
/// which prints `aarch64`), for `linux/arm64`.
fn arm64_probe_image() -> Result<String, Failed> {
    let name = format!("{TEST_REPO}/probe:aarch64");
    derived().lock().unwrap().push(name.clone());
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes/bin/aarch64");
    let spec = BuildSpec::inline(
        "FROM scratch\nCOPY probe /probe\nCMD [\"/probe\"]\n",
        vec![ContextFile::executable("probe", std::fs::read(&probe)?)],
        name.clone(),
    )
    .with_platform("linux/arm64");
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async { DockerRuntime::connect().await?.build(&spec).await })
        .map_err(|e| e.to_string())?;
    check(outcome.success, outcome.output)?;
    Ok(name)
}

// ---- trials -----------------------------------------------------------------

fn without_reset(image: &str) -> Result<(), Failed> {
    let probe = arm64_probe_image()?;
    guarded(|binfmt| {
        let platforms = finished(replay(image, false, "all")?)?;
        // Every foreign target, with tonistiigi's flags (`CF` reads back
        // `OCF`) and the image's interpreters.
        let entries = qemu_entries(binfmt)?;
        let names: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();
        check(
            names == foreign_entries(),
            format!(
                "registered differs from the foreign targets: {:?}",
                names
                    .symmetric_difference(&foreign_entries())
                    .collect::<Vec<_>>()
            ),
        )?;
        for entry in &entries {
            let target = targets::find(&entry.name).ok_or("an unknown qemu entry")?;
            let interpreter = format!("/usr/bin/{}-static", target.interpreter);
            check(
                entry.enabled
                    && entry.flags.to_string() == "OCF"
                    && entry.interpreter == interpreter,
                format!("{entry:?}"),
            )?;
        }
        let listed: BTreeSet<&str> = platforms.split(',').collect();
        for platform in [
            "linux/arm64",
            "linux/riscv64",
            "linux/s390x",
            "linux/arm/v7",
        ] {
            check(
                listed.contains(platform),
                format!("platforms `{platforms}`"),
            )?;
        }
        // An arm64 container runs, its interpreter opened from the image.
        let out = docker(&["run", "--rm", &probe])?;
        check(
            out.status.success() && text(&out.stdout) == "aarch64\n",
            format!("the arm64 container: {out:?}"),
        )
    })
}

fn with_reset(image: &str) -> Result<(), Failed> {
    guarded(|binfmt| {
        // The runner's own entries: one qemu entry with other flags (reset
        // removes it; without reset it would be kept), and another
        // program's entry, which must stay.
        let foreign = "qus-setup-qemu-test";
        binfmt
            .register(
                foreign,
                ":qus-setup-qemu-test:E::qussetupqemutest::/bin/true:",
            )
            .map_err(|e| e.to_string())?;
        let s390x = targets::find("s390x").ok_or("no s390x target")?;
        binfmt
            .register(
                "qemu-s390x",
                &qus_registrar::entry::register_line(
                    s390x,
                    "/usr/bin/qemu-s390x-static",
                    qus_registrar::entry::Flags::requested(false, false, false),
                ),
            )
            .map_err(|e| e.to_string())?;
        let foreign_before = binfmt.read(foreign).map_err(|e| e.to_string())?;
        let platforms = finished(replay(image, true, "arm64,riscv64")?)?;
        let names: Vec<String> = qemu_entries(binfmt)?.into_iter().map(|e| e.name).collect();
        check(
            names == ["qemu-aarch64", "qemu-riscv64"],
            format!("qemu entries after the reset: {names:?}"),
        )?;
        check(
            binfmt.read(foreign).map_err(|e| e.to_string())? == foreign_before,
            "the other program's entry changed",
        )?;
        let listed: BTreeSet<&str> = platforms.split(',').collect();
        check(
            listed.contains("linux/arm64")
                && listed.contains("linux/riscv64")
                && !listed.contains("linux/s390x"),
            format!("platforms `{platforms}`"),
        )?;
        binfmt.remove(foreign).map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn missing_interpreter(image: &str) -> Result<(), Failed> {
    derive(image, "no-riscv64", &["usr/bin/qemu-riscv64-static"], &[])?;
    let derived = format!("{TEST_REPO}/no-riscv64");
    guarded(|binfmt| {
        let before = binfmt.snapshot().map_err(|e| e.to_string())?;
        for reset in [false, true] {
            match replay(&derived, reset, "arm64,riscv64")? {
                Replay::Stopped { message, output } => {
                    check(
                        message.contains("--install arm64,riscv64` failed")
                            && message.contains("riscv64")
                            && message.contains("/usr/bin/qemu-riscv64-static"),
                        format!("the action would show: {message}"),
                    )?;
                    check(
                        output.status.code() == Some(1),
                        format!("exit {:?}", output.status.code()),
                    )?;
                }
                Replay::Finished { platforms, .. } => {
                    return Err(format!(
                        "the action went on (reset {reset}) and output `{platforms}`"
                    )
                    .into());
                }
            }
            check(
                binfmt.snapshot().map_err(|e| e.to_string())? == before,
                format!("a refused install changed the registry (reset {reset})"),
            )?;
        }
        // The same image installs what it has.
        let platforms = finished(replay(&derived, false, "arm64")?)?;
        check(
            platforms.split(',').any(|p| p == "linux/arm64"),
            format!("platforms `{platforms}`"),
        )
    })
}

fn register_image_as_binfmt(_image: &str) -> Result<(), Failed> {
    let register = format!("{}:register", repo());
    derive(
        &register,
        "register-as-binfmt",
        &[],
        &[("usr/bin/binfmt", "qus-register")],
    )?;
    let derived = format!("{TEST_REPO}/register-as-binfmt");
    guarded(|binfmt| {
        let before = binfmt.snapshot().map_err(|e| e.to_string())?;
        match replay(&derived, false, "all")? {
            Replay::Stopped { message, output } => {
                check(
                    message.contains("no QEMU interpreter in") && message.contains("/usr/bin"),
                    format!("the action would show: {message}"),
                )?;
                check(
                    output.status.code() == Some(1),
                    format!("exit {:?}", output.status.code()),
                )?;
            }
            Replay::Finished { platforms, .. } => {
                return Err(format!("the action went on and output `{platforms}`").into());
            }
        }
        check(
            binfmt.snapshot().map_err(|e| e.to_string())? == before,
            "a refused install changed the registry",
        )
    })
}
