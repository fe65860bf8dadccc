//! Tests of the `--systemd` and `--debian` exporters (`qus_registrar::export`):
//!
//! - snapshots of both formats for a handful of targets, with the default
//!   options and with all three flags on;
//! - the systemd files of every target against the reference copy of QEMU's
//!   2025 script table (`tests/data/qemu-targets.tsv`), byte for byte;
//! - `write_files` over the whole table;
//! - a differential test against the files Debian's `qemu-user-static`
//!   (7.2, bookworm) ships, copied to `tests/data/debian/`. Debian generates
//!   them with its own `debian/binfmt-install` and its own table, so they are
//!   an independent output for the same targets; every difference we expect is
//!   listed below, and the test fails on any other or on a listed one that
//!   disappears.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use qus_registrar::entry::{Flags, unescape};
use qus_registrar::export::{self, ExportOptions, Format, debian, systemd};
use qus_registrar::targets::{self, TARGETS, Target};

/// `--qemu-path /usr/bin --qemu-suffix -static`, every flag off.
fn default_opts() -> ExportOptions {
    ExportOptions {
        qemu_path: "/usr/bin".into(),
        suffix: "-static".into(),
        credential: false,
        persistent: false,
        preserve_argv0: false,
    }
}

/// The same with `--credential yes --persistent yes --preserve-argv0 yes`.
fn all_flags_opts() -> ExportOptions {
    ExportOptions {
        credential: true,
        persistent: true,
        preserve_argv0: true,
        ..default_opts()
    }
}

fn target(name: &str) -> &'static Target {
    targets::find(name).expect("target in the table")
}

fn render(format: Format, t: &Target, opts: &ExportOptions) -> String {
    let mut out = Vec::new();
    match format {
        Format::Systemd => systemd::render(&mut out, t, opts).unwrap(),
        Format::Debian => debian::render(&mut out, t, opts).unwrap(),
    }
    String::from_utf8(out).expect("exports are UTF-8")
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

// ---------------------------------------------------------------------------
// Snapshots.
// ---------------------------------------------------------------------------

const SNAPSHOT_TARGETS: &[&str] = &[
    "aarch64",
    "arm",
    "i486",
    "mips",
    "mipsn32el",
    "hppa",
    "loongarch64",
];

/// Every file of `SNAPSHOT_TARGETS`, each under a `# <file name>` header and
/// verbatim, so a missing or extra newline shows; `# end` closes the last one.
fn snapshot_of(format: Format, opts: &ExportOptions) -> String {
    let mut s = String::new();
    for name in SNAPSHOT_TARGETS {
        let t = target(name);
        writeln!(s, "# {}", format.file_name(t)).unwrap();
        s.push_str(&render(format, t, opts));
    }
    s.push_str("# end\n");
    s
}

#[test]
fn systemd_files_with_default_options() {
    insta::assert_snapshot!(snapshot_of(Format::Systemd, &default_opts()));
}

#[test]
fn systemd_files_with_all_flags() {
    insta::assert_snapshot!(snapshot_of(Format::Systemd, &all_flags_opts()));
}

#[test]
fn debian_files_with_default_options() {
    insta::assert_snapshot!(snapshot_of(Format::Debian, &default_opts()));
}

#[test]
fn debian_files_with_all_flags() {
    insta::assert_snapshot!(snapshot_of(Format::Debian, &all_flags_opts()));
}

// ---------------------------------------------------------------------------
// Against QEMU's script table.
// ---------------------------------------------------------------------------

/// Targets whose table row deliberately differs from QEMU's script.
/// microblaze: the script spells `e_type` of this big-endian ELF in
/// little-endian order (`\x02\x00`), which no real binary has; our table
/// carries `\x00\x02`, as Debian does.
const DELIBERATE_TABLE_FIXES: &[&str] = &["microblaze"];

/// The systemd file of every target equals what `qemu_generate_systemd`
/// writes from the script's own magic and mask (reference copy in
/// `tests/data/qemu-targets.tsv`), with `--persistent yes`.
#[test]
fn systemd_files_match_the_script_table_byte_for_byte() {
    let tsv = fs::read_to_string(data_dir().join("qemu-targets.tsv")).unwrap();
    let mut rows = tsv.lines();
    let header: Vec<_> = rows.next().unwrap().split('\t').collect();
    assert_eq!(header[..4], ["name", "interpreter", "magic", "mask"]);
    let opts = ExportOptions {
        persistent: true,
        ..default_opts()
    };
    let mut seen = BTreeSet::new();
    let mut differing = BTreeSet::new();
    for row in rows {
        let f: Vec<_> = row.split('\t').collect();
        let (name, interpreter, magic, mask) = (f[0], f[1], f[2], f[3]);
        let want = format!(":qemu-{name}:M::{magic}:{mask}:/usr/bin/{interpreter}-static:F\n");
        let got = render(Format::Systemd, target(name), &opts);
        if got != want {
            differing.insert(name);
        }
        seen.insert(name);
    }
    assert_eq!(seen.len(), TARGETS.len());
    assert_eq!(differing, DELIBERATE_TABLE_FIXES.iter().copied().collect());
}

// ---------------------------------------------------------------------------
// write_files over the whole table.
// ---------------------------------------------------------------------------

#[test]
fn write_files_writes_every_target_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let all: Vec<&Target> = TARGETS.iter().collect();
    for (format, sub, ext) in [
        (Format::Systemd, "binfmt.d", ".conf"),
        (Format::Debian, "binfmts", ""),
    ] {
        let dir = tmp.path().join(sub);
        let paths = export::write_files(&dir, &all, &all_flags_opts(), format).unwrap();
        let want: Vec<PathBuf> = TARGETS
            .iter()
            .map(|t| dir.join(format!("qemu-{}{ext}", t.name)))
            .collect();
        assert_eq!(paths, want);
        for (t, path) in TARGETS.iter().zip(&paths) {
            assert_eq!(
                fs::read_to_string(path).unwrap(),
                render(format, t, &all_flags_opts()),
                "{}",
                path.display()
            );
        }
        // Nothing else (no temporary file) is left in the directory.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), TARGETS.len());
    }
}

