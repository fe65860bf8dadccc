//! `--private`: a binfmt_misc registry of one's own, and a command run in it.
//!
//! Since Linux 6.7 every user namespace that mounts binfmt_misc gets a
//! registry of its own: the kernel uses it for every exec in that namespace
//! and in the namespaces nested in it, it hides the host's, and the host's
//! never sees it. Any user may create a user namespace, so this needs no
//! root. [`enter`] does what `unshare -Urm` and a `mount -t binfmt_misc` do:
//! it creates a user and a mount namespace, maps the caller to root in it
//! (`/proc/self/uid_map` `0 <uid> 1`, `setgroups` denied, as `unshare -Ur`),
//! makes every mount private, mounts binfmt_misc at the mount point and
//! checks that what it sees there is a fresh, empty registry. The caller
//! then registers as usual (`app.rs`) and [`exec`]s the command, which
//! replaces this process: its exit status is the registrar's and signals
//! reach it directly.
//!
//! It never falls back to the host's registry: on a kernel older than 6.7
//! ([`check_kernel`]), where user namespaces are not available (disabled by
//! a sysctl, a seccomp filter, AppArmor), or where the mount is refused, it
//! stops with the cause ([`PrivateError`], exit status 125) and runs
//! nothing. [`Facts`] are what it reads to name the cause.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::app::{self, Env};
use crate::binfmt::{self, Binfmt, MountState};
use crate::cli::{Cli, exit};

/// The first kernel whose binfmt_misc is per user namespace.
pub const PRIVATE_SINCE: (u32, u32) = (6, 7);

/// What the kernel allows this process, read before trying: it names the
/// cause of a refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `uname -r`.
    pub kernel_release: String,
    /// Its `(major, minor)`.
    pub kernel: Option<(u32, u32)>,
    /// Debian's `kernel.unprivileged_userns_clone` (absent elsewhere).
    pub unprivileged_userns_clone: Option<bool>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns`.
    pub apparmor_restrict: Option<bool>,
    /// A seccomp filter is installed (`Seccomp: 2` in `/proc/self/status`),
    /// as in a container with the engine's default profile.
    pub seccomp_filter: bool,
    /// The caller's effective uid is 0.
    pub root: bool,
}

impl Facts {
    /// Reads them for this process.
    pub fn read() -> Self {
        let sysctl = |path: &str| {
            fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self {
            kernel: binfmt::parse_kernel_version(&release),
            kernel_release: release,
            unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone")
                .map(|v| v != 0),
            max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
            apparmor_restrict: sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .map(|v| v != 0),
            seccomp_filter: status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]),
            root: rustix::process::geteuid().is_root(),
        }
    }
}

/// Why a private registry could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateErrorKind {
    /// The kernel is older than 6.7: binfmt_misc is one registry for the
    /// whole host.
    KernelTooOld {
        /// `uname -r`.
        release: String,
    },
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNS)` failed.
    UserNamespace,
    /// Writing `/proc/self/<file>` (the uid and gid maps) failed.
    IdMap {
        /// `setgroups`, `uid_map` or `gid_map`.
        file: &'static str,
    },
    /// Making the mounts private failed.
    Propagation,
    /// Mounting binfmt_misc failed.
    Mount,
    /// The mount point shows entries: not a fresh private registry.
    NotPrivate {
        /// The entries seen.
        entries: Vec<String>,
    },
}

/// A private registry that could not be set up; nothing was registered and
/// no command ran.
#[derive(Debug, thiserror::Error)]
#[error("failed to set up a private binfmt_misc at `{}`: {}", mount.display(), describe(kind, source.as_ref(), facts))]
pub struct PrivateError {
    /// The mount point.
    pub mount: PathBuf,
    /// The step that failed.
    pub kind: PrivateErrorKind,
    /// What the kernel said.
    #[source]
    pub source: Option<io::Error>,
    /// What was known about the host, to name the cause.
    pub facts: Facts,
}

