//! [`Suite`]: the Debian suites `images build` fetches QEMU from, and the
//! APT sources each one stands for.
//!
//! Pure data and text: the sources lines of a suite (its archive, plus the
//! security archive for a stable release, because Debian ships QEMU
//! security fixes there before a point release) and the mirrors they use.
//! Reading the host's configured mirrors is `mirror.rs`'s; running APT is
//! `apt.rs`'s.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::mirror::{DEFAULT_MIRROR, mirror_from_sources};

/// Debian's security archive, used when the host names none for a suite.
pub(crate) const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

/// A Debian suite that carries QEMU's user-mode emulators.
///
/// [`Suite::ALL`] lists them stable-most first, the order in which
/// `--qemu-version` breaks ties between suites offering the same QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    /// Debian 12 (QEMU 7.2 in `qemu-user-static`).
    Bookworm,
    /// Backports for Debian 12 (QEMU 10.0 in `qemu-user`).
    BookwormBackports,
    /// Debian 13 (QEMU 10.0 in `qemu-user`).
    Trixie,
    /// Debian unstable (the newest QEMU, in `qemu-user`).
    Sid,
}

impl Suite {
    /// Every suite, stable-most first.
    pub const ALL: [Suite; 4] = [
        Suite::Bookworm,
        Suite::BookwormBackports,
        Suite::Trixie,
        Suite::Sid,
    ];

    /// Debian's name for it (`bookworm-backports`).
    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::BookwormBackports => "bookworm-backports",
            Suite::Trixie => "trixie",
            Suite::Sid => "sid",
        }
    }

    /// The distributions (APT's "suite" field) this suite reads, and
    /// whether each lives in the security archive.
    fn dists(self) -> &'static [(&'static str, bool)] {
        match self {
            Suite::Bookworm => &[("bookworm", false), ("bookworm-security", true)],
            Suite::BookwormBackports => &[("bookworm-backports", false)],
            Suite::Trixie => &[("trixie", false), ("trixie-security", true)],
            Suite::Sid => &[("sid", false)],
        }
    }

    /// `(mirror, dist)` of every source line: the mirror the host's APT
    /// sources under `root` name for that dist, else Debian's.
    pub(crate) fn sources(self, root: &Path) -> Vec<(String, &'static str)> {
        self.dists()
            .iter()
            .map(|&(dist, security)| {
                let default = if security {
                    DEFAULT_SECURITY_MIRROR
                } else {
                    DEFAULT_MIRROR
                };
                let mirror = mirror_from_sources(root, dist).unwrap_or_else(|| default.to_owned());
                (mirror, dist)
            })
            .collect()
    }
}

impl Suite {
    /// The suite of the Debian release installed under `root` (`/`), read
    /// from `etc/os-release`'s `VERSION_CODENAME` (`bookworm`, `trixie`,
    /// `sid`); `None` for another distribution or release, or without the
    /// file. Images for another host take their QEMU from it by default,
    /// so that they hold the QEMU the host's own APT gives this one.
    pub fn of_host(root: &Path) -> Option<Suite> {
        let text = std::fs::read_to_string(root.join("etc/os-release")).ok()?;
        let field = |key: &str| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(key)?.strip_prefix('=')?;
                Some(value.trim().trim_matches(['"', '\'']).to_owned())
            })
        };
        if field("ID").as_deref() != Some("debian") {
            return None;
        }
        field("VERSION_CODENAME")?.parse().ok()
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A suite name `images build` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Debian suite `{0}`: expected bookworm, bookworm-backports, trixie or sid")]
pub struct ParseSuiteError(pub String);

impl FromStr for Suite {
    type Err = ParseSuiteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Suite::ALL
            .into_iter()
            .find(|suite| suite.name() == s)
            .ok_or_else(|| ParseSuiteError(s.to_owned()))
    }
}

