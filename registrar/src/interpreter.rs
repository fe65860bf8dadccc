//! Which interpreter file a target is registered with, and what is known
//! about a candidate file.
//!
//! The main function is [`choose`]. QEMU's `qemu-binfmt-conf.sh` builds the
//! path as `<qemu-path>/qemu-<cpu><suffix>`, and the original `register.sh`
//! passed `--qemu-suffix -static`. Since QEMU 9.1 Debian ships the static
//! emulators in the package `qemu-user` as `/usr/bin/qemu-<cpu>` (static-pie),
//! and `qemu-user-static` became a transitional package of `-static`
//! symlinks that may be absent. So, without `--qemu-suffix`, each target
//! uses `qemu-<cpu>-static` when that file exists, else `qemu-<cpu>` when it
//! is statically linked (static-pie counts: it has no `PT_INTERP`), else
//! `qemu-<cpu>-static` as before (so errors name the path they always named).
//! An explicit suffix, even an empty one, is the script's exact behaviour.
//!
//! [`facts`] reads a candidate file (exists, executable, static); it is the
//! only I/O here. The choice itself is pure, so `plan.rs` stays pure: it is
//! handed a closure answering [`InterpreterFacts`] for a path.

use std::fmt;
use std::io::{self, Read as _};
use std::os::unix::fs::PermissionsExt as _;

use crate::elf;
use crate::entry;
use crate::targets::Target;

/// The suffix `register.sh` passed to QEMU's script, tried first.
pub const STATIC_SUFFIX: &str = "-static";

/// How much of an interpreter is read to find its program headers. They sit
/// right after the ELF header in every linker's output; reading whole
/// interpreters (several MB each) would dominate the run time.
const ELF_PREFIX: u64 = 64 * 1024;

/// What is known about an interpreter file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpreterFacts {
    /// The file does not exist.
    Missing,
    /// It exists but is not executable by anyone.
    NotExecutable,
    /// It is an ELF executable; `interp` is its PT_INTERP when dynamic.
    Elf {
        /// PT_INTERP of a dynamically linked interpreter.
        interp: Option<String>,
    },
    /// It exists but is not an ELF file we can read.
    Unreadable(String),
}

impl InterpreterFacts {
    /// Whether the file is an ELF executable without `PT_INTERP` (static or
    /// static-pie).
    pub fn is_static_elf(&self) -> bool {
        matches!(self, Self::Elf { interp: None })
    }
}

impl fmt::Display for InterpreterFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("it does not exist"),
            Self::NotExecutable => f.write_str("it is not executable"),
            Self::Elf { interp: None } => f.write_str("it is statically linked"),
            Self::Elf {
                interp: Some(loader),
            } => write!(f, "it is dynamically linked (loader `{loader}`)"),
            Self::Unreadable(detail) => write!(f, "it cannot be checked: {detail}"),
        }
    }
}

/// Looks at an interpreter file: exists, executable, static.
pub fn facts(path: &str) -> InterpreterFacts {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return InterpreterFacts::Missing,
        Err(e) => return InterpreterFacts::Unreadable(e.to_string()),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return InterpreterFacts::NotExecutable;
    }
    let mut prefix = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(ELF_PREFIX).read_to_end(&mut prefix));
    if let Err(e) = read {
        return InterpreterFacts::Unreadable(e.to_string());
    }
    match elf::parse(&prefix) {
        Ok(header) => InterpreterFacts::Elf {
            interp: header.interp,
        },
        Err(e) => InterpreterFacts::Unreadable(e.to_string()),
    }
}

/// Why [`choose`] picked a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum ChoiceReason {
    /// `--qemu-suffix` was given: `<qemu-path>/<interpreter><suffix>`, as
    /// QEMU's script builds it; nothing was looked at.
    Explicit,
    /// `qemu-<cpu>-static` exists (Debian's `qemu-user-static` up to 9.0, or
    /// the symlinks of the transitional package).
    StaticSuffix,
    /// `qemu-<cpu>-static` does not exist and `qemu-<cpu>` is statically
    /// linked (Debian's `qemu-user` since 9.1, static-pie).
    Plain {
        /// The `-static` path that was looked for.
        missing: String,
    },
    /// Neither: `qemu-<cpu>-static` is kept, as before; `qemu-<cpu>` was
    /// passed over.
    Fallback {
        /// The plain path passed over.
        passed_over: String,
        /// Why (`it does not exist`, `it is dynamically linked ...`).
        why: String,
    },
}