impl PrivateError {
    /// How to get past it.
    pub fn hint(&self) -> String {
        let errno = self.source.as_ref().and_then(io::Error::raw_os_error);
        let f = &self.facts;
        match &self.kind {
            PrivateErrorKind::KernelTooOld { .. } => {
                "register in the host's registry instead, as root: `sudo qus-register ...`".into()
            }
            PrivateErrorKind::UserNamespace | PrivateErrorKind::Mount
                if f.unprivileged_userns_clone == Some(false) && !f.root =>
            {
                "as root: `sysctl -w kernel.unprivileged_userns_clone=1`, or run as root".into()
            }
            PrivateErrorKind::UserNamespace if errno == Some(libc::ENOSPC) => {
                "as root: `sysctl -w user.max_user_namespaces=15000` (in the namespace that \
                 set the limit)"
                    .into()
            }
            PrivateErrorKind::UserNamespace | PrivateErrorKind::Mount if f.seccomp_filter => {
                "in a container, run it with `--security-opt seccomp=unconfined` (or a profile \
                 allowing `unshare` and `mount`), or register on the host"
                    .into()
            }
            PrivateErrorKind::UserNamespace | PrivateErrorKind::Mount
                if f.apparmor_restrict == Some(true) =>
            {
                "allow user namespaces to this program with an AppArmor profile (`userns,`), \
                 or as root: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
                    .into()
            }
            PrivateErrorKind::Mount if errno == Some(libc::ENOENT) => {
                "load binfmt_misc (as root: `modprobe binfmt_misc`), or name another \
                 directory with `--mount`"
                    .into()
            }
            _ => "register in the host's registry instead, as root: `sudo qus-register ...`".into(),
        }
    }
}

/// The message for one failure, with the cause the facts point at.
fn describe(kind: &PrivateErrorKind, source: Option<&io::Error>, f: &Facts) -> String {
    let errno = source.and_then(io::Error::raw_os_error);
    match kind {
        PrivateErrorKind::KernelTooOld { release } => format!(
            "Linux `{release}` is older than {}.{}, whose binfmt_misc is one registry for the \
             whole host: there is no private one to mount, and `--private` never writes the \
             host's",
            PRIVATE_SINCE.0, PRIVATE_SINCE.1
        ),
        PrivateErrorKind::UserNamespace => {
            let why = match errno {
                Some(libc::ENOSPC) if f.max_user_namespaces == Some(0) => {
                    "user namespaces are disabled (`user.max_user_namespaces` is 0)".to_owned()
                }
                Some(libc::ENOSPC) => format!(
                    "the limit on user namespaces is reached (`user.max_user_namespaces` is {})",
                    f.max_user_namespaces
                        .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
                ),
                Some(libc::EUSERS) => "user namespaces are nested 32 deep already".into(),
                Some(libc::EINVAL) => "the kernel has no user namespaces (CONFIG_USER_NS)".into(),
                Some(libc::EPERM | libc::EACCES) => refusal(f, "creating user namespaces"),
                _ => "the kernel refused".into(),
            };
            format!("cannot create a user namespace: {why}")
        }
        PrivateErrorKind::IdMap { file } => {
            format!("cannot write `/proc/self/{file}` of the new user namespace")
        }
        PrivateErrorKind::Propagation => "cannot make the mounts private".into(),
        PrivateErrorKind::Mount => {
            let why = match errno {
                Some(libc::ENOENT) => {
                    "the mount point does not exist (binfmt_misc is not loaded?)".to_owned()
                }
                Some(libc::ENODEV) => "the kernel has no binfmt_misc".into(),
                Some(libc::EPERM | libc::EACCES) => {
                    refusal(f, "mounting binfmt_misc in a user namespace")
                }
                _ => "the kernel refused".into(),
            };
            format!("cannot mount binfmt_misc in the new namespaces: {why}")
        }
        PrivateErrorKind::NotPrivate { entries } => format!(
            "the binfmt_misc mounted there shows {} entries ({}), so it is not a fresh \
             private registry; nothing is registered into it",
            entries.len(),
            entries.join(", ")
        ),
    }
}

