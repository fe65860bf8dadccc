//! What the doctor looks at, gathered once: [`Inputs`].
//!
//! [`Inputs::gather`] reads the running host: `/proc` files, the binfmt_misc
//! mount and its entries, the interpreters those entries name, the
//! binfmt.d directories, and the container engines (probed through the
//! harness's own runtimes, so the doctor sees what `run` would see).
//!
//! [`Inputs::from_fixture_dir`] reads the same files from a directory laid
//! out like a host's root (`proc/mounts`, `proc/self/status`,
//! `proc/sys/fs/binfmt_misc/…`, `usr/lib/binfmt.d/…`, the interpreters under
//! `usr/bin/`) plus a `host.json` holding what is not a file (kernel release,
//! uid, writability, the systemd unit state, engines, planned instances).
//! Both go through the same reader, so fixtures exercise the real parsing.
//!
//! Nothing here judges: that is `checks.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use qus_registrar::binfmt::{Binfmt, DEFAULT_MOUNT, MountState};
use qus_registrar::elf;
use qus_registrar::entry::Entry;
use serde::Deserialize;

use crate::runner::error_chain;
use crate::runtime::{
    DockerRuntime, EngineInfo, PodmanRuntime, PrivilegeMode, Runtime, RuntimeError, RuntimeKind,
    SingularityRuntime,
};

/// The directories systemd-binfmt reads, highest precedence first
/// (binfmt.d(5)): a file name in an earlier one hides the same name in the
/// later ones.
pub const BINFMT_D_DIRS: [&str; 4] = [
    "/etc/binfmt.d",
    "/run/binfmt.d",
    "/usr/local/lib/binfmt.d",
    "/usr/lib/binfmt.d",
];

/// How much of an interpreter is read to classify it: the ELF header, the
/// program headers and the `PT_INTERP` path sit in the first page.
const INTERPRETER_PREFIX: u64 = 64 * 1024;

/// Bound on `--version` and `systemctl` calls.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on connecting to an engine's API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on an engine probe (it builds a one-file image and starts two
/// containers to learn how privileged steps will run).
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where Docker answers when `DOCKER_HOST` is unset.
const DOCKER_DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Where Podman's API service answers when neither variable is set.
const PODMAN_DEFAULT_ENDPOINT: &str = "unix:///run/podman/podman.sock";

/// The fixture file holding the facts that are not files.
const FIXTURE_FACTS: &str = "host.json";

/// Everything the checks need, gathered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Kernel release (`uname -r`).
    pub kernel_release: String,
    /// `/proc/filesystems`; `None` when unreadable.
    pub filesystems: Option<String>,
    /// `/proc/mounts`; `None` when unreadable.
    pub mounts: Option<String>,
    /// The binfmt_misc mount point, as users type it.
    pub mount_point: PathBuf,
    /// Whether binfmt_misc is mounted there.
    pub mount_state: MountState,
    /// The mount's `status` file (`enabled` or `disabled`), when mounted.
    pub binfmt_status: Option<String>,
    /// `access(W_OK)` on `register` (on the mount point when not mounted);
    /// `None` when there is no mount point.
    pub writable: Option<bool>,
    /// Effective user id of this process.
    pub euid: u32,
    /// `/proc/self/uid_map`; `None` when unreadable.
    pub uid_map: Option<String>,
    /// `/proc/self/status` (its `CapBnd` line matters); `None` when unreadable.
    pub proc_status: Option<String>,
    /// `/proc/sys/kernel/cap_last_cap`: the highest capability this kernel knows.
    pub cap_last_cap: Option<u32>,
    /// systemd and its binfmt.d files.
    pub systemd: SystemdInputs,
    /// Every binfmt_misc entry, sorted by name (empty when not mounted).
    pub entries: Vec<Entry>,
    /// Why the entries could not be listed, when they could not.
    pub entries_error: Option<String>,
    /// What each `qemu-*` entry's interpreter is, by path.
    pub interpreters: BTreeMap<String, Interpreter>,
    /// Docker, Podman and Apptainer/Singularity, in that order.
    pub engines: Vec<EngineInput>,
    /// The planned instances (id, skip reason), when the caller planned
    /// some: filled from the planner, never gathered here.
    pub scenarios: Option<Vec<(String, Option<String>)>>,
    /// The static `/usr/bin/qemu-*-static` of the host (file names, sorted):
    /// the host runtime's emulators.
    pub host_emulators: Vec<String>,
    /// The emulators cache (`$QUS_CACHE_DIR/emulators`) and the complete
    /// package directories in it, when gathered on a host (fixtures record
    /// none).
    pub emulator_cache: Option<(PathBuf, Vec<String>)>,
}

