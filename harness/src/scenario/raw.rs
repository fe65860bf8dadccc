//! The scenario file as written: serde and schemars types with source positions.
//!
//! The main type is [`RawScenario`]. Every struct denies unknown keys, and every string that
//! may hold `${...}` references keeps its position so later errors can point at it. Required
//! keys are `Option`s marked `#[schemars(required)]`: the validator reports a missing key at
//! the mapping that lacks it, which is more precise than serde's report. This module checks
//! only shapes and types; `validate.rs` checks values and `expand.rs` resolves variables.
//!
//! No `serde(untagged)`: values that may take two shapes (a matcher given as a string or a
//! mapping, `exit: 0` or `exit: nonzero`) have small hand-written visitors that dispatch on
//! the YAML node kind, which keeps positions and error messages precise.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::span::{Sp, Text};

/// The step kinds, in the order the schema and messages list them.
pub(crate) const STEP_KINDS: &[&str] = &[
    "register", "reset", "binfmt", "run", "build", "exec", "probe",
];

/// A qus conformance scenario (`apiVersion: qus/v1`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "qus scenario")]
pub(crate) struct RawScenario {
    /// Format version of this file; must be `qus/v1`.
    #[serde(rename = "apiVersion")]
    #[schemars(required)]
    pub api_version: Option<Sp<String>>,
    /// Scenario name: lowercase letters, digits and dashes, unique across a run.
    #[schemars(required, regex(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$"))]
    pub name: Option<Sp<String>>,
    /// What the scenario proves, in one sentence. May use `${...}` variables.
    pub description: Option<Text>,
    /// Tags for `--tags` expressions: lowercase letters, digits, `-`, `_` and `.`.
    pub tags: Option<Vec<Sp<String>>>,
    /// The runtimes the scenario applies to (default: all of them).
    pub runtimes: Option<Sp<Vec<Sp<RuntimeKind>>>>,
    /// What the scenario needs from the host.
    pub requires: Option<RawRequires>,
    /// Declared variables and their defaults (`~` for no default). `--var NAME=value` and an
    /// environment variable of the same name override the default.
    pub vars: Option<OrderedMap<Sp<Option<String>>>>,
    /// Matrix: each key becomes a variable; the scenario runs once per combination. Values
    /// are plain scalars, or mappings whose fields are read as `${key.field}`.
    pub matrix: Option<RawMatrix>,
    /// Steps run before `steps`; a failure here fails the scenario.
    pub setup: Option<Vec<Sp<RawStep>>>,
    /// The steps that make up the test; at least one.
    #[schemars(required, length(min = 1))]
    pub steps: Option<Sp<Vec<Sp<RawStep>>>>,
    /// Steps that always run at the end, even after a failure.
    pub teardown: Option<Vec<Sp<RawStep>>>,
    /// Time limit for the whole scenario, such as `30s`, `5m`, `1h` or `500ms`.
    pub timeout: Option<Sp<String>>,
    /// Makes this a workload scenario: the wall time of every instance's `steps` phase is
    /// recorded, and each emulated instance is compared with the native one that has the
    /// same other matrix values (and runs on the same QEMU).
    pub workload: Option<Sp<RawWorkload>>,
}

/// `workload`: which instance runs natively.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Workload")]
pub(crate) struct RawWorkload {
    /// One matrix key and the label of its value whose instance runs natively, such as
    /// `{ arch: native }`.
    #[schemars(required)]
    pub native: Option<Sp<OrderedMap<Sp<Scalar>>>>,
}

/// The matrix as written: keys in file order, each with its list of values.
pub(crate) type RawMatrix = Sp<OrderedMap<Sp<Vec<Sp<MatrixItem>>>>>;

/// A place a scenario can run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Docker Engine.
    Docker,
    /// Podman.
    Podman,
    /// Singularity or Apptainer.
    Singularity,
    /// No container engine: commands run directly on the host.
    Host,
}

impl RuntimeKind {
    /// Every runtime, in declaration order.
    pub const ALL: [RuntimeKind; 4] = [
        RuntimeKind::Docker,
        RuntimeKind::Podman,
        RuntimeKind::Singularity,
        RuntimeKind::Host,
    ];

    /// The name used in scenario files.
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

/// How a scenario uses the host's binfmt_misc.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BinfmtAccess {
    /// Does not look at binfmt_misc.
    #[default]
    None,
    /// Reads entries but never changes them.
    Read,
    /// Changes entries: disruptive, so it runs alone with a snapshot and restore around it.
    Write,
}

