//! Debian's QEMU emulators unpacked into the cache, for hosts that have
//! none: [`cached_emulators`].
//!
//! The host runtime runs the host's `qus-register` with the emulators of a
//! registrar image (`register: { image: ... }`, see `sandbox/`). Where the
//! host has no `qemu-*-static` of its own, or the image is of another QEMU
//! version, the emulators come from Debian's package, fetched exactly as
//! `images build` fetches it (`fetch.rs`: a private APT directory per
//! suite, the same choice rules), unpacked and checked the same way
//! (`deb.rs`, `emulator.rs`), and kept as
//! `$QUS_CACHE_DIR/emulators/<package file>/qemu-<cpu>-static`, keyed by
//! the package file (name, version, architecture). Nothing is installed on
//! the host. A directory is complete once it holds `.complete`; it is
//! built under a temporary name and renamed into place, so an interrupted
//! fetch never leaves a directory that looks complete.

use std::path::{Path, PathBuf};

use qus_registrar::binfmt::HostFacts;

use super::deb::{self, DebSource, Layout, QEMU_USER};
use super::emulator::{self, Origin};
use super::error::ImageBuildError;
use super::fetch::Fetcher;
use super::progress::{Progress, Step, StepTimer};
use super::suite::Suite;
use super::version::Selector;
use super::workdir::WorkDir;

/// The cache subdirectory.
const EMULATORS_DIR: &str = "emulators";

/// The marker of a complete directory: `<package> <version>` on one line.
const COMPLETE: &str = ".complete";

/// Emulators unpacked from one Debian package, in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEmulators {
    /// The directory holding `qemu-<cpu>-static` files.
    pub dir: PathBuf,
    /// The package the files came from (`qemu-user-static`, `qemu-user`).
    pub package: String,
    /// Its Debian version (`1:7.2+dfsg-7+deb12u18+b3`).
    pub debian_version: String,
    /// The suite it was fetched from (`None`: the host's APT sources).
    pub suite: Option<Suite>,
    /// Every emulator: the QEMU target name (`aarch64`) and its file.
    pub files: Vec<(String, PathBuf)>,
    /// Whether this call unpacked them (`false`: they were in the cache).
    pub unpacked: bool,
}

/// Fetches the package `source` names (as `images build` would) and
/// returns its emulators from `cache_dir`, unpacking them there first when
/// they are not yet.
///
/// # Errors
///
/// An invalid QEMU version, a CPU Debian ships no static QEMU for, a
/// failed download, a package that is not one of QEMU's, an emulator that
/// is not static or not for this CPU, or the cache not writable.
pub async fn cached_emulators(
    cache_dir: &Path,
    source: &DebSource,
    progress: &dyn Progress,
) -> Result<CachedEmulators, ImageBuildError> {
    if let DebSource::Apt {
        version: Some(version),
        ..
    } = source
    {
        Selector::parse(version).map_err(|reason| ImageBuildError::InvalidOption {
            what: "QEMU version",
            value: version.clone(),
            reason,
        })?;
    }
    let machine = HostFacts::read(None).machine;
    let arch = deb::debian_arch(&machine).ok_or_else(|| ImageBuildError::InvalidOption {
        what: "QEMU source",
        value: format!("Debian's suites on `{machine}`"),
        reason: "Debian ships no static QEMU for this CPU".to_owned(),
    })?;
    let work = WorkDir::create(&std::env::temp_dir(), "qus-emulators")?;
    let fetcher = Fetcher {
        cache_dir,
        arch,
        work: work.path(),
        root: Path::new("/"),
        progress,
    };
    let fetched = fetcher.fetch(source).await?;
    let key = fetched
        .deb
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "qemu".to_owned());
    let dir = cache_dir.join(EMULATORS_DIR).join(&key);
    if let Some(found) = read_complete(&dir, fetched.suite) {
        return Ok(found);
    }
    let mut unpacked = unpack(&fetched.deb, &work.path().join("deb"), progress).await?;
    let mut deb_path = fetched.deb.clone();
    if unpacked.layout == Layout::Transitional {
        let user = fetcher.qemu_user_for(source, &unpacked.version).await?;
        let transitional = unpacked.version.clone();
        unpacked = unpack(&user.deb, &work.path().join("deb-qemu-user"), progress).await?;
        if unpacked.layout != Layout::QemuUser || unpacked.version != transitional {
            return Err(ImageBuildError::InvalidDeb {
                path: user.deb.clone(),
                reason: format!(
                    "expected `{QEMU_USER}` {transitional} with static `usr/bin/qemu-<cpu>`, \
                     found `{}` {}",
                    unpacked.package, unpacked.version
                ),
            });
        }
        deb_path = user.deb;
    }
    let timer = StepTimer::start(
        progress,
        Step::CheckEmulators {
            package: unpacked.package.clone(),
            count: unpacked.emulators.len(),
            machine: machine.clone(),
        },
    );
    let checked = {
        let (emulators, machine, deb) = (
            unpacked.emulators.clone(),
            machine.clone(),
            deb_path.clone(),
        );
        let (package, version) = (unpacked.package.clone(), unpacked.version.clone());
        tokio::task::spawn_blocking(move || {
            let origin = Origin {
                deb: &deb,
                package: &package,
                version: &version,
            };
            emulator::check_all(&emulators, &machine, origin)
        })
        .await
        .map_err(|join| ImageBuildError::Spawn {
            program: "the emulator check".to_owned(),
            source: std::io::Error::other(join),
        })
        .and_then(|r| r)
    };
    timer.done(checked)?;
    store(&dir, &unpacked)?;
    let mut stored =
        read_complete(&dir, fetched.suite).ok_or_else(|| ImageBuildError::InvalidDeb {
            path: deb_path,
            reason: format!("`{}` is incomplete after unpacking", dir.display()),
        })?;
    stored.unpacked = true;
    Ok(stored)
}

