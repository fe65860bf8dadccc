//! The documentation's examples, run as tests: one trial per marked block.
//!
//! Files: `README.md`, `CONTRIBUTING.md` and every `*.md` under `docs/`. Two
//! HTML comments, each on the line right before a fenced block, mark what is
//! checked (GitHub renders neither; the fence keeps its plain info string):
//!
//! - `<!-- runnable -->` before a block whose info string is exactly
//!   `console`: each line starting with `$ ` (or `# `, the root prompt) is a
//!   command; a command ending in `\` continues on the next line; other
//!   lines are output and are not compared. Each command runs with `sh -c`
//!   from the repository root, with the directory of the freshly built
//!   `qus-harness` and `qus-register` first on `PATH`, and must exit 0.
//!   Words after `runnable`: `exit=N` (the block's last command must exit
//!   with N instead; the others still 0), `root` (the block needs uid 0,
//!   as a `# ` prompt does) and `qemu` (the block runs foreign binaries
//!   through Debian's `qemu-user-static` in `/usr/bin`). A root block run by
//!   another user, or a `qemu` block where `qemu-user-static` is not
//!   installed (a fresh machine), is *ignored* with the reason; with
//!   `QUS_REQUIRE_KERNEL=1` that is a failure.
//! - `<!-- file: PATH -->` before any fenced block: the block must be the
//!   text of the file `PATH` (relative to the repository root), so a worked
//!   example cannot drift from the file the runnable blocks use.
//!
//! A marker that is malformed or not followed by a fitting block is a
//! failing trial, never a silently inert one. Trials are named
//! `<file>:<line of the opening fence>`; `parser::*` trials check the parser.
//! As root, trials run one at a time and each puts the host's binfmt_misc
//! entries back as it found them and fails if a block changed them:
//! runnable blocks must only look, never register.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};

/// Turns "needs root" into a failure instead of an ignored trial.
const REQUIRE_KERNEL: &str = "QUS_REQUIRE_KERNEL";
/// What a `qemu` block needs: an interpreter of Debian's `qemu-user-static`.
const QEMU_USER_STATIC: &str = "/usr/bin/qemu-aarch64-static";

/// Runnable blocks are meant to be fast; this only stops a hung command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of a failing command's output the message shows, per stream.
const OUTPUT_TAIL: usize = 3000;

fn main() {
    let args = Arguments::from_args();
    let repo = workspace_root();
    let mut trials = parser_trials();
    for file in doc_files(&repo) {
        let name = relative(&repo, &file);
        match std::fs::read_to_string(&file) {
            Ok(text) => trials.extend(file_trials(&repo, &name, &text)),
            Err(e) => trials.push(Trial::test(name.clone(), move || {
                Err(format!("failed to read `{name}`: {e}").into())
            })),
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// The repository root: the harness crate sits one level below it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate sits one level below the workspace root")
        .to_owned()
}

/// `README.md`, `CONTRIBUTING.md` (when present) and `docs/**/*.md`, sorted.
fn doc_files(repo: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CONTRIBUTING.md"]
        .iter()
        .map(|f| repo.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut docs = Vec::new();
    collect_markdown(&repo.join("docs"), &mut docs);
    docs.sort();
    files.extend(docs);
    files
}

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_markdown(&path, out),
            Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "md") => out.push(path),
            _ => {}
        }
    }
}

