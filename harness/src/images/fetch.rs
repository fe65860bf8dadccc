//! [`Fetcher`]: from a [`DebSource`] to a QEMU package on disk, reporting
//! each download step.
//!
//! Three ways: a file given as is; `apt-get download qemu-user-static` with
//! the host's APT configuration (the default, as the original pipeline);
//! or, with `--suite` or `--qemu-version`, a search of Debian's suites
//! through their private APT directories (`apt.rs`): refresh stale lists,
//! read what each suite offers, choose (`select.rs`), download. When the
//! choice fails on lists that were reused, the lists are refreshed once and
//! the search runs again (a new upload, or a package the mirror dropped).
//! A transitional `qemu-user-static` found after unpacking is resolved by
//! [`Fetcher::qemu_user_for`], from wherever the first package came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::apt::{AptDir, AptLock, LIST_MAX_AGE, Offer, download_from_host};
use super::deb::{DebSource, QEMU_USER, QEMU_USER_STATIC};
use super::error::ImageBuildError;
use super::progress::{Progress, Step, StepOutcome, StepTimer};
use super::select::{self, Choice};
use super::suite::Suite;
use super::version::Selector;

/// A package on disk, and the suite it was fetched from (`None` for a
/// file given as is or the host's APT sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    pub(crate) deb: PathBuf,
    pub(crate) suite: Option<Suite>,
}

/// Fetches packages for one build.
pub(crate) struct Fetcher<'a> {
    /// The cache directory holding `apt/<suite>-<arch>/`.
    pub(crate) cache_dir: &'a Path,
    /// Debian's name for the host's architecture (`amd64`).
    pub(crate) arch: &'a str,
    /// The build's work directory (downloads from the host's APT go there).
    pub(crate) work: &'a Path,
    /// Where the host's APT sources are read for mirrors (`/`).
    pub(crate) root: &'a Path,
    pub(crate) progress: &'a dyn Progress,
}

