//! [`Namespace`]: one private binfmt_misc registry, held by a helper
//! process, and the way into it for host commands.
//!
//! [`Namespace::create`] starts the helper (`qus-harness internal
//! hold-namespace`, see `helper.rs`), writes its uid and gid maps (as
//! root: every id mapped to itself), and waits until its registry is
//! mounted. [`Namespace::binfmt`] reads and writes that registry from the
//! harness through `/proc/<holder>/root/proc/sys/fs/binfmt_misc`, with the
//! registrar's library. [`Launch`] starts a command inside: after `fork`,
//! the child joins the holder's user and mount namespaces (`setns`, as
//! `nsenter` does), goes back to the harness's working directory and, when
//! asked, becomes another user; then it executes the command, whose execs
//! the kernel matches against the private registry. Dropping the
//! [`Namespace`] closes the helper's standard input: it exits, and the
//! namespace and its registry are gone. Nothing here touches the host's
//! registry.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use qus_registrar::binfmt::Binfmt;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::helper::{BINFMT_MOUNT, MAP_SELF, MAPPED, READY, UNSHARED};

/// How long the helper may take to set up a namespace.
const SETUP_LIMIT: Duration = Duration::from_secs(20);

/// The hidden command line that makes `qus-harness` a namespace holder.
pub const HOLD_ARGS: [&str; 2] = ["internal", "hold-namespace"];

