//! QEMU version names and image version tags: parsing, matching, ordering.
//!
//! Pure functions. A run names QEMUs loosely (`--qemu 7.2,11.1`); images are
//! tagged with exact versions (`<repo>:11.1.3-1`, see
//! [`image_version`](crate::images::image_version)). [`QemuSelector`] is
//! one name, [`ImageVersion`] one tag, and [`newest_match`] picks the tag a
//! name resolves to. [`cmp_versions`] orders version strings numerically
//! (`7.2.0-1` before `10.0.2-1`), so reports list QEMUs oldest first.
//! [`ran_mismatch`] tells whether the version line a QEMU printed is the
//! QEMU that was asked for.
//!
//! The `images` branch adds `qemu_version_matches` and numeric ordering to
//! `crate::images`; these are the same rules, kept here until one module
//! holds them.

use std::cmp::Ordering;
use std::fmt;

/// An image version tag: `<major>.<minor>.<patch>-<release>` (`11.1.3-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageVersion {
    /// Major, minor and patch of QEMU.
    pub parts: [u64; 3],
    /// qus's release of that QEMU version (the `1` of `7.2.0-1`).
    pub release: u64,
}

impl ImageVersion {
    /// Parses a tag of the form `X.Y.Z-N`; anything else is `None`
    /// (`latest`, `register`, `aarch64-7.2.0-1`).
    pub fn parse(tag: &str) -> Option<Self> {
        let (version, release) = tag.split_once('-')?;
        let parts = numbers(version)?;
        let [major, minor, patch] = parts[..] else {
            return None;
        };
        Some(Self {
            parts: [major, minor, patch],
            release: number(release)?,
        })
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.parts;
        write!(f, "{major}.{minor}.{patch}-{}", self.release)
    }
}

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
        self.parts.iter().zip(version.parts).all(|(a, b)| *a == b)
            && self.release.is_none_or(|r| r == version.release)
    }
}

impl fmt::Display for QemuSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether the image version `image_version` (`11.1.3-1`) is a version of
/// the name `selector` (`11.1`); false when either does not parse.
pub fn qemu_version_matches(selector: &str, image_version: &str) -> bool {
    match (
        QemuSelector::parse(selector),
        ImageVersion::parse(image_version),
    ) {
        (Ok(selector), Some(version)) => selector.matches(&version),
        _ => false,
    }
}

/// The newest of `tags` (tags of one repository, without the repository)
/// that is an image version of `selector`.
pub fn newest_match<'a>(
    selector: &QemuSelector,
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<ImageVersion> {
    tags.into_iter()
        .filter_map(ImageVersion::parse)
        .filter(|v| selector.matches(v))
        .max()
}

/// Orders two version strings: image versions numerically, before anything
/// that does not parse as one (ordered as text), so `7.2.0-1` comes before
/// `10.0.2-1`.
pub fn cmp_versions(a: &str, b: &str) -> Ordering {
    match (ImageVersion::parse(a), ImageVersion::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Orders optional QEMU versions: none (a run without `--qemu`) first, then
/// by [`cmp_versions`].
pub fn cmp_optional_versions(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => cmp_versions(a, b),
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
    let wanted = ImageVersion::parse(version);
    match (ran, wanted) {
        (Some(ran), Some(wanted)) if ran.len() >= 2 && ran[..2] == wanted.parts[..2] => None,
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

    fn v(tag: &str) -> ImageVersion {
        ImageVersion::parse(tag).unwrap()
    }

    #[test]
    fn image_versions_parse_only_full_tags() {
        assert_eq!(
            v("11.1.3-1"),
            ImageVersion {
                parts: [11, 1, 3],
                release: 1
            }
        );
        assert_eq!(v("7.2.0-12").to_string(), "7.2.0-12");
        for bad in [
            "latest",
            "register",
            "7.2.0",
            "7.2-1",
            "aarch64-7.2.0-1",
            "x86_64-aarch64-7.2.0-1",
            "7.2.0-1-2",
            "7.2.0-",
            "7..0-1",
            "7.2.0.1-1",
            "+7.2.0-1",
        ] {
            assert_eq!(ImageVersion::parse(bad), None, "{bad}");
        }
    }

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
        assert!(!qemu_version_matches("latest", "7.2.0-1"));
        assert!(!qemu_version_matches("7.2", "latest"));
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
    fn versions_order_numerically_and_text_last() {
        let mut list = vec![
            "11.1.3-1", "latest", "7.2.0-1", "10.0.2-1", "7.2.0-10", "7.2.0-2",
        ];
        list.sort_by(|a, b| cmp_versions(a, b));
        assert_eq!(
            list,
            [
                "7.2.0-1", "7.2.0-2", "7.2.0-10", "10.0.2-1", "11.1.3-1", "latest"
            ]
        );
        assert_eq!(cmp_optional_versions(None, Some("7.2.0-1")), Ordering::Less);
        assert_eq!(cmp_optional_versions(None, None), Ordering::Equal);
        assert_eq!(
            cmp_optional_versions(Some("10.0.2-1"), Some("7.2.0-1")),
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