/// The likeliest reason the kernel denied `what` with EPERM, from the facts.
fn refusal(f: &Facts, what: &str) -> String {
    let mut causes = Vec::new();
    if f.unprivileged_userns_clone == Some(false) && !f.root {
        causes.push(
            "unprivileged user namespaces are disabled (`kernel.unprivileged_userns_clone` is 0)",
        );
    }
    if f.apparmor_restrict == Some(true) {
        causes.push(
            "AppArmor restricts unprivileged user namespaces \
             (`kernel.apparmor_restrict_unprivileged_userns` is 1)",
        );
    }
    if f.seccomp_filter {
        causes.push("a seccomp filter forbids it (a container's default profile)");
    }
    if causes.is_empty() {
        format!("{what} is not permitted here (a security module, or a chroot)")
    } else {
        causes.join("; or ")
    }
}

/// Whether the kernel has per-namespace registries; `Err` names the kernel
/// when it has not. An unknown version is let through: the mount and the
/// emptiness check stop a kernel that has none.
pub fn check_kernel(facts: &Facts) -> Result<(), PrivateErrorKind> {
    match facts.kernel {
        Some(k) if k < PRIVATE_SINCE => Err(PrivateErrorKind::KernelTooOld {
            release: facts.kernel_release.clone(),
        }),
        _ => Ok(()),
    }
}

/// Moves this process into a new user and mount namespace with a private
/// binfmt_misc mounted at `mount`, fresh and empty. Must run while the
/// process has a single thread.
pub fn enter(mount: &Path, facts: &Facts) -> Result<(), PrivateError> {
    let fail = |kind, source| PrivateError {
        mount: mount.to_owned(),
        kind,
        source,
        facts: facts.clone(),
    };
    check_kernel(facts).map_err(|kind| fail(kind, None))?;
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    unshare().map_err(|e| fail(PrivateErrorKind::UserNamespace, Some(e)))?;
    map_self(uid, gid).map_err(|(file, e)| fail(PrivateErrorKind::IdMap { file }, Some(e)))?;
    mount_fresh(mount).map_err(|(kind, e)| fail(kind, e))?;
    Ok(())
}

/// Maps the caller's `uid` and `gid` to root in the user namespace it just
/// created (as `unshare -Ur` does); the file that could not be written, on
/// error.
///
/// # Errors
///
/// The `/proc/self` file (`setgroups`, `uid_map`, `gid_map`) and its error.
pub fn map_self(uid: u32, gid: u32) -> Result<(), (&'static str, io::Error)> {
    // `setgroups` must be denied before an unprivileged process may write
    // its gid map (user_namespaces(7)); kernels before 3.19 have no file.
    match fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(("setgroups", e)),
        _ => {}
    }
    for (file, id) in [("uid_map", uid), ("gid_map", gid)] {
        fs::write(format!("/proc/self/{file}"), format!("0 {id} 1\n")).map_err(|e| (file, e))?;
    }
    Ok(())
}

/// In a mount namespace of its own: makes every mount private, mounts a
/// fresh binfmt_misc at `mount` and checks that it is empty (a registry of
/// this namespace's own, not the host's).
///
/// # Errors
///
/// What failed, as a [`PrivateErrorKind`], with the system's error.
pub fn mount_fresh(mount: &Path) -> Result<(), (PrivateErrorKind, Option<io::Error>)> {
    // Mounts of the host's namespace may be shared: without this the
    // binfmt_misc mount below could propagate back to it.
    use rustix::mount::{MountFlags, MountPropagationFlags};
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| (PrivateErrorKind::Propagation, Some(e.into())))?;
    rustix::mount::mount(
        "binfmt_misc",
        mount,
        "binfmt_misc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| (PrivateErrorKind::Mount, Some(e.into())))?;
    // A registry this namespace just mounted is empty; anything else (a
    // kernel whose binfmt_misc is global) must not be written.
    let binfmt = Binfmt::new(mount);
    let entries = binfmt.names().unwrap_or_default();
    if binfmt.state() != MountState::Mounted || !entries.is_empty() {
        return Err((PrivateErrorKind::NotPrivate { entries }, None));
    }
    Ok(())
}

