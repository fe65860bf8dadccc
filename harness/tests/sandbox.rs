//! The host runtime's sandbox for real: a private binfmt_misc namespace
//! (Linux 6.7+, root) and a registrar image's view of `/usr/bin`.
//!
//! Each trial checks its prerequisites first (root, a kernel that gives a
//! user namespace its own binfmt_misc, `/usr/bin/qemu-aarch64-static` where
//! a real emulator is needed): a missing one makes the trial *ignored* with
//! the reason, and a failure with `QUS_REQUIRE_KERNEL=1`. They never write
//! the host's registry; each compares it, byte for byte through the
//! registrar's library, with a snapshot taken before (a registrar running
//! meanwhile on the host would make that comparison fail: run them under
//! the machine's binfmt lock on a shared host).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_harness::sandbox::{BINFMT_MOUNT, Launch, Namespace};
use qus_registrar::binfmt::{Binfmt, Snapshot};
use qus_registrar::entry::{Flags, register_line};
use qus_registrar::targets;

/// Turns a missing prerequisite into a failure.
const REQUIRE: &str = "QUS_REQUIRE_KERNEL";

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::ignorable_test(
            "namespace::registry_is_private_and_the_host_untouched",
            registry_is_private_and_the_host_untouched,
        ),
        Trial::ignorable_test(
            "namespace::setuid_probe_as_nobody_with_and_without_credentials",
            setuid_probe_as_nobody,
        ),
        Trial::ignorable_test(
            "namespace::holder_exits_when_dropped",
            holder_exits_when_dropped,
        ),
        Trial::ignorable_test(
            "view::only_the_images_emulators_are_in_usr_bin",
            only_the_images_emulators_are_in_usr_bin,
        ),
        Trial::ignorable_test(
            "plan::binfmt_writers_are_private_on_the_host",
            binfmt_writers_are_private_on_the_host,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qus-harness"))
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
}

/// `Ok(None)` when the trial can run; else ignored, or failed under
/// `QUS_REQUIRE_KERNEL=1`.
fn prerequisites(needs_qemu: bool) -> Result<Option<Completion>, Failed> {
    let missing = if !rustix::process::geteuid().is_root() {
        Some("needs root".to_owned())
    } else if qus_registrar::binfmt::HostFacts::read(None).kernel_older_than(6, 7) {
        Some("needs Linux 6.7 or later (a binfmt_misc per user namespace)".to_owned())
    } else if needs_qemu && !Path::new("/usr/bin/qemu-aarch64-static").is_file() {
        Some("needs `/usr/bin/qemu-aarch64-static` (Debian's qemu-user-static)".to_owned())
    } else {
        None
    };
    match missing {
        None => Ok(None),
        Some(reason) if std::env::var(REQUIRE).is_ok_and(|v| v == "1") => {
            Err(format!("{REQUIRE}=1 but this trial {reason}").into())
        }
        Some(reason) => Ok(Some(Completion::ignored_with(reason))),
    }
}

/// The host's registry now (empty when binfmt_misc is not mounted).
fn host_snapshot() -> Result<Snapshot, Failed> {
    Binfmt::default()
        .snapshot()
        .map_err(|e| format!("failed to read the host's registry: {e}").into())
}

/// Fails when the host's registry differs from `before`, after putting
/// `before` back (a broken sandbox must not leave its entries behind).
fn same_host(before: &Snapshot) -> Result<(), Failed> {
    let after = host_snapshot()?;
    if &after == before {
        return Ok(());
    }
    let restored = Binfmt::default().restore(before).map_or_else(
        |e| format!("restoring it failed: {e}"),
        |_| "it was restored".to_owned(),
    );
    Err(
        format!("the host's registry changed: before {before:?}, after {after:?}; {restored}")
            .into(),
    )
}

/// `qemu-aarch64`'s register line with `flags` and the host's emulator.
fn aarch64_line(flags: Flags) -> String {
    let target = targets::find("aarch64").expect("aarch64 is a target");
    register_line(target, "/usr/bin/qemu-aarch64-static", flags)
}