fn relative(repo: &Path, path: &Path) -> String {
    path.strip_prefix(repo)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// One trial per marked block (or malformed marker) of one file.
fn file_trials(repo: &Path, name: &str, text: &str) -> Vec<Trial> {
    parse(text)
        .into_iter()
        .map(|item| {
            let trial_name = format!("{name}:{}", item.line());
            let repo = repo.to_owned();
            match item {
                Item::Runnable(block) => {
                    Trial::ignorable_test(trial_name, move || run_block(&repo, &block))
                }
                Item::File { path, body, .. } => {
                    Trial::test(trial_name, move || check_file(&repo, &path, &body))
                }
                Item::Bad { message, .. } => Trial::test(trial_name, move || Err(message.into())),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Parsing.

/// What a marker asks of a `console` block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    /// The block needs uid 0.
    root: bool,
    /// The block needs Debian's `qemu-user-static`.
    qemu: bool,
    /// The status the last command must exit with.
    exit: i32,
}

/// One command of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cmd {
    /// 1-based line of its prompt.
    line: usize,
    /// The shell text, continuation lines included.
    text: String,
    /// Written with the root prompt `# `.
    root: bool,
}

/// A runnable `console` block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    marker: Marker,
    commands: Vec<Cmd>,
}

impl Block {
    fn needs_root(&self) -> bool {
        self.marker.root || self.commands.iter().any(|c| c.root)
    }
}

/// What a document holds for the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// `<!-- runnable ... -->` and its `console` block.
    Runnable(Block),
    /// `<!-- file: PATH -->` and its block's text.
    File {
        line: usize,
        path: String,
        body: String,
    },
    /// A marker that cannot be honoured, with the reason.
    Bad { line: usize, message: String },
}

impl Item {
    fn line(&self) -> usize {
        match self {
            Item::Runnable(b) => b.line,
            Item::File { line, .. } | Item::Bad { line, .. } => *line,
        }
    }
}

/// A marker comment, before it meets its block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Directive {
    Runnable(Marker),
    File(String),
    Bad(String),
}

/// An opening code fence: its character, length and info string.
struct Fence {
    ch: char,
    len: usize,
    info: String,
}

/// Up to three spaces of indentation, as CommonMark allows for fences.
fn unindent(line: &str) -> Option<&str> {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    (spaces <= 3).then(|| &line[spaces..])
}

impl Fence {
    fn open(line: &str) -> Option<Fence> {
        let rest = unindent(line)?;
        let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let len = rest.chars().take_while(|c| *c == ch).count();
        let info = rest[len..].trim();
        if len < 3 || (ch == '`' && info.contains('`')) {
            return None;
        }
        Some(Fence {
            ch,
            len,
            info: info.to_owned(),
        })
    }

    fn is_closed_by(&self, line: &str) -> bool {
        let Some(rest) = unindent(line) else {
            return false;
        };
        let run = rest.chars().take_while(|c| *c == self.ch).count();
        run >= self.len && rest[run..].trim().is_empty()
    }
}

/// Reads `<!-- runnable ... -->` or `<!-- file: PATH -->`; other comments
/// and lines are not directives.
fn directive(line: &str) -> Option<Directive> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    if let Some(path) = inner.strip_prefix("file:") {
        let path = path.trim();
        return Some(if path.is_empty() || path.contains(char::is_whitespace) {
            Directive::Bad(format!("`<!-- {inner} -->` names no single file"))
        } else {
            Directive::File(path.to_owned())
        });
    }
    let mut words = inner.split_whitespace();
    if words.next() != Some("runnable") {
        return None;
    }
    let mut marker = Marker {
        root: false,
        qemu: false,
        exit: 0,
    };
    for word in words {
        if word == "root" {
            marker.root = true;
        } else if word == "qemu" {
            marker.qemu = true;
        } else if let Some(n) = word.strip_prefix("exit=") {
            match n.parse::<u8>() {
                Ok(n) => marker.exit = i32::from(n),
                Err(_) => {
                    return Some(Directive::Bad(format!(
                        "invalid `{word}` in `<!-- {inner} -->`; expected `exit=N` with N in 0-255"
                    )));
                }
            }
        } else {
            return Some(Directive::Bad(format!(
                "unknown word `{word}` in `<!-- {inner} -->`; expected `root`, `qemu` or `exit=N`"
            )));
        }
    }
    Some(Directive::Runnable(marker))
}

/// The commands of a `console` block: `$ ` and `# ` lines, with `\`
/// continuations; `first_line` is the 1-based line of the first body line.
fn commands(body: &[&str], first_line: usize) -> Vec<Cmd> {
    let mut out: Vec<Cmd> = Vec::new();
    let mut continues = false;
    for (i, line) in body.iter().enumerate() {
        if continues && let Some(last) = out.last_mut() {
            last.text.push('\n');
            last.text.push_str(line);
        } else if let Some(text) = line.strip_prefix("$ ").or_else(|| line.strip_prefix("# ")) {
            out.push(Cmd {
                line: first_line + i,
                text: text.to_owned(),
                root: line.starts_with('#'),
            });
        } else {
            continue;
        }
        continues = line.ends_with('\\');
    }
    out
}