// ---------------------------------------------------------------------------
// Differential test against Debian's files.
// ---------------------------------------------------------------------------

/// One binfmt.d line split on its first byte, as the kernel splits it.
#[derive(Debug)]
struct Register {
    name: String,
    kind: String,
    offset: String,
    magic: String,
    mask: String,
    interpreter: String,
    flags: String,
}

fn parse_register_file(text: &str) -> Register {
    let line = text
        .strip_suffix('\n')
        .expect("a binfmt.d file ends with a newline");
    assert!(!line.contains('\n'), "one line per file: {text:?}");
    let delim = line.chars().next().unwrap();
    let f: Vec<_> = line[1..].split(delim).map(str::to_owned).collect();
    assert_eq!(f.len(), 7, "{line}");
    let mut f = f.into_iter();
    let mut next = || f.next().unwrap();
    Register {
        name: next(),
        kind: next(),
        offset: next(),
        magic: next(),
        mask: next(),
        interpreter: next(),
        flags: next(),
    }
}

/// An update-binfmts template: its keys in file order, and their values.
fn parse_template(text: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut keys = Vec::new();
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let (k, v) = line.split_once(' ').expect("`key value` lines");
        keys.push(k.to_owned());
        assert!(
            values.insert(k.to_owned(), v.to_owned()).is_none(),
            "{k} twice"
        );
    }
    (keys, values)
}

