//! The target table checked against real ELF headers and the reference data.
//!
//! Every header here is built from [`ARCHES`], a list written from the ELF
//! gABI, the processor supplements and binutils (`include/elf/common.h`),
//! never from `TARGETS`: a wrong magic in the table cannot make its own test
//! pass. The tests then show that
//!
//! - each header is claimed by exactly one entry, the right one;
//! - `tests/data/qemu-targets.tsv` (QEMU's current script) agrees with
//!   `TARGETS` except for the listed [`CORRECTIONS`], each shown wrong by a
//!   real header;
//! - the 7.x script's traps (MIPS o32/n32 ambiguity among others) are real
//!   and absent from our table;
//! - the table's invariants hold, with the upstream exceptions listed;
//! - `elf::read_file` reads real and synthetic files.

use std::collections::{BTreeMap, BTreeSet};

use qus_registrar::elf::{self, ElfError};
use qus_registrar::entry::{Flags, register_line, unescape};
use qus_registrar::targets::{Class, Endian, TARGETS, Target};
use rstest::rstest;

// e_type values (gABI).
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
// EI_OSABI values: binutils writes 0 (SYSV) except for binaries that use GNU
// extensions such as IFUNC or unique symbols, which get 3 (GNU/Linux).
const ELFOSABI_SYSV: u8 = 0;
const ELFOSABI_GNU: u8 = 3;

// e_machine numbers, from the gABI and binutils `include/elf/common.h`.
const EM_SPARC: u16 = 2;
const EM_386: u16 = 3;
const EM_68K: u16 = 4;
const EM_486: u16 = 6;
const EM_MIPS: u16 = 8;
const EM_PARISC: u16 = 15;
const EM_SPARC32PLUS: u16 = 18;
const EM_PPC: u16 = 20;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_SH: u16 = 42;
const EM_SPARCV9: u16 = 43;
const EM_X86_64: u16 = 62;
const EM_OPENRISC: u16 = 92;
const EM_XTENSA: u16 = 94;
const EM_QDSP6: u16 = 164;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;
// Unofficial numbers still used by Linux toolchains: Alpha's predates its
// official EM_ALPHA (41), and QEMU's microblaze loader checks the old one.
const EM_ALPHA_OLD: u16 = 0x9026;
const EM_MICROBLAZE_OLD: u16 = 0xbaab;

// MIPS e_flags (binutils `include/elf/mips.h`): an o32 binary never sets
// EF_MIPS_ABI2; an n32 binary always does. The rest is realistic noise.
const EF_MIPS_NOREORDER_PIC_CPIC: u32 = 0x7;
const EF_MIPS_ABI2: u32 = 0x20;
const EF_MIPS_ABI_O32: u32 = 0x1000;
const EF_MIPS_ARCH_32: u32 = 0x5000_0000;
const EF_MIPS_ARCH_32R2: u32 = 0x7000_0000;
const EF_MIPS_ARCH_64: u32 = 0x6000_0000;
const EF_MIPS_ARCH_64R2: u32 = 0x8000_0000;
const MIPS_O32_FLAGS: &[u32] = &[
    0,
    EF_MIPS_ARCH_32 | EF_MIPS_ABI_O32 | EF_MIPS_NOREORDER_PIC_CPIC,
    EF_MIPS_ARCH_32R2 | EF_MIPS_ABI_O32 | 0x5,
];
const MIPS_N32_FLAGS: &[u32] = &[
    EF_MIPS_ARCH_64 | EF_MIPS_ABI2,
    EF_MIPS_ARCH_64R2 | EF_MIPS_ABI2 | EF_MIPS_NOREORDER_PIC_CPIC,
];
const MIPS_N64_FLAGS: &[u32] = &[
    EF_MIPS_ARCH_64R2 | EF_MIPS_NOREORDER_PIC_CPIC,
    EF_MIPS_ARCH_64 | 0x5,
];

