//! `--verify`: does a registered handler actually run its target's binaries?
//!
//! "Registered" is not "runnable": a private binfmt_misc in a user namespace
//! (Linux 6.7+), an automount hiding the real mount, an interpreter deleted
//! or replaced since a registration without `F`, or an SELinux denial all
//! leave an entry that does nothing. So each target is tried for real: its
//! probe (`fixtures/probes/bin/<target>`, a static program of a few hundred
//! bytes that prints `uname -m` as QEMU reports it, embedded here with
//! `include_bytes!`) is written to a private directory (mode 0700) and
//! executed, with a timeout, and what it prints is checked.
//!
//! The main functions are [`probe`] (the embedded program and its expected
//! output), [`run_probe`] (one execution) and [`verify`] (a [`Verdict`] for
//! one target, with the likely cause when it is not runnable).
//! [`qemu_version`] runs a probe with `QEMU_VERSION=1`, which makes QEMU's
//! linux-user print its version and exit: the version of the QEMU that the
//! kernel actually runs for that target. This module executes programs; it
//! never writes the registry.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::entry::Entry;

/// Every embedded probe: target, program, what it prints under QEMU user
/// mode (`fixtures/probes/probes.tsv`).
const PROBES: &[(&str, &[u8], &str)] = &[
    (
        "aarch64",
        include_bytes!("../../fixtures/probes/bin/aarch64"),
        "aarch64\n",
    ),
    (
        "aarch64_be",
        include_bytes!("../../fixtures/probes/bin/aarch64_be"),
        "aarch64_be\n",
    ),
    (
        "alpha",
        include_bytes!("../../fixtures/probes/bin/alpha"),
        "alpha\n",
    ),
    (
        "arm",
        include_bytes!("../../fixtures/probes/bin/arm"),
        "armv7l\n",
    ),
    (
        "armeb",
        include_bytes!("../../fixtures/probes/bin/armeb"),
        "armv7b\n",
    ),
    (
        "hexagon",
        include_bytes!("../../fixtures/probes/bin/hexagon"),
        "hexagon\n",
    ),
    (
        "hppa",
        include_bytes!("../../fixtures/probes/bin/hppa"),
        "parisc\n",
    ),
    (
        "i386",
        include_bytes!("../../fixtures/probes/bin/i386"),
        "i686\n",
    ),
    (
        "i486",
        include_bytes!("../../fixtures/probes/bin/i486"),
        "i686\n",
    ),
    (
        "loongarch64",
        include_bytes!("../../fixtures/probes/bin/loongarch64"),
        "loongarch64\n",
    ),
    (
        "m68k",
        include_bytes!("../../fixtures/probes/bin/m68k"),
        "m68k\n",
    ),
    (
        "mips",
        include_bytes!("../../fixtures/probes/bin/mips"),
        "mips\n",
    ),
    (
        "mips64",
        include_bytes!("../../fixtures/probes/bin/mips64"),
        "mips64\n",
    ),
    (
        "mips64el",
        include_bytes!("../../fixtures/probes/bin/mips64el"),
        "mips64\n",
    ),
    (
        "mipsel",
        include_bytes!("../../fixtures/probes/bin/mipsel"),
        "mips\n",
    ),
    (
        "mipsn32",
        include_bytes!("../../fixtures/probes/bin/mipsn32"),
        "mips64\n",
    ),
    (
        "mipsn32el",
        include_bytes!("../../fixtures/probes/bin/mipsn32el"),
        "mips64\n",
    ),
    (
        "or1k",
        include_bytes!("../../fixtures/probes/bin/or1k"),
        "openrisc\n",
    ),
    (
        "ppc",
        include_bytes!("../../fixtures/probes/bin/ppc"),
        "ppc\n",
    ),
    (
        "ppc64",
        include_bytes!("../../fixtures/probes/bin/ppc64"),
        "ppc64\n",
    ),
    (
        "ppc64le",
        include_bytes!("../../fixtures/probes/bin/ppc64le"),
        "ppc64le\n",
    ),
    (
        "riscv32",
        include_bytes!("../../fixtures/probes/bin/riscv32"),
        "riscv32\n",
    ),
    (
        "riscv64",
        include_bytes!("../../fixtures/probes/bin/riscv64"),
        "riscv64\n",
    ),
    (
        "s390x",
        include_bytes!("../../fixtures/probes/bin/s390x"),
        "s390x\n",
    ),
    (
        "sh4",
        include_bytes!("../../fixtures/probes/bin/sh4"),
        "sh4\n",
    ),
    (
        "sh4eb",
        include_bytes!("../../fixtures/probes/bin/sh4eb"),
        "sh4\n",
    ),
    (
        "sparc",
        include_bytes!("../../fixtures/probes/bin/sparc"),
        "sparc\n",
    ),
    (
        "sparc32plus",
        include_bytes!("../../fixtures/probes/bin/sparc32plus"),
        "sparc64\n",
    ),
    (
        "sparc64",
        include_bytes!("../../fixtures/probes/bin/sparc64"),
        "sparc64\n",
    ),
    (
        "x86_64",
        include_bytes!("../../fixtures/probes/bin/x86_64"),
        "x86_64\n",
    ),
    (
        "xtensa",
        include_bytes!("../../fixtures/probes/bin/xtensa"),
        "xtensa\n",
    ),
];

