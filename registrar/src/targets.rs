//! The QEMU user-mode target table, as data.
//!
//! [`TARGETS`] holds one [`Target`] per `qemu-<cpu>` handler that QEMU's
//! `scripts/qemu-binfmt-conf.sh` knows (its 2025 revision: 34 targets, MIPS
//! o32 and n32 told apart by `e_flags`, `loongarch64`). Magic and mask strings
//! are kept exactly as that script spells them, `\xHH` escapes included, so
//! the register lines we write are byte for byte the script's.
//!
//! `tests/table.rs` checks every row against ELF headers built from an
//! independent list of architectures, and against the reference copy in
//! `tests/data/qemu-targets.tsv`. This
//! module does no I/O and no formatting; it only answers lookups: a target by
//! name or alias ([`find`]) and the host's family ([`host_family`]).

/// ELF class (`EI_CLASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

/// ELF data encoding (`EI_DATA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// One QEMU user-mode target: what binfmt_misc needs to route its binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// QEMU's CPU name (`aarch64`); the entry is named `qemu-<name>`.
    pub name: &'static str,
    /// Interpreter file name without directory or suffix (`qemu-aarch64`).
    /// `i486` is the one target whose interpreter is not `qemu-<name>`.
    pub interpreter: &'static str,
    /// Magic as QEMU's script writes it (`\xHH` escapes and plain bytes).
    pub magic: &'static str,
    /// Mask, same spelling and same decoded length as `magic`.
    pub mask: &'static str,
    /// Host family: a host never registers targets of its own family.
    pub family: &'static str,
    /// ELF class of this target's binaries.
    pub class: Class,
    /// Byte order of this target's binaries.
    pub endian: Endian,
    /// `e_machine` of this target's binaries.
    pub machine: u16,
    /// Other names people type for it (Debian, Docker platform, image prefixes).
    pub aliases: &'static [&'static str],
}

impl Target {
    /// The binfmt_misc entry name: `qemu-<name>`.
    pub fn entry_name(&self) -> String {
        format!("qemu-{}", self.name)
    }
}

