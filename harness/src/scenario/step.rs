//! Resolved steps: what one matrix instance runs, with every variable substituted.
//!
//! The main types are [`Step`] and [`Action`]. All values here were checked at load time
//! (and again after substitution): regexes are compiled, paths are absolute, binds are
//! parsed. The assertions on text and exit status ([`Matcher`], [`ExitExpectation`]) are
//! pure functions so the runner needs no parsing of its own. Nothing here runs anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::{Serialize, Serializer};

use super::model::serialize_opt_duration;
use super::raw::NetworkMode;
use super::span::Position;

/// One step of an instance.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The name from the file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Time limit for one attempt.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_duration"
    )]
    pub timeout: Option<Duration>,
    /// How many more attempts after a failure (0: run once).
    pub retries: u32,
    /// Where the step is written (its kind key).
    #[serde(skip)]
    pub position: Option<Position>,
    /// What the step does.
    pub action: Action,
}

impl Step {
    /// The name from the file, or the kind with its main argument (`exec true`).
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let detail = match &self.action {
            Action::Register(r) => match &r.registrar {
                Registrar::Image(image) => image.clone(),
                Registrar::Host { binary } => binary.clone(),
            },
            Action::Reset(r) => r.image.clone().unwrap_or_default(),
            Action::Binfmt(b) => b.entry.clone(),
            Action::Run(r) => r.image.clone(),
            Action::Build(b) => b.tag.clone().unwrap_or_default(),
            Action::Exec(e) => e.command.join(" "),
            Action::Probe(p) => p.target.clone(),
        };
        let kind = self.action.kind();
        if detail.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind} {detail}")
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Run the registrar.
    Register(Register),
    /// Remove every `qemu-*` entry.
    Reset(Reset),
    /// Assert one binfmt_misc entry.
    Binfmt(BinfmtCheck),
    /// Run a container.
    Run(Run),
    /// Build an image.
    Build(Build),
    /// Run a command on the host.
    Exec(Exec),
    /// Run a target's probe program.
    Probe(Probe),
}

impl Action {
    /// The kind's name as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Register(_) => "register",
            Action::Reset(_) => "reset",
            Action::Binfmt(_) => "binfmt",
            Action::Run(_) => "run",
            Action::Build(_) => "build",
            Action::Exec(_) => "exec",
            Action::Probe(_) => "probe",
        }
    }
}

/// `register`: run the registrar with arguments.
#[derive(Debug, Clone, Serialize)]
pub struct Register {
    /// Which registrar to run.
    pub registrar: Registrar,
    /// Its arguments.
    pub args: Vec<String>,
    /// Expected outcome.
    pub expect: Expect,
}

/// How the registrar runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Registrar {
    /// As a privileged container of this image.
    Image(String),
    /// As this binary on the host (the variable `REGISTRAR_BIN`).
    Host {
        /// Path or name of the binary.
        binary: String,
    },
}

/// `reset`: remove every `qemu-*` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Reset {
    /// Registrar image to run with `--reset`; `None` means the harness resets directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `binfmt`: assertions on one entry; `None` fields are not checked.
#[derive(Debug, Clone, Serialize)]
pub struct BinfmtCheck {
    /// Entry name, such as `qemu-aarch64`.
    pub entry: String,
    /// Whether it must exist; when `false`, no other field is set.
    pub present: bool,
    /// Whether it must be enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Exact flag letters, in any order; `""` means no flags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// Interpreter path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Magic, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub magic: Option<String>,
    /// Mask, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
}

/// `run`: run a container.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Image reference.
    pub image: String,
    /// Command; `None` keeps the image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Entrypoint; `None` keeps the image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Bind mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<Bind>,
    /// Network mode; `None` keeps the engine's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// Run privileged.
    pub privileged: bool,
    /// Platform, such as `linux/arm64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Expected outcome.
    pub expect: Expect,
}

/// `probe`: run a target's static probe program (`fixtures/probes/`), in
/// its image on container engines, directly on the host runtime.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The QEMU target (`aarch64`).
    pub target: String,
    /// The probe image on container engines.
    pub image: String,
    /// Arguments after the program.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Run a root-owned copy with mode 4755 as `user`.
    pub setuid: bool,
    /// `uid` or `uid:gid`, checked by [`probe_user`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Expected outcome.
    pub expect: Expect,
}

impl Probe {
    /// The uid and gid the probe runs as: `user`, else `65534` with
    /// `setuid`, else `None` (the harness's own).
    pub fn credentials(&self) -> Result<Option<(u32, u32)>, String> {
        match (&self.user, self.setuid) {
            (Some(user), _) => probe_user(user).map(Some),
            (None, true) => Ok(Some((NOBODY, NOBODY))),
            (None, false) => Ok(None),
        }
    }
}

/// The uid (and gid) `nobody` has on Debian, and in the kernel's overflow.
pub const NOBODY: u32 = 65534;

/// The image of a target's probe when a `probe` step names none.
pub fn default_probe_image(target: &str) -> String {
    format!("qus-fixtures/probe:{target}")
}

