//! The validated scenario: what a loaded file declares, ready to expand.
//!
//! The main type is [`Scenario`]. It exposes what `list` and `plan` need (name, tags,
//! requirements, runtimes, matrix, variables) as plain values; its steps stay in their
//! written form, with positions, until [`expand`](super::expand) resolves them per matrix
//! instance. This module also holds the small value types shared with instances
//! ([`Requires`], [`KernelVersion`], [`MatrixValue`]) and the duration syntax.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::raw::{BinfmtAccess, RawStep, RuntimeKind};
use super::span::{Position, Sp, Text};

/// A scenario that loaded and passed every load-time check.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub(crate) path: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) source: Arc<str>,
    pub(crate) name: String,
    pub(crate) name_position: Option<Position>,
    pub(crate) description: Option<Text>,
    pub(crate) tags: Vec<String>,
    pub(crate) runtimes: Vec<RuntimeKind>,
    pub(crate) requires: Requires,
    pub(crate) vars: Vec<VarDecl>,
    pub(crate) matrix: Vec<MatrixAxis>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) setup: Arc<[Sp<RawStep>]>,
    pub(crate) steps: Arc<[Sp<RawStep>]>,
    pub(crate) teardown: Arc<[Sp<RawStep>]>,
    pub(crate) workload: Option<Workload>,
}

impl Scenario {
    /// The file it was loaded from (as given to the loader).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The absolute directory of the file; relative paths in steps are relative to it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The scenario name, unique across a run.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the name is written, for messages about it.
    pub fn name_position(&self) -> Option<Position> {
        self.name_position
    }

    /// The description as written, with `${...}` references not yet substituted.
    pub fn description(&self) -> Option<&str> {
        self.description.as_ref().map(|d| d.value.as_str())
    }

    /// Tags, in file order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The runtimes it applies to (all of them unless the file narrows it), in
    /// [`RuntimeKind::ALL`] order.
    pub fn runtimes(&self) -> &[RuntimeKind] {
        &self.runtimes
    }

    /// Whether it applies to `runtime`.
    pub fn applies_to(&self, runtime: RuntimeKind) -> bool {
        self.runtimes.contains(&runtime)
    }

    /// What it needs from the host.
    pub fn requires(&self) -> &Requires {
        &self.requires
    }

    /// Declared variables, in file order.
    pub fn vars(&self) -> &[VarDecl] {
        &self.vars
    }

    /// Matrix axes, in file order (the first varies slowest).
    pub fn matrix(&self) -> &[MatrixAxis] {
        &self.matrix
    }

    /// Number of instances the matrix expands to (1 without a matrix).
    pub fn instance_count(&self) -> usize {
        self.matrix.iter().map(|axis| axis.values.len()).product()
    }

    /// Time limit for the whole scenario.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Number of steps in `setup`, `steps` and `teardown`.
    pub fn step_count(&self) -> usize {
        self.setup.len() + self.steps.len() + self.teardown.len()
    }

    /// The workload axis, for a workload scenario.
    pub fn workload(&self) -> Option<&Workload> {
        self.workload.as_ref()
    }
}

/// A workload scenario's axis: the matrix key, and the label of its value
/// whose instance runs natively (`workload: { native: { arch: native } }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// The matrix key (`arch`).
    pub key: String,
    /// The label of the native value (`native`).
    pub native: String,
}

/// What a scenario needs from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requires {
    /// Needs uid 0.
    pub root: bool,
    /// How it uses binfmt_misc; `write` means it runs alone with a snapshot and restore.
    pub binfmt: BinfmtAccess,
    /// Minimum kernel version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelVersion>,
    /// Needs network access.
    pub network: bool,
}

impl Requires {
    /// Whether the scenario changes host binfmt state and so must run alone.
    pub fn is_disruptive(&self) -> bool {
        self.binfmt == BinfmtAccess::Write
    }
}

/// A kernel version such as `4.8` or `5.15.0`, compared numerically part by part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion(Vec<u32>);

