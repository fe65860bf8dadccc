//! QEMU version names of `--qemu`, and the QEMU a version line names.
//!
//! Pure functions. A run names QEMUs loosely (`--qemu 7.2,11.1`); images are
//! tagged with exact versions (`<repo>:11.1.3-1`, see
//! [`ImageVersion`](crate::images::ImageVersion)). [`QemuSelector`] is one
//! name, checked when the command line is parsed; [`newest_match`] picks
//! the tag a name resolves to, with the images module's matching
//! ([`qemu_version_matches`]) and numeric order. [`cmp_optional_versions`]
//! orders the QEMUs of reports (none first, then oldest first), and
//! [`ran_mismatch`] tells whether the version line a QEMU printed is the
//! QEMU that was asked for.

use std::cmp::Ordering;
use std::fmt;

use crate::images::{ImageVersion, compare_image_versions, qemu_version_matches};

/// One `--qemu` name: one to three version components, and with three an
/// optional release (`11`, `11.1`, `11.1.3`, `11.1.3-2`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QemuSelector {
    text: String,
    parts: Vec<u64>,
    release: Option<u64>,
}

impl QemuSelector {
    /// Parses a name; the error says what a name looks like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}` is not a QEMU version; expected `X.Y` (`11.1`), `X.Y.Z` or an image \
                 version `X.Y.Z-N`"
            )
        };
        let (version, release) = match text.split_once('-') {
            Some((version, release)) => (version, Some(number(release).ok_or_else(bad)?)),
            None => (text, None),
        };
        let parts = numbers(version).ok_or_else(bad)?;
        if parts.len() > 3 || (release.is_some() && parts.len() != 3) {
            return Err(bad());
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
            release,
        })
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` is a version of this name: each given component
    /// equal, numerically (`11.1` matches `11.1.3-1`, not `11.10.0-1`).
    pub fn matches(&self, version: &ImageVersion) -> bool {
        qemu_version_matches(&self.text, &version.to_string())
    }
}

impl fmt::Display for QemuSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The newest of `tags` (tags of one repository, without the repository)
/// that is an image version of `selector`.
pub fn newest_match<'a>(
    selector: &QemuSelector,
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<ImageVersion> {
    tags.into_iter()
        .filter_map(|t| t.parse::<ImageVersion>().ok())
        .filter(|v| selector.matches(v))
        .max()
}

/// Orders optional QEMU versions: none (a run without `--qemu`) first, then
/// numerically ([`compare_image_versions`]).
pub fn cmp_optional_versions(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => compare_image_versions(a, b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// Why the version line a QEMU printed (`qemu-aarch64 version 7.2.22
/// (Debian 1:7.2+dfsg-7+deb12u18+b3)`) is not the QEMU asked for, or `None`
/// when it is.
///
/// With the image's Debian package version known, the line must name it;
/// otherwise its QEMU version must have the image version's major and minor
/// (an image version's patch comes from Debian's upstream version, which
/// QEMU's own may refine: `7.2.0-1` runs `7.2.22`).
pub fn ran_mismatch(version: &str, debian_version: Option<&str>, line: &str) -> Option<String> {
    if let Some(debian) = debian_version {
        if line.contains(&format!("(Debian {debian})")) {
            return None;
        }
        return Some(format!(
            "asked for QEMU {version} (Debian {debian}), but `{line}` ran"
        ));
    }
    let ran = line
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| numbers(v.split(['-', '+', '~', '(']).next().unwrap_or(v)));
    let wanted = version.parse::<ImageVersion>().ok().map(|v| v.qemu);
    match (ran, wanted) {
        (Some(ran), Some(wanted))
            if ran.len() >= 2 && ran[..2] == [u64::from(wanted.major), u64::from(wanted.minor)] =>
        {
            None
        }
        (Some(_), Some(_)) => Some(format!("asked for QEMU {version}, but `{line}` ran")),
        _ => Some(format!(
            "asked for QEMU {version}; cannot read a version in `{line}`"
        )),
    }
}

/// `N(.N)*` as numbers, or `None`.
fn numbers(text: &str) -> Option<Vec<u64>> {
    text.split('.').map(number).collect()
}

/// A decimal number of at most 9 digits (no sign, no spaces).
fn number(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_component_by_component() {
        for (selector, tag, wanted) in [
            ("11.1", "11.1.3-1", true),
            ("11.1", "11.10.0-1", false),
            ("11", "11.1.3-1", true),
            ("7.2", "7.2.0-1", true),
            ("7.2", "7.20.0-1", false),
            ("11.1.3", "11.1.3-2", true),
            ("11.1.3-2", "11.1.3-2", true),
            ("11.1.3-2", "11.1.3-1", false),
            ("10.0", "11.0.0-1", false),
            ("07.2", "7.2.0-1", true),
        ] {
            assert_eq!(
                qemu_version_matches(selector, tag),
                wanted,
                "{selector} {tag}"
            );
        }
    }

    #[test]
    fn bad_selectors_say_what_a_name_looks_like() {
        for bad in [
            "", "latest", "7.2-1", "1.2.3.4", "7.x", "-1", "7.2.0-", "v7.2", " 7.2",
        ] {
            let err = QemuSelector::parse(bad).unwrap_err();
            assert!(err.contains("expected `X.Y`"), "{bad}: {err}");
        }
        assert_eq!(QemuSelector::parse("7.2").unwrap().as_str(), "7.2");
    }

    #[test]
    fn the_newest_matching_tag_wins() {
        let tags = [
            "latest",
            "register",
            "7.2.0-1",
            "7.2.0-2",
            "7.2.1-1",
            "x86_64-aarch64-7.2.5-1",
            "10.0.2-1",
            "11.1.3-1",
        ];
        let newest =
            |s: &str| newest_match(&QemuSelector::parse(s).unwrap(), tags).map(|v| v.to_string());
        assert_eq!(newest("7.2").as_deref(), Some("7.2.1-1"));
        assert_eq!(newest("7.2.0").as_deref(), Some("7.2.0-2"));
        assert_eq!(newest("7.2.0-1").as_deref(), Some("7.2.0-1"));
        assert_eq!(newest("11.1").as_deref(), Some("11.1.3-1"));
        assert_eq!(newest("9.2"), None);
    }

    #[test]
    fn qemus_order_none_first_then_numerically() {
        assert_eq!(cmp_optional_versions(None, Some("7.2.0-1")), Ordering::Less);
        assert_eq!(cmp_optional_versions(None, None), Ordering::Equal);
        assert_eq!(
            cmp_optional_versions(Some("10.0.2-1"), Some("7.2.0-1")),
            Ordering::Greater
        );
        assert_eq!(
            cmp_optional_versions(Some("7.2.0-10"), Some("7.2.0-2")),
            Ordering::Greater
        );
    }

    #[test]
    fn a_ran_version_line_is_checked_against_the_debian_version() {
        let line = "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)";
        assert_eq!(
            ran_mismatch("7.2.0-1", Some("1:7.2+dfsg-7+deb12u18+b3"), line),
            None
        );
        let other = ran_mismatch("11.1.3-1", Some("1:11.1.3+ds-1"), line).unwrap();
        assert!(
            other.contains("asked for QEMU 11.1.3-1 (Debian 1:11.1.3+ds-1)"),
            "{other}"
        );
        assert!(other.contains("7.2.22"), "{other}");
        // Without the Debian version, major and minor must agree.
        assert_eq!(ran_mismatch("7.2.0-1", None, line), None);
        assert!(ran_mismatch("7.3.0-1", None, line).is_some());
        assert!(ran_mismatch("7.2.0-1", None, "garbage").is_some());
    }
}