/// MIPS non-PIC executables that use PLTs and copy relocations get
/// EI_ABIVERSION 1 from binutils; every other binary here has 0.
const MIPS_ABI_VERSIONS: &[u8] = &[0, 1];
const ABI_VERSION_0: &[u8] = &[0];

/// What one architecture's Linux binaries look like.
struct Arch {
    /// The QEMU target that must run them.
    target: &'static str,
    class: Class,
    endian: Endian,
    machine: u16,
    /// Realistic `e_flags` values (ABI, float ABI, ISA level).
    flags: &'static [u32],
    abi_versions: &'static [u8],
}

const fn arch(
    target: &'static str,
    class: Class,
    endian: Endian,
    machine: u16,
    flags: &'static [u32],
) -> Arch {
    Arch {
        target,
        class,
        endian,
        machine,
        flags,
        abi_versions: ABI_VERSION_0,
    }
}

const fn mips(target: &'static str, class: Class, endian: Endian, flags: &'static [u32]) -> Arch {
    Arch {
        target,
        class,
        endian,
        machine: EM_MIPS,
        flags,
        abi_versions: MIPS_ABI_VERSIONS,
    }
}

use Class::{Elf32 as C32, Elf64 as C64};
use Endian::{Big as BE, Little as LE};

/// One entry per QEMU target, written independently of `TARGETS`.
const ARCHES: &[Arch] = &[
    arch("aarch64", C64, LE, EM_AARCH64, &[0]),
    arch("aarch64_be", C64, BE, EM_AARCH64, &[0]),
    arch("alpha", C64, LE, EM_ALPHA_OLD, &[0]),
    // EABI5 with the hard- and soft-float flags.
    arch("arm", C32, LE, EM_ARM, &[0x0500_0400, 0x0500_0200]),
    // EABI5 BE8 (ARMv6+) and plain BE32.
    arch("armeb", C32, BE, EM_ARM, &[0x0580_0000, 0x0500_0000]),
    // Hexagon keeps the CPU version in e_flags (v67, v73).
    arch("hexagon", C32, LE, EM_QDSP6, &[0x67, 0x73]),
    // EFA_PARISC_1_1.
    arch("hppa", C32, BE, EM_PARISC, &[0x210]),
    arch("i386", C32, LE, EM_386, &[0]),
    arch("i486", C32, LE, EM_486, &[0]),
    // LP64D, with and without EF_LOONGARCH_OBJABI_V1.
    arch("loongarch64", C64, LE, EM_LOONGARCH, &[0x3, 0x43]),
    arch("m68k", C32, BE, EM_68K, &[0]),
    arch("microblaze", C32, BE, EM_MICROBLAZE_OLD, &[0]),
    arch("microblazeel", C32, LE, EM_MICROBLAZE_OLD, &[0]),
    mips("mips", C32, BE, MIPS_O32_FLAGS),
    mips("mips64", C64, BE, MIPS_N64_FLAGS),
    mips("mips64el", C64, LE, MIPS_N64_FLAGS),
    mips("mipsel", C32, LE, MIPS_O32_FLAGS),
    mips("mipsn32", C32, BE, MIPS_N32_FLAGS),
    mips("mipsn32el", C32, LE, MIPS_N32_FLAGS),
    arch("or1k", C32, BE, EM_OPENRISC, &[0]),
    arch("ppc", C32, BE, EM_PPC, &[0]),
    // ELFv1 and ELFv2 ABI.
    arch("ppc64", C64, BE, EM_PPC64, &[1, 2]),
    arch("ppc64le", C64, LE, EM_PPC64, &[2]),
    // RVC with the double-float ABI.
    arch("riscv32", C32, LE, EM_RISCV, &[0x5]),
    arch("riscv64", C64, LE, EM_RISCV, &[0x5]),
    arch("s390x", C64, BE, EM_S390, &[0]),
    // EF_SH4.
    arch("sh4", C32, LE, EM_SH, &[0x9]),
    arch("sh4eb", C32, BE, EM_SH, &[0x9]),
    arch("sparc", C32, BE, EM_SPARC, &[0]),
    // EF_SPARC_32PLUS with the Sun UltraSPARC extensions.
    arch("sparc32plus", C32, BE, EM_SPARC32PLUS, &[0x100, 0x300]),
    arch("sparc64", C64, BE, EM_SPARCV9, &[0, 0x2]),
    arch("x86_64", C64, LE, EM_X86_64, &[0]),
    // EF_XTENSA_XT_INSN | EF_XTENSA_XT_LIT.
    arch("xtensa", C32, LE, EM_XTENSA, &[0x300]),
    arch("xtensaeb", C32, BE, EM_XTENSA, &[0x300]),
];

