//! Engine-neutral values that cross the [`Runtime`](super::Runtime) boundary.
//!
//! The main types are [`RunSpec`] (what to run) and [`RunOutcome`] (what
//! happened), with [`BuildSpec`]/[`BuildOutcome`] for image builds. They hold
//! data only: no engine quirk (privilege fallback, API version, podman flags)
//! lives here, and nothing here talks to an engine.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RUN_LABEL, SCENARIO_LABEL};

/// How long a container may run when the scenario does not say.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// How long an image build may take when the scenario does not say.
///
/// Builds that install packages under emulation take minutes, hence the
/// larger default.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// One container to run: image, command and the knobs scenarios need.
///
/// Built with [`RunSpec::new`] and consuming `with_*` methods:
///
/// ```
/// use qus_harness::runtime::RunSpec;
///
/// let spec = RunSpec::new("arm64v8/ubuntu", ["uname", "-m"])
///     .with_privileged(true)
///     .with_env("LANG", "C");
/// assert_eq!(spec.command, ["uname", "-m"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Image reference; it must already exist locally (nothing is pulled).
    pub image: String,
    /// Command (arguments after the entrypoint); empty means the image's `CMD`.
    pub command: Vec<String>,
    /// Entrypoint override; `None` keeps the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Extra environment variables, in order.
    pub env: Vec<(String, String)>,
    /// Bind mounts in engine syntax: `/host:/ctr` or `/host:/ctr:ro`.
    pub binds: Vec<String>,
    /// Network to attach (`none`, `host`, `bridge`, or a named network).
    pub network: Option<String>,
    /// Whether the container needs full privileges (binfmt_misc writes).
    pub privileged: bool,
    /// Platform to select (`linux/arm64`); `None` lets the engine choose.
    pub platform: Option<String>,
    /// User (`uid`, `uid:gid` or a name) to run as.
    pub user: Option<String>,
    /// Labels put on the container; see [`RUN_LABEL`] and [`SCENARIO_LABEL`].
    pub labels: BTreeMap<String, String>,
    /// Wall-clock limit; when reached the container is killed and the
    /// outcome is marked [`RunOutcome::timed_out`].
    pub timeout: Duration,
}

impl RunSpec {
    /// A spec that runs `command` in `image`, unprivileged, with the
    /// default timeout.
    pub fn new<I, S>(image: impl Into<String>, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            image: image.into(),
            command: command.into_iter().map(Into::into).collect(),
            entrypoint: None,
            env: Vec::new(),
            binds: Vec::new(),
            network: None,
            privileged: false,
            platform: None,
            user: None,
            labels: BTreeMap::new(),
            timeout: DEFAULT_RUN_TIMEOUT,
        }
    }

    /// Replaces the image's entrypoint.
    pub fn with_entrypoint<I, S>(mut self, entrypoint: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(entrypoint.into_iter().map(Into::into).collect());
        self
    }

    /// Adds one environment variable.
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Adds one bind mount given in engine syntax (`/host:/ctr[:ro]`).
    pub fn with_bind(mut self, bind: impl Into<String>) -> Self {
        self.binds.push(bind.into());
        self
    }

    /// Adds one bind mount from its parts.
    pub fn with_mount(self, host: impl AsRef<Path>, container: &str, read_only: bool) -> Self {
        let suffix = if read_only { ":ro" } else { "" };
        let bind = format!("{}:{container}{suffix}", host.as_ref().display());
        self.with_bind(bind)
    }

    /// Attaches the container to `network`.
    pub fn with_network(mut self, network: impl Into<String>) -> Self {
        self.network = Some(network.into());
        self
    }

    /// Asks for full privileges (the runtime may use an equivalent fallback).
    pub fn with_privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// Selects a platform such as `linux/arm64`.
    pub fn with_platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// Runs the command as `user`.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Adds or replaces one label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Labels the container with the run id ([`RUN_LABEL`]), which
    /// [`Runtime::remove_labelled`](super::Runtime::remove_labelled) uses
    /// to clean up.
    pub fn with_run_id(self, run_id: impl Into<String>) -> Self {
        self.with_label(RUN_LABEL, run_id)
    }

    /// Labels the container with the scenario name ([`SCENARIO_LABEL`]).
    pub fn with_scenario(self, scenario: impl Into<String>) -> Self {
        self.with_label(SCENARIO_LABEL, scenario)
    }

    /// Sets the wall-clock limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The capabilities a runtime needs to run this spec, in a fixed order.
    ///
    /// A runner checks each with [`Runtime::supports`](super::Runtime::supports)
    /// and skips the step with the returned reason.
    pub fn required_capabilities(&self) -> Vec<StepCapability> {
        let mut needed = vec![StepCapability::Run];
        if self.privileged {
            needed.push(StepCapability::PrivilegedRun);
        }
        if !self.binds.is_empty() {
            needed.push(StepCapability::Bind);
        }
        if self.network.is_some() {
            needed.push(StepCapability::Network);
        }
        if self.platform.is_some() {
            needed.push(StepCapability::Platform);
        }
        needed
    }
}

