//! Debian's QEMU packages: where they come from ([`DebSource`]), reading
//! their control fields, unpacking them and telling their layout apart.
//!
//! Debian has shipped the static user-mode emulators in two ways
//! ([`Layout`]):
//!
//! - up to QEMU 9.0, the package `qemu-user-static` holds
//!   `usr/bin/qemu-<cpu>-static`;
//! - from QEMU 9.1, the package `qemu-user` holds them as
//!   `usr/bin/qemu-<cpu>` (static-pie), and `qemu-user-static` is a
//!   transitional package of symlinks to them that depends on `qemu-user`.
//!
//! [`unpack`] reads a `.deb` with `dpkg-deb` (the tool the original
//! pipeline used), unpacks it and lists its emulators; whatever the layout,
//! an [`Emulator`] goes into the images as `/usr/bin/qemu-<cpu>-static`.
//! Nothing here installs anything on the host; fetching is `apt.rs`'s and
//! the static-linking check `emulator.rs`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ImageBuildError;
use super::suite::Suite;
use super::tool::{DPKG_DEB, Invocation};
use super::version::QemuVersion;

/// The package of static emulators up to QEMU 9.0, transitional after.
pub(crate) const QEMU_USER_STATIC: &str = "qemu-user-static";

/// The package of static emulators from QEMU 9.1 (dynamic before).
pub(crate) const QEMU_USER: &str = "qemu-user";

/// Where the packages keep the emulators.
const BIN_DIR: &str = "usr/bin";

/// What a usable package is, for errors.
pub(crate) const EXPECTED_PACKAGES: &str = "expected Debian's `qemu-user-static` up to QEMU 9.0 \
    (`usr/bin/qemu-<cpu>-static`), `qemu-user` from QEMU 9.1 (static `usr/bin/qemu-<cpu>`), \
    or the transitional `qemu-user-static` from QEMU 9.1 (symlinks, resolved to its `qemu-user`)";

/// Bound on unpacking (about 370 MB).
const UNPACK_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the QEMU package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebSource {
    /// A package file already on disk (`--deb PATH`): `qemu-user-static`
    /// or `qemu-user`, of any layout. A transitional `qemu-user-static` is
    /// resolved to the `qemu-user` of its version, fetched from the first
    /// suite of [`Suite::ALL`] that offers it.
    File(PathBuf),
    /// `apt-get download qemu-user-static` from the host's own APT
    /// configuration, as the original pipeline did (`--host-apt`); a
    /// transitional package is resolved to `qemu-user` of its version, from
    /// the host's APT too.
    Host,
    /// Downloaded from Debian's suites through a private APT directory under
    /// the cache directory, the host's APT setup untouched. With neither
    /// field, the newest QEMU any suite offers (the default); `suite` alone
    /// takes that suite's newest QEMU, `version` alone searches every suite
    /// (see `images/README.md` for the rules).
    Apt {
        /// What `--qemu-version` selects: a QEMU version or prefix of it
        /// (`11.1`, `7.2`, `11.1.3`) or a full Debian version
        /// (`1:10.0.2+ds-1~bpo12+1`).
        version: Option<String>,
        /// The one suite to fetch from (`--suite`).
        suite: Option<Suite>,
    },
}

impl Default for DebSource {
    /// The newest QEMU Debian's suites offer.
    fn default() -> Self {
        DebSource::Apt {
            version: None,
            suite: None,
        }
    }
}

/// How a package holds its emulators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `qemu-user-static` up to QEMU 9.0: `usr/bin/qemu-<cpu>-static`.
    StaticSuffix,
    /// `qemu-user` from QEMU 9.1: `usr/bin/qemu-<cpu>`.
    QemuUser,
    /// `qemu-user-static` from QEMU 9.1: symlinks into `qemu-user`, on
    /// which it depends; holds no emulator.
    Transitional,
}

