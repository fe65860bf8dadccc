//! Fetching QEMU packages with APT: from the host's own configuration
//! (`apt-get download`, as the original pipeline did), or from one Debian
//! [`Suite`] through a private APT state directory ([`AptDir`]) that leaves
//! the host's APT setup untouched.
//!
//! A private directory, `<cache>/apt/<suite>-<debian arch>/`, holds its own
//! `sources.list`, package lists, caches, an empty dpkg status and the
//! downloaded packages (`archives/`). Every APT path that could be written
//! is pointed into it on the command line ([`AptDir::options`]), which
//! overrides any configuration file; the host's other settings (proxies,
//! keyrings) still apply. Lists are refreshed with `apt-get update` when
//! older than [`LIST_MAX_AGE`] or when the sources changed, and reused
//! otherwise; a package already downloaded with the hash the lists give is
//! not downloaded again. One process at a time works in a directory (an
//! exclusive `flock` on its `lock` file).
//!
//! This module runs APT and reads its answers; choosing the package is
//! `select.rs`'s, and unpacking it `deb.rs`'s.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::ImageBuildError;
use super::recipe::{sha256_bytes, sha256_file};
use super::suite::{Suite, sources_list};
use super::tool::{APT_CACHE, APT_GET, Invocation};

/// Lists younger than this are used as they are. Debian's archive is
/// updated four times a day, so a build sees at most one missed update;
/// a version the lists lack makes the build refresh them anyway.
pub const LIST_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// The keyring that signs Debian's archives, as `debian-archive-keyring`
/// installs it; without it APT uses the host's trusted keys.
pub(crate) const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Bound on `apt-get update` of one suite (about 12 MB of lists).
const UPDATE_TIMEOUT: Duration = Duration::from_secs(600);

/// Bound on `apt-get download` of one package (about 75 MB).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);

/// Bound on reading the lists with `apt-cache show`.
const SHOW_TIMEOUT: Duration = Duration::from_secs(120);

/// The stamp recording the sources of the last successful update; its
/// modification time is the update's.
const STAMP_FILE: &str = "lists.stamp";

/// One version of a package that an APT source offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    /// `qemu-user`.
    pub(crate) package: String,
    /// Debian's version (`1:11.1.3+ds-1`).
    pub(crate) version: String,
    /// Debian's architecture (`amd64`).
    pub(crate) architecture: String,
    /// Size of the `.deb` in bytes.
    pub(crate) size: Option<u64>,
    /// SHA-256 of the `.deb`, lowercase hex.
    pub(crate) sha256: Option<String>,
}

impl Offer {
    /// The file name `apt-get download` gives the package (`:` escaped).
    pub(crate) fn file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.package,
            self.version.replace(':', "%3a"),
            self.architecture
        )
    }
}

/// The private APT state of one suite for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AptDir {
    suite: Suite,
    arch: String,
    dir: PathBuf,
}

/// Holds a directory's lock; released when dropped.
#[derive(Debug)]
pub(crate) struct AptLock {
    _file: std::fs::File,
}

impl AptDir {
    /// `<cache_dir>/apt/<suite>-<arch>`.
    pub(crate) fn new(cache_dir: &Path, suite: Suite, arch: &str) -> Self {
        Self {
            suite,
            arch: arch.to_owned(),
            dir: cache_dir.join("apt").join(format!("{suite}-{arch}")),
        }
    }

    pub(crate) fn suite(&self) -> Suite {
        self.suite
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Where downloaded packages are kept.
    pub(crate) fn archives(&self) -> PathBuf {
        self.dir.join("archives")
    }

    /// The `-o` options that make APT read and write only this directory
    /// (plus the host's keyrings and settings that say nothing about
    /// paths), for this architecture alone.
    pub(crate) fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        let mut options = vec![
            format!("Dir::Etc::sourcelist={d}/sources.list"),
            format!("Dir::Etc::sourceparts={d}/sources.list.d"),
            format!("Dir::Etc::preferences={d}/preferences"),
            format!("Dir::Etc::preferencesparts={d}/preferences.d"),
            format!("Dir::State={d}/state"),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::Log={d}/log"),
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures={}", self.arch),
            // sid's Release files expire within a week, and mirrors that
            // lag (or snapshots) would be refused.
            "Acquire::Check-Valid-Until=false".to_owned(),
            "Acquire::Languages=none".to_owned(),
        ];
        if rustix::process::geteuid().is_root() {
            // The directory is root's: APT's `_apt` user could not write it
            // (and would warn that it downloads unsandboxed).
            options.push("APT::Sandbox::User=root".to_owned());
        }
        options
            .into_iter()
            .flat_map(|o| ["-o".to_owned(), o])
            .collect()
    }