/// systemd's part: whether it runs, the state of `systemd-binfmt`, and the
/// binfmt.d files it would re-apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemdInputs {
    /// `/run/systemd/system` exists: systemd is the init system.
    pub running: bool,
    /// `systemctl is-active systemd-binfmt` (`active`, `inactive`,
    /// `failed`...); `None` when it could not be asked.
    pub binfmt_unit: Option<String>,
    /// Every `*.conf` file of [`BINFMT_D_DIRS`], in precedence order then
    /// by name.
    pub binfmt_d: Vec<BinfmtDFile>,
}

/// One binfmt.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinfmtDFile {
    /// Its path on the host (`/usr/lib/binfmt.d/qemu-aarch64.conf`).
    pub path: String,
    /// Its text (empty for a file masked by a `/dev/null` symlink).
    pub text: String,
}

/// What an entry's interpreter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpreter {
    /// An ELF file without `PT_INTERP`: it runs anywhere, even in a
    /// container that has no libraries.
    Static,
    /// An ELF file that needs a dynamic loader (and its libraries).
    Dynamic {
        /// Its `PT_INTERP` path (`/lib64/ld-linux-x86-64.so.2`).
        loader: String,
    },
    /// No file at that path (as this process sees the file system).
    Missing,
    /// The file exists but is not a readable ELF executable.
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// One container engine, as the harness would find it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineInput {
    /// Which runtime it backs.
    pub kind: RuntimeKind,
    /// The engine's own name (`docker`, `podman`, `apptainer`, `singularity`).
    pub name: String,
    /// Where it was found (endpoint or command), or where it was looked for.
    pub location: String,
    /// Whether anything of it is here (a socket, a command on `PATH`).
    pub found: bool,
    /// Engine version, when known.
    #[serde(default)]
    pub version: Option<String>,
    /// Negotiated API version, for API engines that answered.
    #[serde(default)]
    pub api_version: Option<String>,
    /// How privileged steps would run, when the probe told.
    #[serde(default)]
    pub privilege: Option<PrivilegeMode>,
    /// The probe's note on privileges (the engine's refusal).
    #[serde(default)]
    pub privilege_note: Option<String>,
    /// Why a found engine cannot be used.
    #[serde(default)]
    pub error: Option<String>,
}

impl EngineInput {
    /// Found and answering: `--runtime auto` may pick it.
    pub fn is_usable(&self) -> bool {
        self.found && self.error.is_none()
    }
}

/// A fixture directory that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadFixtureError {
    /// A file could not be read.
    #[error("failed to read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `host.json` does not parse.
    #[error("failed to parse `{}`", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// The facts of a fixture that are not files (`host.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedFacts {
    kernel_release: String,
    euid: u32,
    #[serde(default)]
    binfmt_writable: Option<bool>,
    #[serde(default)]
    systemd_binfmt: Option<String>,
    engines: Vec<EngineInput>,
    #[serde(default)]
    scenarios: Option<Vec<(String, Option<String>)>>,
}