/// The embedded aarch64 probe, written to a directory every user reads.
fn probe_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("aarch64");
    let (bytes, _) = qus_registrar::verify::probe("aarch64").expect("an aarch64 probe");
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs `command` with `launch`; `(exit code, stdout, stderr)`.
fn run(
    rt: &tokio::runtime::Runtime,
    command: &[&str],
    launch: Launch<'_>,
) -> Result<(i64, String, String), Failed> {
    let command: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
    let outcome = rt
        .block_on(qus_harness::runtime::exec_with(
            &command,
            &[],
            Duration::from_secs(30),
            |c| launch.apply(c),
        ))
        .map_err(|e| format!("`{}` did not start: {e}", command.join(" ")))?;
    Ok((outcome.exit_code, outcome.stdout, outcome.stderr))
}

/// Runs `body` (given the host's registry before it), then checks, and
/// if needed restores, the host's registry whatever `body` did, panics
/// included.
fn guarded(body: fn(&Snapshot) -> Result<(), Failed>) -> Result<Completion, Failed> {
    let before = host_snapshot()?;
    let outcome = std::panic::catch_unwind(|| body(&before));
    let host = same_host(&before);
    match outcome {
        Err(panic) => {
            if let Err(host) = host {
                eprintln!("{}", host.message().unwrap_or_default());
            }
            std::panic::resume_unwind(panic)
        }
        Ok(result) => {
            host?;
            result?;
            Ok(Completion::Completed)
        }
    }
}

fn registry_is_private_and_the_host_untouched() -> Result<Completion, Failed> {
    match prerequisites(true)? {
        Some(skip) => Ok(skip),
        None => guarded(private_registry),
    }
}

fn private_registry(before: &Snapshot) -> Result<(), Failed> {
    let rt = tokio();
    let dir = tempfile::tempdir()?;
    let probe = probe_file(dir.path());
    let probe = probe.to_str().unwrap();
    {
        let ns = rt.block_on(Namespace::create(&helper()))?;
        let private = ns.binfmt();
        assert_eq!(
            private.root(),
            Path::new(&format!("/proc/{}/root{BINFMT_MOUNT}", ns.pid()))
        );
        // A fresh registry: no entry at all, whatever the host holds.
        assert_eq!(private.names()?, Vec::<String>::new());
        let launch = Launch {
            namespace: Some(&ns),
            ..Launch::default()
        };
        // Without a handler the kernel refuses the probe inside (the host's
        // handler, if any, is not seen)...
        let refused = rt.block_on(qus_harness::runtime::exec_with(
            &[probe.to_owned()],
            &[],
            Duration::from_secs(30),
            |c| {
                Launch {
                    direct: true,
                    ..launch
                }
                .apply(c)
            },
        ));
        match refused {
            Err(qus_harness::runtime::RuntimeError::Io { source, .. })
                if source.raw_os_error() == Some(libc::ENOEXEC) => {}
            other => return Err(format!("the probe ran without a handler: {other:?}").into()),
        }
        // ...registering through the harness's side of the mount works...
        private.register(
            "qemu-aarch64",
            &aarch64_line(Flags::requested(false, true, false)),
        )?;
        let entry = private.read("qemu-aarch64")?.expect("registered");
        assert!(entry.flags.fix_binary, "{entry:?}");
        // ...and a command inside sees it, in the same working directory.
        let (code, stdout, stderr) = run(
            &rt,
            &["sh", "-c", &format!("pwd; ls {BINFMT_MOUNT}; {probe}")],
            launch,
        )?;
        assert_eq!(code, 0, "{stderr}");
        let cwd = std::env::current_dir()?;
        assert_eq!(
            stdout,
            format!(
                "{}\nqemu-aarch64\nregister\nstatus\naarch64\n",
                cwd.display()
            )
        );
        same_host(before)?;
    }
    Ok(())
}

fn setuid_probe_as_nobody() -> Result<Completion, Failed> {
    match prerequisites(true)? {
        Some(skip) => Ok(skip),
        None => guarded(setuid_probe),
    }
}