    /// Creates the directory tree and writes `sources.list` (for the
    /// host's mirrors under `root`) when it differs; returns its text.
    pub(crate) fn prepare(&self, root: &Path) -> Result<String, ImageBuildError> {
        for sub in [
            "sources.list.d",
            "preferences.d",
            "state",
            "lists/partial",
            "cache/archives/partial",
            "log",
            "archives",
        ] {
            let path = self.dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(ImageBuildError::io("create directory", &path))?;
        }
        let keyring = Path::new(DEBIAN_KEYRING);
        let text = sources_list(
            self.suite,
            &self.arch,
            &self.suite.sources(root),
            keyring.is_file().then_some(keyring),
        );
        let file = self.dir.join("sources.list");
        if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&file, &text).map_err(ImageBuildError::io("write", &file))?;
        }
        let status = self.dir.join("status");
        if !status.is_file() {
            std::fs::write(&status, b"").map_err(ImageBuildError::io("write", &status))?;
        }
        Ok(text)
    }

    /// Waits for, then takes, the directory's lock.
    pub(crate) async fn lock(&self) -> Result<AptLock, ImageBuildError> {
        let path = self.dir.join("lock");
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(ImageBuildError::io("open", &path))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| ImageBuildError::io("lock", &path)(e.into()))?;
            Ok(AptLock { _file: file })
        })
        .await
        .map_err(|join| ImageBuildError::Spawn {
            program: "the lock thread".to_owned(),
            source: std::io::Error::other(join),
        })?
    }

    /// How old the lists are when they were made from `sources` (the text
    /// [`AptDir::prepare`] returned); `None` when there are none or they
    /// came from other sources.
    pub(crate) fn lists_age(&self, sources: &str) -> Option<Duration> {
        let stamp = self.dir.join(STAMP_FILE);
        let recorded = std::fs::read_to_string(&stamp).ok()?;
        if recorded.trim() != sha256_bytes(sources.as_bytes()) {
            return None;
        }
        let modified = std::fs::metadata(&stamp).ok()?.modified().ok()?;
        // A stamp from the future (clock changes) counts as new.
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }

    /// `apt-get update` into the private lists, then the stamp.
    pub(crate) async fn update(&self, sources: &str) -> Result<(), ImageBuildError> {
        let stamp = self.dir.join(STAMP_FILE);
        // An interrupted update must not leave a valid stamp behind.
        match std::fs::remove_file(&stamp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageBuildError::io("remove", &stamp)(e)),
        }
        Invocation::new(APT_GET)
            .args(self.options())
            // Without it a source that cannot be fetched is a warning,
            // exit 0, and the lists silently lack (or keep an old copy of)
            // the suite.
            .args(["-q", "--error-on=any", "update"])
            .timeout(UPDATE_TIMEOUT)
            .hint(format!(
                "check that the mirrors in `{}` are reachable",
                self.dir.join("sources.list").display()
            ))
            .output()
            .await?;
        std::fs::write(&stamp, sha256_bytes(sources.as_bytes()))
            .map_err(ImageBuildError::io("write", &stamp))
    }

    /// Every version of `packages` the lists offer (none when they offer
    /// none of them).
    pub(crate) async fn offers(&self, packages: &[&str]) -> Result<Vec<Offer>, ImageBuildError> {
        let invocation = Invocation::new(APT_CACHE)
            .args(self.options())
            .arg("show")
            .args(packages)
            .timeout(SHOW_TIMEOUT);
        let output = invocation.output_unchecked().await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // `apt-cache show` fails only when it finds none of the packages.
        if !output.status.success() && !stdout.trim().is_empty() {
            return Err(ImageBuildError::CommandFailed {
                command: invocation.display(),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
                hint: None,
            });
        }
        Ok(parse_offers(&stdout))
    }

    /// The package `offer` in [`AptDir::archives`]: the file already there
    /// when its SHA-256 is the one the lists give (`Ok((path, false))`),
    /// else downloaded with `apt-get download` (`Ok((path, true))`), which
    /// checks it against the lists. Other packages in the directory (those
    /// of earlier builds) are removed.
    pub(crate) async fn download(&self, offer: &Offer) -> Result<(PathBuf, bool), ImageBuildError> {
        let archives = self.archives();
        let path = archives.join(offer.file_name());
        let cached = match &offer.sha256 {
            Some(want) if path.is_file() => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sha256_file(&path))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .is_some_and(|have| have == *want)
            }
            _ => false,
        };
        if !cached {
            Invocation::new(APT_GET)
                .args(self.options())
                .args(["-q", "download"])
                .arg(format!("{}={}", offer.package, offer.version))
                .current_dir(&archives)
                .timeout(DOWNLOAD_TIMEOUT)
                .output()
                .await?;
            if !path.is_file() {
                return Err(ImageBuildError::InvalidDeb {
                    path: path.clone(),
                    reason: "`apt-get download` did not write it".to_owned(),
                });
            }
        }
        remove_other_debs(&archives, &path)?;
        Ok((path, !cached))
    }
}

