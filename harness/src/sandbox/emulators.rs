//! Which emulators a registrar image holds, for the host runtime: the
//! [`RegistrarImage`] a step names, and the [`View`] that stands for it.
//!
//! The images `images build` makes hold `qus-register` and, in `/usr/bin`,
//! the static emulators of one Debian QEMU package: every
//! `qemu-<cpu>-static` outside the host's family in `latest` and
//! `<version>`, none in `register`. The host runtime runs the host's
//! registrar with exactly those files in `/usr/bin` (see `helper.rs`), so
//! a step registers what the image would have registered, with the same
//! interpreter paths. `latest` takes the host's own emulators
//! ([`host_emulators`]) when it has some, else the newest QEMU of the
//! host's Debian suite; `<version>` takes that QEMU from Debian's suites:
//! both fetched into the cache by `images::cached_emulators`, the code
//! `images build` uses. Pure, but for reading the host's files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use qus_registrar::interpreter;
use qus_registrar::targets;

use super::helper::ViewFile;
use crate::images::{CachedEmulators, DebSource, ImageVersion, Suite};

/// The registrar images the host runtime stands in for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegistrarImage {
    /// `<repo>:register`: no emulator.
    Register,
    /// `<repo>:latest`: the default QEMU.
    Latest,
    /// `<repo>:<version>` (`11.1.3-1`): that QEMU.
    Version(String),
}

impl RegistrarImage {
    /// What `image` is, when it is one of `repo`'s registrar images.
    pub fn parse(image: &str, repo: &str) -> Option<Self> {
        let (name, tag) = image.rsplit_once(':')?;
        if name != repo || tag.contains('/') {
            return None;
        }
        match tag {
            "latest" => Some(Self::Latest),
            "register" => Some(Self::Register),
            version => ImageVersion::from_str(version)
                .ok()
                .map(|_| Self::Version(version.to_owned())),
        }
    }

    /// Where Debian's package comes from when the host's own emulators do
    /// not stand for this image; `None` for `register`.
    pub fn debian_source(&self, host_suite: Suite) -> Option<DebSource> {
        match self {
            Self::Register => None,
            Self::Latest => Some(DebSource::Apt {
                version: None,
                suite: Some(host_suite),
            }),
            Self::Version(version) => {
                let qemu = ImageVersion::from_str(version)
                    .map(|v| v.qemu.to_string())
                    .unwrap_or_else(|_| version.clone());
                Some(DebSource::Apt {
                    version: Some(qemu),
                    suite: None,
                })
            }
        }
    }
}

impl fmt::Display for RegistrarImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Register => f.write_str("register"),
            Self::Latest => f.write_str("latest"),
            Self::Version(v) => f.write_str(v),
        }
    }
}

/// What a registrar step on the host sees in `/usr/bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Where the emulators come from, for reports and the doctor.
    pub origin: String,
    /// The emulators.
    pub files: Vec<ViewFile>,
}

impl View {
    /// The `register` image's view: no emulator.
    pub fn empty() -> Self {
        Self {
            origin: "no emulator (as in the `register` image)".to_owned(),
            files: Vec::new(),
        }
    }

    /// The host's own emulators, as `latest` would hold them.
    pub fn host(dir: &Path, files: Vec<ViewFile>) -> Self {
        Self {
            origin: format!(
                "the host's {} `{}/qemu-*-static`",
                files.len(),
                dir.display()
            ),
            files,
        }
    }

    /// The cached emulators of a Debian package, outside `machine`'s
    /// family.
    pub fn cached(cached: &CachedEmulators, machine: &str) -> Self {
        let family = targets::host_family(machine);
        let foreign: Vec<String> = foreign_interpreters(&family);
        let files: Vec<ViewFile> = cached
            .files
            .iter()
            .filter(|(target, _)| foreign.iter().any(|f| f == target))
            .map(|(target, path)| ViewFile {
                name: format!("qemu-{target}-static"),
                source: path.clone(),
            })
            .collect();
        let suite = cached
            .suite
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        Self {
            origin: format!(
                "{} `{}` {}{suite}, fetched into `{}`",
                files.len(),
                cached.package,
                cached.debian_version,
                cached.dir.display()
            ),
            files,
        }
    }
}