impl Fetcher<'_> {
    /// The package `source` names.
    pub(crate) async fn fetch(&self, source: &DebSource) -> Result<Fetched, ImageBuildError> {
        match source {
            DebSource::File(path) => Ok(Fetched {
                deb: path.clone(),
                suite: None,
            }),
            DebSource::Host => self.fetch_from_host(QEMU_USER_STATIC, None, None).await,
            DebSource::Apt { version, suite } => {
                let selector = version.as_deref().map(parse_selector).transpose()?;
                let suites = suite.map_or_else(|| Suite::ALL.to_vec(), |s| vec![s]);
                let wanted = match version {
                    Some(version) => format!("`--qemu-version {version}`"),
                    None => "the newest QEMU".to_owned(),
                };
                self.fetch_from_suites(selector.as_ref(), None, &suites, wanted, None)
                    .await
            }
        }
    }

    /// `qemu-user` of `version`, for the transitional `qemu-user-static`
    /// of that version that `source` gave: from the host's APT when
    /// `source` is the host's, else from the suite `source` names (all of
    /// them for a file).
    pub(crate) async fn qemu_user_for(
        &self,
        source: &DebSource,
        version: &str,
    ) -> Result<Fetched, ImageBuildError> {
        let reason = format!(
            "`{QEMU_USER_STATIC}` {version} is a transitional package: its emulators are in \
             `{QEMU_USER}` {version}"
        );
        let suites = match source {
            DebSource::Host => {
                return self
                    .fetch_from_host(QEMU_USER, Some(version), Some(reason))
                    .await;
            }
            DebSource::Apt {
                suite: Some(suite), ..
            } => vec![*suite],
            DebSource::Apt { suite: None, .. } | DebSource::File(_) => Suite::ALL.to_vec(),
        };
        let selector = Selector::Debian(version.to_owned());
        let wanted = format!("`{QEMU_USER}` {version} (for the transitional `{QEMU_USER_STATIC}`)");
        self.fetch_from_suites(
            Some(&selector),
            Some(QEMU_USER),
            &suites,
            wanted,
            Some(reason),
        )
        .await
    }

    /// `apt-get download <package>[=<version>]` with the host's APT.
    async fn fetch_from_host(
        &self,
        package: &str,
        version: Option<&str>,
        reason: Option<String>,
    ) -> Result<Fetched, ImageBuildError> {
        let dir = self.work.join(format!("host-{package}"));
        std::fs::create_dir_all(&dir).map_err(ImageBuildError::io("create directory", &dir))?;
        let timer = StepTimer::start(
            self.progress,
            Step::FetchDeb {
                package: package.to_owned(),
                version: version.map(str::to_owned),
                suite: None,
                size: None,
                reason,
            },
        );
        let deb = timer.done(download_from_host(package, version, &dir).await)?;
        Ok(Fetched { deb, suite: None })
    }

    /// Searches `suites` and downloads the package chosen; refreshes lists
    /// that were reused and searches again once when that fails.
    async fn fetch_from_suites(
        &self,
        selector: Option<&Selector>,
        package: Option<&str>,
        suites: &[Suite],
        wanted: String,
        reason: Option<String>,
    ) -> Result<Fetched, ImageBuildError> {
        let dirs: Vec<AptDir> = suites
            .iter()
            .map(|s| AptDir::new(self.cache_dir, *s, self.arch))
            .collect();
        let mut sources = Vec::with_capacity(dirs.len());
        let mut locks: Vec<AptLock> = Vec::with_capacity(dirs.len());
        // Suites come in `Suite::ALL` order, so two builds lock in the same
        // order and never wait on each other in a cycle.
        for dir in &dirs {
            sources.push(dir.prepare(self.root)?);
            locks.push(dir.lock().await?);
        }
        let mut refreshed = vec![false; dirs.len()];
        let mut forced = false;
        loop {
            for (i, dir) in dirs.iter().enumerate() {
                if !(forced && refreshed[i]) {
                    refreshed[i] |= self.refresh(dir, &sources[i], forced).await?;
                }
            }
            let can_retry = !forced && refreshed.iter().any(|r| !r);
            let Some(choice) = self
                .select(selector, package, &dirs, &wanted, can_retry)
                .await?
            else {
                forced = true;
                continue;
            };
            let index = suites
                .iter()
                .position(|s| *s == choice.suite)
                .expect("the choice comes from a searched suite");
            match self.download(&dirs[index], &choice, reason.clone()).await {
                Ok(deb) => {
                    drop(locks);
                    return Ok(Fetched {
                        deb,
                        suite: Some(choice.suite),
                    });
                }
                Err(ImageBuildError::CommandFailed { .. }) if !refreshed[index] && !forced => {
                    forced = true;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// `apt-get update` of `dir` unless its lists are fresh (and `force`
    /// is off); returns whether it updated.
    async fn refresh(
        &self,
        dir: &AptDir,
        sources: &str,
        force: bool,
    ) -> Result<bool, ImageBuildError> {
        let timer = StepTimer::start(
            self.progress,
            Step::UpdateLists {
                suite: dir.suite(),
                dir: dir.path().to_owned(),
            },
        );
        match dir.lists_age(sources) {
            Some(age) if !force && age < LIST_MAX_AGE => {
                timer.finish(StepOutcome::Skipped {
                    reason: format!(
                        "the lists are {} old (refreshed after {})",
                        describe_age(age),
                        describe_age(LIST_MAX_AGE)
                    ),
                });
                Ok(false)
            }
            _ => timer.done(dir.update(sources).await).map(|()| true),
        }
    }

    /// Reads every suite's offers and chooses; `Ok(None)` when nothing
    /// matches and `can_retry` (the caller refreshes the lists and asks
    /// again), an error when nothing matches otherwise.
    async fn select(
        &self,
        selector: Option<&Selector>,
        package: Option<&str>,
        dirs: &[AptDir],
        wanted: &str,
        can_retry: bool,
    ) -> Result<Option<Choice>, ImageBuildError> {
        let timer = StepTimer::start(
            self.progress,
            Step::SelectPackage {
                wanted: selector.map(Selector::to_string),
                suites: dirs.iter().map(AptDir::suite).collect(),
            },
        );
        let result = async {
            let mut offers: Vec<(Suite, Vec<Offer>)> = Vec::with_capacity(dirs.len());
            for dir in dirs {
                let found = dir.offers(&[QEMU_USER, QEMU_USER_STATIC]).await?;
                offers.push((dir.suite(), found));
            }
            Ok(select::choose(selector, package, &offers).ok_or_else(|| {
                ImageBuildError::NoPackage {
                    wanted: wanted.to_owned(),
                    offered: select::offered(&offers),
                }
            }))
        }
        .await;
        match result {
            Ok(Ok(choice)) => {
                timer.finish(StepOutcome::Done);
                Ok(Some(choice))
            }
            Ok(Err(_)) if can_retry => {
                timer.finish(StepOutcome::Skipped {
                    reason: "nothing matches in the lists as they are: refreshing them".to_owned(),
                });
                Ok(None)
            }
            Ok(Err(err)) | Err(err) => timer.done(Err(err)),
        }
    }

    /// Downloads the chosen package into its suite's archives (or finds it
    /// there).
    async fn download(
        &self,
        dir: &AptDir,
        choice: &Choice,
        reason: Option<String>,
    ) -> Result<PathBuf, ImageBuildError> {
        let timer = StepTimer::start(
            self.progress,
            Step::FetchDeb {
                package: choice.offer.package.clone(),
                version: Some(choice.offer.version.clone()),
                suite: Some(choice.suite),
                size: choice.offer.size,
                reason,
            },
        );
        match dir.download(&choice.offer).await {
            Ok((path, true)) => {
                timer.finish(StepOutcome::Done);
                Ok(path)
            }
            Ok((path, false)) => {
                timer.finish(StepOutcome::Skipped {
                    reason: format!("already in `{}`", dir.archives().display()),
                });
                Ok(path)
            }
            Err(err) => timer.done(Err(err)),
        }
    }
}

/// `--qemu-version`'s value as a selector (checked again here: the
/// library may be called without the option check).
fn parse_selector(version: &str) -> Result<Selector, ImageBuildError> {
    Selector::parse(version).map_err(|reason| ImageBuildError::InvalidOption {
        what: "QEMU version",
        value: version.to_owned(),
        reason,
    })
}

/// `5 h 12 min`, `35 min`, `12 s`.
fn describe_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ if secs % 3600 < 60 => format!("{} h", secs / 3600),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(describe_age(Duration::from_secs(12)), "12 s");
        assert_eq!(describe_age(Duration::from_secs(35 * 60 + 5)), "35 min");
        assert_eq!(describe_age(LIST_MAX_AGE), "6 h");
        assert_eq!(
            describe_age(Duration::from_secs(5 * 3600 + 12 * 60)),
            "5 h 12 min"
        );
    }

    #[test]
    fn version_selectors_are_checked() {
        assert_eq!(
            parse_selector("11.1").unwrap(),
            Selector::Prefix(vec![11, 1])
        );
        let err = parse_selector("7.2; rm -rf /").unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert!(
            err.to_string()
                .starts_with("invalid QEMU version `7.2; rm -rf /`"),
            "{err}"
        );
    }
}
