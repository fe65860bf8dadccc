//! The tag scheme of the registrar images, and name validation.
//!
//! Pure functions. The scheme is the original multiarch/qemu-user-static
//! one (its `run.sh`), with `latest` holding `qus-register` instead of
//! `register.sh`:
//!
//! | tags | content |
//! |---|---|
//! | `<repo>:latest`, `<repo>:<version>` | `qus-register` + every foreign emulator |
//! | `<repo>:binfmt`, `<repo>:binfmt-<version>` | `latest`'s content, entered as `binfmt` (tonistiigi/binfmt's command line) |
//! | `<repo>:register` | `qus-register` only |
//! | `<repo>:<from>-<to>-<version>`, `<repo>:<from>-<to>`, `<repo>:<to>-<version>`, `<repo>:<to>` | `/usr/bin/qemu-<to>-static` only |
//!
//! `<from>` is the host architecture as `uname -m` names it (`x86_64`),
//! `<to>` the emulator's name (`aarch64`), `<version>` the image version
//! (`7.2.0-1`, see [`image_version`](super::image_version)).
//!
//! Several versions live side by side in one repository: the versioned
//! tags (`<version>`, `<to>-<version>`, `<from>-<to>-<version>`) always
//! name their version's images, and an unversioned one (`latest`, `binfmt`,
//! `<to>`, `<from>-<to>`) names the newest version built that has it. A build
//! therefore moves an unversioned tag only when the image it names now is
//! not of a newer version ([`stays_on_newer`]); the version of an image is
//! its `org.opencontainers.image.version` label. `register` has no
//! version: every build updates it.

use std::sync::LazyLock;

use regex::Regex;

use super::version::ImageVersion;

/// `latest`'s tags: `<repo>:latest` first, then `<repo>:<version>`.
pub fn latest_tags(repo: &str, version: &str) -> Vec<String> {
    vec![format!("{repo}:latest"), format!("{repo}:{version}")]
}

/// `binfmt`'s tags: `<repo>:binfmt` first, then `<repo>:binfmt-<version>`
/// (versioned as `latest` is: the unversioned tag follows the newest
/// version built).
pub fn binfmt_tags(repo: &str, version: &str) -> Vec<String> {
    vec![format!("{repo}:binfmt"), format!("{repo}:binfmt-{version}")]
}

/// The registrar-only image's tag.
pub fn register_tags(repo: &str) -> Vec<String> {
    vec![format!("{repo}:register")]
}

/// One emulator's tags, primary (`<from>-<to>-<version>`) first.
pub fn target_tags(repo: &str, from: &str, to: &str, version: &str) -> Vec<String> {
    vec![
        format!("{repo}:{from}-{to}-{version}"),
        format!("{repo}:{from}-{to}"),
        format!("{repo}:{to}-{version}"),
        format!("{repo}:{to}"),
    ]
}

/// Whether `tag` (`<repo>:<tag>`) names version `version`: its tag part
/// is `<version>` or ends with `-<version>`.
pub(crate) fn is_versioned(tag: &str, version: &str) -> bool {
    let (_, tag) = super::engine::split_reference(tag);
    tag == version || tag.ends_with(&format!("-{version}"))
}

/// Whether an unversioned tag naming an image labelled with version
/// `current` stays there when `building` is built: only when `current` is
/// a newer image version. An image without the label, or with one that is
/// not an image version, is replaced.
pub(crate) fn stays_on_newer(current: Option<&str>, building: &ImageVersion) -> bool {
    current
        .and_then(|v| v.parse::<ImageVersion>().ok())
        .is_some_and(|current| current > *building)
}

