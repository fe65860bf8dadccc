//! The check every emulator passes before it goes into an image: a
//! statically linked ELF executable for this host's CPU.
//!
//! The images are `FROM scratch` and the kernel opens a `-p yes`
//! interpreter inside foreign containers, where there is no loader: an
//! emulator with a `PT_INTERP` segment would fail there. A static-pie
//! executable (`ET_DYN` without `PT_INTERP`, as Debian builds `qemu-user`
//! from QEMU 9.1) is static. The ELF reading and the CPU matching are
//! `qus_registrar::elf`'s, the same the registrar applies to its own
//! binary and to interpreters. Blocking code: callers run it on a
//! blocking thread.

use std::io::Read as _;
use std::path::Path;

use qus_registrar::elf::{self, ElfErrorKind};
use qus_registrar::targets;

use super::deb::{Emulator, dynamic_hint};
use super::error::ImageBuildError;

/// How much of a file is read first: the ELF header, the program headers
/// and the interpreter path of an executable sit in its first page.
const PREFIX: u64 = 64 * 1024;

/// What is known of the package the emulators come from, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The `.deb`.
    pub(crate) deb: &'a Path,
    /// Its package name.
    pub(crate) package: &'a str,
    /// Its Debian version.
    pub(crate) version: &'a str,
}

/// Checks that every emulator is a static ELF executable whose machine is
/// the host's (`machine`, as `uname -m` names it); the first that is not
/// is named with the package it came from.
pub(crate) fn check_all(
    emulators: &[Emulator],
    machine: &str,
    origin: Origin<'_>,
) -> Result<(), ImageBuildError> {
    let host = targets::find(machine);
    for emulator in emulators {
        check_one(emulator, machine, host, origin)?;
    }
    Ok(())
}

fn check_one(
    emulator: &Emulator,
    machine: &str,
    host: Option<&targets::Target>,
    origin: Origin<'_>,
) -> Result<(), ImageBuildError> {
    let refuse = |reason: String| ImageBuildError::UnusableEmulator {
        deb: origin.deb.to_owned(),
        file: emulator.package_path.clone(),
        reason,
    };
    let mut bytes = read_prefix(&emulator.path, Some(PREFIX))?;
    let mut parsed = elf::parse(&bytes);
    if matches!(parsed, Err(ref e) if matches!(e.kind(), Some(ElfErrorKind::Truncated(_))))
        && bytes.len() as u64 == PREFIX
    {
        // Program headers past the first 64 KiB: read it all.
        bytes = read_prefix(&emulator.path, None)?;
        parsed = elf::parse(&bytes);
    }
    let header = parsed.map_err(|e| {
        let detail = e
            .kind()
            .map_or_else(|| e.to_string(), |kind| kind.to_string());
        refuse(format!("it is not an ELF executable ({detail})"))
    })?;
    if let Some(interp) = &header.interp {
        let hint = dynamic_hint(origin.package, origin.version)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        return Err(refuse(format!(
            "it is dynamically linked (interpreter `{interp}`) and the images have no loader{hint}"
        )));
    }
    if let Some(host) = host
        && !elf::matches(host, &bytes)
    {
        let runs_on = elf::matching_targets(&bytes).first().map_or_else(
            || format!("ELF machine {}", header.machine),
            |t| format!("`{}`", t.name),
        );
        return Err(refuse(format!(
            "it is built for {runs_on}, not for this host's CPU `{machine}`"
        )));
    }
    Ok(())
}

/// The first `limit` bytes of `path` (all of it for `None`).
fn read_prefix(path: &Path, limit: Option<u64>) -> Result<Vec<u8>, ImageBuildError> {
    let file = std::fs::File::open(path).map_err(ImageBuildError::io("open", path))?;
    let mut bytes = Vec::new();
    match limit {
        Some(limit) => file.take(limit).read_to_end(&mut bytes),
        None => (&file).read_to_end(&mut bytes),
    }
    .map_err(ImageBuildError::io("read", path))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::testdeb::{elf_dynamic, elf_static};

    fn emulator(dir: &Path, name: &str, bytes: &[u8]) -> Emulator {
        let path = dir.join(format!("qemu-{name}"));
        std::fs::write(&path, bytes).unwrap();
        Emulator {
            name: name.to_owned(),
            path,
            package_path: format!("usr/bin/qemu-{name}"),
        }
    }

    fn origin<'a>(package: &'a str, version: &'a str) -> Origin<'a> {
        Origin {
            deb: Path::new("/debs/q.deb"),
            package,
            version,
        }
    }

    #[test]
    fn static_and_static_pie_executables_pass() {
        let dir = tempfile::tempdir().unwrap();
        let mut exec = elf_static(62);
        exec[16] = 2; // ET_EXEC, as qemu-user-static 7.2 builds them.
        let emulators = [
            emulator(dir.path(), "aarch64", &elf_static(62)),
            emulator(dir.path(), "s390x", &exec),
        ];
        check_all(&emulators, "x86_64", origin("qemu-user", "1:11.1.3+ds-1")).unwrap();
    }

    #[test]
    fn a_dynamic_emulator_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let emulators = [
            emulator(dir.path(), "aarch64", &elf_static(62)),
            emulator(dir.path(), "arm", &elf_dynamic(62)),
        ];
        let err = check_all(
            &emulators,
            "x86_64",
            origin("qemu-user", "1:7.2+dfsg-7+deb12u18+b3"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the emulator `usr/bin/qemu-arm` of `/debs/q.deb` cannot go into an image: it is \
             dynamically linked (interpreter `/lib64/ld-linux-x86-64.so.2`) and the images have \
             no loader; Debian's `qemu-user` before QEMU 9.1 is dynamically linked: use \
             `qemu-user-static` 1:7.2+dfsg-7+deb12u18+b3 instead"
        );
        let err = check_all(
            &emulators[1..],
            "x86_64",
            origin("qemu-user", "1:11.1.3+ds-1"),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("before QEMU 9.1"), "{err}");
    }

    #[test]
    fn an_emulator_for_another_cpu_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let emulators = [emulator(dir.path(), "arm", &elf_static(183))];
        let err =
            check_all(&emulators, "x86_64", origin("qemu-user", "1:11.1.3+ds-1")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("it is built for `aarch64`, not for this host's CPU `x86_64`"),
            "{err}"
        );
        // On an arm64 host the same file is fine.
        check_all(&emulators, "aarch64", origin("qemu-user", "1:11.1.3+ds-1")).unwrap();
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let emulators = [emulator(dir.path(), "sh4", b"#!/bin/sh\necho hi\n")];
        let err =
            check_all(&emulators, "x86_64", origin("qemu-user", "1:11.1.3+ds-1")).unwrap_err();
        assert!(
            err.to_string()
                .contains("`usr/bin/qemu-sh4` of `/debs/q.deb` cannot go into an image: it is not an ELF executable"),
            "{err}"
        );
    }
}