fn arch_of(target: &str) -> &'static Arch {
    ARCHES
        .iter()
        .find(|a| a.target == target)
        .unwrap_or_else(|| panic!("no arch for `{target}` in ARCHES"))
}

/// The identifying fields of one ELF header.
#[derive(Debug, Clone, Copy)]
struct Spec {
    class: Class,
    endian: Endian,
    os_abi: u8,
    abi_version: u8,
    kind: u16,
    machine: u16,
    flags: u32,
}

/// A complete ELF header (52 bytes for ELF32, 64 for ELF64) as a linker
/// writes it: EI_VERSION and e_version 1, e_ehsize set, no program or
/// section headers.
fn header(s: &Spec) -> Vec<u8> {
    let (size, e_flags_at) = match s.class {
        Class::Elf32 => (52, 36),
        Class::Elf64 => (64, 48),
    };
    let mut h = vec![0u8; size];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = match s.class {
        Class::Elf32 => 1,
        Class::Elf64 => 2,
    };
    h[5] = match s.endian {
        Endian::Little => 1,
        Endian::Big => 2,
    };
    h[6] = 1;
    h[7] = s.os_abi;
    h[8] = s.abi_version;
    let (w16, w32) = match s.endian {
        Endian::Little => (
            u16::to_le_bytes as fn(u16) -> [u8; 2],
            u32::to_le_bytes as fn(u32) -> [u8; 4],
        ),
        Endian::Big => (
            u16::to_be_bytes as fn(u16) -> [u8; 2],
            u32::to_be_bytes as fn(u32) -> [u8; 4],
        ),
    };
    h[16..18].copy_from_slice(&w16(s.kind));
    h[18..20].copy_from_slice(&w16(s.machine));
    h[20..24].copy_from_slice(&w32(1));
    h[e_flags_at..e_flags_at + 4].copy_from_slice(&w32(s.flags));
    // e_ehsize sits right after e_flags in both classes.
    h[e_flags_at + 4..e_flags_at + 6].copy_from_slice(&w16(size as u16));
    h
}

/// Every header variant of `arch` for one EI_OSABI and e_type.
fn variants(arch: &Arch, os_abi: u8, kind: u16) -> impl Iterator<Item = Spec> + '_ {
    arch.flags.iter().flat_map(move |&flags| {
        arch.abi_versions.iter().map(move |&abi_version| Spec {
            class: arch.class,
            endian: arch.endian,
            os_abi,
            abi_version,
            kind,
            machine: arch.machine,
            flags,
        })
    })
}

/// Every header variant of `arch`: both OS ABIs, ET_EXEC and ET_DYN.
fn all_variants(arch: &Arch) -> Vec<Spec> {
    let mut out = Vec::new();
    for os_abi in [ELFOSABI_SYSV, ELFOSABI_GNU] {
        for kind in [ET_EXEC, ET_DYN] {
            out.extend(variants(arch, os_abi, kind));
        }
    }
    out
}

fn names(targets: &[&Target]) -> Vec<&'static str> {
    targets.iter().map(|t| t.name).collect()
}