/// Every target, sorted by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "aarch64",
        interpreter: "qemu-aarch64",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "arm",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0xb7,
        aliases: &["arm64", "arm64v8", "linux/arm64", "linux/arm64/v8"],
    },
    Target {
        name: "aarch64_be",
        interpreter: "qemu-aarch64_be",
        magic: r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "armeb",
        class: Class::Elf64,
        endian: Endian::Big,
        machine: 0xb7,
        aliases: &[],
    },
    Target {
        name: "alpha",
        interpreter: "qemu-alpha",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x26\x90",
        mask: r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "alpha",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0x9026,
        aliases: &[],
    },
    Target {
        name: "arm",
        interpreter: "qemu-arm",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "arm",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x28,
        aliases: &[
            "armhf",
            "armel",
            "armv7",
            "armv7l",
            "armv6l",
            "arm32v7",
            "arm32v6",
            "arm32v5",
            "linux/arm",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm/v5",
        ],
    },
    Target {
        name: "armeb",
        interpreter: "qemu-armeb",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "armeb",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x28,
        aliases: &[],
    },
    Target {
        name: "hexagon",
        interpreter: "qemu-hexagon",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xa4\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "hexagon",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0xa4,
        aliases: &[],
    },
    Target {
        name: "hppa",
        interpreter: "qemu-hppa",
        magic: r"\x7f\x45\x4c\x46\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x0f",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "hppa",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0xf,
        aliases: &[],
    },
    Target {
        name: "i386",
        interpreter: "qemu-i386",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
        mask: r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "i386",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x3,
        aliases: &["386", "i686", "linux/386", "x86"],
    },
    Target {
        name: "i486",
        interpreter: "qemu-i386",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x06\x00",
        mask: r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "i386",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x6,
        aliases: &[],
    },
    Target {
        name: "loongarch64",
        interpreter: "qemu-loongarch64",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x02\x01",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\xfc\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "loongarch",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0x102,
        aliases: &["loong64", "linux/loong64"],
    },
    Target {
        name: "m68k",
        interpreter: "qemu-m68k",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x04",
        mask: r"\xff\xff\xff\xff\xff\xff\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "m68k",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x4,
        aliases: &[],
    },
    Target {
        name: "microblaze",
        interpreter: "qemu-microblaze",
        // The reference row carries e_type in little-endian byte order; a real big-endian
        // header has `\x00\x02`/`\x00\x03` there (`tests/table.rs`: `each_correction_is_proven_by_a_real_header`).
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\xba\xab",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "microblaze",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0xbaab,
        aliases: &[],
    },
    Target {
        name: "microblazeel",
        interpreter: "qemu-microblazeel",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xab\xba",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "microblazeel",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0xbaab,
        aliases: &[],
    },
    Target {
        name: "mips",
        interpreter: "qemu-mips",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20",
        family: "mips",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x8,
        aliases: &["linux/mips"],
    },
    Target {
        name: "mips64",
        interpreter: "qemu-mips64",
        magic: r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "mips",
        class: Class::Elf64,
        endian: Endian::Big,
        machine: 0x8,
        aliases: &["linux/mips64"],
    },
    Target {
        name: "mips64el",
        interpreter: "qemu-mips64el",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "mips",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0x8,
        aliases: &["mips64le", "linux/mips64le"],
    },
    Target {
        name: "mipsel",
        interpreter: "qemu-mipsel",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00",
        family: "mips",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x8,
        aliases: &["mipsle", "linux/mipsle"],
    },
    Target {
        name: "mipsn32",
        interpreter: "qemu-mipsn32",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20",
        family: "mips",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x8,
        aliases: &[],
    },
    Target {
        name: "mipsn32el",
        interpreter: "qemu-mipsn32el",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00",
        family: "mips",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x8,
        aliases: &[],
    },
    Target {
        name: "or1k",
        interpreter: "qemu-or1k",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x5c",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "or1k",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x5c,
        aliases: &[],
    },
    Target {
        name: "ppc",
        interpreter: "qemu-ppc",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x14",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "ppc",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x14,
        aliases: &["powerpc"],
    },
    Target {
        name: "ppc64",
        interpreter: "qemu-ppc64",
        magic: r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "ppc",
        class: Class::Elf64,
        endian: Endian::Big,
        machine: 0x15,
        aliases: &["powerpc64", "linux/ppc64"],
    },
    Target {
        name: "ppc64le",
        interpreter: "qemu-ppc64le",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
        family: "ppcle",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0x15,
        aliases: &["ppc64el", "powerpc64le", "linux/ppc64le"],
    },
    Target {
        name: "riscv32",
        interpreter: "qemu-riscv32",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "riscv",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0xf3,
        aliases: &[],
    },
    Target {
        name: "riscv64",
        interpreter: "qemu-riscv64",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "riscv",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0xf3,
        aliases: &["linux/riscv64"],
    },
    Target {
        name: "s390x",
        interpreter: "qemu-s390x",
        magic: r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "s390x",
        class: Class::Elf64,
        endian: Endian::Big,
        machine: 0x16,
        aliases: &["linux/s390x"],
    },
    Target {
        name: "sh4",
        interpreter: "qemu-sh4",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x2a\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "sh4",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x2a,
        aliases: &["sh"],
    },
    Target {
        name: "sh4eb",
        interpreter: "qemu-sh4eb",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x2a",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "sh4",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x2a,
        aliases: &[],
    },
    Target {
        name: "sparc",
        interpreter: "qemu-sparc",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x02",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "sparc",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x2,
        aliases: &[],
    },
    Target {
        name: "sparc32plus",
        interpreter: "qemu-sparc32plus",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x12",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "sparc",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x12,
        aliases: &[],
    },
    Target {
        name: "sparc64",
        interpreter: "qemu-sparc64",
        magic: r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x2b",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "sparc",
        class: Class::Elf64,
        endian: Endian::Big,
        machine: 0x2b,
        aliases: &[],
    },
    Target {
        name: "x86_64",
        interpreter: "qemu-x86_64",
        magic: r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
        mask: r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "i386",
        class: Class::Elf64,
        endian: Endian::Little,
        machine: 0x3e,
        aliases: &["amd64", "linux/amd64", "x86-64"],
    },
    Target {
        name: "xtensa",
        interpreter: "qemu-xtensa",
        magic: r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x5e\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        family: "xtensa",
        class: Class::Elf32,
        endian: Endian::Little,
        machine: 0x5e,
        aliases: &[],
    },
    Target {
        name: "xtensaeb",
        interpreter: "qemu-xtensaeb",
        magic: r"\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x5e",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        family: "xtensaeb",
        class: Class::Elf32,
        endian: Endian::Big,
        machine: 0x5e,
        aliases: &[],
    },
];

/// Finds a target by QEMU name, entry name (`qemu-arm`), or alias, ignoring
/// ASCII case. Docker platform strings (`linux/arm64`, `linux/arm/v7`) are
/// aliases too.
pub fn find(name: &str) -> Option<&'static Target> {
    let wanted = name.trim().to_ascii_lowercase();
    let wanted = wanted.strip_prefix("qemu-").unwrap_or(&wanted);
    TARGETS
        .iter()
        .find(|t| t.name == wanted)
        .or_else(|| TARGETS.iter().find(|t| t.aliases.contains(&wanted)))
}