/// One emulator unpacked from the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Emulator {
    /// The QEMU target name (`aarch64` of `qemu-aarch64-static` or
    /// `qemu-aarch64`).
    pub(crate) name: String,
    /// The unpacked file.
    pub(crate) path: PathBuf,
    /// Its path in the package (`usr/bin/qemu-aarch64`), for messages.
    pub(crate) package_path: String,
}

impl Emulator {
    /// `qemu-<name>-static`: its name in the images and artifacts, whatever
    /// the package calls it.
    pub(crate) fn file_name(&self) -> String {
        format!("qemu-{}-static", self.name)
    }
}

/// What the package holds that the images need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unpacked {
    /// `qemu-user-static` or `qemu-user`.
    pub(crate) package: String,
    /// Debian's full version (`1:7.2+dfsg-7+deb12u18+b3`).
    pub(crate) version: String,
    /// Debian's architecture of the package (`amd64`).
    pub(crate) architecture: String,
    /// How it holds its emulators.
    pub(crate) layout: Layout,
    /// Every emulator, sorted by name; empty for [`Layout::Transitional`].
    pub(crate) emulators: Vec<Emulator>,
}

/// Debian's name for the architecture `uname -m` calls `machine`, for the
/// CPUs Debian ships QEMU's static emulators on; `None` for others.
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

/// Reads the package's control fields, unpacks it into `dir` and tells its
/// layout; refuses any other package, naming the file and what was
/// expected.
pub(crate) async fn unpack(deb: &Path, dir: &Path) -> Result<Unpacked, ImageBuildError> {
    let invalid = |reason: String| ImageBuildError::InvalidDeb {
        path: deb.to_owned(),
        reason,
    };
    if !deb.is_file() {
        return Err(invalid("no such file".to_owned()));
    }
    let fields = Invocation::new(DPKG_DEB)
        .arg("-f")
        .arg(deb)
        .args(["Package", "Version", "Architecture", "Depends"])
        .timeout(Duration::from_secs(60))
        .output_unchecked()
        .await?;
    if !fields.status.success() {
        let stderr = String::from_utf8_lossy(&fields.stderr);
        let why = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output");
        return Err(invalid(format!(
            "`dpkg-deb` cannot read it as a Debian package ({why}); {EXPECTED_PACKAGES}"
        )));
    }
    let fields = parse_control(&String::from_utf8_lossy(&fields.stdout));
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let required = |name: &str| {
        field(name).ok_or_else(|| invalid(format!("its control file has no `{name}` field")))
    };
    let package = required("Package")?;
    if package != QEMU_USER_STATIC && package != QEMU_USER {
        return Err(invalid(format!(
            "it is the package `{package}`; {EXPECTED_PACKAGES}"
        )));
    }
    let version = required("Version")?;
    let architecture = required("Architecture")?;
    Invocation::new(DPKG_DEB)
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .timeout(UNPACK_TIMEOUT)
        .output()
        .await?;
    let bin = dir.join(BIN_DIR);
    let emulators = if bin.is_dir() {
        list_emulators(&bin, &package)?
    } else {
        Vec::new()
    };
    let depends_on_qemu_user = field("Depends").is_some_and(|d| depends_on(&d, QEMU_USER));
    let layout = match (package.as_str(), emulators.is_empty()) {
        (QEMU_USER_STATIC, false) => Layout::StaticSuffix,
        (QEMU_USER_STATIC, true) if depends_on_qemu_user => Layout::Transitional,
        (QEMU_USER, false) => Layout::QemuUser,
        (_, _) => {
            let wanted = if package == QEMU_USER {
                "usr/bin/qemu-<cpu>"
            } else {
                "usr/bin/qemu-<cpu>-static and does not depend on `qemu-user`"
            };
            return Err(invalid(format!(
                "`{package}` {version} holds no {wanted}; {EXPECTED_PACKAGES}"
            )));
        }
    };
    Ok(Unpacked {
        package,
        version,
        architecture,
        layout,
        emulators,
    })
}