/// Why a private namespace could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// The helper could not be started.
    #[error("failed to start the namespace helper `{}`", helper.display())]
    Spawn {
        /// The helper program.
        helper: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The helper said why it could not.
    #[error("{message}")]
    Refused {
        /// The helper's message (the registrar's wording, with a hint).
        message: String,
    },
    /// Writing the helper's id maps failed.
    #[error("failed to write `/proc/{pid}/{file}` of the namespace helper")]
    IdMap {
        /// The helper's pid.
        pid: u32,
        /// `uid_map` or `gid_map`.
        file: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The helper stopped talking, or said something unexpected.
    #[error("the namespace helper {what}")]
    Protocol {
        /// What went wrong (`exited before it was ready`).
        what: String,
    },
    /// Opening the helper's namespaces failed.
    #[error("failed to open `/proc/{pid}/ns/{kind}` of the namespace helper")]
    Open {
        /// The helper's pid.
        pid: u32,
        /// `user` or `mnt`.
        kind: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A private user and mount namespace with its own binfmt_misc registry.
#[derive(Debug)]
pub struct Namespace {
    /// Killed when dropped (after its standard input is closed).
    _child: Child,
    /// Closing it ends the helper.
    _stdin: ChildStdin,
    pid: u32,
    user: OwnedFd,
    mount: OwnedFd,
}

impl Namespace {
    /// Starts `helper` (the `qus-harness` binary) as a namespace holder and
    /// waits until its registry is mounted. As root, every uid and gid is
    /// mapped to itself; otherwise the caller's own ids become root inside.
    pub async fn create(helper: &Path) -> Result<Self, NamespaceError> {
        let mut child = Command::new(helper)
            .args(HOLD_ARGS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NamespaceError::Spawn {
                helper: helper.to_owned(),
                source,
            })?;
        let pid = child.id().ok_or_else(|| NamespaceError::Protocol {
            what: "exited at once".to_owned(),
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout);
        let setup = async {
            expect_line(&mut lines, UNSHARED).await?;
            let answer = if rustix::process::geteuid().is_root() {
                // Identity maps: files keep their owners inside, and every
                // user exists (a setuid check runs as `nobody`).
                for file in ["uid_map", "gid_map"] {
                    std::fs::write(format!("/proc/{pid}/{file}"), "0 0 4294967295\n")
                        .map_err(|source| NamespaceError::IdMap { pid, file, source })?;
                }
                MAPPED
            } else {
                MAP_SELF
            };
            stdin
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .map_err(|e| NamespaceError::Protocol {
                    what: format!("stopped reading its input: {e}"),
                })?;
            expect_line(&mut lines, READY).await
        };
        match tokio::time::timeout(SETUP_LIMIT, setup).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(NamespaceError::Protocol {
                    what: format!("was not ready within {}s", SETUP_LIMIT.as_secs()),
                });
            }
        }
        let open = |kind: &'static str| {
            std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
                .map(OwnedFd::from)
                .map_err(|source| NamespaceError::Open { pid, kind, source })
        };
        Ok(Self {
            user: open("user")?,
            mount: open("mnt")?,
            _child: child,
            _stdin: stdin,
            pid,
        })
    }

    /// The holder's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `path` of the namespace, as the harness reaches it:
    /// `/proc/<holder>/root<path>`.
    pub fn path(&self, path: &Path) -> PathBuf {
        let mut reached = PathBuf::from(format!("/proc/{}/root", self.pid));
        reached.push(path.strip_prefix("/").unwrap_or(path));
        reached
    }

    /// The private registry, read and written from the harness.
    pub fn binfmt(&self) -> Binfmt {
        Binfmt::new(self.path(Path::new(BINFMT_MOUNT)))
    }
}

/// Reads one line; it must be `want`. An `error: ...` line is the helper's
/// refusal.
async fn expect_line(lines: &mut BufReader<ChildStdout>, want: &str) -> Result<(), NamespaceError> {
    let mut line = String::new();
    let read = lines
        .read_line(&mut line)
        .await
        .map_err(|e| NamespaceError::Protocol {
            what: format!("could not be read: {e}"),
        })?;
    let line = line.trim_end();
    if read == 0 {
        return Err(NamespaceError::Protocol {
            what: "exited before it was ready".to_owned(),
        });
    }
    if let Some(message) = line.strip_prefix("error: ") {
        return Err(NamespaceError::Refused {
            message: message.to_owned(),
        });
    }
    if line != want {
        return Err(NamespaceError::Protocol {
            what: format!("said `{line}` where `{want}` was expected"),
        });
    }
    Ok(())
}

/// How a host command starts: in a namespace, as another user, or both.
#[derive(Debug, Clone, Copy, Default)]
pub struct Launch<'a> {
    /// The private namespace to join.
    pub namespace: Option<&'a Namespace>,
    /// The uid and gid to run as (supplementary groups dropped).
    pub user: Option<(u32, u32)>,
    /// Execute the program with `execve` itself: a file the kernel refuses
    /// (`exec format error`: no handler for a foreign binary) fails to
    /// start, where the C library's `execvp` would hand it to `/bin/sh`.
    pub direct: bool,
}

impl Launch<'_> {
    /// Whether the command starts as the harness would start it anyway.
    pub fn is_plain(&self) -> bool {
        self.namespace.is_none() && self.user.is_none() && !self.direct
    }

    /// Makes `command` start as asked; a no-op for a plain launch.
    pub fn apply(&self, command: &mut Command) -> io::Result<()> {
        if self.is_plain() {
            return Ok(());
        }
        let namespaces = self
            .namespace
            .map(|ns| (ns.user.as_raw_fd(), ns.mount.as_raw_fd()));
        // Joining a mount namespace moves to its root: come back to where
        // the harness runs, which exists there too (the namespace's mounts
        // are copies of the host's).
        let cwd = std::env::current_dir()?;
        let cwd = CString::new(cwd.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let user = self.user;
        let direct = self
            .direct
            .then(|| Direct::of(command.as_std()))
            .transpose()?;
        pre_exec(command, move || {
            if let Some((user_fd, mount_fd)) = namespaces {
                join(user_fd, mount_fd)?;
                rustix::process::chdir(cwd.as_c_str())?;
            }
            if let Some((uid, gid)) = user {
                become_user(uid, gid)?;
            }
            match &direct {
                Some(direct) => Err(direct.execve()),
                None => Ok(()),
            }
        });
        Ok(())
    }
}

