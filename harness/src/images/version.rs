//! Versions: QEMU's own (`11.1.3`), the image versions in tags
//! (`11.1.3-1`), Debian's package versions (`1:11.1.3+ds-1`) and what
//! `--qemu-version` selects.
//!
//! Pure functions and types, no I/O. The main items are [`image_version`]
//! (Debian version → tag), [`ImageVersion`] (a tag version, ordered
//! numerically so that `10.0.0-1` > `9.2.0-1`), [`qemu_version_matches`]
//! (does `11.1` select the image version `11.1.3-1`?), and, inside the
//! crate, [`Selector`] (what `--qemu-version V` asks of Debian's packages)
//! and [`compare_debian_versions`] (dpkg's order).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::error::ImageBuildError;

/// QEMU's version, three numbers as QEMU numbers its releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QemuVersion {
    /// `11` of `11.1.3`.
    pub major: u32,
    /// `1` of `11.1.3`.
    pub minor: u32,
    /// `3` of `11.1.3`; `0` when Debian's version has two numbers (`7.2`).
    pub patch: u32,
}

impl QemuVersion {
    /// The first QEMU whose static emulators Debian ships in `qemu-user`
    /// (as `/usr/bin/qemu-<cpu>`, static-pie); from then on `qemu-user-static`
    /// is a transitional package of symlinks. Debian's `qemu-user` declares
    /// `Replaces: qemu-user-static (<< 1:9.1.0)`.
    pub const STATIC_QEMU_USER: QemuVersion = QemuVersion {
        major: 9,
        minor: 1,
        patch: 0,
    };

    /// QEMU's version in Debian's package version `debian_version`: the
    /// upstream part without the epoch, the Debian revision and the repack
    /// suffix (`+dfsg`, `+ds`, `~rc1`), padded to three numbers.
    ///
    /// ```
    /// use qus_harness::images::QemuVersion;
    ///
    /// let v = QemuVersion::from_debian("1:7.2+dfsg-7+deb12u18+b3").unwrap();
    /// assert_eq!(v.to_string(), "7.2.0");
    /// ```
    ///
    /// # Errors
    ///
    /// When no numeric `X.Y[.Z]` upstream version can be found.
    pub fn from_debian(debian_version: &str) -> Result<Self, ImageBuildError> {
        let fail = || ImageBuildError::Version {
            version: debian_version.to_owned(),
            reason: "expected an upstream version `X.Y` or `X.Y.Z`".to_owned(),
        };
        let without_epoch = debian_version
            .split_once(':')
            .map_or(debian_version, |(_, rest)| rest);
        // The Debian revision follows the last hyphen (Debian Policy 5.6.12).
        let upstream = without_epoch
            .rsplit_once('-')
            .map_or(without_epoch, |(upstream, _)| upstream);
        let numeric = upstream
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or_default();
        let parts = parse_numbers(numeric).ok_or_else(fail)?;
        match parts.as_slice() {
            [major, minor] => Ok(Self::new(*major, *minor, 0)),
            [major, minor, patch] => Ok(Self::new(*major, *minor, *patch)),
            _ => Err(fail()),
        }
    }

    const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Whether Debian ships this QEMU's static emulators in `qemu-user`
    /// (9.1 and later) rather than in `qemu-user-static`.
    pub fn is_in_qemu_user(&self) -> bool {
        *self >= Self::STATIC_QEMU_USER
    }

    fn numbers(&self) -> [u32; 3] {
        [self.major, self.minor, self.patch]
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// An image version as tags carry it: `<QEMU version>-<release>`
/// (`11.1.3-1`). Ordered numerically: QEMU version first, then release.
///
/// ```
/// use qus_harness::images::ImageVersion;
///
/// let new: ImageVersion = "10.0.0-1".parse().unwrap();
/// let old: ImageVersion = "9.2.0-1".parse().unwrap();
/// assert!(new > old);
/// assert_eq!(new.to_string(), "10.0.0-1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageVersion {
    /// The QEMU version (`11.1.3`).
    pub qemu: QemuVersion,
    /// qus's release of it (`1`), starting at 1.
    pub release: u32,
}

impl FromStr for ImageVersion {
    type Err = ImageBuildError;