/// Removes every `.deb` in `dir` but `keep`.
fn remove_other_debs(dir: &Path, keep: &Path) -> Result<(), ImageBuildError> {
    let entries = std::fs::read_dir(dir).map_err(ImageBuildError::io("read directory", dir))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path != keep && path.extension().is_some_and(|e| e == "deb") && path.is_file() {
            std::fs::remove_file(&path).map_err(ImageBuildError::io("remove", &path))?;
        }
    }
    Ok(())
}

/// The offers in `apt-cache show` output (deb822 stanzas), in order,
/// without repeats; stanzas lacking a package, version or architecture
/// are skipped.
pub(crate) fn parse_offers(text: &str) -> Vec<Offer> {
    let mut offers: Vec<Offer> = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (!line.starts_with([' ', '\t']) && key == name).then(|| value.trim().to_owned())
            })
        };
        let (Some(package), Some(version), Some(architecture)) =
            (field("Package"), field("Version"), field("Architecture"))
        else {
            continue;
        };
        let offer = Offer {
            package,
            version,
            architecture,
            size: field("Size").and_then(|s| s.parse().ok()),
            sha256: field("SHA256").map(|s| s.to_ascii_lowercase()),
        };
        let repeated = offers
            .iter()
            .any(|o| o.package == offer.package && o.version == offer.version);
        if !repeated {
            offers.push(offer);
        }
    }
    offers
}