/// A program, its arguments and environment as C strings, prepared before
/// the fork for [`Direct::execve`].
struct Direct {
    program: CString,
    /// Keeps the strings `argv` points into.
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY-relevant: the pointers point into `_strings` and `program`, which
// the struct owns and never changes; sharing them between threads is as
// safe as sharing the strings.
#[expect(
    unsafe_code,
    reason = "raw pointers into owned strings; see the note above"
)]
unsafe impl Send for Direct {}
#[expect(
    unsafe_code,
    reason = "raw pointers into owned strings; see the note above"
)]
unsafe impl Sync for Direct {}

impl Direct {
    /// The command line and environment `command` would execute with.
    fn of(command: &std::process::Command) -> io::Result<Self> {
        let c = |bytes: &[u8]| {
            CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        };
        let program = c(command.get_program().as_bytes())?;
        let mut env: std::collections::BTreeMap<std::ffi::OsString, std::ffi::OsString> =
            std::env::vars_os().collect();
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => env.insert(key.to_owned(), value.to_owned()),
                None => env.remove(key),
            };
        }
        let mut strings = vec![program.clone()];
        for arg in command.get_args() {
            strings.push(c(arg.as_bytes())?);
        }
        let argc = strings.len();
        for (key, value) in &env {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            strings.push(c(&pair)?);
        }
        let pointers: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        let mut argv = pointers[..argc].to_vec();
        argv.push(std::ptr::null());
        let mut envp = pointers[argc..].to_vec();
        envp.push(std::ptr::null());
        Ok(Self {
            program,
            _strings: strings,
            argv,
            envp,
        })
    }

    /// `execve`; returns only its error.
    #[expect(
        unsafe_code,
        reason = "execve with prepared arrays; see the SAFETY note"
    )]
    fn execve(&self) -> io::Error {
        // SAFETY: `argv` and `envp` are null-terminated arrays of pointers
        // to NUL-terminated strings that `self` owns and that outlive the
        // call (it only returns on failure).
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
        }
        io::Error::last_os_error()
    }
}

/// Installs `hook` to run in the child between `fork` and `exec`.
#[expect(unsafe_code, reason = "pre_exec is unsafe; see the SAFETY note")]
fn pre_exec(command: &mut Command, hook: impl Fn() -> io::Result<()> + Send + Sync + 'static) {
    // SAFETY: the hook runs in the forked child, which has one thread. It
    // only makes system calls (`setns`, `chdir`, `setgroups`, `setresgid`,
    // `setresuid`, `execve`) on values prepared before the fork
    // (descriptors that stay open in the parent until the child has
    // executed, C strings and arrays of them); it allocates nothing and
    // takes no lock.
    unsafe {
        command.pre_exec(hook);
    }
}

/// `setns` into the user, then the mount namespace of the descriptors.
#[expect(unsafe_code, reason = "borrowing raw descriptors; see the SAFETY note")]
fn join(user_fd: i32, mount_fd: i32) -> io::Result<()> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    // SAFETY: both descriptors belong to the `Namespace` the launch
    // borrows, which outlives the spawn; the child holds copies of them.
    let (user, mount) = unsafe {
        (
            std::os::fd::BorrowedFd::borrow_raw(user_fd),
            std::os::fd::BorrowedFd::borrow_raw(mount_fd),
        )
    };
    move_into_link_name_space(user, Some(LinkNameSpaceType::User))?;
    move_into_link_name_space(mount, Some(LinkNameSpaceType::Mount))?;
    Ok(())
}

/// Drops supplementary groups, then sets every gid and uid.
fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    use rustix::process::{Gid, Uid};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    set_thread_groups(&[])?;
    set_thread_res_gid(gid, gid, gid)?;
    set_thread_res_uid(uid, uid, uid)?;
    Ok(())
}
