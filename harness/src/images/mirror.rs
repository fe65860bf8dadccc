//! The Debian mirror `debootstrap` uses: the host's own, when its APT
//! sources name one for the suite, else [`DEFAULT_MIRROR`].
//!
//! Using the host's mirror matters on CI machines that reach the archive
//! only through a local mirror or proxy. Both APT formats are read: one-line
//! `sources.list` entries and deb822 `.sources` stanzas
//! (<https://manpages.debian.org/bookworm/apt/sources.list.5.en.html>).
//! Parsing is pure; only [`mirror_from_sources`] reads files.

use std::path::Path;

/// Debian's redirector, used when the host names no mirror for the suite.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The first `deb` source for `suite` with the `main` component in
/// `<root>/etc/apt/sources.list`, then `<root>/etc/apt/sources.list.d/*`
/// (`.list` and `.sources`, in name order), without a trailing `/`.
/// `root` is `/` on a real host.
pub fn mirror_from_sources(root: &Path, suite: &str) -> Option<String> {
    let apt = root.join("etc/apt");
    let mut files = vec![apt.join("sources.list")];
    if let Ok(entries) = std::fs::read_dir(apt.join("sources.list.d")) {
        let mut extra: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|ext| ext == "list" || ext == "sources")
            })
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files.iter().find_map(|file| {
        let text = std::fs::read_to_string(file).ok()?;
        if file.extension().is_some_and(|ext| ext == "sources") {
            from_deb822(&text, suite)
        } else {
            from_one_line(&text, suite)
        }
    })
}

/// A usable mirror URI: HTTP(S), FTP or a local `file:` archive; not
/// `cdrom:` or APT-specific transports debootstrap cannot use.
fn is_usable(uri: &str) -> bool {
    ["http://", "https://", "ftp://", "file:"]
        .iter()
        .any(|scheme| uri.starts_with(scheme))
}

/// `deb [options] uri suite component...` lines.
fn from_one_line(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default().trim();
        let rest = line.strip_prefix("deb ")?.trim_start();
        // Skip `[arch=amd64 signed-by=...]`.
        let rest = match rest.strip_prefix('[') {
            Some(options) => options.split_once(']')?.1,
            None => rest,
        };
        let mut fields = rest.split_whitespace();
        let uri = fields.next()?;
        let entry_suite = fields.next()?;
        let has_main = fields.any(|c| c == "main");
        (entry_suite == suite && has_main && is_usable(uri))
            .then(|| uri.trim_end_matches('/').to_owned())
    })
}

/// deb822 stanzas: `Types`, `URIs`, `Suites`, `Components`, `Enabled`.
fn from_deb822(text: &str, suite: &str) -> Option<String> {
    let mut stanzas = vec![Vec::<(String, String)>::new()];
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
            continue;
        }
        let current = stanzas.last_mut().expect("there is always a stanza");
        if line.starts_with([' ', '\t']) {
            // A continuation line extends the previous field.
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    stanzas.iter().find_map(|stanza| {
        let field = |key: &str| {
            stanza
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let words = |key: &str| field(key).split_whitespace().collect::<Vec<_>>();
        let enabled = !field("enabled").eq_ignore_ascii_case("no");
        let usable = enabled
            && words("types").contains(&"deb")
            && words("suites").contains(&suite)
            && words("components").contains(&"main");
        if !usable {
            return None;
        }
        words("uris")
            .into_iter()
            .find(|uri| is_usable(uri))
            .map(|uri| uri.trim_end_matches('/').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_sources_give_the_suite_mirror() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib
deb http://security.debian.org/debian-security bookworm-security main
";
        assert_eq!(
            from_one_line(text, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(from_one_line(text, "trixie"), None);
        assert_eq!(
            from_one_line("deb cdrom:[Debian]/ bookworm main\n", "bookworm"),
            None
        );
        assert_eq!(
            from_one_line("deb http://m.example/debian bookworm contrib\n", "bookworm"),
            None
        );
    }

    #[test]
    fn deb822_sources_give_the_suite_mirror() {
        let text = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
";
        assert_eq!(
            from_deb822(text, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            from_deb822(text, "bookworm-security").as_deref(),
            Some("http://deb.debian.org/debian-security")
        );
        let disabled = "Types: deb\nURIs: http://x.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n";
        assert_eq!(from_deb822(disabled, "bookworm"), None);
        let continued = "Types: deb\nURIs: cdrom:/x\n http://y.example/debian/\nSuites: bookworm\nComponents: main\n";
        assert_eq!(
            from_deb822(continued, "bookworm").as_deref(),
            Some("http://y.example/debian")
        );
    }

    #[test]
    fn files_are_read_in_order() {
        let root = tempfile::tempdir().unwrap();
        let apt = root.path().join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&apt).unwrap();
        assert_eq!(mirror_from_sources(root.path(), "bookworm"), None);
        std::fs::write(
            apt.join("b.sources"),
            "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            apt.join("a.list.disabled"),
            "deb http://z.example/d bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_sources(root.path(), "bookworm").as_deref(),
            Some("http://b.example/debian")
        );
        std::fs::write(
            root.path().join("etc/apt/sources.list"),
            "deb http://first.example/debian bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_sources(root.path(), "bookworm").as_deref(),
            Some("http://first.example/debian")
        );
    }
}