#[test]
fn the_arch_list_covers_every_target_once() {
    // A target added to the table without an independent description here
    // would escape the header tests below.
    let arches: Vec<_> = ARCHES.iter().map(|a| a.target).collect();
    let targets: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(arches, targets);
}

#[test]
fn table_class_endian_and_machine_agree_with_the_arch_list() {
    for t in TARGETS {
        let a = arch_of(t.name);
        assert_eq!(
            (t.class, t.endian, t.machine),
            (a.class, a.endian, a.machine),
            "{}",
            t.name
        );
    }
}

#[test]
fn built_headers_parse_back() {
    // The builder and `elf::parse` are written independently; agreeing on
    // every variant checks both (and that the builder puts e_flags where
    // the MIPS magics look for it).
    for arch in ARCHES {
        for s in all_variants(arch) {
            let h = elf::parse(&header(&s)).unwrap_or_else(|e| panic!("{}: {e}", arch.target));
            let got = (
                h.class,
                h.endian,
                h.os_abi,
                h.abi_version,
                h.kind,
                h.machine,
                h.flags,
            );
            let want = (
                s.class,
                s.endian,
                s.os_abi,
                s.abi_version,
                s.kind,
                s.machine,
                s.flags,
            );
            assert_eq!(got, want, "{}", arch.target);
            assert!(h.is_static());
        }
    }
}

#[rstest]
fn every_header_is_claimed_by_exactly_its_target(
    #[values(ELFOSABI_SYSV, ELFOSABI_GNU)] os_abi: u8,
    #[values(ET_EXEC, ET_DYN)] kind: u16,
) {
    // Collect every miss first, so one run shows the whole picture.
    let mut wrong = Vec::new();
    for arch in ARCHES {
        for s in variants(arch, os_abi, kind) {
            let got = names(&elf::matching_targets(&header(&s)));
            if got != [arch.target] {
                wrong.push(format!("{} {s:?} -> {got:?}", arch.target));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "headers not claimed by exactly their target:\n{}",
        wrong.join("\n")
    );
}

#[rstest]
#[case::i386(EM_386, "i386")]
#[case::i486(EM_486, "i486")]
fn i486_is_told_from_i386_by_e_machine(#[case] machine: u16, #[case] want: &str) {
    let s = Spec {
        machine,
        ..all_variants(arch_of("i386"))[0]
    };
    assert_eq!(names(&elf::matching_targets(&header(&s))), [want]);
    // Both run under the one i386 emulator.
    assert_eq!(
        elf::matching_targets(&header(&s))[0].interpreter,
        "qemu-i386"
    );
}

/// One TSV file as rows of column name -> value.
fn read_tsv(text: &str) -> Vec<BTreeMap<&str, &str>> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let columns: Vec<_> = lines
        .next()
        .expect("the TSV has a header line")
        .split('\t')
        .collect();
    lines
        .map(|line| {
            let values: Vec<_> = line.split('\t').collect();
            assert!(values.len() <= columns.len(), "too many fields in `{line}`");
            // Trailing empty fields may be cut by editors; missing means empty.
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, values.get(i).copied().unwrap_or("")))
                .collect()
        })
        .collect()
}

const REFERENCE: &str = include_str!("data/qemu-targets.tsv");
const REFERENCE_7X: &str = include_str!("data/qemu-targets-7.x.tsv");

/// Fields in which `TARGETS` deliberately differs from the reference table,
/// as (target, field). Each must be shown wrong by a real header in
/// `each_correction_is_proven_by_a_real_header`.
const CORRECTIONS: &[(&str, &str)] = &[
    // The reference carries e_type as `\x02\x00` under `\xfe\xff`, the
    // little-endian order, in a big-endian ELF; real headers have `\x00\x02`.
    ("microblaze", "magic"),
    ("microblaze", "mask"),
];