/// The CPU names of the files in `dir` (`qemu-<cpu><ext>`).
fn debian_cpus(dir: &str, ext: &str) -> BTreeSet<String> {
    fs::read_dir(data_dir().join("debian").join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .map(|n| {
            n.strip_prefix("qemu-")
                .and_then(|n| n.strip_suffix(ext))
                .unwrap_or_else(|| panic!("unexpected fixture `{n}`"))
                .to_owned()
        })
        .collect()
}

fn read_debian(dir: &str, file: &str) -> String {
    fs::read_to_string(data_dir().join("debian").join(dir).join(file)).unwrap()
}

/// In Debian only: QEMU's 2025 script no longer has a `cris` target.
const DEBIAN_ONLY: &[&str] = &["cris"];

/// In our table only. `i386`, `i486`, `x86_64`: Debian's amd64 build skips
/// its own family, as the script does. `aarch64_be`, `microblazeel`, `or1k`:
/// Debian ships `qemu-<cpu>-static` for them but registers no handler.
const OURS_ONLY: &[&str] = &[
    "aarch64_be",
    "i386",
    "i486",
    "microblazeel",
    "or1k",
    "x86_64",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Magic,
    Mask,
}

/// A run of consecutive differing bytes: (target, field, first byte offset,
/// Debian's bytes, ours). A byte present on one side only counts as
/// differing and appears on that side only.
type Run = (&'static str, Field, usize, &'static str, &'static str);

/// Every byte in which Debian's magic and mask differ from ours, decoded.
///
/// - `EI_OSABI` (byte 7): Debian masks it with `fc`, accepting OS ABI 0..3
///   (System V, HP-UX, NetBSD, GNU/Linux); QEMU ignores it (`00`). Both use
///   `fc` for loongarch64, so that row is identical.
/// - `EI_ABIVERSION` (byte 8) on MIPS: Debian masks it with `fe`; QEMU's 2025
///   script ignores it (`00`), so binaries with ABI version 2 and up (glibc
///   sets up to 5 on MIPS) are claimed.
/// - MIPS o32 / n32: both tell them apart by `EF_MIPS_ABI2` (`0x20` in
///   `e_flags`), so neither has the 7.x clash in which `mips` and `mipsn32`
///   had the same magic. QEMU's 2025 rows also require `e_version == 1`
///   (bytes 20..24: magic `00000001` or `01000000`, mask `ffffffff`), Debian's
///   do not. The little-endian rows of Debian stop after byte 36 (the low
///   byte of `e_flags`, 37 bytes); QEMU pads them to 40 with `00` magic under
///   `00` mask, which matches the same files.
/// - `EI_DATA`/`EI_VERSION` (bytes 5, 6) on alpha and `EI_VERSION` on m68k:
///   QEMU masks with `fe` (its own long-standing rows, also in 7.x); Debian
///   compares them exactly (`ff`).
const EXPECTED_BYTE_DIFFERENCES: &[Run] = &[
    ("alpha", Field::Mask, 5, "ffff", "fefe"),
    ("m68k", Field::Mask, 6, "ff", "fe"),
    ("mips", Field::Magic, 23, "00", "01"),
    ("mips", Field::Mask, 8, "fe", "00"),
    ("mips", Field::Mask, 20, "00000000", "ffffffff"),
    ("mips64", Field::Mask, 8, "fe", "00"),
    ("mips64el", Field::Mask, 8, "fe", "00"),
    ("mipsel", Field::Magic, 20, "00", "01"),
    ("mipsel", Field::Magic, 37, "", "000000"),
    ("mipsel", Field::Mask, 8, "fe", "00"),
    ("mipsel", Field::Mask, 20, "00000000", "ffffffff"),
    ("mipsel", Field::Mask, 37, "", "000000"),
    ("mipsn32", Field::Magic, 23, "00", "01"),
    ("mipsn32", Field::Mask, 8, "fe", "00"),
    ("mipsn32", Field::Mask, 20, "00000000", "ffffffff"),
    ("mipsn32el", Field::Magic, 20, "00", "01"),
    ("mipsn32el", Field::Magic, 37, "", "000000"),
    ("mipsn32el", Field::Mask, 8, "fe", "00"),
    ("mipsn32el", Field::Mask, 20, "00000000", "ffffffff"),
    ("mipsn32el", Field::Mask, 37, "", "000000"),
    ("ppc", Field::Mask, 7, "fc", "00"),
    ("ppc64", Field::Mask, 7, "fc", "00"),
    ("ppc64le", Field::Mask, 7, "fc", "00"),
    ("s390x", Field::Mask, 7, "fc", "00"),
    ("sh4", Field::Mask, 7, "fc", "00"),
    ("sh4eb", Field::Mask, 7, "fc", "00"),
    ("sparc", Field::Mask, 7, "fc", "00"),
    ("sparc32plus", Field::Mask, 7, "fc", "00"),
    ("sparc64", Field::Mask, 7, "fc", "00"),
];

/// The runs of differing bytes between `debian` and `ours`.
fn byte_runs(debian: &[u8], ours: &[u8]) -> Vec<(usize, String, String)> {
    let mut runs: Vec<(usize, String, String)> = Vec::new();
    let mut last = None;
    for i in 0..debian.len().max(ours.len()) {
        let (d, o) = (debian.get(i), ours.get(i));
        if d == o {
            continue;
        }
        if last != Some(i.wrapping_sub(1)) {
            runs.push((i, String::new(), String::new()));
        }
        let run = runs.last_mut().unwrap();
        run.1 += &d.map(|b| format!("{b:02x}")).unwrap_or_default();
        run.2 += &o.map(|b| format!("{b:02x}")).unwrap_or_default();
        last = Some(i);
    }
    runs
}

/// Debian spells `\x7fELF` as `\x7f\x45\x4c\x46` in most rows; QEMU's
/// script writes `\x7fELF` except for hppa. Same bytes, different text.
fn normalise_elf_spelling(s: &str) -> String {
    s.replacen(r"\x7f\x45\x4c\x46", r"\x7fELF", 1)
}

/// The targets both sides register, in table order.
fn common_targets() -> Vec<&'static Target> {
    let debian = debian_cpus("binfmt.d", ".conf");
    TARGETS.iter().filter(|t| debian.contains(t.name)).collect()
}

#[test]
fn debian_and_we_register_the_same_targets_but_the_listed_ones() {
    let ours: BTreeSet<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    for (dir, ext) in [("binfmt.d", ".conf"), ("binfmts", "")] {
        let debian = debian_cpus(dir, ext);
        let debian_only: Vec<_> = debian.difference(&ours).map(String::as_str).collect();
        let ours_only: Vec<_> = ours.difference(&debian).map(String::as_str).collect();
        assert_eq!(debian_only, DEBIAN_ONLY, "{dir}");
        assert_eq!(ours_only, OURS_ONLY, "{dir}");
    }
    assert_eq!(common_targets().len(), 28);
}

/// Debian's two formats describe the same entries: same magic and mask text
/// and the same interpreter in both.
#[test]
fn debian_binfmt_d_and_binfmts_agree_with_each_other() {
    for cpu in debian_cpus("binfmt.d", ".conf") {
        let reg = parse_register_file(&read_debian("binfmt.d", &format!("qemu-{cpu}.conf")));
        let (_, tpl) = parse_template(&read_debian("binfmts", &format!("qemu-{cpu}")));
        assert_eq!(tpl["magic"], reg.magic, "{cpu}");
        assert_eq!(tpl["mask"], reg.mask, "{cpu}");
        assert_eq!(tpl["interpreter"], reg.interpreter, "{cpu}");
    }
}

/// Our systemd file against Debian's: the same except for interpreter and
/// flags (by design) and the listed magic/mask bytes.
#[test]
fn systemd_files_differ_from_debian_only_as_listed() {
    let mut found: Vec<(String, Field, usize, String, String)> = Vec::new();
    for t in common_targets() {
        let cpu = t.name;
        let debian = parse_register_file(&read_debian("binfmt.d", &format!("qemu-{cpu}.conf")));
        let ours = parse_register_file(&render(Format::Systemd, t, &default_opts()));

        // Identical fields.
        assert_eq!(debian.name, format!("qemu-{cpu}"));
        assert_eq!(ours.name, debian.name);
        assert_eq!(
            (ours.kind.as_str(), debian.kind.as_str()),
            ("M", "M"),
            "{cpu}"
        );
        assert_eq!(
            (ours.offset.as_str(), debian.offset.as_str()),
            ("", ""),
            "{cpu}"
        );

        // By design: Debian runs a `-binfmt-P` wrapper that understands
        // preserve-argv0, registered `OPF` (`C` was dropped in 7.2+dfsg-7+deb12u15
        // as a local-root risk, and the letters are in Debian's own order, not
        // QEMU's `OC`, `F`, `P`). We write the script's path and, by default,
        // no flags.
        assert_eq!(
            debian.interpreter,
            format!("/usr/libexec/qemu-binfmt/{cpu}-binfmt-P")
        );
        assert_eq!(ours.interpreter, format!("/usr/bin/qemu-{cpu}-static"));
        assert_eq!(debian.flags, "OPF", "{cpu}");
        assert_eq!(ours.flags, "", "{cpu}");

        // Magic and mask: compared decoded; the text may differ only in the
        // spelling of `ELF` where the bytes agree.
        for (field, d, o) in [
            (Field::Magic, &debian.magic, &ours.magic),
            (Field::Mask, &debian.mask, &ours.mask),
        ] {
            let runs = byte_runs(&unescape(d).unwrap(), &unescape(o).unwrap());
            if runs.is_empty() {
                assert_eq!(
                    normalise_elf_spelling(d),
                    normalise_elf_spelling(o),
                    "{cpu} {field:?}"
                );
            }
            found.extend(
                runs.into_iter()
                    .map(|(at, d, o)| (cpu.to_owned(), field, at, d, o)),
            );
        }
    }
    let expected: Vec<_> = EXPECTED_BYTE_DIFFERENCES
        .iter()
        .map(|&(cpu, field, at, d, o)| (cpu.to_owned(), field, at, d.to_owned(), o.to_owned()))
        .collect();
    assert_eq!(found, expected);
}

/// With the options Debian uses (`--persistent yes --preserve-argv0 yes`),
/// our flags differ from Debian's `OPF` only by the `O` Debian adds.
#[test]
fn debian_flags_are_ours_plus_open_binary() {
    let opts = ExportOptions {
        persistent: true,
        preserve_argv0: true,
        ..default_opts()
    };
    for t in common_targets() {
        let debian =
            parse_register_file(&read_debian("binfmt.d", &format!("qemu-{}.conf", t.name)));
        let ours = parse_register_file(&render(Format::Systemd, t, &opts));
        assert_eq!(ours.flags, "FP");
        let mut ours = Flags::parse(&ours.flags).unwrap();
        let debian = Flags::parse(&debian.flags).unwrap();
        assert!(!ours.open_binary);
        ours.open_binary = true;
        assert_eq!(ours, debian, "{}", t.name);
    }
}

/// Debian's update-binfmts templates put the lines in another order, add
/// `offset 0` (update-binfmts' default when absent) and name the package
/// that owns the entry (`qemu-user-static`) where the script writes
/// `qemu-<cpu>`.
const DEBIAN_TEMPLATE_KEYS: &[&str] = &[
    "package",
    "interpreter",
    "magic",
    "offset",
    "mask",
    "credentials",
    "fix_binary",
    "preserve",
];
const OUR_TEMPLATE_KEYS: &[&str] = &[
    "package",
    "interpreter",
    "magic",
    "mask",
    "credentials",
    "preserve",
    "fix_binary",
];

/// Our update-binfmts template against Debian's: the same except for the
/// package, the interpreter, the line order, the `offset 0` line, the
/// yes/no lines of the flags we do not set by default, and the listed
/// magic/mask bytes (the same as in the binfmt.d files, checked above).
#[test]
fn debian_templates_differ_from_debian_only_as_listed() {
    for t in common_targets() {
        let cpu = t.name;
        let (dkeys, debian) = parse_template(&read_debian("binfmts", &format!("qemu-{cpu}")));
        let (okeys, ours) = parse_template(&render(Format::Debian, t, &default_opts()));
        assert_eq!(dkeys, DEBIAN_TEMPLATE_KEYS, "{cpu}");
        assert_eq!(okeys, OUR_TEMPLATE_KEYS, "{cpu}");

        assert_eq!(debian["package"], "qemu-user-static");
        assert_eq!(ours["package"], format!("qemu-{cpu}"));
        assert_eq!(
            debian["interpreter"],
            format!("/usr/libexec/qemu-binfmt/{cpu}-binfmt-P")
        );
        assert_eq!(ours["interpreter"], format!("/usr/bin/qemu-{cpu}-static"));
        assert_eq!(debian["offset"], "0");
        assert!(!ours.contains_key("offset"));
        assert_eq!(
            (ours["credentials"].as_str(), debian["credentials"].as_str()),
            ("no", "no")
        );
        assert_eq!(
            (ours["fix_binary"].as_str(), debian["fix_binary"].as_str()),
            ("no", "yes")
        );
        assert_eq!(
            (ours["preserve"].as_str(), debian["preserve"].as_str()),
            ("no", "yes")
        );

        // Magic and mask: the same text as the systemd files on each side.
        let debian_reg = parse_register_file(&read_debian("binfmt.d", &format!("qemu-{cpu}.conf")));
        assert_eq!(
            (debian["magic"].as_str(), debian["mask"].as_str()),
            (debian_reg.magic.as_str(), debian_reg.mask.as_str())
        );
        assert_eq!(
            (ours["magic"].as_str(), ours["mask"].as_str()),
            (t.magic, t.mask)
        );
    }
}

/// With Debian's options our yes/no lines equal Debian's.
#[test]
fn debian_template_options_match_with_debian_options() {
    let opts = ExportOptions {
        persistent: true,
        preserve_argv0: true,
        ..default_opts()
    };
    for t in common_targets() {
        let (_, debian) = parse_template(&read_debian("binfmts", &format!("qemu-{}", t.name)));
        let (_, ours) = parse_template(&render(Format::Debian, t, &opts));
        for key in ["credentials", "fix_binary", "preserve"] {
            assert_eq!(ours[key], debian[key], "{} {key}", t.name);
        }
    }
}

#[test]
fn byte_runs_groups_consecutive_differences() {
    // Guards the helper the differential test relies on.
    assert_eq!(byte_runs(b"abc", b"abc"), []);
    assert_eq!(
        byte_runs(&[1, 2, 3, 4], &[1, 9, 9, 4, 0]),
        [
            (1, "0203".into(), "0909".into()),
            (4, String::new(), "00".into())
        ]
    );
}
