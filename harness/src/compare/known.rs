//! Known differences: the regressions and slowdowns a release accepts, each
//! with its reason, checked into the repository next to the gate.
//!
//! ```yaml
//! known:
//!   - id: "probe-matrix[arch=hexagon]"   # an exact instance id...
//!     qemu: "11.1"                        # ...optionally only on this candidate QEMU
//!     reason: "QEMU 11.1 dropped hexagon's old ABI"
//!   - pattern: 'workload-node\[.*\]'      # ...or a regex the whole id matches
//!     reason: "Node's JIT is slower under TCG since 10.0"
//! ```
//!
//! The main type is [`Known`], loaded with [`Known::load`]: every mistake
//! (an unknown key, neither or both of `id` and `pattern`, a regex that does
//! not compile, a `qemu` that is not a version, a missing or empty `reason`)
//! is reported at its `file:line:col`, all of them before anything is
//! compared.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use super::input::SideQemu;
use crate::images::ImageVersion;
use crate::qemu::QemuSelector;
use crate::scenario::{LoadError, LoadErrorKind, Mark, Sp, load_yaml};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    known: Option<Vec<Sp<RawEntry>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Option<Sp<String>>,
    pattern: Option<Sp<String>>,
    qemu: Option<Sp<String>>,
    reason: Option<Sp<String>>,
}

/// Which instances an entry covers.
#[derive(Debug, Clone)]
pub enum IdMatcher {
    /// This id.
    Exact(String),
    /// Ids this regex matches as a whole.
    Pattern(Regex),
}

/// One known difference.
#[derive(Debug, Clone)]
pub struct KnownEntry {
    /// The instances it covers.
    pub ids: IdMatcher,
    /// The candidate QEMU it is limited to.
    pub qemu: Option<QemuSelector>,
    /// Why the difference is accepted.
    pub reason: String,
    /// Where it is written (`file:line:col`).
    pub location: String,
}

impl KnownEntry {
    /// The id or pattern as written.
    pub fn describe(&self) -> String {
        match &self.ids {
            IdMatcher::Exact(id) => format!("id `{id}`"),
            IdMatcher::Pattern(re) => {
                let text = re.as_str();
                let inner = text
                    .strip_prefix("^(?:")
                    .and_then(|t| t.strip_suffix(")$"))
                    .unwrap_or(text);
                format!("pattern `{inner}`")
            }
        }
    }

    /// Whether it covers instance `id` of a candidate on `qemu`.
    pub fn covers(&self, id: &str, qemu: Option<&SideQemu>) -> bool {
        let id_matches = match &self.ids {
            IdMatcher::Exact(exact) => exact == id,
            IdMatcher::Pattern(re) => re.is_match(id),
        };
        let qemu_matches = match (&self.qemu, qemu) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(selector), Some(qemu)) => {
                selector.as_str() == qemu.name
                    || qemu
                        .version
                        .parse::<ImageVersion>()
                        .is_ok_and(|v| selector.matches(&v))
            }
        };
        id_matches && qemu_matches
    }
}

/// The known differences of a file (or none).
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The file, if one was given.
    pub path: Option<PathBuf>,
    /// Its entries, in file order.
    pub entries: Vec<KnownEntry>,
}

impl Known {
    /// The first entry that covers instance `id` of a candidate on `qemu`.
    pub fn find(&self, id: &str, qemu: Option<&SideQemu>) -> Option<&KnownEntry> {
        self.entries.iter().find(|e| e.covers(id, qemu))
    }

    /// Reads and checks a known-differences file.
    ///
    /// # Errors
    ///
    /// `Err(None, io)` when it cannot be read; otherwise every mistake, each
    /// at its position.
    pub fn load(path: &Path) -> Result<Self, KnownLoadError> {
        let text = std::fs::read_to_string(path).map_err(KnownLoadError::Read)?;
        Self::parse(path, &text).map_err(KnownLoadError::Invalid)
    }