/// One file placed in an inline build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path inside the context, relative (`bin/probe`).
    pub path: String,
    /// File contents.
    pub contents: Vec<u8>,
    /// Unix permission bits; `COPY` keeps them.
    pub mode: u32,
}

impl ContextFile {
    /// A regular file with mode `0644`.
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode: 0o644,
        }
    }

    /// An executable file with mode `0755`.
    pub fn executable(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            mode: 0o755,
            ..Self::new(path, contents)
        }
    }
}

/// Where a build takes its Containerfile and files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildContext {
    /// A Containerfile and files held in memory.
    Inline {
        /// The Containerfile text.
        containerfile: String,
        /// Files the Containerfile may `COPY`.
        files: Vec<ContextFile>,
    },
    /// A directory holding a `Dockerfile` or `Containerfile` and its files.
    ///
    /// `.dockerignore` is not honoured: the whole directory is sent.
    Dir(PathBuf),
}

/// One image to build and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Containerfile and files.
    pub context: BuildContext,
    /// Tag of the resulting image (`qus/register:latest`).
    pub tag: String,
    /// `ARG` values.
    pub build_args: BTreeMap<String, String>,
    /// Labels put on the image; see [`RUN_LABEL`].
    pub labels: BTreeMap<String, String>,
    /// Target platform (`linux/arm64`): the platform recorded in an image
    /// built `FROM scratch`, and the one `FROM` images must match.
    pub platform: Option<String>,
    /// Wall-clock limit; when reached the build is abandoned and the
    /// outcome is marked [`BuildOutcome::timed_out`].
    pub timeout: Duration,
    /// Runs every instruction again instead of reusing the engine's cached
    /// layers (a `--qemu` run, so each QEMU really runs each `RUN`).
    pub no_cache: bool,
}

impl BuildSpec {
    /// A build from `context`, tagged `tag`, with the default timeout.
    pub fn new(context: BuildContext, tag: impl Into<String>) -> Self {
        Self {
            context,
            tag: tag.into(),
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            platform: None,
            timeout: DEFAULT_BUILD_TIMEOUT,
            no_cache: false,
        }
    }

    /// A build from an in-memory Containerfile and files.
    pub fn inline(
        containerfile: impl Into<String>,
        files: Vec<ContextFile>,
        tag: impl Into<String>,
    ) -> Self {
        let context = BuildContext::Inline {
            containerfile: containerfile.into(),
            files,
        };
        Self::new(context, tag)
    }

    /// A build from a directory.
    pub fn dir(dir: impl Into<PathBuf>, tag: impl Into<String>) -> Self {
        Self::new(BuildContext::Dir(dir.into()), tag)
    }

    /// Sets one `ARG` value.
    pub fn with_build_arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.build_args.insert(name.into(), value.into());
        self
    }

    /// Adds or replaces one label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Builds for `platform` (`linux/arm64`).
    pub fn with_platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// Labels the image with the run id ([`RUN_LABEL`]).
    pub fn with_run_id(self, run_id: impl Into<String>) -> Self {
        self.with_label(RUN_LABEL, run_id)
    }

    /// Sets the wall-clock limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds without the engine's layer cache when `no_cache`.
    pub fn with_no_cache(mut self, no_cache: bool) -> Self {
        self.no_cache = no_cache;
        self
    }
}

/// What a finished container did.
///
/// A non-zero exit, a command that could not be started inside the
/// container, and a timeout are all outcomes: the scenario judges them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Exit status; a signal `n` shows as `128 + n`. A container whose
    /// process could not start uses the docker CLI's codes: 127 (not
    /// found), 126 (not executable), 125 (anything else, such as
    /// `exec format error`).
    pub exit_code: i64,
    /// Standard output, decoded lossily as UTF-8.
    pub stdout: String,
    /// Standard error, decoded lossily as UTF-8.
    pub stderr: String,
    /// Wall-clock time from the request to the collected output.
    pub duration: Duration,
    /// Whether the timeout was reached and the process killed.
    pub timed_out: bool,
}