/// The interpreter names (`aarch64` of `qemu-aarch64`) of every target
/// outside `family`, without repeats (`i486` runs on `qemu-i386`).
fn foreign_interpreters(family: &str) -> Vec<String> {
    let mut names: Vec<String> = targets::foreign_to(family)
        .map(|t| {
            t.interpreter
                .strip_prefix("qemu-")
                .unwrap_or(t.interpreter)
                .to_owned()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The host's own static `<dir>/qemu-<cpu>-static` of every target
/// outside `machine`'s family (Debian's `qemu-user-static` up to QEMU 9.0,
/// or its symlinks into `qemu-user` after).
pub fn host_emulators(dir: &Path, machine: &str) -> Vec<ViewFile> {
    let family = targets::host_family(machine);
    foreign_interpreters(&family)
        .into_iter()
        .filter_map(|name| {
            let file = format!("qemu-{name}-static");
            let path: PathBuf = dir.join(&file);
            interpreter::facts(&path.to_string_lossy())
                .is_static_elf()
                .then_some(ViewFile {
                    name: file,
                    source: path,
                })
        })
        .collect()
}

/// The Debian suite of this host (`VERSION_CODENAME` of `os-release`)
/// when it is one the images can fetch from, else bookworm.
pub fn host_suite(os_release: &str) -> Suite {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches('"'))
        .and_then(|name| Suite::ALL.into_iter().find(|s| s.name() == name))
        .unwrap_or(Suite::Bookworm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrar_images_are_the_repositorys_three_kinds() {
        let repo = "qus/qemu-user-static";
        let parse = |image: &str| RegistrarImage::parse(image, repo);
        assert_eq!(
            parse("qus/qemu-user-static:latest"),
            Some(RegistrarImage::Latest)
        );
        assert_eq!(
            parse("qus/qemu-user-static:register"),
            Some(RegistrarImage::Register)
        );
        assert_eq!(
            parse("qus/qemu-user-static:11.1.3-1"),
            Some(RegistrarImage::Version("11.1.3-1".into()))
        );
        for other in [
            "qus/qemu-user-static:aarch64",
            "qus/qemu-user-static:x86_64-aarch64",
            "qus/qemu-user-static:binfmt",
            "other/qemu-user-static:latest",
            "qus/qemu-user-static",
            "localhost:5000/qus/qemu-user-static",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
        assert_eq!(
            RegistrarImage::parse("localhost:5000/qus:latest", "localhost:5000/qus"),
            Some(RegistrarImage::Latest)
        );
    }

    #[test]
    fn versions_fetch_their_qemu_and_latest_the_hosts_suite() {
        assert_eq!(
            RegistrarImage::Version("11.1.3-2".into()).debian_source(Suite::Bookworm),
            Some(DebSource::Apt {
                version: Some("11.1.3".into()),
                suite: None
            })
        );
        assert_eq!(
            RegistrarImage::Latest.debian_source(Suite::Trixie),
            Some(DebSource::Apt {
                version: None,
                suite: Some(Suite::Trixie)
            })
        );
        assert_eq!(RegistrarImage::Register.debian_source(Suite::Sid), None);
    }

    #[test]
    fn the_hosts_suite_comes_from_os_release() {
        assert_eq!(
            host_suite("PRETTY_NAME=\"Debian\"\nVERSION_CODENAME=trixie\n"),
            Suite::Trixie
        );
        assert_eq!(host_suite("VERSION_CODENAME=jammy\n"), Suite::Bookworm);
        assert_eq!(host_suite(""), Suite::Bookworm);
    }

    #[test]
    fn cached_views_leave_the_hosts_family_out() {
        let cached = CachedEmulators {
            dir: "/c".into(),
            package: "qemu-user-static".into(),
            debian_version: "1:7.2".into(),
            suite: Some(Suite::Bookworm),
            files: vec![
                ("aarch64".into(), "/c/qemu-aarch64-static".into()),
                ("i386".into(), "/c/qemu-i386-static".into()),
                ("x86_64".into(), "/c/qemu-x86_64-static".into()),
            ],
            unpacked: false,
        };
        let view = View::cached(&cached, "x86_64");
        let names: Vec<&str> = view.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["qemu-aarch64-static"]);
        assert!(view.origin.contains("from bookworm"), "{}", view.origin);
    }

    #[test]
    fn host_emulators_are_the_static_foreign_ones() {
        let dir = std::env::temp_dir().join(format!("qus-host-emulators-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A static ELF header (no PT_INTERP) for aarch64, a shell script for s390x.
        let probe = qus_registrar::verify::probe("aarch64").unwrap().0;
        std::fs::write(dir.join("qemu-aarch64-static"), probe).unwrap();
        std::fs::write(dir.join("qemu-s390x-static"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.join("qemu-x86_64-static"), probe).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        for f in [
            "qemu-aarch64-static",
            "qemu-s390x-static",
            "qemu-x86_64-static",
        ] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let found = host_emulators(&dir, "x86_64");
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["qemu-aarch64-static"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