impl Inputs {
    /// Reads the running host. Never fails: whatever cannot be read is
    /// recorded as unknown (or as the error) for the checks to judge.
    pub async fn gather() -> Inputs {
        let root = Path::new("/");
        let systemd_running = root.join("run/systemd/system").is_dir();
        let (systemd_binfmt, engines) =
            tokio::join!(systemd_binfmt_state(systemd_running), gather_engines());
        let binfmt = Binfmt::default();
        let facts = RecordedFacts {
            kernel_release: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
            euid: rustix::process::geteuid().as_raw(),
            binfmt_writable: writability(&binfmt),
            systemd_binfmt,
            engines,
            scenarios: None,
        };
        let cache = crate::images::default_cache_dir().join("emulators");
        let cached = fs::read_dir(&cache)
            .map(|items| {
                let mut names: Vec<String> = items
                    .filter_map(Result::ok)
                    .filter(|i| i.path().join(".complete").is_file())
                    .map(|i| i.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            })
            .unwrap_or_default();
        Inputs {
            emulator_cache: Some((cache, cached)),
            ..read_root(root, facts)
        }
    }

    /// Reads a recorded host: `dir` is laid out like a root file system
    /// (`proc/filesystems`, `proc/mounts`, `proc/self/uid_map`,
    /// `proc/self/status`, `proc/sys/kernel/cap_last_cap`,
    /// `proc/sys/fs/binfmt_misc/`, `run/systemd/system/`, `*/binfmt.d/`,
    /// the interpreters) and holds `host.json` with `kernel_release`,
    /// `euid`, `binfmt_writable`, `systemd_binfmt`, `engines` and
    /// `scenarios`. Missing `/proc` files read as unknown, as on a host.
    ///
    /// # Errors
    ///
    /// When `host.json` cannot be read or does not parse.
    pub fn from_fixture_dir(dir: &Path) -> Result<Inputs, LoadFixtureError> {
        let path = dir.join(FIXTURE_FACTS);
        let text = fs::read_to_string(&path).map_err(|source| LoadFixtureError::Read {
            path: path.clone(),
            source,
        })?;
        let facts: RecordedFacts = serde_json::from_str(&text)
            .map_err(|source| LoadFixtureError::Parse { path, source })?;
        Ok(read_root(dir, facts))
    }

    /// These inputs with the planned instances (id, skip reason).
    pub fn with_scenarios(self, scenarios: Vec<(String, Option<String>)>) -> Self {
        Self {
            scenarios: Some(scenarios),
            ..self
        }
    }
}

/// `path` (absolute, as on the host) under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Reads every file input under `root`; `facts` supplies the rest.
fn read_root(root: &Path, facts: RecordedFacts) -> Inputs {
    let read = |path: &str| fs::read_to_string(under(root, path)).ok();
    let binfmt = Binfmt::new(under(root, DEFAULT_MOUNT));
    let mount_state = binfmt.state();
    let (entries, entries_error, binfmt_status) = if mount_state == MountState::Mounted {
        let status = fs::read_to_string(binfmt.root().join("status"))
            .ok()
            .map(|s| s.trim().to_owned());
        match binfmt.list() {
            Ok(entries) => (entries, None, status),
            Err(e) => (Vec::new(), Some(error_chain(&e)), status),
        }
    } else {
        (Vec::new(), None, None)
    };
    let interpreters = entries
        .iter()
        .filter(|e| e.is_owned())
        .map(|e| {
            let kind = inspect_interpreter(&under(root, &e.interpreter));
            (e.interpreter.clone(), kind)
        })
        .collect();
    Inputs {
        kernel_release: facts.kernel_release,
        filesystems: read("/proc/filesystems"),
        mounts: read("/proc/mounts"),
        mount_point: PathBuf::from(DEFAULT_MOUNT),
        mount_state,
        binfmt_status,
        writable: facts.binfmt_writable,
        euid: facts.euid,
        uid_map: read("/proc/self/uid_map"),
        proc_status: read("/proc/self/status"),
        cap_last_cap: read("/proc/sys/kernel/cap_last_cap").and_then(|s| s.trim().parse().ok()),
        systemd: SystemdInputs {
            running: under(root, "/run/systemd/system").is_dir(),
            binfmt_unit: facts.systemd_binfmt,
            binfmt_d: read_binfmt_d(root),
        },
        entries,
        entries_error,
        interpreters,
        engines: facts.engines,
        scenarios: facts.scenarios,
        host_emulators: host_emulators(root),
        emulator_cache: None,
    }
}

/// The static `qemu-*-static` files of `/usr/bin` under `root`, sorted.
fn host_emulators(root: &Path) -> Vec<String> {
    let dir = under(root, "/usr/bin");
    let Ok(items) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = items
        .filter_map(Result::ok)
        .map(|i| i.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("qemu-") && n.ends_with("-static"))
        .filter(|n| inspect_interpreter(&dir.join(n)) == Interpreter::Static)
        .collect();
    names.sort();
    names
}

/// Every `*.conf` file of the binfmt.d directories under `root`.
fn read_binfmt_d(root: &Path) -> Vec<BinfmtDFile> {
    let mut files = Vec::new();
    for dir in BINFMT_D_DIRS {
        let Ok(items) = fs::read_dir(under(root, dir)) else {
            continue;
        };
        let mut names: Vec<String> = items
            .filter_map(Result::ok)
            .map(|item| item.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".conf"))
            .collect();
        names.sort();
        for name in names {
            let path = format!("{dir}/{name}");
            // A mask is a symlink to /dev/null: it reads as empty.
            let text = fs::read_to_string(under(root, &path)).unwrap_or_default();
            files.push(BinfmtDFile { path, text });
        }
    }
    files
}

