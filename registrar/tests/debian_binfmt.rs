//! The target table checked byte for byte against the `binfmt.d` files
//! Debian ships with QEMU 10.0 (trixie) and 11.1 (sid), copied verbatim to
//! `tests/data/debian-binfmt/<version>/` (see the README there).
//!
//! Since QEMU 9.1 Debian builds these files in the package `qemu-user`
//! (`/usr/share/qemu/binfmt.d/qemu-<cpu>.conf`); `qemu-user-binfmt` links
//! them into `/usr/lib/binfmt.d/`. They are an output of Debian's copy of
//! QEMU's `qemu-binfmt-conf.sh`, independent of our table, so every byte in
//! which magic, mask or offset differ is collected, printed, and compared
//! with [`EXPECTED`]; a new difference, or a listed one that disappears,
//! fails the test. Interpreter and flags differ by design and are checked
//! on their own. README.md ("The target table") gives the reasons.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use qus_registrar::entry::{Flags, register_line, unescape};
use qus_registrar::targets::{TARGETS, Target};

/// The two Debian versions checked, as their fixture directories are named.
const VERSIONS: &[&str] = &["10.0.13+ds-0+deb13u1", "11.1.3+ds-1"];

fn dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/debian-binfmt")
        .join(version)
}

/// One binfmt.d line, split on its first byte as the kernel splits it.
#[derive(Debug)]
struct Record {
    name: String,
    kind: String,
    offset: String,
    magic: String,
    mask: String,
    interpreter: String,
    flags: String,
}

fn parse(text: &str) -> Record {
    let line = text
        .strip_suffix('\n')
        .expect("a binfmt.d file ends with a newline");
    assert!(!line.contains('\n'), "one record per file: {text:?}");
    let delim = line.chars().next().expect("a record");
    let f: Vec<String> = line[1..].split(delim).map(str::to_owned).collect();
    assert_eq!(f.len(), 7, "{line}");
    let [name, kind, offset, magic, mask, interpreter, flags] =
        <[String; 7]>::try_from(f).expect("seven fields");
    Record {
        name,
        kind,
        offset,
        magic,
        mask,
        interpreter,
        flags,
    }
}