/// What a scenario needs from the host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Requires")]
pub(crate) struct RawRequires {
    /// Needs uid 0.
    pub root: Option<bool>,
    /// How the scenario uses binfmt_misc: `none` (default), `read` or `write`.
    pub binfmt: Option<BinfmtAccess>,
    /// Minimum kernel version, such as `"4.8"`.
    pub kernel: Option<Sp<String>>,
    /// Needs network access (to pull images, for example).
    pub network: Option<bool>,
}

/// One step: a mapping with a single key naming its kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Step")]
pub(crate) enum RawStep {
    /// Run the registrar, as a privileged container image or as the host binary.
    Register(Box<RawRegister>),
    /// Remove every `qemu-*` binfmt_misc entry (the registrar's `--reset`).
    Reset(Box<RawReset>),
    /// Assert the state of one binfmt_misc entry.
    Binfmt(Box<RawBinfmt>),
    /// Run a container.
    Run(Box<RawRun>),
    /// Build a container image.
    Build(Box<RawBuild>),
    /// Run a command directly on the host.
    Exec(Box<RawExec>),
    /// Run a target's static probe program: in a container of its probe
    /// image on a container engine, directly on the host on the host runtime.
    Probe(Box<RawProbe>),
}

impl RawStep {
    /// The fields every step kind has.
    pub(crate) fn common(&self) -> Common<'_> {
        macro_rules! common {
            ($s:expr) => {
                Common {
                    name: $s.name.as_ref(),
                    timeout: $s.timeout.as_ref(),
                    retries: $s.retries,
                }
            };
        }
        match self {
            RawStep::Register(s) => common!(s),
            RawStep::Reset(s) => common!(s),
            RawStep::Binfmt(s) => common!(s),
            RawStep::Run(s) => common!(s),
            RawStep::Build(s) => common!(s),
            RawStep::Exec(s) => common!(s),
            RawStep::Probe(s) => common!(s),
        }
    }
}

/// The fields every step kind has, borrowed from the step.
pub(crate) struct Common<'a> {
    pub name: Option<&'a Text>,
    pub timeout: Option<&'a Sp<String>>,
    pub retries: Option<u32>,
}

/// `register`: run the registrar.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RegisterStep")]
pub(crate) struct RawRegister {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// Registrar image, run privileged. Required unless `host: true`.
    pub image: Option<Text>,
    /// Arguments passed to the registrar, such as `[--reset, -p, "yes"]`.
    pub args: Option<Vec<Text>>,
    /// Run the host binary named by the variable `REGISTRAR_BIN` instead of an image.
    pub host: Option<bool>,
    /// Expected outcome (default: exit status 0).
    pub expect: Option<RawExpect>,
}

/// `reset`: remove every `qemu-*` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ResetStep")]
pub(crate) struct RawReset {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// Registrar image to run with `--reset`; without it the harness resets directly.
    pub image: Option<Text>,
}

/// `binfmt`: assert one binfmt_misc entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "BinfmtStep")]
pub(crate) struct RawBinfmt {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// Entry name, such as `qemu-aarch64`.
    #[schemars(required)]
    pub entry: Option<Text>,
    /// Whether the entry exists (default `true`); `false` allows no other assertion.
    pub present: Option<bool>,
    /// Whether the entry is enabled.
    pub enabled: Option<bool>,
    /// Exact flag letters from `POCF`; `""` asserts no flags.
    pub flags: Option<Text>,
    /// Interpreter path.
    pub interpreter: Option<Text>,
    /// Magic bytes as lowercase hex, as binfmt_misc shows them.
    pub magic: Option<Text>,
    /// Mask bytes as lowercase hex, as binfmt_misc shows them.
    pub mask: Option<Text>,
}

/// Container network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// No network.
    None,
    /// The engine's default bridge.
    Bridge,
    /// The host's network namespace.
    Host,
}

/// `run`: run a container.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RunStep")]
pub(crate) struct RawRun {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// Image reference.
    #[schemars(required)]
    pub image: Option<Text>,
    /// Command (default: the image's).
    pub command: Option<Vec<Text>>,
    /// Entrypoint (default: the image's).
    pub entrypoint: Option<Vec<Text>>,
    /// Environment variables.
    pub env: Option<OrderedMap<Text>>,
    /// Bind mounts as `host:container[:ro|rw]`; a relative host path is relative to the
    /// scenario file's directory.
    pub binds: Option<Vec<Text>>,
    /// Network mode: `none`, `bridge` or `host` (default: the engine's).
    pub network: Option<NetworkMode>,
    /// Run privileged.
    pub privileged: Option<bool>,
    /// Platform, such as `linux/arm64`.
    pub platform: Option<Text>,
    /// User, as `uid[:gid]` or a name.
    pub user: Option<Text>,
    /// Expected outcome (default: exit status 0).
    pub expect: Option<RawExpect>,
}

