//! The registry as a trait, so that applying a plan can be tested against
//! every kernel failure.
//!
//! [`Registry`] is what `apply.rs` needs from binfmt_misc: list, read,
//! register, remove, enable or disable. Three implementations:
//!
//! - [`Binfmt`] (`binfmt.rs`): the kernel's mount, the only real one;
//! - [`Model`]: an in-memory model of the kernel's semantics (the register
//!   record parsed as `fs/binfmt_misc.c` parses it, EINVAL on a malformed
//!   record, EEXIST on a taken name, ENOENT for a missing `F` interpreter,
//!   `-1`/`0`/`1` on an entry, the readback with `C` implying `O`);
//! - [`Faulty`]: wraps another and fails its k-th write with a chosen
//!   error, once or from then on.
//!
//! `Model` and `Faulty` exist for tests (this crate's property tests, and
//! the harness's); nothing in `qus-register` uses them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::binfmt::{Binfmt, BinfmtError, BinfmtErrorKind, MountState};
use crate::entry::{Entry, Flags, Matcher, unescape};

/// What applying a plan needs from binfmt_misc.
pub trait Registry {
    /// The mount point (for messages).
    fn root(&self) -> &Path;
    /// Whether binfmt_misc is there and mounted.
    fn state(&self) -> MountState;
    /// Mounts binfmt_misc.
    fn mount(&self) -> Result<(), BinfmtError>;
    /// Every entry, sorted by name.
    fn list(&self) -> Result<Vec<Entry>, BinfmtError>;
    /// One entry; `None` when it does not exist.
    fn read(&self, name: &str) -> Result<Option<Entry>, BinfmtError>;
    /// Writes one register record (`name` is for messages).
    fn register(&self, name: &str, line: &str) -> Result<(), BinfmtError>;
    /// Removes one entry (`-1`).
    fn remove(&self, name: &str) -> Result<(), BinfmtError>;
    /// Enables (`1`) or disables (`0`) one entry.
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), BinfmtError>;
}

impl Registry for Binfmt {
    fn root(&self) -> &Path {
        Binfmt::root(self)
    }
    fn state(&self) -> MountState {
        Binfmt::state(self)
    }
    fn mount(&self) -> Result<(), BinfmtError> {
        Binfmt::mount(self)
    }
    fn list(&self) -> Result<Vec<Entry>, BinfmtError> {
        Binfmt::list(self)
    }
    fn read(&self, name: &str) -> Result<Option<Entry>, BinfmtError> {
        Binfmt::read(self, name)
    }
    fn register(&self, name: &str, line: &str) -> Result<(), BinfmtError> {
        Binfmt::register(self, name, line)
    }
    fn remove(&self, name: &str) -> Result<(), BinfmtError> {
        Binfmt::remove(self, name)
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), BinfmtError> {
        Binfmt::set_enabled(self, name, enabled)
    }
}

/// The kernel's limits on a register record (`MAX_REGISTER_LENGTH` and the
/// shortest record, `:a:E::a::a:`).
const RECORD_LENGTH: std::ops::RangeInclusive<usize> = 11..=1920;

/// How far into a file a magic may reach (`BINPRM_BUF_SIZE` since 5.1).
const MAGIC_REACH: usize = 256;

/// An in-memory binfmt_misc with the kernel's semantics.
#[derive(Debug)]
pub struct Model {
    root: PathBuf,
    entries: RefCell<BTreeMap<String, Entry>>,
    missing: RefCell<BTreeSet<String>>,
}

impl Model {
    /// A mounted registry at `root` (only used in messages) holding
    /// `entries`.
    pub fn new(root: impl Into<PathBuf>, entries: Vec<Entry>) -> Self {
        Self {
            root: root.into(),
            entries: RefCell::new(entries.into_iter().map(|e| (e.name.clone(), e)).collect()),
            missing: RefCell::new(BTreeSet::new()),
        }
    }

