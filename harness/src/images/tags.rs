//! The tag scheme of the registrar images, and name validation.
//!
//! Pure functions. The scheme is the original multiarch/qemu-user-static
//! one (its `run.sh`), with `latest` holding `qus-register` instead of
//! `register.sh`:
//!
//! | tags | content |
//! |---|---|
//! | `<repo>:latest`, `<repo>:<version>` | `qus-register` + every foreign emulator |
//! | `<repo>:register` | `qus-register` only |
//! | `<repo>:<from>-<to>-<version>`, `<repo>:<from>-<to>`, `<repo>:<to>-<version>`, `<repo>:<to>` | `/usr/bin/qemu-<to>-static` only |
//!
//! `<from>` is the host architecture as `uname -m` names it (`x86_64`),
//! `<to>` the emulator's name (`aarch64`), `<version>` the image version
//! (`7.2.0-1`, see [`image_version`](super::image_version)).

use std::sync::LazyLock;

use regex::Regex;

/// `latest`'s tags: `<repo>:latest` first, then `<repo>:<version>`.
pub fn latest_tags(repo: &str, version: &str) -> Vec<String> {
    vec![format!("{repo}:latest"), format!("{repo}:{version}")]
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