/// Downloads `package[=version]` into `dir` with the host's own APT
/// configuration and returns the `.deb`'s path.
pub(crate) async fn download_from_host(
    package: &str,
    version: Option<&str>,
    dir: &Path,
) -> Result<PathBuf, ImageBuildError> {
    let spec = match version {
        Some(version) => format!("{package}={version}"),
        None => package.to_owned(),
    };
    Invocation::new(APT_GET)
        .arg("download")
        .arg(&spec)
        .current_dir(dir)
        .timeout(DOWNLOAD_TIMEOUT)
        .hint(format!(
            "run `apt-get update` first, check the version with `apt-cache policy {package}`, \
             pass the package with `--deb PATH`, or fetch it from a Debian suite with `--suite`"
        ))
        .output()
        .await?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ImageBuildError::io("read directory", dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .collect();
    debs.sort();
    match debs.as_slice() {
        [deb] => Ok(deb.clone()),
        _ => Err(ImageBuildError::InvalidDeb {
            path: dir.to_owned(),
            reason: format!(
                "`apt-get download` left {} `{package}_*.deb` files, expected one",
                debs.len()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writable_path_is_private() {
        let apt = AptDir::new(Path::new("/c"), Suite::Sid, "amd64");
        assert_eq!(apt.path(), Path::new("/c/apt/sid-amd64"));
        let options = apt.options();
        // Pairs of `-o KEY=VALUE`.
        assert!(options.chunks(2).all(|pair| pair[0] == "-o"));
        let values: Vec<&str> = options
            .iter()
            .skip(1)
            .step_by(2)
            .map(String::as_str)
            .collect();
        for key in [
            "Dir::Etc::sourcelist",
            "Dir::Etc::sourceparts",
            "Dir::Etc::preferences",
            "Dir::Etc::preferencesparts",
            "Dir::State",
            "Dir::State::Lists",
            "Dir::State::status",
            "Dir::Cache",
            "Dir::Log",
        ] {
            let value = values
                .iter()
                .find_map(|v| v.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} is not set"));
            assert!(value.starts_with("/c/apt/sid-amd64/"), "{key}={value}");
        }
        assert!(values.contains(&"APT::Architecture=amd64"));
        assert!(values.contains(&"APT::Architectures=amd64"));
        assert!(values.contains(&"Acquire::Check-Valid-Until=false"));
        assert_eq!(
            AptDir::new(Path::new("/c"), Suite::BookwormBackports, "arm64").path(),
            Path::new("/c/apt/bookworm-backports-arm64")
        );
    }

    #[test]
    fn offers_are_read_from_stanzas() {
        let text = "\
Package: qemu-user-static
Version: 1:10.0.13+ds-0+deb13u1
Architecture: amd64
Depends: qemu-user (>= 1:10.0.13+ds-0+deb13u1)
Description: QEMU user mode emulation (compat/transitional package)
 Package: not-a-field
Size: 77416
SHA256: ABCDEF

Package: qemu-user
Version: 1:10.0.13+ds-0+deb13u1
Architecture: amd64
Size: 71089852

Package: qemu-user
Version: 1:10.0.13+ds-0+deb13u1
Architecture: amd64

Package: broken
";
        assert_eq!(
            parse_offers(text),
            [
                Offer {
                    package: "qemu-user-static".into(),
                    version: "1:10.0.13+ds-0+deb13u1".into(),
                    architecture: "amd64".into(),
                    size: Some(77416),
                    sha256: Some("abcdef".into()),
                },
                Offer {
                    package: "qemu-user".into(),
                    version: "1:10.0.13+ds-0+deb13u1".into(),
                    architecture: "amd64".into(),
                    size: Some(71_089_852),
                    sha256: None,
                },
            ]
        );
        assert!(parse_offers("").is_empty());
    }

    #[test]
    fn file_names_escape_the_epoch_as_apt_does() {
        let offer = Offer {
            package: "qemu-user".into(),
            version: "1:11.1.3+ds-1".into(),
            architecture: "amd64".into(),
            size: None,
            sha256: None,
        };
        assert_eq!(offer.file_name(), "qemu-user_1%3a11.1.3+ds-1_amd64.deb");
    }

    #[test]
    fn lists_are_fresh_only_for_the_same_sources() {
        let cache = tempfile::tempdir().unwrap();
        let apt = AptDir::new(cache.path(), Suite::Trixie, "amd64");
        let sources = apt.prepare(cache.path()).unwrap();
        assert!(sources.contains(" trixie main\n"), "{sources}");
        assert!(apt.path().join("status").is_file());
        assert!(apt.archives().is_dir());
        assert_eq!(apt.lists_age(&sources), None);
        std::fs::write(
            apt.path().join(STAMP_FILE),
            sha256_bytes(sources.as_bytes()),
        )
        .unwrap();
        assert!(apt.lists_age(&sources).unwrap() < Duration::from_secs(60));
        assert_eq!(apt.lists_age("other sources"), None);
    }

    #[test]
    fn older_packages_are_removed_from_the_archives() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a_1_amd64.deb", "a_2_amd64.deb", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("partial")).unwrap();
        remove_other_debs(dir.path(), &dir.path().join("a_2_amd64.deb")).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a_2_amd64.deb", "notes.txt", "partial"]);
    }
}
