//! Debian's `qemu-user-static` package: fetching it, reading its version,
//! unpacking its emulators, and the image version derived from it.
//!
//! The main items are [`DebSource`] (a file, or `apt-get download`),
//! [`Unpacked`] (the version and the `usr/bin/qemu-*-static` files) and
//! [`image_version`] (`1:7.2+dfsg-7+deb12u18` → `7.2.0-1`). The package is
//! read with `dpkg-deb`, the same tool the original pipeline used; nothing
//! here installs anything on the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ImageBuildError;
use super::tool::{APT_GET, DPKG_DEB, Invocation};

/// The package that ships the static emulators.
pub(crate) const PACKAGE: &str = "qemu-user-static";

/// Where the package keeps them.
const BIN_DIR: &str = "usr/bin";

/// Bound on `apt-get download` (about 70 MB).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);

/// Bound on unpacking (about 370 MB).
const UNPACK_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the `.deb` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebSource {
    /// A package file already on disk (`--deb PATH`).
    File(PathBuf),
    /// `apt-get download qemu-user-static[=<version>]` from the host's
    /// configured archive (`--qemu-version V`); `None` takes the candidate
    /// version.
    Apt {
        /// The Debian version to fetch (`1:7.2+dfsg-7+deb12u18`).
        version: Option<String>,
    },
}

impl Default for DebSource {
    fn default() -> Self {
        DebSource::Apt { version: None }
    }
}

/// One emulator unpacked from the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Emulator {
    /// The QEMU target name in the file name (`aarch64` of
    /// `qemu-aarch64-static`).
    pub(crate) name: String,
    /// The unpacked file.
    pub(crate) path: PathBuf,
}

impl Emulator {
    /// `qemu-<name>-static`.
    pub(crate) fn file_name(&self) -> String {
        format!("qemu-{}-static", self.name)
    }
}

/// What the package holds that the images need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unpacked {
    /// Debian's full version (`1:7.2+dfsg-7+deb12u18+b3`).
    pub(crate) version: String,
    /// Debian's architecture of the package (`amd64`).
    pub(crate) architecture: String,
    /// Every `usr/bin/qemu-*-static`, sorted by name.
    pub(crate) emulators: Vec<Emulator>,
}

/// Debian's name for the architecture `uname -m` calls `machine`, for the
/// CPUs Debian ships `qemu-user-static` on; `None` for others.
pub(crate) fn debian_arch(machine: &str) -> Option<&'static str> {
    Some(match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "armv7l" | "armv8l" => "armhf",
        "ppc64le" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" => "mips64el",
        "loongarch64" => "loong64",
        _ => return None,
    })
}

/// Downloads the package into `dir` with `apt-get download` and returns the
/// `.deb`'s path.
pub(crate) async fn download(
    version: Option<&str>,
    dir: &Path,
) -> Result<PathBuf, ImageBuildError> {
    let spec = match version {
        Some(version) => format!("{PACKAGE}={version}"),
        None => PACKAGE.to_owned(),
    };
    Invocation::new(APT_GET)
        .arg("download")
        .arg(&spec)
        .current_dir(dir)
        .timeout(DOWNLOAD_TIMEOUT)
        .hint("run `apt-get update` first, check the version with `apt-cache policy qemu-user-static`, or pass the package with `--deb PATH`")
        .output()
        .await?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ImageBuildError::io("read directory", dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{PACKAGE}_")) && n.ends_with(".deb"))
        })
        .collect();
    debs.sort();
    match debs.as_slice() {
        [deb] => Ok(deb.clone()),
        _ => Err(ImageBuildError::InvalidDeb {
            path: dir.to_owned(),
            reason: format!(
                "`apt-get download` left {} `{PACKAGE}_*.deb` files, expected one",
                debs.len()
            ),
        }),
    }
}

/// Reads the package's control fields, checks it is `qemu-user-static`,
/// and unpacks it into `dir`.
pub(crate) async fn unpack(deb: &Path, dir: &Path) -> Result<Unpacked, ImageBuildError> {
    if !deb.is_file() {
        return Err(ImageBuildError::InvalidDeb {
            path: deb.to_owned(),
            reason: "no such file".to_owned(),
        });
    }
    let fields = Invocation::new(DPKG_DEB)
        .arg("-f")
        .arg(deb)
        .args(["Package", "Version", "Architecture"])
        .timeout(Duration::from_secs(60))
        .output()
        .await?;
    let fields = parse_control(&String::from_utf8_lossy(&fields.stdout));
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| ImageBuildError::InvalidDeb {
                path: deb.to_owned(),
                reason: format!("its control file has no `{name}` field"),
            })
    };
    let package = field("Package")?;
    if package != PACKAGE {
        return Err(ImageBuildError::InvalidDeb {
            path: deb.to_owned(),
            reason: format!("it is the package `{package}`, not `{PACKAGE}`"),
        });
    }
    let version = field("Version")?;
    let architecture = field("Architecture")?;
    Invocation::new(DPKG_DEB)
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .timeout(UNPACK_TIMEOUT)
        .output()
        .await?;
    let bin = dir.join(BIN_DIR);
    let emulators = list_emulators(&bin)?;
    if emulators.is_empty() {
        return Err(ImageBuildError::InvalidDeb {
            path: deb.to_owned(),
            reason: format!("it holds no `{BIN_DIR}/qemu-*-static`"),
        });
    }
    Ok(Unpacked {
        version,
        architecture,
        emulators,
    })
}

