//! ELF header inspection and the target table's matcher.
//!
//! The main type is [`Header`]: the few fields of an ELF file that decide
//! which QEMU target runs it (`EI_CLASS`, `EI_DATA`, `EI_OSABI`,
//! `EI_ABIVERSION`, `e_type`, `e_machine`, `e_flags`) and the path in its
//! `PT_INTERP` segment, if any, which tells a static binary from a dynamic
//! one. [`parse`] reads them from bytes and [`read_file`] from a file.
//!
//! [`matches`] applies binfmt_misc's own rule for an `M` entry to the start
//! of a file, so the table in `targets.rs` can be checked against real
//! headers (`tests/table.rs`) and a binary can be routed to its target
//! ([`matching_targets`]) without a kernel.
//!
//! This module never panics on bad input: every read is bounds-checked and
//! truncated or garbage bytes give an [`ElfError`]. It does not load,
//! relocate or validate anything beyond what it reads, and it does not touch
//! binfmt_misc. References: the System V gABI ("ELF Header", "Program
//! Header"), the kernel's `fs/binfmt_elf.c` and `fs/binfmt_misc.c`.

use std::path::{Path, PathBuf};

use crate::entry::unescape;
use crate::targets::{Class, Endian, TARGETS, Target};

/// The four bytes every ELF file starts with (`ELFMAG`).
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `p_type` of the segment that names the program interpreter.
const PT_INTERP: u32 = 3;

/// What decides which QEMU target runs an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `EI_CLASS`: 32- or 64-bit.
    pub class: Class,
    /// `EI_DATA`: byte order of every multi-byte field.
    pub endian: Endian,
    /// `EI_OSABI` (0 System V, 3 GNU/Linux, ...).
    pub os_abi: u8,
    /// `EI_ABIVERSION` (MIPS non-PIC executables use 1).
    pub abi_version: u8,
    /// `e_type` (2 `ET_EXEC`, 3 `ET_DYN`, ...).
    pub kind: u16,
    /// `e_machine` (62 `EM_X86_64`, 183 `EM_AARCH64`, ...).
    pub machine: u16,
    /// `e_flags`, processor specific (MIPS n32 sets `EF_MIPS_ABI2`).
    pub flags: u32,
    /// The path in the first `PT_INTERP` segment, without its NUL; `None`
    /// for a static binary.
    pub interp: Option<String>,
}

impl Header {
    /// Whether the file has no `PT_INTERP` segment, so the kernel (or QEMU)
    /// runs it without a dynamic loader.
    pub fn is_static(&self) -> bool {
        self.interp.is_none()
    }
}

/// Why a byte string is not an ELF header this module can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ElfErrorKind {
    /// The bytes do not start with `\x7fELF`.
    #[error("no `\\x7fELF` magic")]
    NotElf,
    /// `EI_CLASS` is neither `ELFCLASS32` nor `ELFCLASS64`.
    #[error("unknown `EI_CLASS` {0}")]
    Class(u8),
    /// `EI_DATA` is neither `ELFDATA2LSB` nor `ELFDATA2MSB`.
    #[error("unknown `EI_DATA` {0}")]
    Data(u8),
    /// The bytes end before a structure the header points to does.
    #[error("the file ends inside the {0}")]
    Truncated(&'static str),
    /// `e_phentsize` is too small to hold a program header of this class.
    #[error("`e_phentsize` {0} is too small for this ELF class")]
    PhEntSize(u16),
    /// The `PT_INTERP` segment is not a NUL-terminated UTF-8 path.
    #[error("the `PT_INTERP` segment is not a NUL-terminated UTF-8 path")]
    Interp,
}

/// Failure to inspect an ELF header, from bytes or from a file.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Bytes handed to [`parse`] are not a readable ELF header.
    #[error("failed to parse ELF header")]
    Parse(#[source] ElfErrorKind),
    /// The file could not be read.
    #[error("failed to read ELF header of `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the ELF magic (a script, a text file).
    #[error("`{}` is not an ELF file", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
    },
    /// The file starts like an ELF file but its header cannot be read.
    #[error("failed to parse ELF header of `{}`", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        kind: ElfErrorKind,
    },
}