    /// Every entry now, sorted by name.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.borrow().values().cloned().collect()
    }

    /// Makes `path` absent for `F` registrations (ENOENT), as if the
    /// interpreter were deleted.
    pub fn delete_interpreter(&self, path: &str) {
        self.missing.borrow_mut().insert(path.to_owned());
    }

    fn error(
        &self,
        operation: String,
        path: PathBuf,
        errno: i32,
        registering: bool,
    ) -> BinfmtError {
        BinfmtError::io(
            operation,
            &path,
            io::Error::from_raw_os_error(errno),
            registering,
        )
    }

    /// Parses a record as `create_entry` in `fs/binfmt_misc.c` does;
    /// `Err(errno)` when the kernel refuses it.
    fn parse_record(&self, line: &str) -> Result<Entry, i32> {
        if !RECORD_LENGTH.contains(&line.len()) {
            return Err(libc::EINVAL);
        }
        let delim = line.chars().next().ok_or(libc::EINVAL)?;
        let fields: Vec<&str> = line[delim.len_utf8()..].splitn(7, delim).collect();
        let [name, kind, offset, magic, mask, interpreter, flags] =
            <[&str; 7]>::try_from(fields).map_err(|_| libc::EINVAL)?;
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(libc::EINVAL);
        }
        if interpreter.is_empty() {
            return Err(libc::EINVAL);
        }
        let flags = Flags::parse(flags.trim_end_matches('\n')).map_err(|_| libc::EINVAL)?;
        let matcher = match kind {
            "M" => {
                let offset: u32 = if offset.is_empty() {
                    0
                } else {
                    offset.parse().map_err(|_| libc::EINVAL)?
                };
                let magic = unescape(magic).map_err(|_| libc::EINVAL)?;
                let mask = unescape(mask).map_err(|_| libc::EINVAL)?;
                if magic.is_empty()
                    || (!mask.is_empty() && mask.len() != magic.len())
                    || offset as usize + magic.len() > MAGIC_REACH
                {
                    return Err(libc::EINVAL);
                }
                Matcher::Magic {
                    offset,
                    magic,
                    mask: (!mask.is_empty()).then_some(mask),
                }
            }
            "E" if !magic.is_empty() && !magic.contains('/') => Matcher::Extension {
                extension: magic.to_owned(),
            },
            _ => return Err(libc::EINVAL),
        };
        Ok(Entry {
            name: name.to_owned(),
            enabled: true,
            interpreter: interpreter.to_owned(),
            flags,
            matcher,
        })
    }

    fn entry_write(&self, name: &str, operation: &str, value: &str) -> Result<(), BinfmtError> {
        let path = self.root.join(name);
        if ["register", "status", "", ".", ".."].contains(&name) || name.contains('/') {
            return Err(BinfmtError::new(
                operation,
                &path,
                BinfmtErrorKind::Forbidden,
            ));
        }
        let mut entries = self.entries.borrow_mut();
        let Some(entry) = entries.get_mut(name) else {
            return Err(self.error(operation.into(), path, libc::ENOENT, false));
        };
        match value {
            "-1" => {
                entries.remove(name);
            }
            "0" => entry.enabled = false,
            _ => entry.enabled = true,
        }
        Ok(())
    }
}

impl Registry for Model {
    fn root(&self) -> &Path {
        &self.root
    }
    fn state(&self) -> MountState {
        MountState::Mounted
    }
    fn mount(&self) -> Result<(), BinfmtError> {
        Ok(())
    }
    fn list(&self) -> Result<Vec<Entry>, BinfmtError> {
        Ok(self.entries())
    }
    fn read(&self, name: &str) -> Result<Option<Entry>, BinfmtError> {
        Ok(self.entries.borrow().get(name).cloned())
    }
    fn register(&self, name: &str, line: &str) -> Result<(), BinfmtError> {
        let path = self.root.join("register");
        let operation = format!("register `{name}` via");
        let entry = self
            .parse_record(line)
            .map_err(|errno| self.error(operation.clone(), path.clone(), errno, true))?;
        if entry.flags.fix_binary && self.missing.borrow().contains(&entry.interpreter) {
            return Err(self.error(operation, path, libc::ENOENT, true));
        }
        let mut entries = self.entries.borrow_mut();
        if entries.contains_key(&entry.name) {
            return Err(self.error(operation, path, libc::EEXIST, true));
        }
        entries.insert(entry.name.clone(), entry);
        Ok(())
    }
    fn remove(&self, name: &str) -> Result<(), BinfmtError> {
        self.entry_write(name, "remove", "-1")
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), BinfmtError> {
        if enabled {
            self.entry_write(name, "enable", "1")
        } else {
            self.entry_write(name, "disable", "0")
        }
    }
}