/// Classifies the file at `path` from its first [`INTERPRETER_PREFIX`] bytes.
fn inspect_interpreter(path: &Path) -> Interpreter {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Interpreter::Missing,
        Err(e) => {
            return Interpreter::Unreadable {
                reason: e.to_string(),
            };
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = file.take(INTERPRETER_PREFIX).read_to_end(&mut bytes) {
        return Interpreter::Unreadable {
            reason: e.to_string(),
        };
    }
    match elf::parse(&bytes) {
        Ok(header) => match header.interp {
            None => Interpreter::Static,
            Some(loader) => Interpreter::Dynamic { loader },
        },
        Err(e) => Interpreter::Unreadable {
            reason: match e.kind() {
                Some(elf::ElfErrorKind::NotElf) => "not an ELF file".to_owned(),
                Some(kind) => format!("unreadable ELF header: {kind}"),
                None => error_chain(&e),
            },
        },
    }
}

/// Whether this process may write the mount: `register` when mounted, the
/// mount point otherwise; `None` without a mount point.
fn writability(binfmt: &Binfmt) -> Option<bool> {
    let path = match binfmt.state() {
        MountState::Mounted => binfmt.root().join("register"),
        MountState::NotMounted => binfmt.root().to_owned(),
        MountState::Missing => return None,
    };
    Some(rustix::fs::access(&path, rustix::fs::Access::WRITE_OK).is_ok())
}

/// `systemctl is-active systemd-binfmt`, when systemd runs.
async fn systemd_binfmt_state(running: bool) -> Option<String> {
    if !running {
        return None;
    }
    // `is-active` exits non-zero for every state but `active` and still
    // prints the state: the text is the answer.
    let output = command_output("systemctl", &["is-active", "systemd-binfmt"])
        .await
        .ok()?;
    let state = output.stdout.trim();
    (!state.is_empty()).then(|| state.to_owned())
}

/// The three engine families, concurrently.
async fn gather_engines() -> Vec<EngineInput> {
    let (docker, podman, singularity) = tokio::join!(docker(), podman(), singularity());
    vec![docker, podman, singularity]
}

/// What a probe found, as an [`EngineInput`].
fn probed(name: &str, location: String, info: EngineInfo) -> EngineInput {
    EngineInput {
        kind: info.kind,
        name: name.to_owned(),
        location,
        found: true,
        version: Some(info.version).filter(|v| !v.is_empty()),
        api_version: info.api_version,
        privilege: Some(info.privilege),
        privilege_note: info.privilege_note,
        error: None,
    }
}

/// Connects with `connect` and probes, each under its timeout.
async fn connect_and_probe<R, F>(connect: F) -> Result<EngineInfo, String>
where
    R: Runtime,
    F: Future<Output = Result<R, RuntimeError>>,
{
    let runtime = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(runtime)) => runtime,
        Ok(Err(e)) => return Err(error_chain(&e)),
        Err(_) => return Err(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, runtime.probe()).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(_) => Err(format!(
            "the probe did not finish within {}s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// Whether a socket endpoint's file exists (other schemes count as present:
/// someone configured them).
fn endpoint_present(endpoint: &str) -> bool {
    match endpoint.strip_prefix("unix://") {
        Some(path) => Path::new(path).exists(),
        None => endpoint.contains("://"),
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn docker() -> EngineInput {
    let endpoint = env_var("DOCKER_HOST").unwrap_or_else(|| DOCKER_DEFAULT_ENDPOINT.to_owned());
    match connect_and_probe(DockerRuntime::connect()).await {
        Ok(info) => probed("docker", endpoint, info),
        Err(error) => {
            let found = endpoint_present(&endpoint) || which::which("docker").is_ok();
            let version = match command_output("docker", &["--version"]).await {
                Ok(out) if out.success => version_word(&out.stdout),
                _ => None,
            };
            EngineInput {
                kind: RuntimeKind::Docker,
                name: "docker".to_owned(),
                location: endpoint,
                found,
                version,
                api_version: None,
                privilege: None,
                privilege_note: None,
                error: found.then_some(error),
            }
        }
    }
}

async fn podman() -> EngineInput {
    let endpoint = env_var("QUS_PODMAN_SOCKET")
        .or_else(|| env_var("CONTAINER_HOST"))
        .map(|e| {
            if e.contains("://") {
                e
            } else {
                format!("unix://{e}")
            }
        })
        .unwrap_or_else(|| PODMAN_DEFAULT_ENDPOINT.to_owned());
    match connect_and_probe(PodmanRuntime::connect()).await {
        Ok(info) => probed("podman", endpoint, info),
        Err(error) => {
            let cli = command_output("podman", &["--version"]).await.ok();
            let version = cli
                .as_ref()
                .filter(|out| out.success)
                .and_then(|out| version_word(&out.stdout));
            let found = endpoint_present(&endpoint) || cli.is_some();
            EngineInput {
                kind: RuntimeKind::Podman,
                name: "podman".to_owned(),
                location: endpoint,
                found,
                version,
                api_version: None,
                privilege: None,
                privilege_note: None,
                error: found.then_some(error),
            }
        }
    }
}

async fn singularity() -> EngineInput {
    let command = env_var("QUS_SINGULARITY_BIN").or_else(|| {
        ["apptainer", "singularity"]
            .into_iter()
            .find(|name| which::which(name).is_ok())
            .map(str::to_owned)
    });
    let Some(command) = command else {
        return EngineInput {
            kind: RuntimeKind::Singularity,
            name: "apptainer".to_owned(),
            location: "`apptainer` or `singularity` on PATH, or QUS_SINGULARITY_BIN".to_owned(),
            found: false,
            version: None,
            api_version: None,
            privilege: None,
            privilege_note: None,
            error: None,
        };
    };
    // `--version` directly too: it names the engine (`apptainer version
    // 1.4.5`, `singularity-ce version 4.1.0`) and tells a broken command
    // from the runtime's other needs (Docker, for the images).
    let (name, version, cli_error) = match command_output(&command, &["--version"]).await {
        Ok(out) if out.success => {
            let name = out.stdout.split_whitespace().next().map(str::to_owned);
            (name, version_word(&out.stdout), None)
        }
        Ok(out) => (
            None,
            None,
            Some(format!(
                "`{command} --version` failed: {}",
                out.stderr.trim()
            )),
        ),
        Err(e) => (None, None, Some(e)),
    };
    let name = name.unwrap_or_else(|| {
        Path::new(&command)
            .file_name()
            .map_or_else(|| command.clone(), |n| n.to_string_lossy().into_owned())
    });
    let base = EngineInput {
        kind: RuntimeKind::Singularity,
        name,
        location: command.clone(),
        found: true,
        version,
        api_version: None,
        privilege: None,
        privilege_note: None,
        error: None,
    };
    if let Some(error) = cli_error {
        return EngineInput {
            error: Some(error),
            ..base
        };
    }
    match connect_and_probe(SingularityRuntime::connect(command)).await {
        Ok(info) => EngineInput {
            // The probe says `apptainer 1.4.5`; the bare number reads better
            // after the name.
            version: base
                .version
                .or(Some(info.version).filter(|v| !v.is_empty())),
            privilege: Some(info.privilege),
            privilege_note: info.privilege_note,
            ..base
        },
        Err(error) => EngineInput {
            error: Some(error),
            ..base
        },
    }
}

/// The version in `podman version 4.3.1`, `Docker version 28.1.1, build x`,
/// `apptainer version 1.4.5`: the word after `version`.
fn version_word(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "version")?;
    words
        .next()
        .map(|w| w.trim_end_matches(',').to_owned())
        .filter(|w| !w.is_empty())
}

struct CommandOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with a timeout; `Err` when it cannot be started or
/// does not finish in time.
async fn command_output(program: &str, args: &[&str]) -> Result<CommandOutput, String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Ok(Ok(out)) => Ok(CommandOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(format!("failed to run `{program}`: {e}")),
        Err(_) => Err(format!(
            "`{program} {}` did not finish within {}s",
            args.join(" "),
            COMMAND_TIMEOUT.as_secs()
        )),
    }
}

/// The recorded host `case` under `tests/fixtures/doctor/`.
#[cfg(test)]
pub(super) fn fixture(case: &str) -> Inputs {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor")
        .join(case);
    Inputs::from_fixture_dir(&dir).unwrap_or_else(|e| panic!("fixture `{case}`: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_reads_proc_files_mount_entries_and_binfmt_d() {
        let inputs = fixture("systemd-host");
        assert_eq!(inputs.kernel_release, "6.8.0-45-generic");
        assert_eq!(inputs.mount_state, MountState::Mounted);
        assert_eq!(inputs.binfmt_status.as_deref(), Some("enabled"));
        let names: Vec<&str> = inputs.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["qemu-aarch64", "qemu-riscv64"]);
        assert_eq!(
            inputs.interpreters["/usr/bin/qemu-riscv64-static"],
            Interpreter::Static
        );
        assert!(inputs.systemd.running);
        assert_eq!(inputs.systemd.binfmt_unit.as_deref(), Some("active"));
        let paths: Vec<&str> = inputs
            .systemd
            .binfmt_d
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "/etc/binfmt.d/qemu-aarch64.conf",
                "/etc/binfmt.d/qemu-riscv64.conf",
                "/usr/lib/binfmt.d/python3.12.conf",
                "/usr/lib/binfmt.d/qemu-riscv64.conf",
            ]
        );
        assert_eq!(inputs.cap_last_cap, Some(40));
        assert!(inputs.scenarios.is_none());
    }

    #[test]
    fn fixture_without_mount_point_has_no_entries() {
        let inputs = fixture("no-binfmt");
        assert_eq!(inputs.mount_state, MountState::Missing);
        assert!(inputs.entries.is_empty());
        assert_eq!(inputs.entries_error, None);
        assert_eq!(inputs.writable, None);
        assert!(!inputs.systemd.running);
    }

    #[test]
    fn missing_host_json_is_a_read_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = Inputs::from_fixture_dir(dir.path()).unwrap_err();
        assert!(matches!(err, LoadFixtureError::Read { .. }));
        assert!(err.to_string().contains("host.json"), "{err}");
        fs::write(dir.path().join("host.json"), "{\"kernel_release\": 4}").unwrap();
        let err = Inputs::from_fixture_dir(dir.path()).unwrap_err();
        assert!(matches!(err, LoadFixtureError::Parse { .. }));
    }

    #[test]
    fn version_word_reads_every_engine_spelling() {
        assert_eq!(
            version_word("podman version 4.3.1\n").as_deref(),
            Some("4.3.1")
        );
        assert_eq!(
            version_word("Docker version 28.1.1, build 4eba377").as_deref(),
            Some("28.1.1")
        );
        assert_eq!(
            version_word("apptainer version 1.4.5").as_deref(),
            Some("1.4.5")
        );
        assert_eq!(version_word("garbage"), None);
    }

    #[test]
    fn interpreter_classification_covers_missing_static_dynamic_and_text() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            inspect_interpreter(&dir.path().join("nope")),
            Interpreter::Missing
        );
        let script = dir.path().join("script");
        fs::write(&script, "#!/bin/sh\nexec qemu-aarch64 \"$@\"\n").unwrap();
        assert_eq!(
            inspect_interpreter(&script),
            Interpreter::Unreadable {
                reason: "not an ELF file".to_owned()
            }
        );
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor");
        assert_eq!(
            inspect_interpreter(&fixtures.join("ci-host/usr/bin/qemu-aarch64-static")),
            Interpreter::Static
        );
        assert_eq!(
            inspect_interpreter(&fixtures.join("broken-host/usr/bin/qemu-arm")),
            Interpreter::Dynamic {
                loader: "/lib64/ld-linux-x86-64.so.2".to_owned()
            }
        );
    }

    #[test]
    fn endpoints_without_a_socket_file_are_absent() {
        assert!(!endpoint_present("unix:///nonexistent/docker.sock"));
        assert!(endpoint_present("tcp://10.0.0.1:2375"));
    }
}