/// How long a probe may run. Starting QEMU takes milliseconds; a hang is
/// a broken handler.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded probe of `target` (a QEMU target name) and what it prints,
/// or `None` for a target without one (microblaze, microblazeel, xtensaeb).
pub fn probe(target: &str) -> Option<(&'static [u8], &'static str)> {
    PROBES
        .iter()
        .find(|(name, _, _)| *name == target)
        .map(|&(_, bytes, expected)| (bytes, expected))
}

/// Targets with an embedded probe, in table order.
pub fn probed_targets() -> impl Iterator<Item = &'static str> {
    PROBES.iter().map(|(name, _, _)| *name)
}

/// Failure to run a probe at all.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No probe is embedded for this target.
    #[error("no probe for target `{0}`")]
    NoProbe(String),
    /// The private directory or file could not be made.
    #[error("failed to write the probe to `{}`", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `execve` failed: no handler, a missing interpreter, a denial...
    #[error("failed to execute the `{target}` probe")]
    Exec {
        /// The target.
        target: String,
        /// The cause (ENOEXEC: no handler matched).
        #[source]
        source: io::Error,
    },
    /// The probe ran longer than [`PROBE_TIMEOUT`] and was killed.
    #[error("the `{target}` probe did not finish within {seconds} s")]
    Timeout {
        /// The target.
        target: String,
        /// The limit.
        seconds: u64,
    },
}

/// What one execution of a probe gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutput {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A private directory (mode 0700) under the temporary directory, removed
/// on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "qus-verify-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            // A `FROM scratch` image (the registrar images) has no `/tmp`:
            // make it, as every system has it (mode 1777), and try again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let tmp = std::env::temp_dir();
                fs::DirBuilder::new().recursive(true).create(&tmp)?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
                fs::DirBuilder::new().mode(0o700).create(&path)?;
            }
            other => other?,
        }
        Ok(Self(path))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `target`'s probe once through whatever handler the kernel picks,
/// with `env` added to its environment.
pub fn run_probe(target: &str, env: &[(&str, &str)]) -> Result<ProbeOutput, ProbeError> {
    let (bytes, _) = probe(target).ok_or_else(|| ProbeError::NoProbe(target.to_owned()))?;
    let dir = PrivateDir::create().map_err(|source| ProbeError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let path = dir.0.join(target);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&path)
        .and_then(|mut f| io::Write::write_all(&mut f, bytes))
        .map_err(|source| ProbeError::Write {
            path: path.clone(),
            source,
        })?;
    let exec_error = |source| ProbeError::Exec {
        target: target.to_owned(),
        source,
    };
    let mut command = Command::new(&path);
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Another thread forking while the file was open for writing makes
    // `execve` fail with ETXTBSY for a moment.
    let mut child = loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => break other.map_err(exec_error)?,
        }
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(exec_error)? {
            break status;
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProbeError::Timeout {
                target: target.to_owned(),
                seconds: PROBE_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // The probes print a line or two: the pipes never fill before exit.
    let read = |r: Option<&mut dyn io::Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    };
    let stdout = read(child.stdout.as_mut().map(|s| s as &mut dyn io::Read));
    let stderr = read(child.stderr.as_mut().map(|s| s as &mut dyn io::Read));
    Ok(ProbeOutput {
        code: status.code(),
        stdout,
        stderr,
    })
}