/// Unpacks `deb` into `dir`, as one reported step.
async fn unpack(
    deb: &Path,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<deb::Unpacked, ImageBuildError> {
    let timer = StepTimer::start(
        progress,
        Step::UnpackDeb {
            path: deb.to_owned(),
        },
    );
    timer.done(deb::unpack(deb, dir).await)
}

/// Copies the emulators into `dir` as `qemu-<cpu>-static`, through a
/// temporary directory renamed into place.
fn store(dir: &Path, unpacked: &deb::Unpacked) -> Result<(), ImageBuildError> {
    let parent = dir.parent().expect("the cache directory has a parent");
    std::fs::create_dir_all(parent).map_err(ImageBuildError::io("create directory", parent))?;
    let staging = WorkDir::create(parent, ".staging")?;
    for emulator in &unpacked.emulators {
        let to = staging.path().join(emulator.file_name());
        std::fs::copy(&emulator.path, &to).map_err(ImageBuildError::io("copy to", &to))?;
    }
    let marker = staging.path().join(COMPLETE);
    std::fs::write(
        &marker,
        format!("{} {}\n", unpacked.package, unpacked.version),
    )
    .map_err(ImageBuildError::io("write", &marker))?;
    match std::fs::rename(staging.path(), dir) {
        Ok(()) => Ok(()),
        // Another process stored the same package meanwhile.
        Err(_) if dir.join(COMPLETE).is_file() => Ok(()),
        Err(e) => Err(ImageBuildError::io("rename into", dir)(e)),
    }
}

/// The complete directory `dir`, when it is.
fn read_complete(dir: &Path, suite: Option<Suite>) -> Option<CachedEmulators> {
    let marker = std::fs::read_to_string(dir.join(COMPLETE)).ok()?;
    let (package, version) = marker.trim().split_once(' ')?;
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let target = name.strip_prefix("qemu-")?.strip_suffix("-static")?;
            Some((target.to_owned(), entry.path()))
        })
        .collect();
    files.sort();
    Some(CachedEmulators {
        dir: dir.to_owned(),
        package: package.to_owned(),
        debian_version: version.to_owned(),
        suite,
        files,
        unpacked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_directories_are_read() {
        let cache = std::env::temp_dir().join(format!("qus-qemu-cache-{}", std::process::id()));
        let dir = cache.join("emulators/qemu-user-static_7.2_amd64");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("qemu-aarch64-static"), b"x").unwrap();
        std::fs::write(dir.join("qemu-s390x-static"), b"x").unwrap();
        assert_eq!(read_complete(&dir, None), None);
        std::fs::write(dir.join(COMPLETE), "qemu-user-static 1:7.2+dfsg-7\n").unwrap();
        let found = read_complete(&dir, Some(Suite::Bookworm)).unwrap();
        assert_eq!(found.package, "qemu-user-static");
        assert_eq!(found.debian_version, "1:7.2+dfsg-7");
        let targets: Vec<&str> = found.files.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(targets, ["aarch64", "s390x"]);
        std::fs::remove_dir_all(&cache).unwrap();
    }
}
