//! Resolving the QEMUs of a `--qemu` run to image versions, building those
//! no image holds.
//!
//! The main function is [`resolve`]: for each name (`7.2`, `11.1`), the
//! newest image version of the registrar repository (`<repo>:11.1.3-1`)
//! among the tags the engines hold ([`crate::images::repository_tags`]);
//! for a name no tag matches, `images build` of that QEMU version, as a
//! run builds any missing qus image. [`match_tags`] is the pure part. The
//! result is sorted oldest first, which is the order the QEMUs run and are
//! reported in. Nothing is printed: `announce` and `progress` tell the
//! caller.

use std::collections::BTreeMap;

use super::version::{QemuSelector, newest_match};
use crate::images::{
    self, BuildOptions, DebSource, ImageBuildError, ImageEngine, ImageVersion, LABEL_QEMU_VERSION,
    Progress, RepositoryTag, compare_image_versions,
};
use crate::report::QemuInfo;

/// Where to look for image versions and how to make missing ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// The registrar images' repository (`qus/qemu-user-static`, or the
    /// `QUS_REPO` of the run).
    pub repo: String,
    /// The engines whose stores are searched: the run's, and Docker's when
    /// the run's engine takes its images from Docker.
    pub stores: Vec<ImageEngine>,
    /// The engine that builds a version no store holds; `None` builds
    /// nothing (`--no-prepare`).
    pub builder: Option<ImageEngine>,
}

/// Why the QEMUs of a run could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No store could be listed.
    #[error("failed to list the images of `{repo}`")]
    List {
        /// The repository.
        repo: String,
        /// The first store's error.
        #[source]
        source: Box<ImageBuildError>,
    },
    /// No image holds the QEMU, and building was not allowed.
    #[error(
        "no image of QEMU `{name}` in `{repo}` (image versions there: {available}); build it \
         with `qus-harness images build --qemu-version {name}`, or run without `--no-prepare`"
    )]
    Missing {
        /// The name asked for.
        name: String,
        /// The repository.
        repo: String,
        /// The image versions the repository holds.
        available: String,
    },
    /// Building the QEMU's images failed.
    #[error("failed to build the images of QEMU `{name}`")]
    Build {
        /// The name asked for.
        name: String,
        /// The build's error.
        #[source]
        source: Box<ImageBuildError>,
    },
    /// The build made another QEMU than the one asked for.
    #[error(
        "building QEMU `{name}` made the image version `{version}`, which is not a version of \
         it; check which qemu-user-static versions the Debian archive offers"
    )]
    BuiltOther {
        /// The name asked for.
        name: String,
        /// What the build made.
        version: String,
    },
    /// Two names are one QEMU.
    #[error("`--qemu` names `{first}` and `{second}`, which both resolve to `{version}`")]
    Duplicate {
        /// One name.
        first: String,
        /// The other.
        second: String,
        /// Their image version.
        version: String,
    },
}

impl ResolveError {
    /// Whether the command line is at fault (exit 2) rather than the
    /// environment (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Duplicate { .. } | Self::BuiltOther { .. })
    }
}

/// For each selector, in order, the QEMU the newest matching tag of `tags`
/// names (with the Debian version its label records), or `Err` with the
/// selector when none matches.
pub fn match_tags(
    selectors: &[QemuSelector],
    tags: &[RepositoryTag],
) -> Vec<Result<QemuInfo, QemuSelector>> {
    selectors
        .iter()
        .map(|selector| {
            let version = newest_match(selector, tags.iter().map(|t| t.tag.as_str()))
                .ok_or_else(|| selector.clone())?;
            let tag = version.to_string();
            let debian_version = tags
                .iter()
                .find(|t| t.tag == tag)
                .and_then(|t| t.labels.get(LABEL_QEMU_VERSION).cloned());
            Ok(QemuInfo {
                name: selector.to_string(),
                version: tag,
                debian_version,
            })
        })
        .collect()
}

/// Sorts `qemus` oldest first and refuses two names of one version.
pub fn order(mut qemus: Vec<QemuInfo>) -> Result<Vec<QemuInfo>, ResolveError> {
    qemus.sort_by(|a, b| {
        compare_image_versions(&a.version, &b.version).then_with(|| a.name.cmp(&b.name))
    });
    if let Some(pair) = qemus.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(ResolveError::Duplicate {
            first: pair[0].name.clone(),
            second: pair[1].name.clone(),
            version: pair[0].version.clone(),
        });
    }
    Ok(qemus)
}