impl Choice {
    /// A note on the candidate passed over, for a fallback: "`X` does not
    /// exist either" or "`X` was passed over: <why>".
    pub fn passed_over_note(&self) -> Option<String> {
        match &self.reason {
            ChoiceReason::Fallback { passed_over, why }
                if *why == InterpreterFacts::Missing.to_string() =>
            {
                Some(format!("`{passed_over}` does not exist either"))
            }
            ChoiceReason::Fallback { passed_over, why } => {
                Some(format!("`{passed_over}` was passed over: {why}"))
            }
            _ => None,
        }
    }
}

/// The interpreter path chosen for one target, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Choice {
    /// The path the entry is registered with.
    pub path: String,
    /// Why this one.
    #[serde(flatten)]
    pub reason: ChoiceReason,
    /// What was learnt about `path` while choosing (`None` when nothing was
    /// looked at), so the caller need not read it again.
    #[serde(skip)]
    pub facts: Option<InterpreterFacts>,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            ChoiceReason::Explicit => write!(f, "`{}` (--qemu-suffix given)", self.path),
            ChoiceReason::StaticSuffix => write!(f, "`{}` (it exists)", self.path),
            ChoiceReason::Plain { missing } => write!(
                f,
                "`{}` (statically linked; `{missing}` does not exist)",
                self.path
            ),
            ChoiceReason::Fallback { passed_over, why } => {
                write!(f, "`{}` (`{passed_over}` passed over: {why})", self.path)
            }
        }
    }
}