impl KernelVersion {
    /// Parses `N(.N)*`, the form scenarios use.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Option<Vec<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
        parts
            .filter(|p| {
                !p.is_empty() && p.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            })
            .map(KernelVersion)
    }

    /// Parses the leading version of a `uname -r` release such as `5.15.0-91-generic`.
    pub fn from_release(release: &str) -> Option<Self> {
        let end = release
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(release.len());
        Self::parse(release[..end].trim_end_matches('.'))
    }

    /// Whether this version is at least `minimum`, treating missing parts as 0.
    pub fn at_least(&self, minimum: &KernelVersion) -> bool {
        let len = self.0.len().max(minimum.0.len());
        let pad = |v: &[u32]| {
            (0..len)
                .map(|i| v.get(i).copied().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        pad(&self.0) >= pad(&minimum.0)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A variable declared under `vars`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarDecl {
    /// The name.
    pub name: String,
    /// The default, or `None` when a value must be given at run time.
    pub default: Option<String>,
}

/// One matrix key and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixAxis {
    /// The key, usable as `${key}` or `${key.field}`.
    pub name: String,
    /// The values, in file order; never empty.
    pub values: Vec<MatrixValue>,
}

/// One matrix value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixValue {
    /// A plain value, read as `${key}`.
    Scalar(String),
    /// Named fields, in file order, read as `${key.field}`. The first field's value is the
    /// label that names the instance (`arch=arm`), so it is unique within the axis.
    Map(Vec<(String, String)>),
}

impl MatrixValue {
    /// The field `name` of a map value.
    pub fn field(&self, name: &str) -> Option<&str> {
        match self {
            MatrixValue::Scalar(_) => None,
            MatrixValue::Map(fields) => fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// The value's label in instance ids: the value itself, or the first field of a map.
    pub fn label(&self) -> &str {
        match self {
            MatrixValue::Scalar(v) => v,
            MatrixValue::Map(fields) => fields.first().map_or("", |(_, v)| v.as_str()),
        }
    }
}

impl Serialize for MatrixValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            MatrixValue::Scalar(v) => serializer.serialize_str(v),
            MatrixValue::Map(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Parses a duration: one or more `<digits><unit>` parts with units `ms`, `s`, `m`, `h`,
/// such as `30s`, `5m`, `1h30m` or `500ms`. Zero is not a duration.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let millis = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err("a unit is missing".to_owned()),
            other => return Err(format!("unknown unit `{other}`")),
        };
        let part = number
            .checked_mul(millis)
            .ok_or_else(|| "it is too long".to_owned())?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(|| "it is too long".to_owned())?;
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err("it is zero".to_owned());
    }
    Ok(total)
}

/// Formats a duration the way scenarios write it: `1h30m`, `45s`, `500ms`.
pub(crate) fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Serializes an optional duration in scenario syntax.
pub(crate) fn serialize_opt_duration<S: Serializer>(
    d: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serializer.serialize_str(&format_duration(*d)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in [
            "",
            "30",
            "s",
            "5 m",
            "1d",
            "0s",
            "-1s",
            "1.5s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_round_trip() {
        for text in ["30s", "5m", "1h30m", "500ms", "1h1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn kernel_versions_compare_numerically() {
        let v = |s| KernelVersion::parse(s).unwrap();
        assert!(v("4.10").at_least(&v("4.8")));
        assert!(v("4.8").at_least(&v("4.8.0")));
        assert!(!v("4.7.99").at_least(&v("4.8")));
        assert_eq!(
            KernelVersion::from_release("5.15.0-91-generic"),
            Some(v("5.15.0"))
        );
        for bad in ["", "4.", "a.b", "4.8-rc1", "+4"] {
            assert_eq!(KernelVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn matrix_labels() {
        assert_eq!(MatrixValue::Scalar("arm".into()).label(), "arm");
        let map = MatrixValue::Map(vec![
            ("target".into(), "arm".into()),
            ("uname".into(), "armv7l".into()),
        ]);
        assert_eq!(map.label(), "arm");
        assert_eq!(map.field("uname"), Some("armv7l"));
        assert_eq!(map.field("nope"), None);
    }
}