impl ElfError {
    /// What is wrong with the bytes, when the error is about their content
    /// rather than about reading the file.
    pub fn kind(&self) -> Option<ElfErrorKind> {
        match self {
            Self::Parse(kind) | Self::Malformed { kind, .. } => Some(*kind),
            Self::NotElf { .. } => Some(ElfErrorKind::NotElf),
            Self::Read { .. } => None,
        }
    }
}

/// Bounds-checked reads of fixed-size fields in one byte order. Offsets are
/// `u64` because `e_phoff` and `p_offset` are, and every addition is checked,
/// so a hostile header cannot overflow or index past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    /// The `N` bytes at `offset`, or `None` when they are not all there.
    fn array<const N: usize>(&self, offset: u64) -> Option<[u8; N]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(N)?;
        self.bytes.get(start..end)?.try_into().ok()
    }

    fn u16(&self, offset: u64) -> Option<u16> {
        let b = self.array(offset)?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, offset: u64) -> Option<u32> {
        let b = self.array(offset)?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64(&self, offset: u64) -> Option<u64> {
        let b = self.array(offset)?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// A word of the file's class: `Elf32_Off`/`Elf32_Word` or their 64-bit
    /// counterparts, widened to `u64`.
    fn word(&self, class: Class, offset: u64) -> Option<u64> {
        match class {
            Class::Elf32 => self.u32(offset).map(u64::from),
            Class::Elf64 => self.u64(offset),
        }
    }
}

/// Field offsets that differ between the two classes (gABI "ELF Header" and
/// "Program Header").
struct Layout {
    ehdr_size: u64,
    e_phoff: u64,
    e_flags: u64,
    e_phentsize: u64,
    e_phnum: u64,
    phdr_size: u16,
    p_offset: u64,
    p_filesz: u64,
}

const ELF32: Layout = Layout {
    ehdr_size: 52,
    e_phoff: 28,
    e_flags: 36,
    e_phentsize: 42,
    e_phnum: 44,
    phdr_size: 32,
    p_offset: 4,
    p_filesz: 16,
};

const ELF64: Layout = Layout {
    ehdr_size: 64,
    e_phoff: 32,
    e_flags: 48,
    e_phentsize: 54,
    e_phnum: 56,
    phdr_size: 56,
    p_offset: 8,
    p_filesz: 32,
};

/// Reads the ELF header at the start of `bytes` and the path of its first
/// `PT_INTERP` segment, as the kernel's ELF loader does.
///
/// `bytes` must hold the whole header, the program header table and the
/// interpreter path (for an executable these sit in the first page). The
/// `PN_XNUM` extension is not followed: the kernel refuses it for
/// executables too.
pub fn parse(bytes: &[u8]) -> Result<Header, ElfError> {
    parse_kind(bytes).map_err(ElfError::Parse)
}

fn parse_kind(bytes: &[u8]) -> Result<Header, ElfErrorKind> {
    if !bytes.starts_with(ELF_MAGIC) {
        return Err(ElfErrorKind::NotElf);
    }
    let ident = |i: usize| {
        bytes
            .get(i)
            .copied()
            .ok_or(ElfErrorKind::Truncated("ELF header"))
    };
    let class = match ident(4)? {
        1 => Class::Elf32,
        2 => Class::Elf64,
        other => return Err(ElfErrorKind::Class(other)),
    };
    let endian = match ident(5)? {
        1 => Endian::Little,
        2 => Endian::Big,
        other => return Err(ElfErrorKind::Data(other)),
    };
    let layout = match class {
        Class::Elf32 => &ELF32,
        Class::Elf64 => &ELF64,
    };
    // Checking the whole header's length once lets the reads below fail
    // only on offsets that the header itself points to.
    if (bytes.len() as u64) < layout.ehdr_size {
        return Err(ElfErrorKind::Truncated("ELF header"));
    }
    let r = Reader { bytes, endian };
    let header_field = ElfErrorKind::Truncated("ELF header");
    let mut header = Header {
        class,
        endian,
        os_abi: ident(7)?,
        abi_version: ident(8)?,
        kind: r.u16(16).ok_or(header_field)?,
        machine: r.u16(18).ok_or(header_field)?,
        flags: r.u32(layout.e_flags).ok_or(header_field)?,
        interp: None,
    };
    header.interp = find_interp(&r, class, layout)?;
    Ok(header)
}

/// Walks the program header table and returns the first `PT_INTERP` path.
fn find_interp(
    r: &Reader<'_>,
    class: Class,
    layout: &Layout,
) -> Result<Option<String>, ElfErrorKind> {
    let table = ElfErrorKind::Truncated("program header table");
    let phoff = r.word(class, layout.e_phoff).ok_or(table)?;
    let phentsize = r.u16(layout.e_phentsize).ok_or(table)?;
    let phnum = r.u16(layout.e_phnum).ok_or(table)?;
    if phnum == 0 {
        return Ok(None);
    }
    // A larger entry is allowed by the gABI (fields are read from its
    // start); a smaller one would make entries overlap the next.
    if phentsize < layout.phdr_size {
        return Err(ElfErrorKind::PhEntSize(phentsize));
    }
    for i in 0..u64::from(phnum) {
        // phnum and phentsize are u16, so the product fits; phoff may not.
        let entry = phoff.checked_add(i * u64::from(phentsize)).ok_or(table)?;
        let p_type = r.u32(entry).ok_or(table)?;
        if p_type != PT_INTERP {
            continue;
        }
        let field = |off: u64| {
            entry
                .checked_add(off)
                .and_then(|at| r.word(class, at))
                .ok_or(table)
        };
        let offset = field(layout.p_offset)?;
        let size = field(layout.p_filesz)?;
        return read_interp(r.bytes, offset, size).map(Some);
    }
    Ok(None)
}

/// The interpreter path in `bytes[offset..offset + size]`. Like the kernel
/// (`load_elf_binary`), the segment must end with a NUL; the path is what
/// comes before the first NUL.
fn read_interp(bytes: &[u8], offset: u64, size: u64) -> Result<String, ElfErrorKind> {
    let segment = ElfErrorKind::Truncated("`PT_INTERP` segment");
    let start = usize::try_from(offset).map_err(|_| segment)?;
    let end = usize::try_from(size)
        .ok()
        .and_then(|size| start.checked_add(size))
        .ok_or(segment)?;
    let raw = bytes.get(start..end).ok_or(segment)?;
    if raw.last() != Some(&0) {
        return Err(ElfErrorKind::Interp);
    }
    let path = raw.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(path.to_vec()).map_err(|_| ElfErrorKind::Interp)
}

/// Reads `path` and parses its ELF header ([`parse`]). Errors name the file.
pub fn read_file(path: &Path) -> Result<Header, ElfError> {
    // Reading the whole file keeps this simple and correct wherever the
    // program headers and the interpreter path sit; QEMU interpreters and
    // the binaries we inspect are a few MB at most.
    let bytes = std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_kind(&bytes).map_err(|kind| match kind {
        ElfErrorKind::NotElf => ElfError::NotElf {
            path: path.to_owned(),
        },
        kind => ElfError::Malformed {
            path: path.to_owned(),
            kind,
        },
    })
}

/// Whether binfmt_misc would hand a file starting with `file_start` to
/// `target`'s entry (an `M` entry at offset 0): for every byte `i` of the
/// magic, `(file[i] ^ magic[i]) & mask[i] == 0` (`check_file` in
/// `fs/binfmt_misc.c`).
///
/// A file shorter than the magic never matches. (The kernel compares a
/// zero-padded buffer, so it could accept such a file; but no file that
/// short is a runnable ELF binary, and refusing it keeps this a check of
/// real headers.) A magic or mask that does not decode, or whose lengths
/// differ, never matches either: the kernel refuses to register it.
pub fn matches(target: &Target, file_start: &[u8]) -> bool {
    let (Ok(magic), Ok(mask)) = (unescape(target.magic), unescape(target.mask)) else {
        return false;
    };
    if mask.len() != magic.len() || file_start.len() < magic.len() {
        return false;
    }
    file_start
        .iter()
        .zip(&magic)
        .zip(&mask)
        .all(|((f, m), k)| (f ^ m) & k == 0)
}

/// Every target of [`TARGETS`] whose entry would claim a file starting with
/// `file_start`, in table order. For a well-formed table and a real binary
/// this is zero or one target.
pub fn matching_targets(file_start: &[u8]) -> Vec<&'static Target> {
    TARGETS.iter().filter(|t| matches(t, file_start)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One program header to put in a test file: (`p_type`, contents).
    type Segment<'a> = (u32, &'a [u8]);

    /// Builds an ELF file: the header, a program header table right after
    /// it, then each segment's contents. Independent of the code under test
    /// so a layout mistake in `parse` cannot cancel out.
    fn elf(
        class: Class,
        endian: Endian,
        machine: u16,
        flags: u32,
        segments: &[Segment<'_>],
    ) -> Vec<u8> {
        let (ehsize, phentsize) = match class {
            Class::Elf32 => (52usize, 32usize),
            Class::Elf64 => (64, 56),
        };
        let put16 = |v: u16| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let put32 = |v: u32| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let put64 = |v: u64| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let mut f = vec![0u8; ehsize];
        f[..4].copy_from_slice(ELF_MAGIC);
        f[4] = if class == Class::Elf32 { 1 } else { 2 };
        f[5] = if endian == Endian::Little { 1 } else { 2 };
        f[6] = 1;
        f[7] = 3;
        f[16..18].copy_from_slice(&put16(3));
        f[18..20].copy_from_slice(&put16(machine));
        f[20..24].copy_from_slice(&put32(1));
        let phoff = ehsize as u64;
        let mut data_at = ehsize + phentsize * segments.len();
        let mut table = Vec::new();
        let mut data = Vec::new();
        for (p_type, contents) in segments {
            let mut ph = vec![0u8; phentsize];
            ph[..4].copy_from_slice(&put32(*p_type));
            let (off, len) = (data_at as u64, contents.len() as u64);
            match class {
                Class::Elf32 => {
                    ph[4..8].copy_from_slice(&put32(off as u32));
                    ph[16..20].copy_from_slice(&put32(len as u32));
                }
                Class::Elf64 => {
                    ph[8..16].copy_from_slice(&put64(off));
                    ph[32..40].copy_from_slice(&put64(len));
                }
            }
            table.extend(ph);
            data.extend_from_slice(contents);
            data_at += contents.len();
        }
        match class {
            Class::Elf32 => {
                f[28..32].copy_from_slice(&put32(phoff as u32));
                f[36..40].copy_from_slice(&put32(flags));
                f[40..42].copy_from_slice(&put16(ehsize as u16));
                f[42..44].copy_from_slice(&put16(phentsize as u16));
                f[44..46].copy_from_slice(&put16(segments.len() as u16));
            }
            Class::Elf64 => {
                f[32..40].copy_from_slice(&put64(phoff));
                f[48..52].copy_from_slice(&put32(flags));
                f[52..54].copy_from_slice(&put16(ehsize as u16));
                f[54..56].copy_from_slice(&put16(phentsize as u16));
                f[56..58].copy_from_slice(&put16(segments.len() as u16));
            }
        }
        f.extend(table);
        f.extend(data);
        f
    }

    const PT_LOAD: u32 = 1;
    const PT_PHDR: u32 = 6;

    #[test]
    fn parses_every_class_and_byte_order() {
        // Each combination puts e_flags, e_phoff and p_offset at different
        // places and in a different order, so all four must come out right.
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let bytes = elf(
                    class,
                    endian,
                    0x1234,
                    0x8000_0027,
                    &[(PT_PHDR, b"xx"), (PT_INTERP, b"/lib/ld.so.1\0")],
                );
                let h = parse(&bytes).unwrap();
                assert_eq!(
                    h,
                    Header {
                        class,
                        endian,
                        os_abi: 3,
                        abi_version: 0,
                        kind: 3,
                        machine: 0x1234,
                        flags: 0x8000_0027,
                        interp: Some("/lib/ld.so.1".to_owned()),
                    },
                    "{class:?} {endian:?}"
                );
                assert!(!h.is_static());
            }
        }
    }

    #[test]
    fn a_file_without_interp_is_static() {
        // Both "no program headers at all" and "only PT_LOAD" are static.
        for segments in [&[][..], &[(PT_LOAD, &b"code"[..])][..]] {
            let h = parse(&elf(Class::Elf64, Endian::Little, 62, 0, segments)).unwrap();
            assert_eq!(h.interp, None);
            assert!(h.is_static());
        }
    }

    #[test]
    fn the_first_interp_wins() {
        let bytes = elf(
            Class::Elf32,
            Endian::Big,
            8,
            0,
            &[(PT_INTERP, b"/a\0"), (PT_INTERP, b"/b\0")],
        );
        assert_eq!(parse(&bytes).unwrap().interp.as_deref(), Some("/a"));
    }

    #[test]
    fn non_elf_and_unknown_ident_bytes_are_refused() {
        let kind = |b: &[u8]| parse(b).unwrap_err().kind();
        assert_eq!(kind(b""), Some(ElfErrorKind::NotElf));
        assert_eq!(kind(b"#!/bin/sh\n"), Some(ElfErrorKind::NotElf));
        assert_eq!(kind(b"\x7fEL"), Some(ElfErrorKind::NotElf));
        // The ident ends right after the magic.
        assert_eq!(
            kind(b"\x7fELF"),
            Some(ElfErrorKind::Truncated("ELF header"))
        );
        let mut bytes = elf(Class::Elf64, Endian::Little, 62, 0, &[]);
        bytes[4] = 3;
        assert_eq!(kind(&bytes), Some(ElfErrorKind::Class(3)));
        bytes[4] = 2;
        bytes[5] = 0;
        assert_eq!(kind(&bytes), Some(ElfErrorKind::Data(0)));
    }

    #[test]
    fn truncation_is_an_error_at_every_length() {
        // Cutting a valid file anywhere before its last byte must give an
        // error, never a panic and never a header with a wrong interp.
        let bytes = elf(
            Class::Elf64,
            Endian::Big,
            22,
            0,
            &[(PT_LOAD, b"1234"), (PT_INTERP, b"/lib/ld64.so.1\0")],
        );
        for len in 0..bytes.len() {
            assert!(
                parse(&bytes[..len]).is_err(),
                "accepted a file cut at {len}"
            );
        }
        assert!(parse(&bytes).is_ok());
    }

    #[test]
    fn bad_program_headers_are_errors() {
        let mut bytes = elf(Class::Elf32, Endian::Little, 3, 0, &[(PT_INTERP, b"/x\0")]);
        // e_phentsize too small for an Elf32_Phdr.
        bytes[42] = 8;
        assert_eq!(
            parse(&bytes).unwrap_err().kind(),
            Some(ElfErrorKind::PhEntSize(8))
        );
        // e_phoff far past the end of the file.
        bytes[42] = 32;
        bytes[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&bytes).unwrap_err().kind(),
            Some(ElfErrorKind::Truncated("program header table"))
        );
    }

    #[test]
    fn a_malformed_interp_is_an_error() {
        // No terminating NUL, as the kernel refuses too.
        let bytes = elf(
            Class::Elf64,
            Endian::Little,
            62,
            0,
            &[(PT_INTERP, b"/lib/ld.so")],
        );
        assert_eq!(
            parse(&bytes).unwrap_err().kind(),
            Some(ElfErrorKind::Interp)
        );
        // Not UTF-8.
        let bytes = elf(
            Class::Elf64,
            Endian::Little,
            62,
            0,
            &[(PT_INTERP, b"/\xff\0")],
        );
        assert_eq!(
            parse(&bytes).unwrap_err().kind(),
            Some(ElfErrorKind::Interp)
        );
    }

    #[test]
    fn parse_errors_read_as_sentences() {
        let err = parse(b"text").unwrap_err();
        assert_eq!(err.to_string(), "failed to parse ELF header");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no `\\x7fELF` magic"));
    }

    /// A target with an arbitrary magic and mask, to test [`matches`] alone.
    fn target(magic: &'static str, mask: &'static str) -> Target {
        Target {
            magic,
            mask,
            ..TARGETS[0]
        }
    }

    #[test]
    fn matches_is_the_kernel_rule() {
        let t = target(r"AB\x10", r"\xff\x00\xf0");
        // Byte 1 is not masked; in byte 2 only the high nibble counts.
        assert!(matches(&t, b"AZ\x1f"));
        assert!(matches(&t, b"AB\x10 and more bytes"));
        assert!(!matches(&t, b"BB\x10"));
        assert!(!matches(&t, b"AB\x20"));
        // Shorter than the magic: never, even when the prefix agrees.
        assert!(!matches(&t, b"AB"));
        assert!(!matches(&t, b""));
    }

    #[test]
    fn magic_bits_outside_the_mask_are_ignored() {
        // The kernel never looks at magic bits the mask clears, so `\x01`
        // under `\xfe` also accepts a file byte of `\x00`.
        let t = target(r"\x01", r"\xfe");
        assert!(matches(&t, b"\x00"));
        assert!(matches(&t, b"\x01"));
        assert!(!matches(&t, b"\x02"));
    }

    #[test]
    fn malformed_table_strings_never_match() {
        assert!(!matches(&target(r"\x0", r"\xff"), b"\x00\x00\x00\x00"));
        assert!(!matches(&target(r"AB", r"\xff"), b"AB"));
    }

    #[test]
    fn matching_targets_routes_a_real_header() {
        let x86_64 = elf(Class::Elf64, Endian::Little, 62, 0, &[]);
        let names: Vec<_> = matching_targets(&x86_64).iter().map(|t| t.name).collect();
        assert_eq!(names, ["x86_64"]);
        // MIPS o32 and n32 differ only in EF_MIPS_ABI2 (0x20) of e_flags.
        let o32 = elf(Class::Elf32, Endian::Big, 8, 0x7000_1007, &[]);
        let n32 = elf(Class::Elf32, Endian::Big, 8, 0x8000_0027, &[]);
        assert_eq!(
            matching_targets(&o32)
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>(),
            ["mips"]
        );
        assert_eq!(
            matching_targets(&n32)
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>(),
            ["mipsn32"]
        );
        assert!(matching_targets(b"#!/bin/sh\n").is_empty());
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let _ = matching_targets(&bytes);
        }

        #[test]
        fn parse_never_panics_past_a_valid_ident(
            class in 1u8..=2,
            data in 1u8..=2,
            mut bytes in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            // A valid ident gets the random bytes into the program header
            // walk, where the offsets come from the input.
            let ident = [0x7f, b'E', b'L', b'F', class, data];
            let n = ident.len().min(bytes.len());
            bytes[..n].copy_from_slice(&ident[..n]);
            if let Ok(h) = parse(&bytes) {
                prop_assert_eq!(h.class == Class::Elf32, class == 1);
            }
        }

        #[test]
        fn parse_never_panics_on_a_mutated_real_file(
            at in 0usize..96,
            value in any::<u8>(),
            cut in 0usize..200,
        ) {
            // One byte changed anywhere in the header or program headers,
            // then the file cut short: the cases a fuzzer finds first.
            let mut bytes = elf(Class::Elf64, Endian::Little, 62, 0, &[(PT_INTERP, b"/lib/ld.so\0")]);
            if let Some(b) = bytes.get_mut(at) {
                *b = value;
            }
            bytes.truncate(cut);
            let _ = parse(&bytes);
        }
    }
}