/// What `--verify` found for one target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The probe ran and printed what it should.
    Runnable,
    /// An entry exists but the probe did not run as it should.
    NotRunnable {
        /// What happened and the likely cause.
        cause: String,
    },
    /// No `qemu-<target>` entry.
    NotRegistered,
    /// No probe is embedded for this target: not checked.
    NoProbe,
}

impl Verdict {
    /// Whether the target is known to run.
    pub fn is_runnable(&self) -> bool {
        *self == Self::Runnable
    }
}

/// Facts that explain a handler that exists and does not run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// This process is not in the initial user namespace: the binfmt_misc
    /// it sees may be a private one (Linux 6.7+) the kernel does not use for
    /// the exec.
    pub private_user_namespace: bool,
    /// The mount point is an autofs automount (`/proc/self/mountinfo`).
    pub automount: bool,
    /// SELinux is enforcing (`/sys/fs/selinux/enforce` is `1`).
    pub selinux_enforcing: bool,
}

impl Context {
    /// Reads the facts of this host for the mount at `mount`.
    pub fn read(mount: &Path, initial_user_namespace: bool) -> Self {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mount = mount.to_string_lossy();
        Self {
            private_user_namespace: !initial_user_namespace,
            automount: mountinfo.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(4) == Some(&mount.as_ref()) && l.contains(" - autofs ")
            }),
            selinux_enforcing: fs::read_to_string("/sys/fs/selinux/enforce")
                .is_ok_and(|s| s.trim() == "1"),
        }
    }
}

/// Runs a target's probe once and says what it gave: what [`verify_with`],
/// `--status --verify`, the daemon's checks and the compat `supported` list
/// execute. The real one is [`execute_probe`]; tests pass a stand-in that
/// answers from an in-memory registry.
pub type ProbeRunner<'a> = dyn Fn(&str) -> Result<ProbeOutput, ProbeError> + 'a;

/// Runs `target`'s embedded probe once through the kernel, with nothing
/// added to its environment: [`run_probe`] as a [`ProbeRunner`].
pub fn execute_probe(target: &str) -> Result<ProbeOutput, ProbeError> {
    run_probe(target, &[])
}

/// Verifies one target: `entry` is its `qemu-<target>` entry as read, if
/// any. Runs the probe unless there is no entry or no probe.
pub fn verify(target: &str, entry: Option<&Entry>, context: &Context) -> Verdict {
    verify_with(target, entry, context, &execute_probe)
}

/// [`verify`] with the probe run by `run`.
pub fn verify_with(
    target: &str,
    entry: Option<&Entry>,
    context: &Context,
    run: &ProbeRunner<'_>,
) -> Verdict {
    let Some(entry) = entry else {
        return Verdict::NotRegistered;
    };
    let Some((_, expected)) = probe(target) else {
        return Verdict::NoProbe;
    };
    judge(entry, expected, run(target), context)
}

