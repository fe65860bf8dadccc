//! Running the host programs the builders need (`apt-get`, `dpkg-deb`,
//! `debootstrap`, `tar`, `cargo`), each with a time limit.
//!
//! The main type is [`Invocation`]. A program missing from `PATH` is a
//! [`ImageBuildError::MissingTool`] naming the Debian package that provides
//! it; a non-zero exit is a [`ImageBuildError::CommandFailed`] carrying the
//! end of its output. A command whose future is dropped (timeout, Ctrl-C,
//! a sibling step failing) is killed together with every process it started,
//! so no `debootstrap` keeps running in the background.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use tracing::{debug, warn};

use super::error::ImageBuildError;

/// How many lines of a failed command's output an error keeps.
const OUTPUT_TAIL_LINES: usize = 30;

/// A program and how to install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// The program name looked up on `PATH`.
    pub(crate) program: &'static str,
    /// What to tell a user who lacks it.
    pub(crate) hint: &'static str,
}

/// `apt-get update` and `apt-get download`.
pub(crate) const APT_GET: Tool = Tool {
    program: "apt-get",
    hint: "install the Debian package `apt`, or pass the package with `--deb PATH`",
};

/// `apt-cache show`: the versions a suite offers.
pub(crate) const APT_CACHE: Tool = Tool {
    program: "apt-cache",
    hint: "install the Debian package `apt`, or pass the package with `--deb PATH`",
};

/// `dpkg-deb -f` and `-x`.
pub(crate) const DPKG_DEB: Tool = Tool {
    program: "dpkg-deb",
    hint: "install the Debian package `dpkg`",
};

/// Root filesystems.
pub(crate) const DEBOOTSTRAP: Tool = Tool {
    program: "debootstrap",
    hint: "install the Debian package `debootstrap`",
};

/// Root filesystem tarballs (GNU tar keeps device nodes and ownership).
pub(crate) const TAR: Tool = Tool {
    program: "tar",
    hint: "install the Debian packages `tar` and `gzip`",
};

/// The source revision label.
pub(crate) const GIT: Tool = Tool {
    program: "git",
    hint: "install the Debian package `git`",
};

/// Unmounting what a killed `debootstrap` left mounted.
pub(crate) const UMOUNT: Tool = Tool {
    program: "umount",
    hint: "install the Debian package `mount`",
};

/// Copying images between Docker, OCI layouts and registries.
pub(crate) const SKOPEO: Tool = Tool {
    program: "skopeo",
    hint: "install the Debian package `skopeo`",
};

/// Compiling the static registrar.
pub(crate) const CARGO: Tool = Tool {
    program: "cargo",
    hint: "install Rust (https://rustup.rs), or pass a prebuilt static registrar with `--registrar PATH`",
};

/// One command to run: program, arguments, environment, time limit.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    tool: Tool,
    program: Option<PathBuf>,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    timeout: Duration,
    hint: Option<String>,
}

impl Invocation {
    /// `tool` looked up on `PATH`, with no arguments and a 10-minute limit.
    pub(crate) fn new(tool: Tool) -> Self {
        Self {
            tool,
            program: None,
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            timeout: Duration::from_secs(600),
            hint: None,
        }
    }