/// Every (target, field) where the reference row and `TARGETS` differ.
fn reference_differences() -> BTreeSet<(String, &'static str)> {
    let mut diffs = BTreeSet::new();
    for row in read_tsv(REFERENCE) {
        let name = row["name"];
        let Some(t) = TARGETS.iter().find(|t| t.name == name) else {
            diffs.insert((name.to_owned(), "name"));
            continue;
        };
        let class = match t.class {
            Class::Elf32 => "ELF32",
            Class::Elf64 => "ELF64",
        };
        let endian = match t.endian {
            Endian::Little => "LE",
            Endian::Big => "BE",
        };
        let magic_len = unescape(t.magic)
            .expect("table magic decodes")
            .len()
            .to_string();
        let ours: [(&'static str, String); 8] = [
            ("interpreter", t.interpreter.to_owned()),
            ("magic", t.magic.to_owned()),
            ("mask", t.mask.to_owned()),
            ("family", t.family.to_owned()),
            ("elf_class", class.to_owned()),
            ("endian", endian.to_owned()),
            ("e_machine", format!("{:#x}", t.machine)),
            ("magic_len", magic_len),
        ];
        for (field, value) in ours {
            if row[field] != value {
                diffs.insert((name.to_owned(), field));
            }
        }
    }
    // A target the reference lacks is a difference too.
    let reference_names: BTreeSet<_> = read_tsv(REFERENCE)
        .iter()
        .map(|r| r["name"].to_owned())
        .collect();
    for t in TARGETS {
        if !reference_names.contains(t.name) {
            diffs.insert((t.name.to_owned(), "name"));
        }
    }
    diffs
}

#[test]
fn reference_rows_agree_except_the_listed_corrections() {
    // Fails both on a new unexplained difference and on a listed
    // correction that no longer differs (then the list is stale).
    let want: BTreeSet<_> = CORRECTIONS
        .iter()
        .map(|&(n, f)| (n.to_owned(), f))
        .collect();
    assert_eq!(reference_differences(), want);
    assert_eq!(read_tsv(REFERENCE).len(), TARGETS.len());
}

/// A reference row as a `Target`, so `elf::matches` judges it exactly as it
/// judges ours. The strings are leaked: a test process is short-lived.
fn reference_target(name: &str) -> Target {
    let rows = read_tsv(REFERENCE);
    let row = rows
        .iter()
        .find(|r| r["name"] == name)
        .expect("reference row");
    let ours = TARGETS.iter().find(|t| t.name == name).expect("table row");
    Target {
        magic: row["magic"].to_owned().leak(),
        mask: row["mask"].to_owned().leak(),
        ..*ours
    }
}

#[test]
fn each_correction_is_proven_by_a_real_header() {
    let corrected: BTreeSet<_> = CORRECTIONS.iter().map(|&(n, _)| n).collect();
    for name in corrected {
        let theirs = reference_target(name);
        let ours = TARGETS.iter().find(|t| t.name == name).expect("table row");
        for kind in [ET_EXEC, ET_DYN] {
            for os_abi in [ELFOSABI_SYSV, ELFOSABI_GNU] {
                for s in variants(arch_of(name), os_abi, kind) {
                    let bytes = header(&s);
                    // The reference row would leave real binaries to the
                    // kernel's ELF loader, which fails with ENOEXEC.
                    assert!(
                        !elf::matches(&theirs, &bytes),
                        "reference `{name}` matches {s:?}"
                    );
                    assert!(elf::matches(ours, &bytes), "our `{name}` misses {s:?}");
                }
            }
        }
    }
}

/// The 7.x table's rows as targets (name, magic, mask), strings leaked.
fn old_targets() -> Vec<Target> {
    read_tsv(REFERENCE_7X)
        .into_iter()
        .map(|row| Target {
            name: row["name"].to_owned().leak(),
            interpreter: row["interpreter"].to_owned().leak(),
            magic: row["magic"].to_owned().leak(),
            mask: row["mask"].to_owned().leak(),
            family: row["family"].to_owned().leak(),
            ..TARGETS[0]
        })
        .collect()
}

fn old_matches(old: &[Target], bytes: &[u8]) -> Vec<&'static str> {
    old.iter()
        .filter(|t| elf::matches(t, bytes))
        .map(|t| t.name)
        .collect()
}

