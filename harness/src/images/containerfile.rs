//! The Containerfiles of `images/` at the repository root, compiled in.
//!
//! They are part of every image's recipe, so editing one rebuilds exactly
//! the images built from it. Their comments say what each context holds.

/// `<repo>:latest`, `<repo>:<version>`.
pub(crate) const LATEST: &str = include_str!("../../../images/latest.Containerfile");

/// `<repo>:binfmt`, `<repo>:binfmt-<version>`: `latest` entered as
/// tonistiigi/binfmt's command line.
pub(crate) const BINFMT: &str = include_str!("../../../images/binfmt.Containerfile");

/// `<repo>:register`.
pub(crate) const REGISTER: &str = include_str!("../../../images/register.Containerfile");

/// The four tags of one emulator.
pub(crate) const TARGET: &str = include_str!("../../../images/target.Containerfile");

/// `qus-fixtures/probe:<target>`.
pub(crate) const PROBE: &str = include_str!("../../../images/probe.Containerfile");

/// `qus-builders/rust-cross:<suite>-<arch>`: the one image that runs
/// commands while it is built (`apt-get`), and is never shipped.
pub(crate) const RUST_CROSS: &str = include_str!("../../../images/rust-cross.Containerfile");

#[cfg(test)]
mod tests {
    use super::*;

    /// The instructions of a Containerfile, comments and blanks dropped.
    fn instructions(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn every_image_starts_from_scratch_and_runs_nothing() {
        for text in [LATEST, BINFMT, REGISTER, TARGET, PROBE] {
            let lines = instructions(text);
            assert_eq!(lines[0], "FROM scratch");
            assert!(lines.iter().all(|l| !l.starts_with("RUN")), "{text}");
        }
    }

    #[test]
    fn registrar_images_enter_through_qus_register() {
        for text in [LATEST, REGISTER] {
            assert!(instructions(text).contains(&r#"ENTRYPOINT ["/usr/bin/qus-register"]"#));
        }
        assert!(instructions(BINFMT).contains(&r#"ENTRYPOINT ["/usr/bin/binfmt"]"#));
    }

    #[test]
    fn binfmt_starts_with_latests_own_copy() {
        // The shared first layer (see the Containerfile's comment) needs
        // the very same instruction after `FROM scratch`.
        let latest = instructions(LATEST);
        let binfmt = instructions(BINFMT);
        assert_eq!(latest[..2], binfmt[..2]);
        assert_eq!(binfmt[2], "COPY binfmt/ /");
    }
}