/// The verdict for an entry from one probe run. Pure, for tests.
pub fn judge(
    entry: &Entry,
    expected: &str,
    ran: Result<ProbeOutput, ProbeError>,
    context: &Context,
) -> Verdict {
    let mut hints = Vec::new();
    let cause = match ran {
        Ok(out) if out.code == Some(0) && out.stdout == expected => return Verdict::Runnable,
        Ok(out) => {
            if !entry.flags.fix_binary {
                hints.push(format!(
                    "the interpreter `{}` may have been replaced since it was registered \
                     (without `F` the kernel opens it at each exec)",
                    entry.interpreter
                ));
            } else {
                hints.push(format!(
                    "the interpreter `{}` registered with `F` is not a working QEMU for this target",
                    entry.interpreter
                ));
            }
            format!(
                "the probe exited {} printing {:?} (expected {expected:?}){}",
                out.code
                    .map_or_else(|| "by a signal".to_owned(), |c| format!("with {c}")),
                out.stdout,
                if out.stderr.is_empty() {
                    String::new()
                } else {
                    format!(", stderr {:?}", out.stderr.trim_end())
                }
            )
        }
        Err(ProbeError::Exec { source, .. }) => {
            match source.raw_os_error() {
                Some(libc::ENOEXEC) if !entry.enabled => {
                    hints.push("the entry is disabled".into())
                }
                Some(libc::ENOEXEC) => hints.push(
                    "no handler matched: the registry this process sees may not be the \
                     one the kernel uses for this exec"
                        .into(),
                ),
                Some(libc::ENOENT) => hints.push(format!(
                    "the interpreter `{}` does not exist (registered without `F`, it must \
                     exist at each exec)",
                    entry.interpreter
                )),
                Some(libc::EACCES) if context.selinux_enforcing => {
                    hints.push("SELinux is enforcing: likely an SELinux denial".into())
                }
                Some(libc::EACCES) => hints.push(format!(
                    "permission denied: the interpreter `{}` or the temporary directory is not executable (noexec?)",
                    entry.interpreter
                )),
                _ => {}
            }
            format!("exec failed: {source}")
        }
        Err(e) => e.to_string(),
    };
    if context.private_user_namespace {
        hints.push(
            "this process is not in the initial user namespace: its binfmt_misc may be a \
             private registry (Linux 6.7+)"
                .into(),
        );
    }
    if context.automount {
        hints.push("the mount point is an automount that may hide the real binfmt_misc".into());
    }
    let mut cause = cause;
    for h in hints {
        cause.push_str("; ");
        cause.push_str(&h);
    }
    Verdict::NotRunnable { cause }
}

/// Verifies `targets` against `registry` and prints one line per target
/// (`runnable`, `not runnable`, `not registered`, `not checked`) on `out`
/// and an error per target that does not run on `err`. Returns the exit
/// status: 1 when any of them is not runnable or not registered.
pub(crate) fn report(
    registry: &dyn crate::registry::Registry,
    host: &crate::binfmt::HostFacts,
    run: &ProbeRunner<'_>,
    targets: &[&str],
    out: &mut dyn io::Write,
    err: &mut dyn io::Write,
) -> io::Result<u8> {
    let context = Context::read(registry.root(), host.initial_user_namespace);
    let mut failed = false;
    let mut lines = Vec::new();
    for target in targets {
        let name = format!("qemu-{target}");
        let entry = match registry.read(&name) {
            Ok(e) => e,
            Err(e) => {
                crate::app::print_error(err, &e)?;
                failed = true;
                continue;
            }
        };
        let verdict = verify_with(target, entry.as_ref(), &context, run);
        match &verdict {
            Verdict::Runnable => lines.push(format!("runnable        {name}")),
            Verdict::NoProbe => lines.push(format!("not checked     {name}  (no probe for it)")),
            Verdict::NotRegistered => {
                failed = true;
                lines.push(format!("not registered  {name}"));
                writeln!(err, "error: `{name}` is not registered")?;
            }
            Verdict::NotRunnable { cause } => {
                failed = true;
                lines.push(format!("not runnable    {name}  {cause}"));
                writeln!(
                    err,
                    "error: `{name}` is registered but not runnable: {cause}"
                )?;
            }
        }
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(if failed {
        crate::cli::exit::FAILED
    } else {
        crate::cli::exit::OK
    })
}

/// Failure of [`qemu_version`].
#[derive(Debug, thiserror::Error)]
pub enum QemuVersionError {
    /// The probe could not be run.
    #[error("failed to run the probe")]
    Probe(#[from] ProbeError),
    /// It ran but did not print a QEMU version line.
    #[error(
        "the `{target}` handler printed no QEMU version (stdout {stdout:?}): it is not QEMU, or QEMU ignored `QEMU_VERSION`"
    )]
    NoVersion {
        /// The target.
        target: String,
        /// What it printed.
        stdout: String,
    },
}