/// Finds every directive and the block it marks.
fn parse(text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    // A directive waiting for the fence on the next line: (0-based line, directive).
    let mut pending: Option<(usize, Directive)> = None;
    let unmatched = |line: usize, d: &Directive| Item::Bad {
        line: line + 1,
        message: match d {
            Directive::Runnable(_) => format!(
                "line {}: `<!-- runnable -->` must be on the line right before a ```console fence",
                line + 1
            ),
            Directive::File(_) => format!(
                "line {}: `<!-- file: ... -->` must be on the line right before a fenced block",
                line + 1
            ),
            Directive::Bad(m) => format!("line {}: {m}", line + 1),
        },
    };
    let mut i = 0;
    while i < lines.len() {
        let Some(fence) = Fence::open(lines[i]) else {
            if let Some((at, d)) = pending.take() {
                items.push(unmatched(at, &d));
            }
            pending = directive(lines[i]).map(|d| (i, d));
            i += 1;
            continue;
        };
        let close = (i + 1..lines.len()).find(|&j| fence.is_closed_by(lines[j]));
        let end = close.unwrap_or(lines.len());
        let body = &lines[i + 1..end];
        if let Some((at, d)) = pending.take() {
            let line = i + 1;
            items.push(match d {
                Directive::Bad(m) => Item::Bad {
                    line,
                    message: format!("line {}: {m}", at + 1),
                },
                _ if close.is_none() => Item::Bad {
                    line,
                    message: format!("the fence at line {line} is never closed"),
                },
                Directive::File(path) => Item::File {
                    line,
                    path,
                    body: body.iter().map(|l| format!("{l}\n")).collect(),
                },
                Directive::Runnable(_) if fence.info != "console" => Item::Bad {
                    line,
                    message: format!(
                        "a runnable block must be ```console, found {}",
                        if fence.info.is_empty() {
                            "no info string".to_owned()
                        } else {
                            format!("```{}", fence.info)
                        }
                    ),
                },
                Directive::Runnable(marker) => {
                    let commands = commands(body, i + 2);
                    if commands.is_empty() {
                        Item::Bad {
                            line,
                            message: "a runnable block needs at least one `$ ` or `# ` command"
                                .to_owned(),
                        }
                    } else {
                        Item::Runnable(Block {
                            line,
                            marker,
                            commands,
                        })
                    }
                }
            });
        }
        i = end + 1;
    }
    if let Some((at, d)) = pending {
        items.push(unmatched(at, &d));
    }
    items
}

// ---------------------------------------------------------------------------
// Running.

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn env_is_one(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// Runs every command of `block`; see the module documentation.
fn run_block(repo: &Path, block: &Block) -> Result<Completion, Failed> {
    if block.needs_root() && !is_root() {
        let reason = "needs root (a `root` marker or a `# ` prompt)";
        if env_is_one(REQUIRE_KERNEL) {
            return Err(format!("{REQUIRE_KERNEL}=1 but this block {reason}").into());
        }
        return Ok(Completion::ignored_with(reason));
    }
    if block.marker.qemu && !Path::new(QEMU_USER_STATIC).is_file() {
        let reason =
            format!("needs Debian's qemu-user-static (a `qemu` marker; no `{QEMU_USER_STATIC}`)");
        if env_is_one(REQUIRE_KERNEL) {
            return Err(format!("{REQUIRE_KERNEL}=1 but this block {reason}").into());
        }
        return Ok(Completion::ignored_with(reason));
    }
    let path = search_path(repo)?;
    let guard = HostGuard::take()?;
    let last = block.commands.len() - 1;
    for (n, cmd) in block.commands.iter().enumerate() {
        let want = if n == last { block.marker.exit } else { 0 };
        let ran = run_command(repo, &path, &cmd.text)?;
        if ran.code != Some(want) {
            let how = match (ran.timed_out, ran.code) {
                (true, _) => format!("timed out after {COMMAND_TIMEOUT:?} and was killed"),
                (false, Some(code)) => format!("exited with {code}"),
                (false, None) => "was killed by a signal".to_owned(),
            };
            return Err(format!(
                "line {}: `{}` {how}, expected {want}\n--- stdout\n{}\n--- stderr\n{}",
                cmd.line,
                cmd.text,
                tail(&ran.stdout),
                tail(&ran.stderr)
            )
            .into());
        }
    }
    guard.finish()?;
    Ok(Completion::Completed)
}

/// `PATH` with the directory of the built binaries first. `qus-register`
/// belongs to another package, so cargo does not build it for this test:
/// it is built once here (a no-op when fresh), next to `qus-harness`.
fn search_path(repo: &Path) -> Result<OsString, Failed> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bins = BUILT.get_or_init(|| build_registrar(repo)).clone()?;
    let mut dirs = vec![bins];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).map_err(|e| format!("failed to build `PATH`: {e}").into())
}