/// The family of a host CPU as `uname -m` (or `HOST_ARCH`) names it,
/// following `qemu_get_family` in QEMU's script: every x86 name is `i386`,
/// every 32- and 64-bit little-endian ARM name is `arm`, and so on. A name the
/// script does not group is its own family.
pub fn host_family(machine: &str) -> String {
    let cpu = machine.trim();
    let family = match cpu {
        "amd64" | "i386" | "i486" | "i586" | "i686" | "i86pc" | "BePC" | "x86_64" => "i386",
        "Power Macintosh" | "ppc64" | "powerpc" | "ppc" => "ppc",
        "ppc64el" | "ppc64le" => "ppcle",
        "arm" | "armel" | "armhf" | "arm64" | "aarch64" => "arm",
        "armeb" | "aarch64_be" => "armeb",
        _ if cpu.starts_with("mips") => "mips",
        _ if cpu.starts_with("sparc") => "sparc",
        _ if cpu.starts_with("riscv") => "riscv",
        _ if cpu.starts_with("loongarch") => "loongarch",
        _ if is_armv(cpu, 'l') => "arm",
        _ if is_armv(cpu, 'b') => "armeb",
        _ => cpu,
    };
    family.to_owned()
}

/// The Docker/OCI platforms a target runs, as docker/setup-qemu-action and
/// tonistiigi/binfmt name them in `supported`. Targets that no OCI platform
/// names give an empty list.
pub fn platforms(target: &Target) -> &'static [&'static str] {
    match target.name {
        "aarch64" => &["linux/arm64"],
        "arm" => &["linux/arm/v7", "linux/arm/v6"],
        "i386" => &["linux/386"],
        "loongarch64" => &["linux/loong64"],
        "mips" => &["linux/mips"],
        "mips64" => &["linux/mips64"],
        "mips64el" => &["linux/mips64le"],
        "mipsel" => &["linux/mipsle"],
        "ppc64" => &["linux/ppc64"],
        "ppc64le" => &["linux/ppc64le"],
        "riscv64" => &["linux/riscv64"],
        "s390x" => &["linux/s390x"],
        "x86_64" => &["linux/amd64"],
        _ => &[],
    }
}

/// Matches the script's `armv[4-9]*l` and `armv[4-9]*b` patterns.
fn is_armv(cpu: &str, last: char) -> bool {
    cpu.strip_prefix("armv")
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| ('4'..='9').contains(&c))
        && cpu.ends_with(last)
}

/// The targets a host of `family` would register without `--ignore-family`:
/// every target outside that family, in table order.
pub fn foreign_to(family: &str) -> impl Iterator<Item = &'static Target> + '_ {
    TARGETS.iter().filter(move |t| t.family != family)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sorted() {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(TARGETS.len(), 34);
    }

    #[test]
    fn aliases_are_unique_and_never_shadow_a_name() {
        let mut seen = std::collections::BTreeSet::new();
        for t in TARGETS {
            for a in t.aliases {
                assert!(seen.insert(*a), "alias `{a}` used twice");
                assert!(
                    TARGETS.iter().all(|o| o.name != *a),
                    "alias `{a}` is a target name"
                );
            }
        }
    }

    #[test]
    fn lookups_accept_what_people_type() {
        for (typed, want) in [
            ("arm64", "aarch64"),
            ("linux/arm64", "aarch64"),
            ("linux/arm/v7", "arm"),
            ("armhf", "arm"),
            ("amd64", "x86_64"),
            ("ppc64el", "ppc64le"),
            ("qemu-s390x", "s390x"),
            ("RISCV64", "riscv64"),
            ("i486", "i486"),
        ] {
            assert_eq!(find(typed).map(|t| t.name), Some(want), "{typed}");
        }
        assert!(find("vax").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn platforms_are_docker_names_and_aliases() {
        for t in TARGETS {
            for p in platforms(t) {
                assert!(p.starts_with("linux/"), "{p}");
                assert_eq!(find(p).map(|f| f.name), Some(t.name), "{p} resolves back");
            }
        }
        assert_eq!(platforms(find("arm64").unwrap()), ["linux/arm64"]);
    }

    #[test]
    fn i486_uses_the_i386_interpreter() {
        assert_eq!(find("i486").unwrap().interpreter, "qemu-i386");
        for t in TARGETS.iter().filter(|t| t.name != "i486") {
            assert_eq!(t.interpreter, format!("qemu-{}", t.name));
        }
    }

    #[test]
    fn host_families_follow_qemu_get_family() {
        for (uname, family) in [
            ("x86_64", "i386"),
            ("i686", "i386"),
            ("amd64", "i386"),
            ("aarch64", "arm"),
            ("armv7l", "arm"),
            ("armv5tel", "arm"),
            ("armv7b", "armeb"),
            ("aarch64_be", "armeb"),
            ("ppc64le", "ppcle"),
            ("ppc64", "ppc"),
            ("mips64", "mips"),
            ("sparc64", "sparc"),
            ("riscv64", "riscv"),
            ("loongarch64", "loongarch"),
            ("s390x", "s390x"),
            ("armv3l", "armv3l"),
        ] {
            assert_eq!(host_family(uname), family, "{uname}");
        }
    }

    #[test]
    fn an_x86_64_host_registers_31_targets() {
        let names: Vec<_> = foreign_to(&host_family("x86_64")).map(|t| t.name).collect();
        assert_eq!(names.len(), 31);
        for own in ["i386", "i486", "x86_64"] {
            assert!(!names.contains(&own));
        }
    }
}