impl RunOutcome {
    /// An outcome with `exit_code` and the given output (for fakes and tests).
    pub fn exited(exit_code: i64, stdout: impl Into<String>, stderr: impl Into<String>) -> Self {
        Self {
            exit_code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            ..Self::default()
        }
    }

    /// Whether the process exited with status 0 before its timeout.
    pub fn is_success(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// What an image build did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOutcome {
    /// Whether the image was built and tagged.
    pub success: bool,
    /// The builder's output, including its error message on failure.
    pub output: String,
    /// Wall-clock time of the build.
    pub duration: Duration,
    /// Whether the timeout was reached and the build abandoned.
    pub timed_out: bool,
}

/// The engines the harness can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Docker Engine through its API.
    Docker,
    /// Podman.
    Podman,
    /// Singularity or Apptainer.
    Singularity,
    /// No engine: commands run on the host.
    Host,
}

impl RuntimeKind {
    /// Every kind, in declaration order.
    pub const ALL: [RuntimeKind; 4] = [
        RuntimeKind::Docker,
        RuntimeKind::Podman,
        RuntimeKind::Singularity,
        RuntimeKind::Host,
    ];

    /// The lowercase name used in flags, labels and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Podman => "podman",
            RuntimeKind::Singularity => "singularity",
            RuntimeKind::Host => "host",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`RuntimeKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime `{input}` (expected docker, podman, singularity, apptainer or host)")]
pub struct ParseRuntimeKindError {
    /// The rejected text.
    pub input: String,
}

impl FromStr for RuntimeKind {
    type Err = ParseRuntimeKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "docker" => Ok(RuntimeKind::Docker),
            "podman" => Ok(RuntimeKind::Podman),
            // Apptainer is Singularity's successor and keeps its interface.
            "singularity" | "apptainer" => Ok(RuntimeKind::Singularity),
            "host" => Ok(RuntimeKind::Host),
            _ => Err(ParseRuntimeKindError {
                input: s.to_owned(),
            }),
        }
    }
}

/// How a runtime grants the privileges a `privileged` step asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivilegeMode {
    /// The engine's own privileged mode (`--privileged`).
    Privileged,
    /// All capabilities but those the host cannot grant, with AppArmor and
    /// seccomp unconfined: for hosts whose capability bounding set is
    /// smaller than `--privileged` asks for.
    CapabilityFallback,
    /// Neither works: privileged steps are skipped with the reason.
    Unavailable,
    /// The runtime starts no containers (the host runtime).
    NotApplicable,
}

impl fmt::Display for PrivilegeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrivilegeMode::Privileged => "privileged",
            PrivilegeMode::CapabilityFallback => "capability-fallback",
            PrivilegeMode::Unavailable => "unavailable",
            PrivilegeMode::NotApplicable => "not-applicable",
        })
    }
}

/// What [`Runtime::probe`](super::Runtime::probe) learned about the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Which engine.
    pub kind: RuntimeKind,
    /// Engine version (`20.10.24`), or the kernel release for the host.
    pub version: String,
    /// Negotiated API version, for engines that have one.
    pub api_version: Option<String>,
    /// How privileged steps will run.
    pub privilege: PrivilegeMode,
    /// Why privilege is not [`PrivilegeMode::Privileged`], when it is not:
    /// the engine's refusal message.
    pub privilege_note: Option<String>,
}

/// A feature a step may need from its runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepCapability {
    /// Run a container.
    Run,
    /// Run a container with full privileges.
    PrivilegedRun,
    /// Bind-mount host paths into a container.
    Bind,
    /// Choose the container's network.
    Network,
    /// Choose the image platform.
    Platform,
    /// Build an image.
    Build,
}

impl fmt::Display for StepCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepCapability::Run => "running containers",
            StepCapability::PrivilegedRun => "privileged containers",
            StepCapability::Bind => "bind mounts",
            StepCapability::Network => "network selection",
            StepCapability::Platform => "platform selection",
            StepCapability::Build => "image builds",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_spec_new_has_safe_defaults() {
        let spec = RunSpec::new("img", ["a", "b"]);
        assert_eq!(spec.image, "img");
        assert_eq!(spec.command, ["a", "b"]);
        assert!(!spec.privileged);
        assert!(spec.entrypoint.is_none() && spec.user.is_none() && spec.platform.is_none());
        assert!(spec.env.is_empty() && spec.binds.is_empty() && spec.labels.is_empty());
        assert_eq!(spec.timeout, DEFAULT_RUN_TIMEOUT);
    }

    #[test]
    fn run_spec_builders_set_every_field() {
        let spec = RunSpec::new("img", Vec::<String>::new())
            .with_entrypoint(["/probe"])
            .with_env("A", "1")
            .with_env("B", "2")
            .with_bind("/h:/c")
            .with_mount("/data", "/mnt", true)
            .with_network("none")
            .with_privileged(true)
            .with_platform("linux/arm64")
            .with_user("1000:1000")
            .with_run_id("run-1")
            .with_scenario("smoke")
            .with_label("extra", "x")
            .with_timeout(Duration::from_secs(7));
        assert_eq!(spec.entrypoint.as_deref(), Some(&["/probe".to_owned()][..]));
        assert_eq!(
            spec.env,
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(spec.binds, ["/h:/c", "/data:/mnt:ro"]);
        assert_eq!(spec.network.as_deref(), Some("none"));
        assert!(spec.privileged);
        assert_eq!(spec.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(spec.user.as_deref(), Some("1000:1000"));
        assert_eq!(spec.labels[RUN_LABEL], "run-1");
        assert_eq!(spec.labels[SCENARIO_LABEL], "smoke");
        assert_eq!(spec.labels["extra"], "x");
        assert_eq!(spec.timeout, Duration::from_secs(7));
    }

    #[test]
    fn labels_are_replaced_not_duplicated() {
        let spec = RunSpec::new("img", ["x"])
            .with_run_id("first")
            .with_run_id("second");
        assert_eq!(spec.labels.len(), 1);
        assert_eq!(spec.labels[RUN_LABEL], "second");
    }

    #[test]
    fn required_capabilities_follow_the_spec() {
        let plain = RunSpec::new("img", ["x"]);
        assert_eq!(plain.required_capabilities(), [StepCapability::Run]);
        let full = plain
            .with_privileged(true)
            .with_bind("/a:/b")
            .with_network("host")
            .with_platform("linux/s390x");
        assert_eq!(
            full.required_capabilities(),
            [
                StepCapability::Run,
                StepCapability::PrivilegedRun,
                StepCapability::Bind,
                StepCapability::Network,
                StepCapability::Platform,
            ]
        );
    }

    #[test]
    fn build_spec_builders() {
        let spec = BuildSpec::inline(
            "FROM scratch\n",
            vec![ContextFile::executable("probe", b"x".to_vec())],
            "qus/t:1",
        )
        .with_build_arg("ARCH", "arm64")
        .with_run_id("r")
        .with_timeout(Duration::from_secs(3));
        assert_eq!(spec.tag, "qus/t:1");
        assert_eq!(spec.build_args["ARCH"], "arm64");
        assert_eq!(spec.labels[RUN_LABEL], "r");
        assert_eq!(spec.timeout, Duration::from_secs(3));
        let BuildContext::Inline { files, .. } = &spec.context else {
            panic!("inline context expected");
        };
        assert_eq!(files[0].mode, 0o755);
        assert_eq!(ContextFile::new("a", Vec::new()).mode, 0o644);
        let dir = BuildSpec::dir("/tmp/ctx", "t");
        assert_eq!(dir.context, BuildContext::Dir("/tmp/ctx".into()));
        assert_eq!(dir.timeout, DEFAULT_BUILD_TIMEOUT);
    }

    #[test]
    fn runtime_kind_round_trips_through_text() {
        for kind in RuntimeKind::ALL {
            assert_eq!(kind.to_string().parse::<RuntimeKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.to_string().to_lowercase());
        }
        assert_eq!("Apptainer".parse(), Ok(RuntimeKind::Singularity));
        let err = "lxc".parse::<RuntimeKind>().unwrap_err();
        assert_eq!(err.input, "lxc");
        assert!(err.to_string().starts_with("unknown runtime `lxc`"));
    }

    #[test]
    fn outcome_success_requires_zero_and_no_timeout() {
        assert!(RunOutcome::exited(0, "", "").is_success());
        assert!(!RunOutcome::exited(1, "", "").is_success());
        let timed_out = RunOutcome {
            timed_out: true,
            ..RunOutcome::exited(0, "", "")
        };
        assert!(!timed_out.is_success());
    }
}