/// The interpreter of `target` in `dir`: with `suffix` the script's path;
/// without, `qemu-<cpu>-static` if it exists, else `qemu-<cpu>` if it is
/// static, else `qemu-<cpu>-static`. `facts` answers for a path.
pub fn choose(
    dir: &str,
    target: &Target,
    suffix: Option<&str>,
    facts: &dyn Fn(&str) -> InterpreterFacts,
) -> Choice {
    if let Some(suffix) = suffix {
        return Choice {
            path: entry::interpreter_path(dir, target, suffix),
            reason: ChoiceReason::Explicit,
            facts: None,
        };
    }
    let with_suffix = entry::interpreter_path(dir, target, STATIC_SUFFIX);
    let static_facts = facts(&with_suffix);
    if static_facts != InterpreterFacts::Missing {
        return Choice {
            path: with_suffix,
            reason: ChoiceReason::StaticSuffix,
            facts: Some(static_facts),
        };
    }
    let plain = entry::interpreter_path(dir, target, "");
    let plain_facts = facts(&plain);
    if plain_facts.is_static_elf() {
        return Choice {
            path: plain,
            reason: ChoiceReason::Plain {
                missing: with_suffix,
            },
            facts: Some(plain_facts),
        };
    }
    Choice {
        path: with_suffix,
        reason: ChoiceReason::Fallback {
            passed_over: plain,
            why: plain_facts.to_string(),
        },
        facts: Some(static_facts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets;
    use std::fs;
    use std::path::Path;

    /// A minimal ELF64 little-endian x86-64 executable header with one
    /// program header: `PT_INTERP` (dynamic) or `PT_LOAD` (static), and
    /// `e_type` `ET_EXEC` or `ET_DYN` (PIE). Written here, independently of
    /// `elf.rs`.
    fn elf(e_type: u16, interp: Option<&[u8]>) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        let (p_type, data): (u32, &[u8]) = match interp {
            Some(path) => (3, path),
            None => (1, b"code"),
        };
        ph[..4].copy_from_slice(&p_type.to_le_bytes());
        ph[8..16].copy_from_slice(&120u64.to_le_bytes());
        ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        f.extend(ph);
        f.extend_from_slice(data);
        f
    }

    const ET_EXEC: u16 = 2;
    const ET_DYN: u16 = 3;

    fn install(dir: &Path, name: &str, bytes: &[u8]) {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn aarch64() -> &'static Target {
        targets::find("aarch64").unwrap()
    }

    fn choose_in(dir: &Path, suffix: Option<&str>) -> Choice {
        choose(dir.to_str().unwrap(), aarch64(), suffix, &facts)
    }

    #[test]
    fn facts_tell_static_static_pie_and_dynamic_apart() {
        let d = tempfile::tempdir().unwrap();
        install(d.path(), "static", &elf(ET_EXEC, None));
        install(d.path(), "static-pie", &elf(ET_DYN, None));
        install(d.path(), "dynamic", &elf(ET_DYN, Some(b"/lib/ld.so\0")));
        let at = |n: &str| facts(d.path().join(n).to_str().unwrap());
        assert!(at("static").is_static_elf());
        assert!(at("static-pie").is_static_elf());
        assert_eq!(
            at("dynamic"),
            InterpreterFacts::Elf {
                interp: Some("/lib/ld.so".into())
            }
        );
        assert_eq!(at("absent"), InterpreterFacts::Missing);
    }

    #[test]
    fn the_static_suffix_wins_when_present_whatever_it_is() {
        let d = tempfile::tempdir().unwrap();
        install(d.path(), "qemu-aarch64", &elf(ET_DYN, None));
        // Present but dynamic: still chosen (the `-p yes` check refuses it
        // later, as it always did).
        install(
            d.path(),
            "qemu-aarch64-static",
            &elf(ET_DYN, Some(b"/lib/ld.so\0")),
        );
        let c = choose_in(d.path(), None);
        assert_eq!(c.reason, ChoiceReason::StaticSuffix);
        assert!(c.path.ends_with("/qemu-aarch64-static"), "{c}");
        assert!(matches!(
            c.facts,
            Some(InterpreterFacts::Elf { interp: Some(_) })
        ));
    }

    #[test]
    fn a_static_pie_qemu_cpu_is_chosen_when_the_suffixed_one_is_absent() {
        let d = tempfile::tempdir().unwrap();
        install(d.path(), "qemu-aarch64", &elf(ET_DYN, None));
        let c = choose_in(d.path(), None);
        assert_eq!(c.path, format!("{}/qemu-aarch64", d.path().display()));
        assert!(matches!(c.reason, ChoiceReason::Plain { .. }));
        assert!(c.to_string().contains("statically linked"), "{c}");
        assert!(
            c.to_string()
                .contains("qemu-aarch64-static` does not exist")
        );
        // A plain static (non-PIE) one as well.
        install(d.path(), "qemu-aarch64", &elf(ET_EXEC, None));
        assert!(matches!(
            choose_in(d.path(), None).reason,
            ChoiceReason::Plain { .. }
        ));
    }

    #[test]
    fn a_dynamic_qemu_cpu_is_passed_over_with_its_reason() {
        let d = tempfile::tempdir().unwrap();
        install(
            d.path(),
            "qemu-aarch64",
            &elf(ET_DYN, Some(b"/lib64/ld-linux-x86-64.so.2\0")),
        );
        let c = choose_in(d.path(), None);
        assert!(c.path.ends_with("/qemu-aarch64-static"), "{c}");
        assert_eq!(c.facts, Some(InterpreterFacts::Missing));
        let text = c.to_string();
        assert!(text.contains("qemu-aarch64` passed over"), "{text}");
        assert!(text.contains("dynamically linked"), "{text}");
        // Nothing at all: the `-static` path, as before.
        let empty = tempfile::tempdir().unwrap();
        let c = choose_in(empty.path(), None);
        assert!(c.path.ends_with("/qemu-aarch64-static"));
        assert!(c.to_string().contains("does not exist"), "{c}");
    }

    #[test]
    fn an_explicit_suffix_is_the_scripts_path_and_looks_at_nothing() {
        let d = tempfile::tempdir().unwrap();
        install(d.path(), "qemu-aarch64", &elf(ET_DYN, None));
        let looked = std::cell::Cell::new(false);
        let spy = |p: &str| {
            looked.set(true);
            facts(p)
        };
        for (suffix, name) in [("-static", "qemu-aarch64-static"), ("", "qemu-aarch64")] {
            let c = choose("/opt/q/", aarch64(), Some(suffix), &spy);
            assert_eq!(c.path, format!("/opt/q/{name}"));
            assert_eq!(c.reason, ChoiceReason::Explicit);
        }
        assert!(!looked.get());
        // i486 runs under the i386 emulator whatever the choice.
        let c = choose("/usr/bin", targets::find("i486").unwrap(), Some(""), &facts);
        assert_eq!(c.path, "/usr/bin/qemu-i386");
    }
}