/// `unshare(CLONE_NEWUSER | CLONE_NEWNS)`.
#[expect(
    unsafe_code,
    reason = "rustix's unshare is unsafe for CLONE_FILES only; see the SAFETY note"
)]
fn unshare() -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    // SAFETY: `unshare_unsafe` is unsafe because `CLONE_FILES` would give
    // this thread a descriptor table other threads do not see. These flags
    // create a user and a mount namespace and leave the descriptor table
    // shared; and the process has one thread here (CLONE_NEWUSER fails with
    // EINVAL otherwise).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }
        .map_err(Into::into)
}

/// `qus-register --private [OPTIONS] [-- COMMAND...]`: enters a private
/// registry, registers there as `cli` asks, then executes the command.
/// Returns only when something failed: 125 before the command started,
/// 126 or 127 when it could not be executed. The registration's report
/// goes to stderr as one line (stdout is the command's).
pub fn run(cli: &Cli, err: &mut dyn Write) -> io::Result<u8> {
    let facts = Facts::read();
    if let Err(e) = enter(&cli.mount, &facts) {
        app::print_error(err, &e)?;
        writeln!(err, "  hint: {}", e.hint())?;
        return Ok(exit::PRIVATE_FAILED);
    }
    let binfmt = Binfmt::new(&cli.mount);
    let env = Env::host(&binfmt, cli.host_arch.as_deref());
    let command = command_line(&cli.command);
    let shown = command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut report = Vec::new();
    if app::run_with(cli, &env, &mut report, err)? != exit::OK {
        writeln!(
            err,
            "error: registering in the private binfmt_misc at `{}` failed; `{shown}` was not run",
            cli.mount.display()
        )?;
        return Ok(exit::PRIVATE_FAILED);
    }
    let report = String::from_utf8_lossy(&report);
    let mut lines = report.lines().skip_while(|l| !l.contains(" registered, "));
    writeln!(
        err,
        "qus-register: private binfmt_misc at `{}`: {}",
        cli.mount.display(),
        lines.next().unwrap_or("registered")
    )?;
    // `--verify`'s lines follow the summary.
    for line in lines {
        writeln!(err, "qus-register: {line}")?;
    }
    let e = exec(&command);
    app::print_error(err, &e)?;
    if let Some(hint) = e.hint() {
        writeln!(err, "  hint: {hint}")?;
    }
    Ok(e.exit_code())
}

/// The command `--private` runs: `command`, or `$SHELL` (else `/bin/sh`)
/// when none is given, as `unshare(1)` does.
pub fn command_line(command: &[OsString]) -> Vec<OsString> {
    if !command.is_empty() {
        return command.to_vec();
    }
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    vec![shell]
}

/// A command that could not be executed.
#[derive(Debug, thiserror::Error)]
#[error("failed to execute `{}`", program.to_string_lossy())]
pub struct ExecError {
    /// The program.
    pub program: OsString,
    /// Why.
    #[source]
    pub source: io::Error,
}

impl ExecError {
    /// For ENOENT on a program that exists: the missing file is its
    /// interpreter, which a handler registered without `F` opens at exec.
    pub fn hint(&self) -> Option<String> {
        let path = Path::new(&self.program);
        (self.source.kind() == io::ErrorKind::NotFound
            && path.components().count() > 1
            && path.is_file())
        .then(|| {
            format!(
                "`{}` exists, so the missing file is its interpreter: a handler registered \
                 without `F` needs the interpreter at its path in this filesystem (register \
                 with `-p yes`), or the program's dynamic loader is absent",
                path.display()
            )
        })
    }

    /// 127 when the program was not found, else 126, as shells do.
    pub fn exit_code(&self) -> u8 {
        if self.source.kind() == io::ErrorKind::NotFound {
            exit::NOT_FOUND
        } else {
            exit::CANNOT_EXECUTE
        }
    }
}