/// A hint for a package whose emulators are dynamically linked: Debian
/// built `qemu-user` dynamically before QEMU 9.1.
pub(crate) fn dynamic_hint(package: &str, version: &str) -> Option<String> {
    let old = QemuVersion::from_debian(version).is_ok_and(|q| !q.is_in_qemu_user());
    (package == QEMU_USER && old).then(|| {
        format!(
            "Debian's `qemu-user` before QEMU 9.1 is dynamically linked: use \
             `qemu-user-static` {version} instead"
        )
    })
}

/// Every regular file of `bin` that is an emulator in `package`'s layout
/// (`qemu-<cpu>-static` in `qemu-user-static`, `qemu-<cpu>` in
/// `qemu-user`), sorted by name. Symlinks (a transitional package's, or
/// aliases such as `qemu-amd64-static`) are not emulators of their own.
fn list_emulators(bin: &Path, package: &str) -> Result<Vec<Emulator>, ImageBuildError> {
    let suffix = if package == QEMU_USER_STATIC {
        "-static"
    } else {
        ""
    };
    let entries = std::fs::read_dir(bin).map_err(ImageBuildError::io("read directory", bin))?;
    let mut emulators: Vec<Emulator> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let file_name = e.file_name().into_string().ok()?;
            let name = emulator_name(&file_name, suffix)?;
            Some(Emulator {
                name: name.to_owned(),
                path: e.path(),
                package_path: format!("{BIN_DIR}/{file_name}"),
            })
        })
        .collect();
    emulators.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(emulators)
}

/// `aarch64` for `qemu-aarch64<suffix>`; `None` for anything else. A
/// target name is lowercase letters, digits and `_`, so `qemu-aarch64-static`
/// is not an emulator of the `qemu-user` layout.
fn emulator_name<'a>(file_name: &'a str, suffix: &str) -> Option<&'a str> {
    let name = file_name.strip_prefix("qemu-")?.strip_suffix(suffix)?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(name)
}

/// Whether a `Depends` field names `package` (in any alternative, with any
/// version constraint or architecture qualifier).
fn depends_on(depends: &str, package: &str) -> bool {
    depends
        .split([',', '|'])
        .filter_map(|relation| relation.split(['(', ':', '[']).next())
        .any(|name| name.trim() == package)
}

