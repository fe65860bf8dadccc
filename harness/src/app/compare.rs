//! `compare`: the listing or Markdown of two reports, and the exit status.
//!
//! The comparison itself is `crate::compare`; this prints it.

use crate::cli::{CompareArgs, exit};

use super::print_error;

/// `compare`: prints the listing (or the Markdown with `--markdown -`),
/// writes the Markdown file, and returns 0, 1 (a regression) or 2.
pub(super) fn compare(args: &CompareArgs) -> u8 {
    let options = crate::compare::CompareOptions {
        base: args.base.clone(),
        candidate: args.candidate.clone(),
        base_qemu: args.base_qemu.clone(),
        candidate_qemu: args.candidate_qemu.clone(),
        known: args.known.clone(),
        threshold: args.slowdown,
    };
    let comparison = match crate::compare::load(&options) {
        Ok(c) => c,
        Err(e) => {
            print_error(&e);
            if let crate::compare::CompareError::Known { errors, .. } = &e {
                for error in errors {
                    eprintln!("{error}");
                }
            }
            return exit::USAGE;
        }
    };
    let markdown = crate::compare::markdown(&comparison);
    match args.markdown.as_deref() {
        Some(path) if path == std::path::Path::new("-") => say!("{}", markdown.trim_end()),
        Some(path) => {
            if let Err(e) = std::fs::write(path, &markdown) {
                eprintln!(
                    "error: failed to write the Markdown `{}`: {e}",
                    path.display()
                );
                return exit::USAGE;
            }
            say!("{}", crate::compare::listing(&comparison).trim_end());
        }
        None => say!("{}", crate::compare::listing(&comparison).trim_end()),
    }
    if comparison.fails() {
        exit::FAILED
    } else {
        exit::OK
    }
}