/// Replaces this process with `command` (searched in `PATH`); returns only
/// when that fails.
pub fn exec(command: &[OsString]) -> ExecError {
    let Some((program, args)) = command.split_first() else {
        return ExecError {
            program: OsString::new(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
    };
    let source = Command::new(program).args(args).exec();
    ExecError {
        program: program.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: PrivateErrorKind, errno: Option<i32>, facts: Facts) -> PrivateError {
        PrivateError {
            mount: "/proc/sys/fs/binfmt_misc".into(),
            kind,
            source: errno.map(io::Error::from_raw_os_error),
            facts,
        }
    }

    #[test]
    fn kernels_before_6_7_are_refused_before_anything_changes() {
        let old = Facts {
            kernel_release: "6.6.30-amd64".into(),
            kernel: Some((6, 6)),
            ..Facts::default()
        };
        let kind = check_kernel(&old).unwrap_err();
        let e = error(kind, None, old);
        let text = e.to_string();
        assert!(
            text.contains("`6.6.30-amd64` is older than 6.7") && text.contains("never writes"),
            "{text}"
        );
        assert!(e.hint().contains("sudo qus-register"));
        for k in [(6, 7), (6, 18), (7, 0)] {
            let f = Facts {
                kernel: Some(k),
                ..Facts::default()
            };
            assert_eq!(check_kernel(&f), Ok(()));
        }
        // Unknown: let through (the mount and the emptiness check decide).
        assert_eq!(check_kernel(&Facts::default()), Ok(()));
    }

    #[test]
    fn each_refusal_names_its_cause_and_hint() {
        let debian = Facts {
            unprivileged_userns_clone: Some(false),
            ..Facts::default()
        };
        let e = error(PrivateErrorKind::UserNamespace, Some(libc::EPERM), debian);
        assert!(
            e.to_string().contains("kernel.unprivileged_userns_clone"),
            "{e}"
        );
        assert!(
            e.hint()
                .contains("sysctl -w kernel.unprivileged_userns_clone=1")
        );

        let zero = Facts {
            max_user_namespaces: Some(0),
            ..Facts::default()
        };
        let e = error(PrivateErrorKind::UserNamespace, Some(libc::ENOSPC), zero);
        assert!(
            e.to_string().contains("`user.max_user_namespaces` is 0"),
            "{e}"
        );
        assert!(e.hint().contains("user.max_user_namespaces"));

        let container = Facts {
            seccomp_filter: true,
            ..Facts::default()
        };
        let e = error(
            PrivateErrorKind::UserNamespace,
            Some(libc::EPERM),
            container,
        );
        assert!(e.to_string().contains("seccomp filter"), "{e}");
        assert!(e.hint().contains("seccomp=unconfined"));

        let ubuntu = Facts {
            apparmor_restrict: Some(true),
            ..Facts::default()
        };
        let e = error(PrivateErrorKind::Mount, Some(libc::EPERM), ubuntu);
        assert!(e.to_string().contains("AppArmor"), "{e}");
        assert!(e.hint().contains("apparmor_restrict_unprivileged_userns=0"));

        let e = error(
            PrivateErrorKind::Mount,
            Some(libc::ENOENT),
            Facts::default(),
        );
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(e.hint().contains("--mount"));

        let e = error(
            PrivateErrorKind::NotPrivate {
                entries: vec!["qemu-aarch64".into()],
            },
            None,
            Facts::default(),
        );
        assert!(
            e.to_string().contains("not a fresh private registry"),
            "{e}"
        );
    }

    #[test]
    fn without_a_command_the_shell_runs() {
        let given = vec![OsString::from("make"), OsString::from("test")];
        assert_eq!(command_line(&given), given);
        let shell = command_line(&[]);
        assert_eq!(shell.len(), 1);
        assert!(!shell[0].is_empty());
    }

    #[test]
    fn exec_failures_are_126_or_127() {
        let e = exec(&[OsString::from("/nonexistent/qus-no-such-program")]);
        assert_eq!(e.exit_code(), 127);
        assert!(e.to_string().contains("/nonexistent/qus-no-such-program"));
        assert_eq!(e.hint(), None);
        // A directory cannot be executed.
        let e = exec(&[OsString::from("/")]);
        assert_eq!(e.exit_code(), 126);
        // A file that exists but whose interpreter does not.
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("script");
        fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let e = exec(&[script.into_os_string()]);
        assert_eq!(e.exit_code(), 127);
        assert!(
            e.hint().unwrap().contains("its interpreter"),
            "{:?}",
            e.hint()
        );
    }
}