    /// [`Known::load`] on text already read.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, Vec<LoadError>> {
        let raw: Sp<RawFile> = load_yaml(path, text).map_err(|e| vec![e])?;
        let at = |mark: &Mark, kind| LoadError::at(path, text, mark, kind);
        let Some(list) = raw.value.known else {
            return Err(vec![at(
                &raw.mark,
                LoadErrorKind::MissingField {
                    key: "known".to_owned(),
                    context: "the known-differences file".to_owned(),
                },
            )]);
        };
        let mut errors = Vec::new();
        let mut entries = Vec::new();
        for entry in list {
            let location = |mark: &crate::scenario::Position| {
                format!("{}:{}:{}", path.display(), mark.line, mark.column)
            };
            let e = entry.value;
            let ids = match (e.id, e.pattern) {
                (Some(id), None) => Some(IdMatcher::Exact(id.value)),
                (None, Some(pattern)) => {
                    // Checked as written, so the message shows the user's text;
                    // then anchored to match whole ids.
                    let anchored = Regex::new(&pattern.value)
                        .and_then(|_| Regex::new(&format!("^(?:{})$", pattern.value)));
                    match anchored {
                        Ok(re) => Some(IdMatcher::Pattern(re)),
                        Err(err) => {
                            errors.push(at(
                                &pattern.mark,
                                LoadErrorKind::invalid(format!(
                                    "invalid pattern `{}`: {err}",
                                    pattern.value
                                )),
                            ));
                            None
                        }
                    }
                }
                (Some(_), Some(pattern)) => {
                    errors.push(at(
                        &pattern.mark,
                        LoadErrorKind::invalid(
                            "an entry has `id` or `pattern`, not both".to_owned(),
                        ),
                    ));
                    None
                }
                (None, None) => {
                    errors.push(at(
                        &entry.mark,
                        LoadErrorKind::MissingField {
                            key: "id` or `pattern".to_owned(),
                            context: "this known difference".to_owned(),
                        },
                    ));
                    None
                }
            };
            let qemu = e.qemu.and_then(|q| match QemuSelector::parse(&q.value) {
                Ok(selector) => Some(selector),
                Err(reason) => {
                    errors.push(at(&q.mark, LoadErrorKind::invalid(reason)));
                    None
                }
            });
            let reason = match e.reason {
                Some(r) if !r.value.trim().is_empty() => Some(r.value.trim().to_owned()),
                Some(r) => {
                    errors.push(at(
                        &r.mark,
                        LoadErrorKind::invalid(
                            "`reason` is empty; say why the difference is accepted".to_owned(),
                        ),
                    ));
                    None
                }
                None => {
                    errors.push(at(
                        &entry.mark,
                        LoadErrorKind::MissingField {
                            key: "reason".to_owned(),
                            context: "this known difference".to_owned(),
                        },
                    ));
                    None
                }
            };
            if let (Some(ids), Some(reason)) = (ids, reason) {
                entries.push(KnownEntry {
                    ids,
                    qemu,
                    reason,
                    location: entry
                        .mark
                        .position
                        .as_ref()
                        .map_or_else(|| path.display().to_string(), location),
                });
            }
        }
        if errors.is_empty() {
            Ok(Self {
                path: Some(path.to_owned()),
                entries,
            })
        } else {
            Err(errors)
        }
    }
}

/// Why a known-differences file could not be used.
#[derive(Debug)]
pub enum KnownLoadError {
    /// It cannot be read.
    Read(std::io::Error),
    /// It does not load: every mistake.
    Invalid(Vec<LoadError>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Known, Vec<String>> {
        Known::parse(Path::new("known.yaml"), text)
            .map_err(|errors| errors.iter().map(LoadError::summary).collect())
    }

    fn qemu(name: &str, version: &str) -> SideQemu {
        SideQemu {
            name: name.into(),
            version: version.into(),
            debian_version: None,
        }
    }

    #[test]
    fn entries_match_ids_or_whole_id_patterns_and_optionally_a_qemu() {
        let known = parse(
            "known:\n  - id: \"probe[arch=hppa]\"\n    reason: hppa is slow\n  \
             - pattern: 'node\\[.*\\]'\n    qemu: \"11.1\"\n    reason: \"  JIT  \"\n",
        )
        .unwrap();
        assert_eq!(known.entries.len(), 2);
        let new = qemu("11.1", "11.1.3-1");
        let old = qemu("10.0", "10.0.2-1");
        assert_eq!(
            known.find("probe[arch=hppa]", Some(&old)).unwrap().reason,
            "hppa is slow"
        );
        assert!(known.find("probe[arch=hppa]x", None).is_none());
        assert_eq!(
            known.find("node[arch=s390x]", Some(&new)).unwrap().reason,
            "JIT"
        );
        assert!(known.find("node[arch=s390x]", Some(&old)).is_none());
        assert!(known.find("node[arch=s390x]", None).is_none());
        // The pattern must match the whole id.
        assert!(known.find("xnode[arch=s390x]", Some(&new)).is_none());
        assert_eq!(known.entries[1].describe(), "pattern `node\\[.*\\]`");
        assert_eq!(known.entries[0].location, "known.yaml:2:5");
    }

    #[test]
    fn every_mistake_is_reported_at_its_position() {
        let errors = parse(
            "known:\n  - reason: no id\n  - id: a\n    pattern: b\n    reason: both\n  \
             - pattern: \"(\"\n    reason: bad regex\n  - id: c\n    qemu: latest\n    reason: x\n  \
             - id: d\n    reason: \"  \"\n  - id: e\n",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(
            errors[0].starts_with("known.yaml:2:5: missing required key `id` or `pattern`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("known.yaml:4:14: an entry has `id` or `pattern`, not both"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with("known.yaml:6:14: invalid pattern `(`"),
            "{}",
            errors[2]
        );
        assert!(
            errors[3].starts_with("known.yaml:9:11: `latest` is not a QEMU version"),
            "{}",
            errors[3]
        );
        assert!(
            errors[4].starts_with("known.yaml:12:13: `reason` is empty"),
            "{}",
            errors[4]
        );
        assert!(
            errors[5].starts_with("known.yaml:13:5: missing required key `reason`"),
            "{}",
            errors[5]
        );
    }

    #[test]
    fn unknown_keys_and_a_missing_list_are_errors() {
        let errors = parse("known:\n  - id: a\n    reasn: typo\n").unwrap_err();
        assert!(
            errors[0].starts_with("known.yaml:3:5: unknown key `reasn`"),
            "{}",
            errors[0]
        );
        let errors = parse("knwon: []\n").unwrap_err();
        assert!(errors[0].contains("unknown key `knwon`"), "{}", errors[0]);
        let errors = parse("{}\n").unwrap_err();
        assert!(
            errors[0].contains("missing required key `known`"),
            "{}",
            errors[0]
        );
        assert!(parse("known: []\n").unwrap().entries.is_empty());
    }
}