/// The version line of the QEMU the kernel runs for `target`
/// (`qemu-aarch64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)`): runs the
/// embedded probe through the registered handler with `QEMU_VERSION=1`,
/// which QEMU's linux-user answers by printing its version and exiting.
pub fn qemu_version(target: &str) -> Result<String, QemuVersionError> {
    let out = run_probe(target, &[("QEMU_VERSION", "1")])?;
    out.stdout
        .lines()
        .find(|l| l.contains(" version "))
        .map(str::to_owned)
        .ok_or(QemuVersionError::NoVersion {
            target: target.to_owned(),
            stdout: out.stdout,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Flags;
    use crate::targets;

    #[test]
    fn the_embedded_probes_are_the_fixtures_and_their_table() {
        let tsv = include_str!("../../fixtures/probes/probes.tsv");
        let rows: Vec<(&str, &str)> = tsv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((*f.first()?, *f.get(2)?))
            })
            .collect();
        let embedded: Vec<(&str, String)> = PROBES
            .iter()
            .map(|(t, _, out)| (*t, out.trim_end().to_owned()))
            .collect();
        assert_eq!(
            embedded,
            rows.iter()
                .map(|(t, u)| (*t, (*u).to_owned()))
                .collect::<Vec<_>>()
        );
        for (t, bytes, _) in PROBES {
            assert!(targets::find(t).is_some(), "{t}");
            assert!(bytes.starts_with(b"\x7fELF") && bytes.len() < 4096, "{t}");
            assert!(crate::elf::matches(targets::find(t).unwrap(), bytes), "{t}");
        }
        assert!(probe("microblaze").is_none());
        assert_eq!(probe("aarch64").map(|p| p.1), Some("aarch64\n"));
    }

    fn entry(flags: &str, enabled: bool) -> Entry {
        let mut e = Entry::expected(
            targets::find("aarch64").unwrap(),
            "/usr/bin/qemu-aarch64-static",
            Flags::parse(flags).unwrap(),
        );
        e.enabled = enabled;
        e
    }

    fn exec_err(errno: i32) -> Result<ProbeOutput, ProbeError> {
        Err(ProbeError::Exec {
            target: "aarch64".into(),
            source: io::Error::from_raw_os_error(errno),
        })
    }

    fn cause(v: Verdict) -> String {
        match v {
            Verdict::NotRunnable { cause } => cause,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_failure_gets_its_likely_cause() {
        let ctx = Context::default();
        let ok = Ok(ProbeOutput {
            code: Some(0),
            stdout: "aarch64\n".into(),
            stderr: String::new(),
        });
        assert_eq!(
            judge(&entry("F", true), "aarch64\n", ok, &ctx),
            Verdict::Runnable
        );
        let exits_1 = Ok(ProbeOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: String::new(),
        });
        let c = cause(judge(&entry("", true), "aarch64\n", exits_1, &ctx));
        assert!(
            c.contains("exited with 1") && c.contains("replaced since it was registered"),
            "{c}"
        );
        let c = cause(judge(
            &entry("", true),
            "aarch64\n",
            exec_err(libc::ENOENT),
            &ctx,
        ));
        assert!(c.contains("does not exist"), "{c}");
        let c = cause(judge(
            &entry("F", false),
            "aarch64\n",
            exec_err(libc::ENOEXEC),
            &ctx,
        ));
        assert!(c.contains("disabled"), "{c}");
        let private = Context {
            private_user_namespace: true,
            ..Context::default()
        };
        let c = cause(judge(
            &entry("F", true),
            "aarch64\n",
            exec_err(libc::ENOEXEC),
            &private,
        ));
        assert!(c.contains("private registry"), "{c}");
        let selinux = Context {
            selinux_enforcing: true,
            ..Context::default()
        };
        let c = cause(judge(
            &entry("F", true),
            "aarch64\n",
            exec_err(libc::EACCES),
            &selinux,
        ));
        assert!(c.contains("SELinux denial"), "{c}");
        let auto = Context {
            automount: true,
            ..Context::default()
        };
        let c = cause(judge(
            &entry("F", true),
            "aarch64\n",
            exec_err(libc::ENOEXEC),
            &auto,
        ));
        assert!(c.contains("automount"), "{c}");
        assert_eq!(verify("aarch64", None, &ctx), Verdict::NotRegistered);
        assert_eq!(
            verify("microblaze", Some(&entry("F", true)), &ctx),
            Verdict::NoProbe
        );
    }

    #[test]
    fn a_probe_of_this_hosts_own_architecture_runs_natively() {
        // No handler needed: the kernel's own ELF loader runs it. This checks
        // the private file, the exec and the output capture for real.
        let native = match std::env::consts::ARCH {
            "x86_64" => "x86_64",
            "aarch64" => "aarch64",
            _ => return,
        };
        let out = run_probe(native, &[]).unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout, format!("{native}\n"));
    }
}