/// `Field: value` lines as `dpkg-deb -f` prints them for several fields.
fn parse_control(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::testdeb::{FakeDeb, elf_dynamic, elf_static};

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn unpack_fake(deb: &FakeDeb) -> Result<Unpacked, ImageBuildError> {
        let out = tempfile::tempdir().unwrap();
        block_on(unpack(&deb.path, out.path()))
    }

    #[test]
    fn the_old_layout_is_qemu_user_static_with_suffixed_files() {
        let deb = FakeDeb::new("qemu-user-static", "1:7.2+dfsg-7+deb12u18+b3")
            .file("usr/bin/qemu-aarch64-static", &elf_static(62))
            .file("usr/bin/qemu-s390x-static", &elf_static(62))
            .symlink("usr/bin/qemu-arm64-static", "qemu-aarch64-static")
            .file("usr/share/doc/qemu-user-static/copyright", b"GPL")
            .build();
        let unpacked = unpack_fake(&deb).unwrap();
        assert_eq!(unpacked.layout, Layout::StaticSuffix);
        assert_eq!(unpacked.package, "qemu-user-static");
        assert_eq!(unpacked.version, "1:7.2+dfsg-7+deb12u18+b3");
        assert_eq!(unpacked.architecture, "amd64");
        let names: Vec<(&str, &str)> = unpacked
            .emulators
            .iter()
            .map(|e| (e.name.as_str(), e.package_path.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("aarch64", "usr/bin/qemu-aarch64-static"),
                ("s390x", "usr/bin/qemu-s390x-static")
            ]
        );
        assert_eq!(unpacked.emulators[0].file_name(), "qemu-aarch64-static");
    }

    #[test]
    fn the_new_layout_is_qemu_user_with_plain_names() {
        let deb = FakeDeb::new("qemu-user", "1:11.1.3+ds-1")
            .file("usr/bin/qemu-aarch64", &elf_static(62))
            .file("usr/bin/qemu-x86_64", &elf_static(62))
            .file(
                "usr/share/qemu/binfmt.d/qemu-aarch64.conf",
                b":qemu-aarch64:M::x:y:/usr/bin/qemu-aarch64:OPF\n",
            )
            .build();
        let unpacked = unpack_fake(&deb).unwrap();
        assert_eq!(unpacked.layout, Layout::QemuUser);
        let names: Vec<(&str, String)> = unpacked
            .emulators
            .iter()
            .map(|e| (e.package_path.as_str(), e.file_name()))
            .collect();
        assert_eq!(
            names,
            [
                ("usr/bin/qemu-aarch64", "qemu-aarch64-static".to_owned()),
                ("usr/bin/qemu-x86_64", "qemu-x86_64-static".to_owned())
            ]
        );
    }

    #[test]
    fn the_transitional_package_holds_only_symlinks() {
        let deb = FakeDeb::new("qemu-user-static", "1:10.0.13+ds-0+deb13u1")
            .depends("qemu-user (>= 1:10.0.13+ds-0+deb13u1), qemu-user-binfmt (>= 1:10.0.13+ds-0+deb13u1)")
            .symlink("usr/bin/qemu-aarch64-static", "qemu-aarch64")
            .file("usr/sbin/qemu-debootstrap", b"#!/bin/sh\n")
            .build();
        let unpacked = unpack_fake(&deb).unwrap();
        assert_eq!(unpacked.layout, Layout::Transitional);
        assert!(unpacked.emulators.is_empty());
        assert_eq!(unpacked.version, "1:10.0.13+ds-0+deb13u1");
    }

    #[test]
    fn other_packages_are_refused_with_what_was_expected() {
        let deb = FakeDeb::new("qemu-system-x86", "1:7.2+dfsg-7")
            .file("usr/bin/qemu-system-x86_64", &elf_static(62))
            .build();
        let err = unpack_fake(&deb).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("`{}`", deb.path.display())),
            "{message}"
        );
        assert!(
            message.contains("it is the package `qemu-system-x86`"),
            "{message}"
        );
        assert!(message.contains("`qemu-user` from QEMU 9.1"), "{message}");

        // qemu-user-static with neither emulators nor a qemu-user dependency.
        let empty = FakeDeb::new("qemu-user-static", "1:10.0.13+ds-0+deb13u1")
            .symlink("usr/bin/qemu-aarch64-static", "qemu-aarch64")
            .build();
        let message = unpack_fake(&empty).unwrap_err().to_string();
        assert!(
            message
                .contains("holds no usr/bin/qemu-<cpu>-static and does not depend on `qemu-user`"),
            "{message}"
        );
        // qemu-user with only suffixed names is not the new layout.
        let odd = FakeDeb::new("qemu-user", "1:11.1.3+ds-1")
            .file("usr/bin/qemu-aarch64-static", &elf_static(62))
            .build();
        let message = unpack_fake(&odd).unwrap_err().to_string();
        assert!(
            message.contains("holds no usr/bin/qemu-<cpu>;"),
            "{message}"
        );

        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), "not a package\n").unwrap();
        let message = block_on(unpack(text.path(), Path::new("/tmp")))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&format!(
                "`{}` is not a usable QEMU package: `dpkg-deb` cannot read it as a Debian package (",
                text.path().display()
            )) && message.ends_with(EXPECTED_PACKAGES),
            "{message}"
        );

        let missing = Path::new("/nonexistent/q.deb");
        let message = block_on(unpack(missing, Path::new("/tmp")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "`/nonexistent/q.deb` is not a usable QEMU package: no such file"
        );
    }

    #[test]
    fn old_qemu_user_gets_a_hint() {
        assert!(
            dynamic_hint("qemu-user", "1:7.2+dfsg-7+deb12u18+b3")
                .unwrap()
                .contains("use `qemu-user-static` 1:7.2+dfsg-7+deb12u18+b3")
        );
        assert_eq!(dynamic_hint("qemu-user", "1:11.1.3+ds-1"), None);
        assert_eq!(dynamic_hint("qemu-user-static", "1:7.2+dfsg-7"), None);
        // A dynamic file is still found as an emulator: the static check
        // refuses it by name (`emulator.rs`).
        let deb = FakeDeb::new("qemu-user", "1:7.2+dfsg-7+deb12u18+b3")
            .file("usr/bin/qemu-aarch64", &elf_dynamic(62))
            .build();
        assert_eq!(unpack_fake(&deb).unwrap().layout, Layout::QemuUser);
    }

    #[test]
    fn emulator_names_come_from_file_names() {
        assert_eq!(
            emulator_name("qemu-aarch64-static", "-static"),
            Some("aarch64")
        );
        assert_eq!(
            emulator_name("qemu-x86_64-static", "-static"),
            Some("x86_64")
        );
        assert_eq!(emulator_name("qemu-aarch64", "-static"), None);
        assert_eq!(emulator_name("qemu--static", "-static"), None);
        assert_eq!(emulator_name("qemu-a b-static", "-static"), None);
        assert_eq!(emulator_name("qemu-binfmt-conf.sh", "-static"), None);
        assert_eq!(emulator_name("qemu-aarch64", ""), Some("aarch64"));
        assert_eq!(emulator_name("qemu-aarch64-static", ""), None);
        assert_eq!(emulator_name("qemu-", ""), None);
    }

    #[test]
    fn control_fields_parse() {
        let fields = parse_control(
            "Package: qemu-user-static\nVersion: 1:7.2+dfsg-7\nArchitecture: amd64\n continued: no\n",
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
    fn dependencies_are_found_by_name() {
        assert!(depends_on(
            "qemu-user (>= 1:10.0.13+ds-0+deb13u1), qemu-user-binfmt",
            "qemu-user"
        ));
        assert!(depends_on("libc6, qemu-user:any | foo", "qemu-user"));
        assert!(!depends_on("qemu-user-binfmt (>= 1), libc6", "qemu-user"));
        assert!(!depends_on("", "qemu-user"));
    }

    #[test]
    fn emulators_are_listed_sorted_and_filtered() {
        let names = |files: &[&str], package: &str| {
            let dir = tempfile::tempdir().unwrap();
            for name in files {
                std::fs::write(dir.path().join(name), b"x").unwrap();
            }
            std::fs::create_dir(dir.path().join("qemu-dir-static")).unwrap();
            std::fs::create_dir(dir.path().join("qemu-dir")).unwrap();
            std::os::unix::fs::symlink("qemu-aarch64-static", dir.path().join("qemu-arm64-static"))
                .unwrap();
            std::os::unix::fs::symlink("qemu-aarch64", dir.path().join("qemu-arm64")).unwrap();
            list_emulators(dir.path(), package)
                .unwrap()
                .into_iter()
                .map(|e| e.file_name())
                .collect::<Vec<String>>()
        };
        assert_eq!(
            names(
                &[
                    "qemu-s390x-static",
                    "qemu-aarch64-static",
                    "qemu-aarch64",
                    "README"
                ],
                QEMU_USER_STATIC
            ),
            ["qemu-aarch64-static", "qemu-s390x-static"]
        );
        assert_eq!(
            names(
                &["qemu-s390x", "qemu-aarch64", "qemu-x86_64-static", "README"],
                QEMU_USER
            ),
            ["qemu-aarch64-static", "qemu-s390x-static"]
        );
    }
}