#[rstest]
#[case::big_endian("mips", "mipsn32")]
#[case::little_endian("mipsel", "mipsn32el")]
fn old_table_cannot_tell_o32_from_n32(#[case] o32: &str, #[case] n32: &str) {
    let old = old_targets();
    let row = |name| old.iter().find(|t| t.name == name).expect("7.x row");
    // The trap: two entries with the same magic and mask, so whichever is
    // registered last captures the other's binaries.
    assert_eq!(
        (row(o32).magic, row(o32).mask),
        (row(n32).magic, row(n32).mask)
    );
    for (abi, other) in [(o32, n32), (n32, o32)] {
        let s = all_variants(arch_of(abi))[0];
        let bytes = header(&s);
        let mut both = vec![o32, n32];
        both.sort_unstable();
        assert_eq!(old_matches(&old, &bytes), both, "7.x, {abi} header");
        // Ours reaches e_flags and tells them apart.
        assert_eq!(
            names(&elf::matching_targets(&bytes)),
            [abi],
            "ours, {abi} header"
        );
        assert!(!names(&elf::matching_targets(&bytes)).contains(&other));
    }
}

#[test]
fn old_table_traps_are_exactly_the_known_ones() {
    // Every header the 7.x table routes wrongly, summarised per target and
    // EI_ABIVERSION. This pins down what upgrading from it fixes.
    let old = old_targets();
    let mut traps = BTreeSet::new();
    for arch in ARCHES {
        for s in all_variants(arch) {
            let got = old_matches(&old, &header(&s));
            if got != [arch.target] {
                traps.insert((arch.target, s.abi_version, got.join(",")));
            }
        }
    }
    let want: BTreeSet<_> = [
        // Absent from 7.x.
        ("loongarch64", 0, ""),
        // Same e_type byte-order bug as the current reference row.
        ("microblaze", 0, ""),
        // o32 and n32 share one magic and mask.
        ("mips", 0, "mips,mipsn32"),
        ("mipsel", 0, "mipsel,mipsn32el"),
        ("mipsn32", 0, "mips,mipsn32"),
        ("mipsn32el", 0, "mipsel,mipsn32el"),
        // EI_ABIVERSION 1 (non-PIC MIPS executables) is not masked in 7.x,
        // so those binaries reach no entry at all.
        ("mips", 1, ""),
        ("mips64", 1, ""),
        ("mips64el", 1, ""),
        ("mipsel", 1, ""),
        ("mipsn32", 1, ""),
        ("mipsn32el", 1, ""),
    ]
    .into_iter()
    .map(|(n, v, m)| (n, v, m.to_owned()))
    .collect();
    assert_eq!(traps, want);
}

fn decoded(t: &Target) -> (Vec<u8>, Vec<u8>) {
    let magic = unescape(t.magic).unwrap_or_else(|e| panic!("`{}` magic: {e}", t.name));
    let mask = unescape(t.mask).unwrap_or_else(|e| panic!("`{}` mask: {e}", t.name));
    (magic, mask)
}

#[test]
fn magic_and_mask_decode_to_the_same_length() {
    for t in TARGETS {
        let (magic, mask) = decoded(t);
        assert_eq!(magic.len(), mask.len(), "{}", t.name);
    }
}