/// Builds `qus-register` into the directory of `qus-harness` (same target
/// directory and profile) and returns that directory.
fn build_registrar(repo: &Path) -> Result<PathBuf, String> {
    let harness = Path::new(env!("CARGO_BIN_EXE_qus-harness"));
    let bins = harness
        .parent()
        .ok_or("the harness binary has no directory")?;
    let target_dir = bins.parent().ok_or("the binary directory has no parent")?;
    let profile = bins
        .file_name()
        .and_then(|p| p.to_str())
        .ok_or("the binary directory has no name")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args([
            "build",
            "--quiet",
            "-p",
            "qus-registrar",
            "--bin",
            "qus-register",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(repo);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("failed to run `{}`: {e}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "failed to build `qus-register` ({}):\n{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr))
        ));
    }
    let registrar = bins.join("qus-register");
    if !registrar.is_file() {
        return Err(format!(
            "`{}` is missing after the build",
            registrar.display()
        ));
    }
    Ok(bins.to_owned())
}

/// What one command did.
struct Ran {
    /// Exit status; `None` when killed by a signal.
    code: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sh -c text` in `repo` with `path` as `PATH`, killing its process
/// group after [`COMMAND_TIMEOUT`].
fn run_command(repo: &Path, path: &OsString, text: &str) -> Result<Ran, Failed> {
    use std::os::unix::process::CommandExt as _;

    let mut child = Command::new("sh")
        .arg("-c")
        .arg(text)
        .current_dir(repo)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("failed to start `sh -c {text}`: {e}"))?;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let pid = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            break child.wait().map_err(|e| e.to_string())?;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Ran {
        code: status.code(),
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn reader<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The last [`OUTPUT_TAIL`] bytes of `text`, on a character boundary.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(OUTPUT_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// As root, one block at a time, with the host's binfmt_misc entries put
/// back afterwards (also when the block fails or panics).
struct HostGuard {
    _serial: Option<std::sync::MutexGuard<'static, ()>>,
    saved: Option<(Binfmt, Snapshot)>,
}

impl HostGuard {
    fn take() -> Result<Self, Failed> {
        static SERIAL: Mutex<()> = Mutex::new(());
        if !is_root() {
            return Ok(Self {
                _serial: None,
                saved: None,
            });
        }
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let binfmt = Binfmt::default();
        let saved = if binfmt.state() == MountState::Mounted {
            let snapshot = binfmt
                .snapshot()
                .map_err(|e| format!("failed to save the host's binfmt_misc entries: {e}"))?;
            Some((binfmt, snapshot))
        } else {
            None
        };
        Ok(Self {
            _serial: Some(serial),
            saved,
        })
    }

    /// Restores the entries; an error if the block had changed them.
    fn finish(mut self) -> Result<(), Failed> {
        let Some((binfmt, snapshot)) = self.saved.take() else {
            return Ok(());
        };
        let report = binfmt
            .restore(&snapshot)
            .map_err(|e| format!("failed to restore the host's binfmt_misc entries: {e}"))?;
        if report.changed() {
            return Err(format!(
                "the block changed the host's binfmt_misc entries (removed {:?}, restored {:?}; \
                 now undone): runnable blocks must only look",
                report.removed, report.restored
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Some((binfmt, snapshot)) = self.saved.take()
            && let Err(e) = binfmt.restore(&snapshot)
        {
            eprintln!("error: failed to restore the host's binfmt_misc entries: {e}");
        }
    }
}

/// A `<!-- file: PATH -->` block must be the file's text.
fn check_file(repo: &Path, path: &str, body: &str) -> Result<(), Failed> {
    let full = repo.join(path);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| format!("failed to read `{path}`, which the block says it shows: {e}"))?;
    if text == body {
        return Ok(());
    }
    let (mut block_line, mut file_line) = (body.lines(), text.lines());
    for n in 1.. {
        match (block_line.next(), file_line.next()) {
            (None, None) => break,
            (a, b) if a == b => continue,
            (a, b) => {
                return Err(format!(
                    "the block differs from `{path}` at its line {n}:\n  block: {}\n  file:  {}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                )
                .into());
            }
        }
    }
    Err(format!("the block differs from `{path}` in its final newline").into())
}

// ---------------------------------------------------------------------------
// The parser's own checks.

/// A check of the parser: `Err` with a message fails it.
type Check = fn() -> Result<(), String>;

fn parser_trials() -> Vec<Trial> {
    let checks: &[(&str, Check)] = &[
        ("parser::markers_and_commands", markers_and_commands),
        (
            "parser::nested_fences_hide_markers",
            nested_fences_hide_markers,
        ),
        ("parser::bad_markers_are_reported", bad_markers_are_reported),
        ("parser::file_blocks", file_blocks),
    ];
    checks
        .iter()
        .map(|&(name, check)| Trial::test(name, move || check().map_err(Failed::from)))
        .collect()
}

fn expect_eq<T: std::fmt::Debug + PartialEq>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}\nwant {want:?}"))
    }
}

fn markers_and_commands() -> Result<(), String> {
    let doc = "\
text
<!-- runnable exit=2 -->
```console
$ qus-harness validate \\
    broken.yaml
error: ...
# qus-register --status
```
```console
$ not marked
```
";
    expect_eq(
        parse(doc),
        vec![Item::Runnable(Block {
            line: 3,
            marker: Marker {
                root: false,
                qemu: false,
                exit: 2,
            },
            commands: vec![
                Cmd {
                    line: 4,
                    text: "qus-harness validate \\\n    broken.yaml".into(),
                    root: false,
                },
                Cmd {
                    line: 7,
                    text: "qus-register --status".into(),
                    root: true,
                },
            ],
        })],
    )?;
    let root = parse("<!-- runnable root -->\n```console\n$ true\n```\n");
    match root.as_slice() {
        [Item::Runnable(b)] if b.needs_root() && !b.marker.qemu && b.marker.exit == 0 => {}
        other => return Err(format!("{other:?}")),
    }
    let qemu = parse("<!-- runnable qemu exit=1 -->\n```console\n$ false\n```\n");
    match qemu.as_slice() {
        [Item::Runnable(b)] if !b.needs_root() && b.marker.qemu && b.marker.exit == 1 => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

fn nested_fences_hide_markers() -> Result<(), String> {
    let doc = "\
````markdown
<!-- runnable -->
```console
$ false
```
````
~~~
<!-- runnable -->
~~~
";
    expect_eq(parse(doc), Vec::new())
}

fn bad_markers_are_reported() -> Result<(), String> {
    let cases = [
        ("<!-- runnable -->\n\n```console\n$ true\n```\n", 1),
        ("<!-- runnable -->\n```sh\n$ true\n```\n", 2),
        ("<!-- runnable sudo -->\n```console\n$ true\n```\n", 2),
        ("<!-- runnable exit=300 -->\n```console\n$ true\n```\n", 2),
        ("<!-- runnable -->\n```console\nno prompt\n```\n", 2),
        ("<!-- runnable -->\n```console\n$ true\n", 2),
        ("text\n<!-- runnable -->", 2),
    ];
    for (doc, line) in cases {
        match parse(doc).as_slice() {
            [Item::Bad { line: l, .. }] if *l == line => {}
            other => return Err(format!("{doc:?}: {other:?}")),
        }
    }
    expect_eq(
        parse("<!-- a comment -->\n```console\n$ x\n```\n"),
        Vec::new(),
    )
}

fn file_blocks() -> Result<(), String> {
    expect_eq(
        parse("<!-- file: docs/a.yaml -->\n```yaml\na: 1\n\nb: 2\n```\n"),
        vec![Item::File {
            line: 2,
            path: "docs/a.yaml".into(),
            body: "a: 1\n\nb: 2\n".into(),
        }],
    )
}
