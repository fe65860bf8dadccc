//! Test support (compiled for unit tests only): tiny Debian packages built
//! with `dpkg-deb --build`, and minimal ELF files that
//! `qus_registrar::elf` reads as static or dynamic executables.
//!
//! The fakes are for fast tests of layout detection and static checks; the
//! same code runs on Debian's real packages in `tests/images.rs`.

use std::path::PathBuf;
use std::process::Command;

/// A `.deb` in a temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct FakeDeb {
    /// The package file.
    pub(crate) path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Collects what goes into a [`FakeDeb`].
#[derive(Debug)]
pub(crate) struct FakeDebBuilder {
    package: String,
    version: String,
    architecture: String,
    depends: Option<String>,
    files: Vec<(String, Node)>,
}

#[derive(Debug)]
enum Node {
    File(Vec<u8>),
    Symlink(String),
}

impl FakeDeb {
    /// A package named `package` of `version` for `amd64`.
    #[expect(clippy::new_ret_no_self, reason = "a builder for the package")]
    pub(crate) fn new(package: &str, version: &str) -> FakeDebBuilder {
        FakeDebBuilder {
            package: package.to_owned(),
            version: version.to_owned(),
            architecture: "amd64".to_owned(),
            depends: None,
            files: Vec::new(),
        }
    }
}

impl FakeDebBuilder {
    /// Its `Architecture` field.
    pub(crate) fn architecture(mut self, architecture: &str) -> Self {
        self.architecture = architecture.to_owned();
        self
    }

    /// Its `Depends` field.
    pub(crate) fn depends(mut self, depends: &str) -> Self {
        self.depends = Some(depends.to_owned());
        self
    }

    /// A regular file, mode 0755, at `path` (relative).
    pub(crate) fn file(mut self, path: &str, content: &[u8]) -> Self {
        self.files
            .push((path.to_owned(), Node::File(content.to_owned())));
        self
    }

    /// A symlink at `path` to `target`.
    pub(crate) fn symlink(mut self, path: &str, target: &str) -> Self {
        self.files
            .push((path.to_owned(), Node::Symlink(target.to_owned())));
        self
    }

    /// Runs `dpkg-deb --build`.
    pub(crate) fn build(self) -> FakeDeb {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: qus tests <t@example.org>\n",
            self.package, self.version, self.architecture
        );
        if let Some(depends) = &self.depends {
            control.push_str(&format!("Depends: {depends}\n"));
        }
        control.push_str("Description: a fake package for tests\n");
        std::fs::write(root.join("DEBIAN/control"), control).unwrap();
        for (path, node) in &self.files {
            let target = root.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            match node {
                Node::File(content) => {
                    std::fs::write(&target, content).unwrap();
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                }
                Node::Symlink(to) => std::os::unix::fs::symlink(to, &target).unwrap(),
            }
        }
        let path = dir.path().join(format!(
            "{}_{}_{}.deb",
            self.package,
            self.version.replace(':', "%3a"),
            self.architecture
        ));
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
            .arg(&root)
            .arg(&path)
            .output()
            .expect("dpkg-deb runs (Debian's `dpkg` package)");
        assert!(
            out.status.success(),
            "dpkg-deb --build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        FakeDeb { path, _dir: dir }
    }
}

/// A 64-bit little-endian static-pie executable header (`ET_DYN`, one
/// `PT_LOAD`, no `PT_INTERP`) for ELF machine `machine` (62 x86-64, 183
/// AArch64).
pub(crate) fn elf_static(machine: u16) -> Vec<u8> {
    elf(machine, None)
}

/// The same with a `PT_INTERP` naming glibc's x86-64 loader.
pub(crate) fn elf_dynamic(machine: u16) -> Vec<u8> {
    elf(machine, Some("/lib64/ld-linux-x86-64.so.2"))
}

fn elf(machine: u16, interp: Option<&str>) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let phnum = if interp.is_some() { 2 } else { 1 };
    let interp_at = EHDR + PHDR * phnum;
    let mut bytes = vec![0u8; interp_at];
    bytes[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    bytes[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    bytes[18..20].copy_from_slice(&machine.to_le_bytes());
    bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
    bytes[32..40].copy_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    bytes[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes());
    bytes[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
    bytes[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut phdrs = Vec::new();
    if let Some(interp) = interp {
        let mut path = interp.as_bytes().to_vec();
        path.push(0);
        phdrs.push((3u32, interp_at as u64, path.len() as u64)); // PT_INTERP
        bytes.extend_from_slice(&path);
    }
    phdrs.push((1, 0, bytes.len() as u64)); // PT_LOAD
    for (i, (p_type, offset, size)) in phdrs.into_iter().enumerate() {
        let at = EHDR + i * PHDR;
        bytes[at..at + 4].copy_from_slice(&p_type.to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
        bytes[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        bytes[at + 40..at + 48].copy_from_slice(&size.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use qus_registrar::elf;

    #[test]
    fn fake_elf_files_read_as_intended() {
        let header = elf::parse(&elf_static(62)).unwrap();
        assert!(header.is_static());
        assert_eq!((header.kind, header.machine), (3, 62));
        let header = elf::parse(&elf_dynamic(183)).unwrap();
        assert_eq!(
            header.interp.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(header.machine, 183);
        let x86_64 = qus_registrar::targets::find("x86_64").unwrap();
        assert!(elf::matches(x86_64, &elf_static(62)));
        assert!(!elf::matches(x86_64, &elf_static(183)));
    }
}