/// The text of a private `sources.list` for `sources` (from
/// [`Suite::sources`]): only binary packages of `arch`, only the
/// `Packages` index (no translations, no AppStream metadata the host's
/// configuration may ask for), signed by `keyring` when given.
pub(crate) fn sources_list(
    suite: Suite,
    arch: &str,
    sources: &[(String, &str)],
    keyring: Option<&Path>,
) -> String {
    let mut options = vec![format!("arch={arch}")];
    if let Some(keyring) = keyring {
        options.push(format!("signed-by={}", keyring.display()));
    }
    options.push("target=Packages".to_owned());
    let options = options.join(" ");
    let mut text = format!(
        "# Written by `qus-harness images build`: Debian {suite} for {arch}, \
         read only with this directory's APT state.\n"
    );
    for (mirror, dist) in sources {
        text.push_str(&format!("deb [{options}] {mirror} {dist} main\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for suite in Suite::ALL {
            assert_eq!(suite.name().parse::<Suite>(), Ok(suite));
            assert_eq!(suite.to_string(), suite.name());
        }
        let err = "buster".parse::<Suite>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown Debian suite `buster`: expected bookworm, bookworm-backports, trixie or sid"
        );
        assert!("Sid".parse::<Suite>().is_err());
    }

    #[test]
    fn the_hosts_suite_comes_from_os_release() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Suite::of_host(root.path()), None);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        let write = |text: &str| std::fs::write(root.path().join("etc/os-release"), text).unwrap();
        write(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        assert_eq!(Suite::of_host(root.path()), Some(Suite::Bookworm));
        write("ID=debian\nVERSION_CODENAME='trixie'\n");
        assert_eq!(Suite::of_host(root.path()), Some(Suite::Trixie));
        // Ubuntu names its own releases; testing's codename is no suite here.
        write("ID=ubuntu\nVERSION_CODENAME=noble\nID_LIKE=debian\n");
        assert_eq!(Suite::of_host(root.path()), None);
        write("ID=debian\nVERSION_CODENAME=forky\n");
        assert_eq!(Suite::of_host(root.path()), None);
    }

    #[test]
    fn stable_releases_read_their_security_archive() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            Suite::Bookworm.sources(root.path()),
            [
                ("http://deb.debian.org/debian".to_owned(), "bookworm"),
                (
                    "http://deb.debian.org/debian-security".to_owned(),
                    "bookworm-security"
                ),
            ]
        );
        assert_eq!(
            Suite::Sid.sources(root.path()),
            [("http://deb.debian.org/debian".to_owned(), "sid")]
        );
        assert_eq!(Suite::BookwormBackports.sources(root.path()).len(), 1);
        assert_eq!(Suite::Trixie.sources(root.path())[1].1, "trixie-security");
    }

    #[test]
    fn the_hosts_mirror_is_used_for_the_dists_it_names() {
        let root = tempfile::tempdir().unwrap();
        let apt = root.path().join("etc/apt");
        std::fs::create_dir_all(&apt).unwrap();
        std::fs::write(
            apt.join("sources.list"),
            "deb http://mirror.example/debian trixie main\n\
             deb http://sec.example/debian-security trixie-security main\n",
        )
        .unwrap();
        assert_eq!(
            Suite::Trixie.sources(root.path()),
            [
                ("http://mirror.example/debian".to_owned(), "trixie"),
                (
                    "http://sec.example/debian-security".to_owned(),
                    "trixie-security"
                ),
            ]
        );
        // Another suite is not assumed to be on that mirror.
        assert_eq!(
            Suite::Sid.sources(root.path()),
            [("http://deb.debian.org/debian".to_owned(), "sid")]
        );
    }

    #[test]
    fn sources_lists_ask_for_packages_only() {
        let text = sources_list(
            Suite::Trixie,
            "amd64",
            &[
                ("http://deb.debian.org/debian".to_owned(), "trixie"),
                (
                    "http://deb.debian.org/debian-security".to_owned(),
                    "trixie-security",
                ),
            ],
            Some(Path::new("/usr/share/keyrings/debian-archive-keyring.gpg")),
        );
        assert_eq!(
            text,
            "# Written by `qus-harness images build`: Debian trixie for amd64, read only with \
             this directory's APT state.\n\
             deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg \
             target=Packages] http://deb.debian.org/debian trixie main\n\
             deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg \
             target=Packages] http://deb.debian.org/debian-security trixie-security main\n"
        );
        let unsigned = sources_list(
            Suite::Sid,
            "arm64",
            &[("http://m.example/debian".to_owned(), "sid")],
            None,
        );
        assert!(
            unsigned
                .ends_with("deb [arch=arm64 target=Packages] http://m.example/debian sid main\n"),
            "{unsigned}"
        );
    }
}