/// `build`: build an image from an inline Containerfile or a context directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "BuildStep")]
pub(crate) struct RawBuild {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// Inline Containerfile text; exactly one of `containerfile` and `context`.
    pub containerfile: Option<Text>,
    /// Build context directory, relative to the scenario file; exactly one of
    /// `containerfile` and `context`.
    pub context: Option<Text>,
    /// Tag for the built image.
    pub tag: Option<Text>,
    /// Build arguments.
    pub build_args: Option<OrderedMap<Text>>,
    /// Target platform, such as `linux/arm64`.
    pub platform: Option<Text>,
    /// Expected outcome (default: the build succeeds).
    pub expect: Option<RawBuildExpect>,
}

/// `exec`: run a command on the host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ExecStep")]
pub(crate) struct RawExec {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// Program and arguments; no shell is involved.
    #[schemars(required, length(min = 1))]
    pub command: Option<Sp<Vec<Text>>>,
    /// Extra environment variables.
    pub env: Option<OrderedMap<Text>>,
    /// Expected outcome (default: exit status 0).
    pub expect: Option<RawExpect>,
}

/// `probe`: run a target's static probe program.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ProbeStep")]
pub(crate) struct RawProbe {
    /// Step name shown in reports.
    pub name: Option<Text>,
    /// Time limit for this step, such as `30s`.
    pub timeout: Option<Sp<String>>,
    /// Re-run the step up to this many more times until it passes.
    pub retries: Option<u32>,
    /// QEMU target of the probe, such as `aarch64` (`fixtures/probes/bin/<target>`).
    #[schemars(required)]
    pub target: Option<Text>,
    /// The probe's image on container engines (default `qus-fixtures/probe:<target>`).
    pub image: Option<Text>,
    /// Arguments, such as `[--argv0]`.
    pub args: Option<Vec<Text>>,
    /// Run a copy of the probe owned by root with mode 4755 (setuid root), as `user`.
    pub setuid: Option<bool>,
    /// Run as this user, `uid` or `uid:gid` in numbers (default: the harness's
    /// user; `65534` with `setuid`).
    pub user: Option<Text>,
    /// Expected outcome (default: exit status 0).
    pub expect: Option<RawExpect>,
}

/// Expected outcome of a process.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Expect")]
pub(crate) struct RawExpect {
    /// Exit status: an integer 0-255 (default 0), `nonzero` or `any`.
    pub exit: Option<Sp<RawExit>>,
    /// Condition on standard output.
    pub stdout: Option<Sp<RawMatcher>>,
    /// Condition on standard error.
    pub stderr: Option<Sp<RawMatcher>>,
}

/// Expected outcome of a build.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "BuildExpect")]
pub(crate) struct RawBuildExpect {
    /// Whether the build succeeds (default `true`).
    pub success: Option<bool>,
    /// Condition on the build output.
    pub output: Option<Sp<RawMatcher>>,
}

/// A scalar as read through `deserialize_any`.
///
/// Numbers and booleans keep no value: their text is read back from the source at the
/// scalar's position, so `5.10` stays `5.10` and `0x10` stays `0x10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// A string.
    Str(String),
    /// A number or boolean; the spelling is in the source.
    Other,
    /// `~`, `null` or nothing.
    Null,
}

/// Visitor for the scalar cases shared by the two-shaped values below.
macro_rules! scalar_visits {
    ($wrap:expr) => {
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Str(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Str(v)))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Other))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Other))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Other))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Other))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Other))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Other))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Null))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Scalar::Null))
        }
    };
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    scalar_visits!(|s| s);
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// One string, or a list of them.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    /// A single scalar; its position is the enclosing `Sp`'s.
    One(Scalar),
    /// A list.
    Many(Vec<Sp<Scalar>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            scalar_visits!(OneOrMany::One);

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
            ]
        })
    }
}

/// A text condition: a string (shorthand for `equals`) or a mapping of conditions.
#[derive(Debug)]
pub(crate) enum RawMatcher {
    /// `stdout: "text"`: the text must equal this.
    Equals(Scalar),
    /// A mapping of conditions, all of which must hold.
    Map(Box<RawMatcherMap>),
}