/// Resolves `selectors` (see the module documentation). Blocking: listings
/// run on `tokio`, builds on their own runtimes; call it outside any async
/// context. `announce` is called before each build with the name.
///
/// # Errors
///
/// [`ResolveError`]: no store answers, a version is missing and cannot be
/// built, a build fails or makes another version, two names are one QEMU.
pub fn resolve(
    tokio: &tokio::runtime::Runtime,
    selectors: &[QemuSelector],
    options: &ResolveOptions,
    announce: &mut dyn FnMut(&QemuSelector, &ImageEngine),
    progress: &dyn Progress,
) -> Result<Vec<QemuInfo>, ResolveError> {
    let mut tags: BTreeMap<String, RepositoryTag> = BTreeMap::new();
    let mut first_error = None;
    let mut answered = false;
    for store in &options.stores {
        match tokio.block_on(images::repository_tags(store, &options.repo)) {
            Ok(found) => {
                answered = true;
                for tag in found {
                    tags.entry(tag.tag.clone()).or_insert(tag);
                }
            }
            Err(e) => {
                tracing::debug!("cannot list `{}` in {}: {e}", options.repo, store.name());
                first_error.get_or_insert(e);
            }
        }
    }
    if let (false, Some(source)) = (answered, first_error) {
        return Err(ResolveError::List {
            repo: options.repo.clone(),
            source: Box::new(source),
        });
    }
    let tags: Vec<RepositoryTag> = tags.into_values().collect();
    let mut qemus = Vec::new();
    for matched in match_tags(selectors, &tags) {
        let selector = match matched {
            Ok(qemu) => {
                qemus.push(qemu);
                continue;
            }
            Err(selector) => selector,
        };
        let Some(builder) = &options.builder else {
            let mut versions: Vec<&str> = tags
                .iter()
                .map(|t| t.tag.as_str())
                .filter(|t| t.parse::<ImageVersion>().is_ok())
                .collect();
            versions.sort_by(|a, b| compare_image_versions(a, b));
            return Err(ResolveError::Missing {
                name: selector.to_string(),
                repo: options.repo.clone(),
                available: if versions.is_empty() {
                    "none".to_owned()
                } else {
                    versions.join(", ")
                },
            });
        };
        announce(&selector, builder);
        qemus.push(build(&selector, &options.repo, builder, progress)?);
    }
    order(qemus)
}

/// Builds the images of the QEMU `selector` names, as `images build
/// --qemu-version <name>` does (from the Debian suite that has it).
fn build(
    selector: &QemuSelector,
    repo: &str,
    builder: &ImageEngine,
    progress: &dyn Progress,
) -> Result<QemuInfo, ResolveError> {
    let options = BuildOptions {
        repo: repo.to_owned(),
        deb: DebSource::Apt {
            version: Some(selector.to_string()),
            suite: None,
        },
        engine: builder.clone(),
        handle_ctrl_c: true,
        ..BuildOptions::default()
    };
    let report = images::build(&options, progress).map_err(|source| ResolveError::Build {
        name: selector.to_string(),
        source: Box::new(source),
    })?;
    let built = report.version.parse::<ImageVersion>();
    if !built.is_ok_and(|v| selector.matches(&v)) {
        return Err(ResolveError::BuiltOther {
            name: selector.to_string(),
            version: report.version,
        });
    }
    Ok(QemuInfo {
        name: selector.to_string(),
        version: report.version,
        debian_version: Some(report.debian_version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(tag: &str, debian: Option<&str>) -> RepositoryTag {
        RepositoryTag {
            tag: tag.to_owned(),
            labels: debian
                .map(|d| BTreeMap::from([(LABEL_QEMU_VERSION.to_owned(), d.to_owned())]))
                .unwrap_or_default(),
        }
    }

    fn selectors(names: &[&str]) -> Vec<QemuSelector> {
        names
            .iter()
            .map(|n| QemuSelector::parse(n).unwrap())
            .collect()
    }

    #[test]
    fn names_resolve_to_the_newest_matching_tag_with_its_debian_version() {
        let tags = [
            tag("latest", Some("1:10.0.2+ds-1")),
            tag("register", None),
            tag("7.2.0-1", Some("1:7.2+dfsg-7")),
            tag("7.2.0-2", Some("1:7.2+dfsg-7+deb12u18")),
            tag("10.0.2-1", None),
            tag("x86_64-aarch64-11.1.3-1", None),
        ];
        let got = match_tags(&selectors(&["7.2", "10.0", "11.1"]), &tags);
        assert_eq!(
            got[0],
            Ok(QemuInfo {
                name: "7.2".into(),
                version: "7.2.0-2".into(),
                debian_version: Some("1:7.2+dfsg-7+deb12u18".into()),
            })
        );
        assert_eq!(got[1].as_ref().unwrap().debian_version, None);
        // A per-target tag is not an image version of `latest`'s kind.
        assert_eq!(got[2], Err(QemuSelector::parse("11.1").unwrap()));
    }

    #[test]
    fn qemus_run_oldest_first_and_two_names_of_one_version_are_refused() {
        let q = |name: &str, version: &str| QemuInfo {
            name: name.into(),
            version: version.into(),
            debian_version: None,
        };
        let ordered = order(vec![
            q("11.1", "11.1.3-1"),
            q("7.2", "7.2.0-1"),
            q("10.0", "10.0.2-1"),
        ])
        .unwrap();
        let versions: Vec<&str> = ordered.iter().map(|q| q.version.as_str()).collect();
        assert_eq!(versions, ["7.2.0-1", "10.0.2-1", "11.1.3-1"]);
        let err = order(vec![q("7.2", "7.2.0-1"), q("7.2.0", "7.2.0-1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`--qemu` names `7.2` and `7.2.0`, which both resolve to `7.2.0-1`"
        );
        assert!(err.is_usage());
    }
}