/// Every regular `qemu-<name>-static` file in `bin`, sorted by name.
fn list_emulators(bin: &Path) -> Result<Vec<Emulator>, ImageBuildError> {
    let entries = std::fs::read_dir(bin).map_err(ImageBuildError::io("read directory", bin))?;
    let mut emulators: Vec<Emulator> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let file_name = e.file_name();
            let name = emulator_name(file_name.to_str()?)?;
            Some(Emulator {
                name: name.to_owned(),
                path: e.path(),
            })
        })
        .collect();
    emulators.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(emulators)
}

/// `aarch64` for `qemu-aarch64-static`; `None` for anything else.
fn emulator_name(file_name: &str) -> Option<&str> {
    let name = file_name.strip_prefix("qemu-")?.strip_suffix("-static")?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(name)
}

/// `Field: value` lines as `dpkg-deb -f` prints them for several fields.
fn parse_control(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The image version for Debian package version `debian_version` and qus
/// release `release`: `<QEMU version>-<release>`, as the original project
/// tagged its images (`7.2.0-1`).
///
/// The QEMU version is Debian's upstream version without the epoch and
/// without the repack suffix (`+dfsg`, `+ds`, `~rc1`...), padded to three
/// components as QEMU numbers its releases (`7.2` → `7.2.0`; `10.0.2` stays).
/// Debian's own revision (`-7+deb12u18`) is not part of it: it would put
/// `+` in tags, which tags cannot hold, and the `io.qus.qemu-version`
/// label keeps it. `release` counts qus's own rebuilds of one QEMU version
/// (a new registrar, a Debian security update), starting at 1.
///
/// ```
/// use qus_harness::images::image_version;
///
/// assert_eq!(image_version("1:7.2+dfsg-7+deb12u18+b3", 1).unwrap(), "7.2.0-1");
/// assert_eq!(image_version("1:10.0.2+ds-1~bpo12+1", 2).unwrap(), "10.0.2-2");
/// ```
///
/// # Errors
///
/// When no numeric `X.Y[.Z]` upstream version can be found, or `release`
/// is 0.
pub fn image_version(debian_version: &str, release: u32) -> Result<String, ImageBuildError> {
    let fail = |reason: &str| ImageBuildError::Version {
        version: debian_version.to_owned(),
        reason: reason.to_owned(),
    };
    if release == 0 {
        return Err(fail("the release number starts at 1"));
    }
    let without_epoch = debian_version
        .split_once(':')
        .map_or(debian_version, |(_, rest)| rest);
    // The Debian revision follows the last hyphen (Debian Policy 5.6.12).
    let upstream = without_epoch
        .rsplit_once('-')
        .map_or(without_epoch, |(upstream, _)| upstream);
    let numeric: &str = upstream
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap_or_default();
    let mut parts: Vec<&str> = numeric.split('.').collect();
    let well_formed = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !well_formed {
        return Err(fail("expected an upstream version `X.Y` or `X.Y.Z`"));
    }
    if parts.len() == 2 {
        parts.push("0");
    }
    Ok(format!("{}-{release}", parts.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_versions_follow_the_original_tags() {
        for (debian, want) in [
            ("1:7.2+dfsg-7+deb12u18+b3", "7.2.0-1"),
            ("1:7.2+dfsg-1", "7.2.0-1"),
            ("6.1+dfsg-1", "6.1.0-1"),
            ("1:10.0.2+ds-1~bpo12+1", "10.0.2-1"),
            ("1:9.2.0~rc1+ds-1", "9.2.0-1"),
            ("1:8.0", "8.0.0-1"),
        ] {
            assert_eq!(image_version(debian, 1).unwrap(), want, "{debian}");
        }
        assert_eq!(image_version("1:7.2+dfsg-7", 3).unwrap(), "7.2.0-3");
    }

    #[test]
    fn unusable_versions_are_refused() {
        for bad in ["", "abc", "1:7+dfsg-1", "1.2.3.4-1", "1:.2-1"] {
            assert!(image_version(bad, 1).is_err(), "{bad}");
        }
        let err = image_version("1:7.2+dfsg-7", 0).unwrap_err();
        assert!(err.to_string().contains("starts at 1"), "{err}");
    }

    #[test]
    fn emulator_names_come_from_file_names() {
        assert_eq!(emulator_name("qemu-aarch64-static"), Some("aarch64"));
        assert_eq!(emulator_name("qemu-x86_64-static"), Some("x86_64"));
        assert_eq!(emulator_name("qemu-aarch64"), None);
        assert_eq!(emulator_name("qemu--static"), None);
        assert_eq!(emulator_name("qemu-a b-static"), None);
        assert_eq!(emulator_name("qemu-binfmt-conf.sh"), None);
    }

    #[test]
    fn control_fields_parse() {
        let fields = parse_control(
            "Package: qemu-user-static\nVersion: 1:7.2+dfsg-7\nArchitecture: amd64\n",
        );
        assert_eq!(
            fields,
            [
                ("Package".into(), "qemu-user-static".into()),
                ("Version".into(), "1:7.2+dfsg-7".into()),
                ("Architecture".into(), "amd64".into())
            ]
        );
    }

    #[test]
    fn emulators_are_listed_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "qemu-s390x-static",
            "qemu-aarch64-static",
            "qemu-img",
            "README",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("qemu-dir-static")).unwrap();
        let names: Vec<String> = list_emulators(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["qemu-aarch64-static", "qemu-s390x-static"]);
    }
}