    /// Parses `X.Y.Z-R`, every part a decimal number, `R` at least 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || ImageBuildError::Version {
            version: s.to_owned(),
            reason: "expected an image version `X.Y.Z-R` (`11.1.3-1`)".to_owned(),
        };
        let (qemu, release) = s.split_once('-').ok_or_else(fail)?;
        let release = parse_number(release).filter(|r| *r > 0).ok_or_else(fail)?;
        match parse_numbers(qemu).as_deref() {
            Some([major, minor, patch]) => Ok(Self {
                qemu: QemuVersion::new(*major, *minor, *patch),
                release,
            }),
            _ => Err(fail()),
        }
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.qemu, self.release)
    }
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
    if release == 0 {
        return Err(ImageBuildError::Version {
            version: debian_version.to_owned(),
            reason: "the release number starts at 1".to_owned(),
        });
    }
    let qemu = QemuVersion::from_debian(debian_version)?;
    Ok(ImageVersion { qemu, release }.to_string())
}

/// Orders two image versions (`10.0.0-1` > `9.2.0-1`, `7.2.0-2` >
/// `7.2.0-1`). A string that is not an image version sorts before every
/// image version, and two such strings compare as text, so the order is
/// total and sorting with it is deterministic.
pub fn compare_image_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<ImageVersion>(), b.parse::<ImageVersion>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Whether `--qemu-version`-style `selector` selects an image of version
/// `image_version` (`11.1.3-1`), as the tags carry it.
///
/// - A QEMU version or prefix of it, one to three numbers, selects every
///   image of that QEMU (numbers compared, not characters): `11.1`
///   selects `11.1.3-1`, `7.2` selects `7.2.0-1`, `11.1.3` selects
///   `11.1.3-2`, `11` does not select `1.1.0-1`.
/// - An image version (`11.1.3-1`) selects exactly that one.
/// - A Debian package version (`1:11.1.3+ds-1`) selects the images of its
///   QEMU version: tags do not hold Debian's revision (the
///   `io.qus.qemu-version` label does).
///
/// Anything else, and an `image_version` that is not one, selects nothing.
///
/// ```
/// use qus_harness::images::qemu_version_matches;
///
/// assert!(qemu_version_matches("11.1", "11.1.3-1"));
/// assert!(!qemu_version_matches("11", "1.1.0-1"));
/// ```
pub fn qemu_version_matches(selector: &str, image_version: &str) -> bool {
    let Ok(image) = image_version.parse::<ImageVersion>() else {
        return false;
    };
    if let Ok(wanted) = selector.parse::<ImageVersion>() {
        return wanted == image;
    }
    match Selector::parse(selector) {
        Ok(Selector::Prefix(prefix)) => prefix_matches(&prefix, &image.qemu),
        Ok(Selector::Debian(debian)) => {
            QemuVersion::from_debian(&debian).is_ok_and(|qemu| qemu == image.qemu)
        }
        Err(_) => false,
    }
}

/// What `--qemu-version V` asks of Debian's QEMU packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// One to three numbers: every package of a QEMU version starting with
    /// them (`11.1` takes `1:11.1.3+ds-1`).
    Prefix(Vec<u32>),
    /// Exactly this Debian version (`1:10.0.2+ds-2+deb13u1~bpo12+1`).
    Debian(String),
}

impl Selector {
    /// Reads `text`: numbers and dots are a prefix; anything else must be a
    /// Debian version (a digit first, then letters, digits and `.+-~:`).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return match parse_numbers(text) {
                Some(numbers) if numbers.len() <= 3 => Ok(Self::Prefix(numbers)),
                _ => Err(
                    "a QEMU version is one to three numbers separated by `.` (`11.1`, `7.2.0`)"
                        .to_owned(),
                ),
            };
        }
        let valid = text.starts_with(|c: char| c.is_ascii_digit())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-~:".contains(c));
        if valid {
            Ok(Self::Debian(text.to_owned()))
        } else {
            Err(
                "expected a QEMU version (`11.1`, `7.2.0`) or a Debian package version \
                 (`1:10.0.2+ds-1~bpo12+1`), which holds only letters, digits and `.+-~:`"
                    .to_owned(),
            )
        }
    }

    /// Whether the package of Debian version `debian_version` is selected.
    pub(crate) fn matches(&self, debian_version: &str) -> bool {
        match self {
            Self::Debian(wanted) => wanted == debian_version,
            Self::Prefix(prefix) => QemuVersion::from_debian(debian_version)
                .is_ok_and(|qemu| prefix_matches(prefix, &qemu)),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix(numbers) => {
                let parts: Vec<String> = numbers.iter().map(u32::to_string).collect();
                f.write_str(&parts.join("."))
            }
            Self::Debian(version) => f.write_str(version),
        }
    }
}