/// A fault [`Faulty`] injects into a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The kernel refuses the write with this errno; nothing changes.
    Errno(i32),
    /// The write takes effect but returns fewer bytes than written, so the
    /// caller cannot know it did.
    ShortWrite,
}

/// Wraps a registry and fails its writes (register, remove, enable or
/// disable) from the `at`-th one (counting from 0): only that one, or, when
/// `sticky`, every one from then on. Reads always reach the inner registry.
#[derive(Debug)]
pub struct Faulty<R> {
    inner: R,
    at: usize,
    fault: Fault,
    sticky: bool,
    writes: Cell<usize>,
}

impl<R: Registry> Faulty<R> {
    /// Fails write `at` with `fault` (and every later one when `sticky`).
    pub fn new(inner: R, at: usize, fault: Fault, sticky: bool) -> Self {
        Self {
            inner,
            at,
            fault,
            sticky,
            writes: Cell::new(0),
        }
    }

    /// How many writes were attempted.
    pub fn writes(&self) -> usize {
        self.writes.get()
    }

    /// The wrapped registry.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Runs one write, injecting the fault when it is due.
    fn write(
        &self,
        operation: String,
        path: PathBuf,
        registering: bool,
        apply: impl FnOnce() -> Result<(), BinfmtError>,
    ) -> Result<(), BinfmtError> {
        let n = self.writes.get();
        self.writes.set(n + 1);
        let due = n == self.at || (self.sticky && n > self.at);
        if !due {
            return apply();
        }
        match self.fault {
            Fault::Errno(errno) => Err(BinfmtError::io(
                operation,
                &path,
                io::Error::from_raw_os_error(errno),
                registering,
            )),
            Fault::ShortWrite => {
                apply()?;
                Err(BinfmtError::new(
                    operation,
                    &path,
                    BinfmtErrorKind::ShortWrite,
                ))
            }
        }
    }
}