/// Every record of one version, by CPU name, sorted.
fn records(version: &str) -> Vec<(String, Record)> {
    let mut out: Vec<(String, Record)> = fs::read_dir(dir(version))
        .expect("fixture directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .map(|p| {
            let cpu = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("qemu-"))
                .expect("qemu-<cpu>.conf")
                .to_owned();
            (
                cpu,
                parse(&fs::read_to_string(&p).expect("readable fixture")),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn ours(cpu: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == cpu)
}

/// One differing byte: (version, target, field, byte offset, Debian's
/// byte, ours), bytes as hex, `""` when one side is shorter.
type Difference = (String, String, &'static str, usize, String, String);

/// Every byte where Debian's magic or mask differs from ours, plus a
/// non-empty offset field (QEMU's is always empty, meaning 0).
fn differences() -> Vec<Difference> {
    let mut found = Vec::new();
    for version in VERSIONS {
        for (cpu, rec) in records(version) {
            let Some(t) = ours(&cpu) else { continue };
            if !rec.offset.is_empty() {
                found.push((
                    version.to_string(),
                    cpu.clone(),
                    "offset",
                    0,
                    rec.offset.clone(),
                    String::new(),
                ));
            }
            for (field, theirs, mine) in [
                ("magic", rec.magic.as_str(), t.magic),
                ("mask", rec.mask.as_str(), t.mask),
            ] {
                let theirs = unescape(theirs).expect("Debian's escapes decode");
                let mine = unescape(mine).expect("our escapes decode");
                for i in 0..theirs.len().max(mine.len()) {
                    let (d, o) = (theirs.get(i), mine.get(i));
                    if d != o {
                        let hex =
                            |b: Option<&u8>| b.map(|b| format!("{b:02x}")).unwrap_or_default();
                        found.push((version.to_string(), cpu.clone(), field, i, hex(d), hex(o)));
                    }
                }
            }
        }
    }
    found
}

/// The differences we keep, the same in both versions (as bytes per
/// target, field, offset, Debian's byte, ours):
///
/// - byte 7 (`EI_OSABI`) of the mask: Debian's files compare it under `fc`
///   (OS ABI 0..3: System V, HP-UX, NetBSD, GNU/Linux) for i386, x86_64,
///   ppc, ppc64, ppc64le, s390x, sh4, sh4eb and the sparcs; QEMU's script
///   ignores it (`00`), so a binary with another OS ABI byte is still
///   claimed. We keep QEMU's bytes: our register lines are the script's.
/// - alpha (bytes 5 and 6) and m68k (byte 6): QEMU's script masks
///   `EI_DATA`/`EI_VERSION` with `fe`, Debian compares them exactly (`ff`).
///   Real headers have `01` there, which both accept (`tests/table.rs`
///   checks ours against real headers).
const EXPECTED_PER_VERSION: &[(&str, &str, usize, &str, &str)] = &[
    ("alpha", "mask", 5, "ff", "fe"),
    ("alpha", "mask", 6, "ff", "fe"),
    ("i386", "mask", 7, "fc", "00"),
    ("m68k", "mask", 6, "ff", "fe"),
    ("ppc", "mask", 7, "fc", "00"),
    ("ppc64", "mask", 7, "fc", "00"),
    ("ppc64le", "mask", 7, "fc", "00"),
    ("s390x", "mask", 7, "fc", "00"),
    ("sh4", "mask", 7, "fc", "00"),
    ("sh4eb", "mask", 7, "fc", "00"),
    ("sparc", "mask", 7, "fc", "00"),
    ("sparc32plus", "mask", 7, "fc", "00"),
    ("sparc64", "mask", 7, "fc", "00"),
    ("x86_64", "mask", 7, "fc", "00"),
];

#[test]
fn magic_mask_and_offset_differ_from_debian_only_as_listed() {
    let found = differences();
    // Shown whatever the outcome, so a reviewer sees every difference.
    println!(
        "differences from Debian's binfmt.d files (version, target, field, byte, Debian, ours):"
    );
    for d in &found {
        println!("  {d:?}");
    }
    let expected: Vec<Difference> = VERSIONS
        .iter()
        .flat_map(|v| {
            EXPECTED_PER_VERSION
                .iter()
                .map(move |&(cpu, field, at, d, o)| {
                    (
                        v.to_string(),
                        cpu.to_owned(),
                        field,
                        at,
                        d.to_owned(),
                        o.to_owned(),
                    )
                })
        })
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn debian_registers_every_target_of_ours_but_i486() {
    // Debian has no entry for i486 binaries (`e_machine` 6); QEMU's script
    // has one, run by `qemu-i386`. Debian has no target we lack.
    let ours: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    for version in VERSIONS {
        let theirs: BTreeSet<String> = records(version).into_iter().map(|(c, _)| c).collect();
        let theirs: BTreeSet<&str> = theirs.iter().map(String::as_str).collect();
        assert_eq!(
            ours.difference(&theirs).copied().collect::<Vec<_>>(),
            ["i486"],
            "{version}"
        );
        assert!(theirs.difference(&ours).next().is_none(), "{version}");
    }
}

#[test]
fn names_and_types_are_qemus() {
    for version in VERSIONS {
        for (cpu, rec) in records(version) {
            assert_eq!(rec.name, format!("qemu-{cpu}"), "{version}");
            assert_eq!(rec.kind, "M", "{version} {cpu}");
        }
    }
}

/// Interpreter and flags differ by design. 10.0 registers a wrapper,
/// `/usr/libexec/qemu-binfmt/<cpu>-binfmt-P`, that passes argv[0] on; 11.1
/// registers the static-pie `/usr/bin/qemu-<cpu>` itself, the path our
/// choice takes when `qemu-<cpu>-static` is absent. Both use `OPF`: `O`
/// without `C` is something QEMU's script (and so `qus-register`) never
/// writes; with `-p yes -g yes` we write `FP`.
#[test]
fn interpreters_and_flags_are_debians_own() {
    for (cpu, rec) in records(VERSIONS[0]) {
        assert_eq!(
            rec.interpreter,
            format!("/usr/libexec/qemu-binfmt/{cpu}-binfmt-P")
        );
        assert_eq!(rec.flags, "OPF", "{cpu}");
    }
    for (cpu, rec) in records(VERSIONS[1]) {
        assert_eq!(rec.interpreter, format!("/usr/bin/qemu-{cpu}"));
        assert_eq!(rec.flags, "OPF", "{cpu}");
        let debian = Flags::parse(&rec.flags).expect("kernel flag letters");
        let mut mine = Flags::requested(false, true, true);
        assert!(!mine.open_binary);
        mine.open_binary = true;
        assert_eq!(mine, debian, "{cpu}");
    }
}

/// For the targets whose bytes agree, our register line with the 11.1
/// interpreter is Debian's line except the flags, byte for byte: the same
/// delimiter, empty offset, and `\xHH` text once Debian's `\x7f\x45\x4c\x46`
/// is spelt `\x7fELF` as QEMU's script spells it.
#[test]
fn register_lines_equal_debians_where_the_bytes_agree() {
    let differing: BTreeSet<&str> = EXPECTED_PER_VERSION.iter().map(|d| d.0).collect();
    let mut compared = 0;
    for (cpu, rec) in records(VERSIONS[1]) {
        let Some(t) = ours(&cpu).filter(|t| !differing.contains(t.name)) else {
            continue;
        };
        let line = register_line(t, &rec.interpreter, Flags::requested(false, true, true));
        let debian = format!(
            ":{}:{}:{}:{}:{}:{}:FP",
            rec.name, rec.kind, rec.offset, rec.magic, rec.mask, rec.interpreter
        );
        let spelt = |s: &str| s.replacen(r"\x7f\x45\x4c\x46", r"\x7fELF", 1);
        assert_eq!(spelt(&line), spelt(&debian), "{cpu}");
        compared += 1;
    }
    assert_eq!(compared, 33 - differing.len());
}