impl<'de> Deserialize<'de> for RawMatcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMatcher;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a mapping of `equals`, `contains`, `regex`, `not_contains`, `not_regex`")
            }

            scalar_visits!(RawMatcher::Equals);

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawMatcher, A::Error> {
                RawMatcherMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|m| RawMatcher::Map(Box::new(m)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for RawMatcher {
    fn schema_name() -> Cow<'static, str> {
        "Matcher".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let map = generator.subschema_for::<RawMatcherMap>();
        json_schema!({
            "description": "A text condition: a string (the text must equal it) or a mapping of conditions that must all hold.",
            "anyOf": [{ "type": "string" }, map]
        })
    }
}

/// Conditions on a text; all that are given must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "MatcherConditions")]
pub(crate) struct RawMatcherMap {
    /// The text equals this exactly.
    pub equals: Option<Text>,
    /// The text contains this string (or each of these strings).
    pub contains: Option<Sp<OneOrMany>>,
    /// The text matches this regular expression (or each of these). Variables inside are
    /// substituted as literal text.
    pub regex: Option<Sp<OneOrMany>>,
    /// The text contains none of these strings.
    pub not_contains: Option<Sp<OneOrMany>>,
    /// The text matches none of these regular expressions.
    pub not_regex: Option<Sp<OneOrMany>>,
}

/// An `exit` value as written: an integer or a word.
#[derive(Debug)]
pub(crate) enum RawExit {
    /// An integer.
    Code(i128),
    /// A word such as `nonzero`.
    Word(String),
    /// Anything else (a float, a boolean, null).
    Other,
}

impl<'de> Deserialize<'de> for RawExit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawExit;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit status 0-255, `nonzero` or `any`")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawExit, E> {
                Ok(RawExit::Code(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawExit, E> {
                Ok(RawExit::Code(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawExit, E> {
                Ok(RawExit::Code(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawExit, E> {
                Ok(i128::try_from(v).map_or(RawExit::Other, RawExit::Code))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawExit, E> {
                Ok(RawExit::Word(v.to_owned()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawExit, E> {
                Ok(RawExit::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawExit, E> {
                Ok(RawExit::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawExit, E> {
                Ok(RawExit::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for RawExit {
    fn schema_name() -> Cow<'static, str> {
        "Exit".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": 255 },
                { "enum": ["nonzero", "any"] }
            ]
        })
    }
}

/// One matrix value as written: a scalar, or a mapping of scalar fields.
#[derive(Debug)]
pub(crate) enum MatrixItem {
    /// A plain value.
    Scalar(Scalar),
    /// A mapping of fields, read as `${key.field}`.
    Map(Vec<(Sp<String>, Sp<String>)>),
}

impl<'de> Deserialize<'de> for MatrixItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MatrixItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar or a mapping of scalars")
            }

            scalar_visits!(MatrixItem::Scalar);

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MatrixItem, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(MatrixItem::Map(fields))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for MatrixItem {
    fn schema_name() -> Cow<'static, str> {
        "MatrixValue".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                {
                    "type": "object",
                    "additionalProperties": { "type": ["string", "number", "boolean"] },
                    "minProperties": 1
                }
            ]
        })
    }
}

/// A mapping with string keys that keeps the file's order.
///
/// The parser already rejects duplicate keys, so this is a plain list of entries.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub Vec<(Sp<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<V>();
        json_schema!({ "type": "object", "additionalProperties": value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: for<'de> Deserialize<'de>>(yaml: &str) -> T {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn matcher_accepts_string_or_mapping() {
        let m: RawMatcher = parse("hello\n");
        assert!(matches!(m, RawMatcher::Equals(Scalar::Str(s)) if s == "hello"));
        let m: RawMatcher = parse("{ contains: [a, b], regex: x }\n");
        let RawMatcher::Map(map) = m else {
            panic!("expected a mapping")
        };
        assert!(matches!(map.contains.unwrap().value, OneOrMany::Many(v) if v.len() == 2));
        assert!(matches!(map.regex.unwrap().value, OneOrMany::One(Scalar::Str(s)) if s == "x"));
    }

    #[test]
    fn matcher_mapping_denies_unknown_keys() {
        let err = serde_saphyr::from_str::<RawMatcher>("{ contain: a }\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `contain`"), "{err}");
    }

    #[test]
    fn exit_accepts_integers_and_words() {
        assert!(matches!(parse::<RawExit>("3\n"), RawExit::Code(3)));
        assert!(matches!(parse::<RawExit>("nonzero\n"), RawExit::Word(w) if w == "nonzero"));
        assert!(matches!(parse::<RawExit>("1.5\n"), RawExit::Other));
    }

    #[test]
    fn ordered_map_keeps_file_order() {
        let m: OrderedMap<Text> = parse("b: 1\na: 2\n");
        let keys: Vec<_> = m.0.iter().map(|(k, _)| k.value.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn matrix_items_are_scalars_or_mappings() {
        let items: Vec<Sp<MatrixItem>> = parse("- 5.10\n- { target: arm, bits: 32 }\n");
        assert!(matches!(items[0].value, MatrixItem::Scalar(Scalar::Other)));
        let MatrixItem::Map(fields) = &items[1].value else {
            panic!("expected a mapping")
        };
        assert_eq!(fields[1].1.value, "32");
    }
}