    /// Runs `program` (a path) instead of looking `tool` up.
    pub(crate) fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub(crate) fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub(crate) fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_remove.push(key.as_ref().to_owned());
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to suggest when the command fails.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The command line, for messages.
    pub(crate) fn display(&self) -> String {
        let program = self
            .program
            .as_deref()
            .map_or_else(|| self.tool.program.to_owned(), |p| p.display().to_string());
        std::iter::once(program)
            .chain(self.args.iter().map(|a| quote(&a.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The program's path: the explicit one, or `tool` found on `PATH`.
    pub(crate) fn resolve(&self) -> Result<PathBuf, ImageBuildError> {
        if let Some(program) = &self.program {
            return Ok(program.clone());
        }
        which::which(self.tool.program).map_err(|_| ImageBuildError::MissingTool {
            program: self.tool.program.to_owned(),
            hint: self.tool.hint.to_owned(),
        })
    }

    /// Runs the command to completion and returns its output; a non-zero
    /// exit, a spawn failure or the time limit is an error.
    pub(crate) async fn output(self) -> Result<Output, ImageBuildError> {
        let output = self.output_unchecked().await?;
        if output.status.success() {
            return Ok(output);
        }
        Err(ImageBuildError::CommandFailed {
            command: self.display(),
            status: describe_status(&output.status),
            output: tail(&output),
            hint: self.hint.clone(),
        })
    }

    /// Runs the command to completion, whatever its exit status.
    pub(crate) async fn output_unchecked(&self) -> Result<Output, ImageBuildError> {
        let program = self.resolve()?;
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        debug!(command = %self.display(), "running");
        let child = command.spawn().map_err(|source| ImageBuildError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        // Armed until the command has exited: if this future is dropped
        // first (or the limit is reached), every process the command
        // started is killed. The child is not `kill_on_drop`: killing the
        // leader first would orphan its children before they are found.
        let mut tree = TreeKill(child.id());
        let result = tokio::time::timeout(self.timeout, child.wait_with_output()).await;
        match result {
            Ok(Ok(output)) => {
                tree.0 = None;
                Ok(output)
            }
            Ok(Err(source)) => Err(ImageBuildError::Spawn {
                program: program.display().to_string(),
                source,
            }),
            Err(_elapsed) => Err(ImageBuildError::CommandTimedOut {
                command: self.display(),
                timeout: self.timeout,
            }),
        }
    }
}

/// Kills a process and all its descendants when dropped while armed.
struct TreeKill(Option<u32>);

impl Drop for TreeKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_tree(pid);
        }
    }
}

/// Sends `SIGKILL` to `pid` and every descendant (found through `/proc`),
/// twice, to catch processes forked during the first pass. The `kill`
/// program does the sending (this crate has no unsafe code).
fn kill_tree(pid: u32) {
    for _ in 0..2 {
        let mut pids = descendants(pid);
        pids.push(pid);
        let status = std::process::Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(err) = status {
            warn!(pid, error = %err, "failed to run `kill` on an abandoned command");
            return;
        }
    }
}

/// Every live descendant of `root`, read from `/proc/<pid>/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_ppid(&stat)?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after the
/// command name, which is parenthesised and may itself hold spaces or `)`.
fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// `exit status 1`, `signal 9`.
pub(crate) fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// The last lines of stderr, or of stdout when stderr is empty.
fn tail(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout)
    } else {
        stderr
    };
    last_lines(&text, OUTPUT_TAIL_LINES)
}

/// The last `n` lines of `text`.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = lines[start..].join("\n");
    out.push('\n');
    out
}

/// Quotes an argument for display when it holds shell-special characters.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn ppid_is_read_after_the_command_name() {
        assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let inv = Invocation::new(TAR).args(["-C", "/a b", "-czf", "x.tar.gz", "."]);
        assert_eq!(inv.display(), "tar -C '/a b' -czf x.tar.gz .");
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let tool = Tool {
            program: "qus-no-such-program",
            hint: "install the Debian package `nothing`",
        };
        let err = runtime()
            .block_on(Invocation::new(tool).output())
            .unwrap_err();
        assert!(
            matches!(&err, ImageBuildError::MissingTool { program, hint }
                if program == "qus-no-such-program" && hint.contains("`nothing`")),
            "{err:?}"
        );
    }

    #[test]
    fn a_failing_command_keeps_its_stderr_and_status() {
        let sh = Tool {
            program: "sh",
            hint: "",
        };
        let err = runtime()
            .block_on(
                Invocation::new(sh)
                    .args(["-c", "echo out; echo first >&2; echo last >&2; exit 3"])
                    .hint("try again")
                    .output(),
            )
            .unwrap_err();
        match err {
            ImageBuildError::CommandFailed {
                status,
                output,
                hint,
                ..
            } => {
                assert_eq!(status, "exit status 3");
                assert_eq!(output, "first\nlast\n");
                assert_eq!(hint.as_deref(), Some("try again"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_command_past_its_limit_is_killed_with_its_children() {
        let sh = Tool {
            program: "sh",
            hint: "",
        };
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let err = runtime()
            .block_on(
                Invocation::new(sh)
                    .args(["-c", &script])
                    .timeout(Duration::from_secs(3))
                    .output(),
            )
            .unwrap_err();
        assert!(
            matches!(err, ImageBuildError::CommandTimedOut { .. }),
            "{err:?}"
        );
        let child: u32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild `sleep` is gone (or a zombie about to be reaped).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, a)| a.trim().to_owned()));
            match state {
                None => break,
                Some(s) if s.starts_with('Z') => break,
                Some(_) if std::time::Instant::now() > deadline => {
                    panic!("`sleep` {child} survived")
                }
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