/// Parses `uid` or `uid:gid` (decimal numbers; the gid defaults to the
/// uid).
pub fn probe_user(text: &str) -> Result<(u32, u32), String> {
    let number = |part: &str, what: &str| {
        part.parse::<u32>()
            .ok()
            .filter(|n| *n != u32::MAX)
            .ok_or_else(|| format!("`{part}` is not a {what} (a decimal number)"))
    };
    match text.split_once(':') {
        Some((uid, gid)) => Ok((number(uid, "uid")?, number(gid, "gid")?)),
        None => {
            let uid = number(text, "uid")?;
            Ok((uid, uid))
        }
    }
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bind {
    /// Absolute host path.
    pub host: PathBuf,
    /// Absolute path in the container.
    pub container: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// `build`: build an image.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    /// What to build from.
    pub source: BuildSource,
    /// Tag for the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Build arguments.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Target platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Expected outcome.
    pub expect: BuildExpect,
}

/// What a `build` step builds from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildSource {
    /// Inline Containerfile text (the context is empty).
    Containerfile(String),
    /// A context directory (absolute) holding a Containerfile or Dockerfile.
    Context(PathBuf),
}

/// Expected outcome of a build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildExpect {
    /// Whether the build must succeed (`true`) or fail (`false`).
    pub success: bool,
    /// Condition on the build output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Matcher>,
}

/// `exec`: run a command on the host.
#[derive(Debug, Clone, Serialize)]
pub struct Exec {
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    /// Extra environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Expected outcome.
    pub expect: Expect,
}

/// Expected outcome of a process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Expect {
    /// Exit status.
    pub exit: ExitExpectation,
    /// Condition on standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<Matcher>,
    /// Condition on standard error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Matcher>,
}

/// Expected exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitExpectation {
    /// Exactly this status (default 0).
    Code(u8),
    /// Any status but 0.
    NonZero,
    /// Any status.
    Any,
}

impl Default for ExitExpectation {
    /// Success: status 0.
    fn default() -> Self {
        ExitExpectation::Code(0)
    }
}

impl ExitExpectation {
    /// Whether `status` satisfies the expectation.
    pub fn matches(self, status: i64) -> bool {
        match self {
            ExitExpectation::Code(code) => status == i64::from(code),
            ExitExpectation::NonZero => status != 0,
            ExitExpectation::Any => true,
        }
    }
}

impl std::fmt::Display for ExitExpectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitExpectation::Code(code) => write!(f, "{code}"),
            ExitExpectation::NonZero => f.write_str("nonzero"),
            ExitExpectation::Any => f.write_str("any"),
        }
    }
}

impl Serialize for ExitExpectation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ExitExpectation::Code(code) => serializer.serialize_u8(*code),
            other => serializer.collect_str(other),
        }
    }
}

/// Conditions on a text; every one that is set must hold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Matcher {
    /// The text equals this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The text contains each of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
    /// The text matches each of these.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_regexes"
    )]
    pub regex: Vec<Regex>,
    /// The text contains none of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_contains: Vec<String>,
    /// The text matches none of these.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_regexes"
    )]
    pub not_regex: Vec<Regex>,
}

impl Matcher {
    /// Describes each condition that `text` fails, such as "does not contain `aarch64`";
    /// empty when all hold.
    pub fn mismatches(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(expected) = &self.equals
            && text != expected
        {
            out.push(format!("does not equal {expected:?}"));
        }
        for needle in &self.contains {
            if !text.contains(needle.as_str()) {
                out.push(format!("does not contain {needle:?}"));
            }
        }
        for re in &self.regex {
            if !re.is_match(text) {
                out.push(format!("does not match regex `{}`", re.as_str()));
            }
        }
        for needle in &self.not_contains {
            if text.contains(needle.as_str()) {
                out.push(format!("contains {needle:?}"));
            }
        }
        for re in &self.not_regex {
            if re.is_match(text) {
                out.push(format!("matches regex `{}`", re.as_str()));
            }
        }
        out
    }

    /// Whether every condition holds for `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.mismatches(text).is_empty()
    }
}

fn serialize_regexes<S: Serializer>(regexes: &[Regex], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(regexes.iter().map(Regex::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_reports_each_failed_condition() {
        let m = Matcher {
            equals: None,
            contains: vec!["aarch64".into()],
            regex: vec![Regex::new("^a").unwrap()],
            not_contains: vec!["error".into()],
            not_regex: vec![Regex::new("x$").unwrap()],
        };
        assert!(m.is_match("aarch64\n"));
        assert_eq!(
            m.mismatches("an error x"),
            [
                "does not contain \"aarch64\"",
                "contains \"error\"",
                "matches regex `x$`"
            ]
        );
    }

    #[test]
    fn exit_expectations() {
        assert!(ExitExpectation::Code(0).matches(0));
        assert!(!ExitExpectation::Code(0).matches(1));
        assert!(ExitExpectation::NonZero.matches(-1));
        assert!(!ExitExpectation::NonZero.matches(0));
        assert!(ExitExpectation::Any.matches(42));
    }
}