/// Checks a repository name as the engine will (`[host[:port]/]path`,
/// lowercase path components), so a bad `--repo` fails before any work.
pub(crate) fn validate_repo(repo: &str) -> Result<(), String> {
    // The distribution reference grammar (distribution/reference), without
    // tags or digests. As there, a first part is a registry host only if
    // it holds `.` or `:` or is `localhost`.
    static PATH: LazyLock<Regex> = LazyLock::new(|| {
        let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        Regex::new(&format!("^{component}(?:/{component})*$"))
            .expect("the path grammar is a valid regex")
    });
    static HOST: LazyLock<Regex> = LazyLock::new(|| {
        let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
        Regex::new(&format!(r"^{label}(?:\.{label})*(?::[0-9]+)?$"))
            .expect("the host grammar is a valid regex")
    });
    if repo.len() > 255 {
        return Err("longer than 255 characters".to_owned());
    }
    let path = match repo.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
            if !HOST.is_match(host) {
                return Err(format!("`{host}` is not a registry host name"));
            }
            path
        }
        _ => repo,
    };
    if !PATH.is_match(path) {
        return Err(
            "expected lowercase path components of letters, digits and `._-` separated by `/`"
                .to_owned(),
        );
    }
    Ok(())
}

/// Checks one tag (the part after `:`).
pub(crate) fn validate_tag(tag: &str) -> Result<(), String> {
    static TAG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
            .expect("the tag grammar is a valid regex")
    });
    if TAG.is_match(tag) {
        Ok(())
    } else {
        Err("a tag is 1 to 128 letters, digits and `_.-`, not starting with `.` or `-`".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_the_original_one() {
        assert_eq!(
            latest_tags("qus/qemu-user-static", "7.2.0-1"),
            [
                "qus/qemu-user-static:latest",
                "qus/qemu-user-static:7.2.0-1"
            ]
        );
        assert_eq!(register_tags("r"), ["r:register"]);
        assert_eq!(
            binfmt_tags("r", "7.2.0-1"),
            ["r:binfmt", "r:binfmt-7.2.0-1"]
        );
        assert_eq!(
            target_tags("r", "x86_64", "aarch64", "7.2.0-1"),
            [
                "r:x86_64-aarch64-7.2.0-1",
                "r:x86_64-aarch64",
                "r:aarch64-7.2.0-1",
                "r:aarch64"
            ]
        );
    }

    #[test]
    fn versioned_tags_are_told_apart() {
        let version = "11.1.3-1";
        for tag in latest_tags("r", version)
            .into_iter()
            .chain(binfmt_tags("r", version))
            .chain(target_tags(
                "localhost:5000/r",
                "x86_64",
                "aarch64",
                version,
            ))
        {
            let unversioned = tag.ends_with(":latest")
                || tag.ends_with(":binfmt")
                || tag.ends_with(":x86_64-aarch64")
                || tag.ends_with(":aarch64");
            assert_eq!(is_versioned(&tag, version), !unversioned, "{tag}");
        }
        assert!(!is_versioned("r:register", version));
        assert!(!is_versioned("r:aarch64-10.0.13-1", version));
    }

    #[test]
    fn unversioned_tags_stay_only_on_newer_versions() {
        let building: ImageVersion = "10.0.13-1".parse().unwrap();
        assert!(stays_on_newer(Some("11.1.3-1"), &building));
        assert!(stays_on_newer(Some("10.0.13-2"), &building));
        assert!(!stays_on_newer(Some("10.0.13-1"), &building));
        assert!(!stays_on_newer(Some("10.0.2-1"), &building));
        assert!(!stays_on_newer(Some("9.2.0-1"), &building));
        assert!(!stays_on_newer(Some("custom"), &building));
        assert!(!stays_on_newer(None, &building));
    }

    #[test]
    fn repository_names_follow_the_reference_grammar() {
        for ok in [
            "qus/qemu-user-static",
            "multiarch/qemu-user-static",
            "localhost:5000/qus/x",
            "registry.example.com/a__b/c.d",
            "single",
            "localhost/qus",
        ] {
            assert_eq!(validate_repo(ok), Ok(()), "{ok}");
        }
        for bad in [
            "Qus/x",
            "qus/",
            "/qus",
            "qus//x",
            "qus/x:tag",
            "qus/-x",
            "",
            "bad_host:x/y",
        ] {
            assert!(validate_repo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_the_reference_grammar() {
        assert!(validate_tag("x86_64-aarch64-7.2.0-1").is_ok());
        assert!(validate_tag("7.2.0-1").is_ok());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a+b").is_err());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }
}