fn setuid_probe(_before: &Snapshot) -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt as _;
    let rt = tokio();
    let dir = tempfile::tempdir()?;
    let probe = probe_file(dir.path());
    std::os::unix::fs::chown(&probe, Some(0), Some(0))?;
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o4755))?;
    let probe = probe.to_str().unwrap();
    for (credential, euid) in [(true, "0"), (false, "65534")] {
        let ns = rt.block_on(Namespace::create(&helper()))?;
        ns.binfmt().register(
            "qemu-aarch64",
            &aarch64_line(Flags::requested(credential, true, false)),
        )?;
        let launch = Launch {
            namespace: Some(&ns),
            user: Some((65534, 65534)),
            direct: true,
        };
        let (code, stdout, stderr) = run(&rt, &[probe, "--euid"], launch)?;
        assert_eq!(
            (code, stdout.as_str()),
            (0, format!("aarch64\n{euid}\n").as_str()),
            "credential {credential}: {stderr}"
        );
    }
    Ok(())
}

fn holder_exits_when_dropped() -> Result<Completion, Failed> {
    if let Some(skip) = prerequisites(false)? {
        return Ok(skip);
    }
    let rt = tokio();
    let ns = rt.block_on(Namespace::create(&helper()))?;
    let proc_dir = PathBuf::from(format!("/proc/{}", ns.pid()));
    let host_user = std::fs::read_link("/proc/self/ns/user")?;
    let theirs = std::fs::read_link(proc_dir.join("ns/user"))?;
    assert_ne!(
        host_user, theirs,
        "the holder is in a user namespace of its own"
    );
    drop(ns);
    // Its standard input closed, the holder exits (and is reaped).
    for _ in 0..50 {
        let gone = std::fs::read_to_string(proc_dir.join("stat"))
            .map_or(true, |stat| stat.split_whitespace().nth(2) == Some("Z"));
        if gone {
            return Ok(Completion::Completed);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("the holder `{}` is still running", proc_dir.display()).into())
}

fn only_the_images_emulators_are_in_usr_bin() -> Result<Completion, Failed> {
    if let Some(skip) = prerequisites(false)? {
        return Ok(skip);
    }
    let listing = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir("/usr/bin")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("qemu-"))
            .collect();
        names.sort();
        names
    };
    let host_before = listing();
    let scratch = tempfile::tempdir()?;
    let source = tempfile::NamedTempFile::new()?;
    let source_path = source.path().display().to_string();
    let out = Command::new(helper())
        .args(["internal", "view-exec", "--scratch"])
        .arg(scratch.path())
        .arg("--emulator")
        .arg(format!("qemu-riscv64-static={source_path}"))
        .args([
            "--",
            "sh",
            "-c",
            "cd /usr/bin && ls -d qemu-*; readlink qemu-riscv64-static; test -x sh",
        ])
        .output()?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("qemu-riscv64-static\n{source_path}\n")
    );
    // Nothing of it reached the host.
    assert_eq!(listing(), host_before);
    // With no emulator, `/usr/bin` holds no `qemu-*` at all.
    let out = Command::new(helper())
        .args(["internal", "view-exec", "--scratch"])
        .arg(scratch.path())
        .args(["--", "sh", "-c", "ls /usr/bin | grep -c '^qemu-' || true"])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n", "{out:?}");
    // A command that does not exist is 127, as in a shell.
    let out = Command::new(helper())
        .args(["internal", "view-exec", "--scratch"])
        .arg(scratch.path())
        .args(["--", "/nonexistent/qus-program"])
        .output()?;
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    Ok(Completion::Completed)
}

fn binfmt_writers_are_private_on_the_host() -> Result<Completion, Failed> {
    if let Some(skip) = prerequisites(false)? {
        return Ok(skip);
    }
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/status-json.yaml");
    let out = Command::new(helper())
        .args(["plan", "--runtime", "host"])
        .arg(&scenario)
        .output()?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "PRIVATE status-json\n\
         1 instances: 1 to run (1 in private binfmt_misc registries), 0 skipped\n"
    );
    Ok(Completion::Completed)
}