/// Bytes where a magic has bits the mask clears, as (target, byte index).
/// They come from QEMU's script unchanged: EI_DATA and EI_VERSION masked
/// with `\xfe` while the magic keeps `\x01`. The kernel ignores magic bits
/// outside the mask, so they are harmless, but any new one is a typo until
/// shown otherwise.
const MAGIC_OUTSIDE_MASK: &[(&str, usize)] = &[
    ("alpha", 5),
    ("alpha", 6),
    ("i386", 5),
    ("i386", 6),
    ("i486", 5),
    ("i486", 6),
    ("m68k", 6),
    ("x86_64", 5),
    ("x86_64", 6),
];

#[test]
fn magic_bits_outside_the_mask_are_exactly_the_upstream_ones() {
    let mut found = Vec::new();
    for t in TARGETS {
        let (magic, mask) = decoded(t);
        for (i, (m, k)) in magic.iter().zip(&mask).enumerate() {
            if m & k != *m {
                found.push((t.name, i));
            }
        }
    }
    assert_eq!(found, MAGIC_OUTSIDE_MASK);
}

#[test]
fn every_magic_fits_the_pre_5_1_kernel_buffer() {
    // QEMU registers at offset 0 (the empty offset field); kernels before
    // 5.1 read only 128 bytes of the file (BINPRM_BUF_SIZE).
    for t in TARGETS {
        let (magic, _) = decoded(t);
        assert!(magic.len() <= 128, "{}: {} bytes", t.name, magic.len());
    }
}

#[test]
fn every_register_line_fits_the_kernel_limit() {
    // binfmt_misc refuses writes longer than MAX_REGISTER_LENGTH (1920),
    // and the line is written with its newline, so it must stay below it.
    for t in TARGETS {
        let line = register_line(
            t,
            "/usr/bin/qemu-xxx-static",
            Flags::requested(true, true, true),
        );
        assert!(line.len() < 1920, "{}: {} bytes", t.name, line.len());
        assert!(line.starts_with(&format!(":qemu-{}:M::", t.name)));
    }
}

#[test]
fn bin_sh_is_a_dynamic_host_binary() {
    let h = elf::read_file("/bin/sh".as_ref()).expect("`/bin/sh` is an ELF file");
    // The e_machine of the host this test runs on, from the list above.
    let host = match std::env::consts::ARCH {
        "x86" => "i386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    };
    let arch = arch_of(host);
    assert_eq!(
        (h.class, h.endian, h.machine),
        (arch.class, arch.endian, arch.machine)
    );
    assert!(!h.is_static());
    let interp = h.interp.expect("a PT_INTERP path");
    assert!(interp.starts_with('/') && interp.contains("ld"), "{interp}");
}

#[test]
fn a_synthetic_static_elf_has_no_interp() {
    // An ELF64 header followed by one PT_LOAD program header, as a static
    // binary has: e_phoff = 64, e_phentsize = 56, e_phnum = 1.
    let spec = all_variants(arch_of("aarch64"))[0];
    let mut bytes = header(&spec);
    bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
    bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
    bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
    let mut phdr = [0u8; 56];
    phdr[..4].copy_from_slice(&1u32.to_le_bytes());
    bytes.extend(phdr);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &bytes).expect("write temp file");
    let h = elf::read_file(file.path()).expect("a valid ELF file");
    assert_eq!(h.interp, None);
    assert!(h.is_static());
    assert_eq!(h.machine, EM_AARCH64);
}

#[test]
fn a_non_elf_file_is_reported_by_path() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), "#!/bin/sh\necho hi\n").expect("write temp file");
    let err = elf::read_file(file.path()).unwrap_err();
    assert!(
        matches!(&err, ElfError::NotElf { path } if path == file.path()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("`{}` is not an ELF file", file.path().display())
    );
}

#[test]
fn a_missing_file_is_reported_by_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-binary");
    let err = elf::read_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("failed to read ELF header of `{}`", path.display())
    );
    // The cause is chained, not repeated in the message.
    let ElfError::Read { source, .. } = &err else {
        panic!("expected a read error, got {err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}