/// Whether `qemu` starts with the numbers of `prefix`.
fn prefix_matches(prefix: &[u32], qemu: &QemuVersion) -> bool {
    !prefix.is_empty() && qemu.numbers().iter().zip(prefix).all(|(a, b)| a == b)
}

/// `[11, 1, 3]` from `11.1.3`; `None` unless every part is a number.
fn parse_numbers(text: &str) -> Option<Vec<u32>> {
    text.split('.').map(parse_number).collect()
}

/// A decimal number without sign, at most nine digits.
fn parse_number(text: &str) -> Option<u32> {
    let valid = !text.is_empty() && text.len() <= 9 && text.chars().all(|c| c.is_ascii_digit());
    valid.then(|| text.parse().ok()).flatten()
}

/// Orders two Debian package versions as dpkg does (`dpkg
/// --compare-versions`): epoch numerically, then the upstream version and
/// the revision with `verrevcmp` (letters before other characters, `~`
/// before everything, even the end). Deb-policy 5.6.12.
pub(crate) fn compare_debian_versions(a: &str, b: &str) -> Ordering {
    let (epoch_a, upstream_a, revision_a) = split_debian(a);
    let (epoch_b, upstream_b, revision_b) = split_debian(b);
    epoch_a
        .cmp(&epoch_b)
        .then_with(|| verrevcmp(upstream_a, upstream_b))
        .then_with(|| verrevcmp(revision_a, revision_b))
}