impl<R: Registry> Registry for Faulty<R> {
    fn root(&self) -> &Path {
        self.inner.root()
    }
    fn state(&self) -> MountState {
        self.inner.state()
    }
    fn mount(&self) -> Result<(), BinfmtError> {
        self.inner.mount()
    }
    fn list(&self) -> Result<Vec<Entry>, BinfmtError> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> Result<Option<Entry>, BinfmtError> {
        self.inner.read(name)
    }
    fn register(&self, name: &str, line: &str) -> Result<(), BinfmtError> {
        let path = self.inner.root().join("register");
        self.write(format!("register `{name}` via"), path, true, || {
            self.inner.register(name, line)
        })
    }
    fn remove(&self, name: &str) -> Result<(), BinfmtError> {
        let path = self.inner.root().join(name);
        self.write("remove".into(), path, false, || self.inner.remove(name))
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), BinfmtError> {
        let path = self.inner.root().join(name);
        let op = if enabled { "enable" } else { "disable" };
        self.write(op.into(), path, false, || {
            self.inner.set_enabled(name, enabled)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::register_line;
    use crate::targets;

    fn model() -> Model {
        Model::new("/m", Vec::new())
    }

    #[test]
    fn the_model_reads_back_what_the_kernel_would() {
        let m = model();
        let t = targets::find("s390x").unwrap();
        let line = register_line(
            t,
            "/usr/bin/qemu-s390x-static",
            Flags::requested(true, true, true),
        );
        m.register("qemu-s390x", &line).unwrap();
        let e = m.read("qemu-s390x").unwrap().unwrap();
        // `C` implies `O`; flags read back as `POCF`.
        assert_eq!(e.flags.to_string(), "POCF");
        assert_eq!(
            e,
            Entry::expected(
                t,
                "/usr/bin/qemu-s390x-static",
                Flags::requested(true, true, true)
            )
        );
        // A second registration of the name: EEXIST.
        let err = m.register("qemu-s390x", &line).unwrap_err();
        assert_eq!(err.kind, BinfmtErrorKind::AlreadyRegistered);
        // Disable, enable, remove; then ENOENT.
        m.set_enabled("qemu-s390x", false).unwrap();
        assert!(!m.read("qemu-s390x").unwrap().unwrap().enabled);
        m.set_enabled("qemu-s390x", true).unwrap();
        assert!(m.read("qemu-s390x").unwrap().unwrap().enabled);
        m.remove("qemu-s390x").unwrap();
        assert_eq!(
            m.remove("qemu-s390x").unwrap_err().kind,
            BinfmtErrorKind::NotFound
        );
        assert_eq!(
            m.remove("status").unwrap_err().kind,
            BinfmtErrorKind::Forbidden
        );
    }

    #[test]
    fn the_model_refuses_what_the_kernel_refuses() {
        let m = model();
        for line in [
            ":x:M::",                                 // too short
            ":qemu-x:Q::\\x7f::/bin/true:",           // unknown type
            ":qemu-x:M::\\x7f:\\xff\\xff:/bin/true:", // mask longer than magic
            ":qemu-x:M::\\x7f::/bin/true:Z",          // unknown flag
            ":a/b:M::\\x7f::/bin/true:",              // a path as name
            ":qemu-x:M:300:\\x7f::/bin/true:",        // beyond the buffer
        ] {
            let err = m.register("qemu-x", line).unwrap_err();
            assert_eq!(err.kind, BinfmtErrorKind::Rejected, "{line}");
        }
        assert!(m.entries().is_empty());
        // `F` with a deleted interpreter: ENOENT, nothing registered.
        m.delete_interpreter("/gone");
        let err = m
            .register("qemu-x", ":qemu-x:M::\\x7f::/gone:F")
            .unwrap_err();
        assert_eq!(err.kind, BinfmtErrorKind::InterpreterMissing);
        // Without `F` the kernel does not look.
        m.register("qemu-x", ":qemu-x:M::\\x7f::/gone:").unwrap();
        // Extension entries and foreign names are fine.
        m.register("jar", ":jar:E::jar::/usr/bin/jexec:").unwrap();
        let names: Vec<_> = m.entries().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["jar", "qemu-x"]);
    }

    #[test]
    fn faulty_fails_exactly_the_chosen_writes() {
        let line = ":qemu-a:M::\\x7f::/bin/true:";
        let f = Faulty::new(model(), 1, Fault::Errno(libc::EIO), false);
        f.register("qemu-a", line).unwrap();
        let err = f.remove("qemu-a").unwrap_err();
        assert_eq!(err.kind, BinfmtErrorKind::Other);
        // Refused: the entry is still there; the next write goes through.
        assert!(f.read("qemu-a").unwrap().is_some());
        f.remove("qemu-a").unwrap();
        assert_eq!(f.writes(), 3);
        // A short write takes effect and still fails.
        let f = Faulty::new(model(), 0, Fault::ShortWrite, false);
        assert_eq!(
            f.register("qemu-a", line).unwrap_err().kind,
            BinfmtErrorKind::ShortWrite
        );
        assert!(f.read("qemu-a").unwrap().is_some());
        // Sticky: every write from `at` on fails.
        let f = Faulty::new(model(), 0, Fault::Errno(libc::EPERM), true);
        for _ in 0..3 {
            assert_eq!(
                f.register("qemu-a", line).unwrap_err().kind,
                BinfmtErrorKind::PermissionDenied
            );
        }
        assert!(f.inner().entries().is_empty());
    }
}
