//! Detecting that the registrar itself runs under QEMU user-mode emulation.
//!
//! An arm64 registrar image run on an x86_64 host (by mistake, or pulled
//! for the wrong platform) sees `uname -m` = `aarch64`: QEMU fakes `uname`,
//! and also the paths `/proc/self/exe` and `/proc/<pid>/exe` and
//! `/proc/self/maps`. It would then register `qemu-x86_64` and capture every
//! native binary of the real host. QEMU intercepts those path *strings*
//! only: `exe` opened relative to a directory descriptor of `/proc/self`
//! reaches the kernel, whose answer is the real executable, the QEMU binary.
//! Its ELF `e_machine` differs from the machine this registrar was compiled
//! for exactly when it is emulated.
//!
//! The main function is [`detect`], which takes the `/proc/self` directory
//! as a parameter so tests can point it at a directory of their own. It
//! reads; it never refuses anything itself (`plan.rs` does).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::elf;
use crate::targets::{self, Class, Endian};

/// The registrar runs emulated: what it was built for and what runs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Emulation {
    /// The machine this registrar was compiled for (`aarch64`).
    pub emulated: String,
    /// The real host's machine, from the executable the kernel runs
    /// (`x86_64`), as a QEMU target name when one matches.
    pub real: String,
    /// That executable (`/usr/bin/qemu-aarch64-static`).
    pub real_exe: PathBuf,
}

/// `(e_machine, class, byte order)` of the code this registrar was compiled
/// to, and its name; `None` on an architecture the table does not know.
fn built_for() -> Option<(u16, Class, Endian, &'static str)> {
    let class = if cfg!(target_pointer_width = "64") {
        Class::Elf64
    } else {
        Class::Elf32
    };
    let endian = if cfg!(target_endian = "little") {
        Endian::Little
    } else {
        Endian::Big
    };
    let (machine, name) = match std::env::consts::ARCH {
        "x86_64" => (62, "x86_64"),
        "x86" => (3, "i386"),
        "aarch64" => (183, "aarch64"),
        "arm" => (40, "arm"),
        "riscv64" => (243, "riscv64"),
        "s390x" => (22, "s390x"),
        "powerpc64" => (21, "ppc64"),
        "powerpc" => (20, "ppc"),
        "loongarch64" => (258, "loongarch64"),
        "mips" | "mips64" => (8, "mips"),
        "sparc64" => (43, "sparc64"),
        _ => return None,
    };
    Some((machine, class, endian, name))
}

/// Whether this process runs under emulation, judged from `proc_self`
/// (`/proc/self` on a real host): `exe` is opened and read relative to a
/// descriptor of that directory, never through the path `/proc/self/exe`.
/// `None` when not emulated or when it cannot be told (no `/proc`).
pub fn detect(proc_self: &Path) -> Option<Emulation> {
    use rustix::fs::{Mode, OFlags};
    let (machine, class, endian, name) = built_for()?;
    let dir = rustix::fs::open(
        proc_self,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let real_exe = rustix::fs::readlinkat(&dir, "exe", Vec::new())
        .map(|p| PathBuf::from(p.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let exe =
        rustix::fs::openat(&dir, "exe", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut head = Vec::new();
    std::fs::File::from(exe)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    let header = elf::parse(&head).ok()?;
    if (header.machine, header.class, header.endian) == (machine, class, endian) {
        return None;
    }
    let real = targets::TARGETS
        .iter()
        .find(|t| (t.machine, t.class, t.endian) == (header.machine, header.class, header.endian))
        .map(|t| t.name.to_owned())
        .unwrap_or_else(|| format!("e_machine {:#x}", header.machine));
    Some(Emulation {
        emulated: name.to_owned(),
        real,
        real_exe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// An ELF header of `machine` for the class and byte order given.
    fn header(machine: u16, class: Class, endian: Endian) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if class == Class::Elf64 { 2 } else { 1 };
        h[5] = if endian == Endian::Little { 1 } else { 2 };
        h[6] = 1;
        let m = match endian {
            Endian::Little => machine.to_le_bytes(),
            Endian::Big => machine.to_be_bytes(),
        };
        h[16] = if endian == Endian::Little { 2 } else { 0 };
        h[17] = if endian == Endian::Little { 0 } else { 2 };
        h[18..20].copy_from_slice(&m);
        h
    }

    /// A directory standing for `/proc/self` whose `exe` links to a file.
    fn proc_self_with_exe(bytes: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("real-qemu");
        fs::write(&exe, bytes).unwrap();
        std::os::unix::fs::symlink(&exe, d.path().join("exe")).unwrap();
        d
    }

    #[test]
    fn a_foreign_executable_behind_exe_means_emulation() {
        let (_, class, endian, name) = built_for().expect("a known build architecture");
        // Some other machine than ours: s390x (big-endian 64-bit) unless we
        // are s390x, then x86_64.
        let (other, oc, oe, other_name) = if name == "s390x" {
            (62, Class::Elf64, Endian::Little, "x86_64")
        } else {
            (22, Class::Elf64, Endian::Big, "s390x")
        };
        let d = proc_self_with_exe(&header(other, oc, oe));
        let e = detect(d.path()).expect("emulation detected");
        assert_eq!(e.emulated, name);
        assert_eq!(e.real, other_name);
        assert_eq!(e.real_exe, d.path().join("real-qemu"));
        let _ = (class, endian);
    }

    #[test]
    fn our_own_machine_behind_exe_is_native() {
        let (machine, class, endian, _) = built_for().unwrap();
        let d = proc_self_with_exe(&header(machine, class, endian));
        assert_eq!(detect(d.path()), None);
    }

    #[test]
    fn no_proc_or_no_elf_tells_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect(&d.path().join("absent")), None);
        assert_eq!(detect(d.path()), None);
        let d = proc_self_with_exe(b"#!/bin/sh\n");
        assert_eq!(detect(d.path()), None);
    }

    #[test]
    fn this_test_process_is_not_emulated() {
        // The real `/proc/self`, read through a directory descriptor.
        assert_eq!(detect(Path::new("/proc/self")), None);
    }
}