/// `(epoch, upstream, revision)` of a Debian version; a missing or
/// unreadable epoch is 0, a missing revision empty.
fn split_debian(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) => (epoch.parse().unwrap_or(0), rest),
        None => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's `order()`: the weight of one non-digit character.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp()`: alternating non-digit and digit runs.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit runs, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Digit runs, numerically (leading zeros skipped).
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while a.get(i).is_some_and(u8::is_ascii_digit) && b.get(j).is_some_and(u8::is_ascii_digit) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if a.get(i).is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
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
            ("1:10.0.13+ds-0+deb13u1", "10.0.13-1"),
            ("1:11.1.3+ds-1", "11.1.3-1"),
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
    fn the_layout_changes_at_9_1() {
        let qemu = |v: &str| QemuVersion::from_debian(v).unwrap();
        assert!(!qemu("1:7.2+dfsg-7+deb12u18+b3").is_in_qemu_user());
        assert!(!qemu("1:9.0.2+ds-1").is_in_qemu_user());
        assert!(qemu("1:9.1.0+ds-1").is_in_qemu_user());
        assert!(qemu("1:10.0.13+ds-0+deb13u1").is_in_qemu_user());
        assert!(qemu("1:11.1.3+ds-1").is_in_qemu_user());
    }

    #[test]
    fn image_versions_order_numerically() {
        let v = |s: &str| s.parse::<ImageVersion>().unwrap();
        assert!(v("10.0.0-1") > v("9.2.0-1"));
        assert!(v("11.1.3-1") > v("11.1.2-9"));
        assert!(v("7.2.0-2") > v("7.2.0-1"));
        assert!(v("10.0.13-1") > v("10.0.2-1"));
        assert_eq!(v("11.1.3-1").to_string(), "11.1.3-1");
        for bad in [
            "11.1-1",
            "11.1.3",
            "11.1.3-0",
            "11.1.3-x",
            "a.b.c-1",
            "",
            "11.1.3-1-1",
        ] {
            assert!(bad.parse::<ImageVersion>().is_err(), "{bad}");
        }
        assert_eq!(
            compare_image_versions("10.0.0-1", "9.2.0-1"),
            Ordering::Greater
        );
        assert_eq!(
            compare_image_versions("7.2.0-1", "7.2.0-1"),
            Ordering::Equal
        );
        assert_eq!(compare_image_versions("junk", "7.2.0-1"), Ordering::Less);
        assert_eq!(compare_image_versions("7.2.0-1", "junk"), Ordering::Greater);
        let mut tags = vec!["9.2.0-1", "latest", "10.0.0-1", "7.2.0-3", "11.1.3-1"];
        tags.sort_by(|a, b| compare_image_versions(a, b));
        assert_eq!(
            tags,
            ["latest", "7.2.0-3", "9.2.0-1", "10.0.0-1", "11.1.3-1"]
        );
    }

    #[test]
    fn selectors_match_image_versions() {
        for (selector, image, want) in [
            ("11.1", "11.1.3-1", true),
            ("7.2", "7.2.0-1", true),
            ("7.2.0", "7.2.0-1", true),
            ("11.1.3", "11.1.3-2", true),
            ("11", "11.1.3-1", true),
            ("11", "1.1.0-1", false),
            ("1", "11.1.3-1", false),
            ("11.1", "11.10.0-1", false),
            ("10.0", "10.0.13-1", true),
            ("10.0.1", "10.0.13-1", false),
            ("11.1.3-1", "11.1.3-1", true),
            ("11.1.3-1", "11.1.3-2", false),
            ("1:11.1.3+ds-1", "11.1.3-1", true),
            ("1:11.1.3+ds-1", "11.1.3-4", true),
            ("1:10.0.2+ds-1~bpo12+1", "10.0.2-1", true),
            ("1:10.0.2+ds-1~bpo12+1", "10.0.13-1", false),
            ("", "11.1.3-1", false),
            ("latest", "11.1.3-1", false),
            ("11.1", "latest", false),
            ("1.2.3.4", "1.2.3-1", false),
        ] {
            assert_eq!(
                qemu_version_matches(selector, image),
                want,
                "{selector} vs {image}"
            );
        }
    }

    #[test]
    fn selectors_match_debian_versions() {
        let prefix = Selector::parse("10.0").unwrap();
        assert_eq!(prefix, Selector::Prefix(vec![10, 0]));
        assert!(prefix.matches("1:10.0.13+ds-0+deb13u1"));
        assert!(prefix.matches("1:10.0.2+ds-2+deb13u1~bpo12+1"));
        assert!(!prefix.matches("1:11.1.3+ds-1"));
        assert!(!prefix.matches("1:1.0.0"));
        let seven = Selector::parse("7.2").unwrap();
        assert!(seven.matches("1:7.2+dfsg-7+deb12u18+b3"));
        let exact = Selector::parse("1:10.0.2+ds-2+deb13u1~bpo12+1").unwrap();
        assert!(exact.matches("1:10.0.2+ds-2+deb13u1~bpo12+1"));
        assert!(!exact.matches("1:10.0.2+ds-2+deb13u1"));
        assert_eq!(exact.to_string(), "1:10.0.2+ds-2+deb13u1~bpo12+1");
        assert_eq!(prefix.to_string(), "10.0");
        for bad in ["", ".", "1..2", "1.2.3.4", "7.2; rm -rf /", "latest", "-1"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debian_versions_order_as_dpkg_does() {
        use Ordering::{Equal, Greater, Less};
        for (a, b, want) in [
            (
                "1:10.0.2+ds-2+deb13u1~bpo12+1",
                "1:10.0.2+ds-2+deb13u1",
                Less,
            ),
            ("1:7.2+dfsg-7+deb12u18+b3", "1:7.2+dfsg-7+deb12u18", Greater),
            ("1:7.2+dfsg-7+deb12u19", "1:7.2+dfsg-7+deb12u18+b3", Greater),
            ("1:10.0.13+ds-0+deb13u1", "1:10.0.2+ds-2+deb13u1", Greater),
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0", Equal),
            ("1.0-1", "1.0-01", Equal),
            ("1.0a", "1.0+", Less),
            ("1.0", "1.0.0", Less),
            ("9.2.0~rc1+ds-1", "9.2.0+ds-1", Less),
        ] {
            assert_eq!(compare_debian_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_debian_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
