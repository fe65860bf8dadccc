//! The kernel interface: the only code that touches binfmt_misc.
//!
//! The main type is [`Binfmt`], a handle on a binfmt_misc mount point (the
//! real one is [`DEFAULT_MOUNT`]; tests pass a temporary directory that mimics
//! it). It can tell whether the mount is usable ([`Binfmt::state`]), mount it,
//! list and read entries, register one record, and remove or toggle one entry.
//! Every kernel error is mapped to a [`BinfmtErrorKind`] with the cause users
//! need (EEXIST, EINVAL on old kernels, ENOENT of an `F` interpreter, EACCES,
//! a read-only `/proc/sys`).
//!
//! It never writes `status` (writing `-1` there removes every entry of every
//! program on the host) and never interprets a plan: deciding what to write is
//! `plan.rs`. Host facts that decide whether a registration can reach the
//! host (kernel version, user namespace) are read by [`HostFacts::read`].

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::entry::{Entry, ParseEntryError};

/// Where binfmt_misc is mounted on every Linux host.
pub const DEFAULT_MOUNT: &str = "/proc/sys/fs/binfmt_misc";

/// Control files of the mount, never entries.
const CONTROL_FILES: [&str; 2] = ["register", "status"];

/// A binfmt_misc mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binfmt {
    root: PathBuf,
}

/// Whether a mount point can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountState {
    /// The directory does not exist: the kernel has no binfmt_misc support
    /// (or the module is not loaded).
    Missing,
    /// The directory exists but binfmt_misc is not mounted on it.
    NotMounted,
    /// Mounted: `register` exists.
    Mounted,
}

/// A failed operation on the mount, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("failed to {operation} `{path}`{hint}", hint = hint_suffix(.kind))]
pub struct BinfmtError {
    /// What was attempted (`register qemu-aarch64 via`, `remove`, `read`).
    pub operation: String,
    /// The file involved.
    pub path: PathBuf,
    /// The classified cause.
    pub kind: BinfmtErrorKind,
    /// The underlying error.
    #[source]
    pub source: Option<io::Error>,
}

/// Causes of a [`BinfmtError`] that call for different advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinfmtErrorKind {
    /// EEXIST: an entry of that name is already registered.
    AlreadyRegistered,
    /// EINVAL: the kernel rejected the record (a flag it does not know, such
    /// as `F` before Linux 4.8, or a malformed record).
    Rejected,
    /// ENOENT while registering: with `F` the interpreter must exist.
    InterpreterMissing,
    /// ENOENT on an entry: it is not registered (or binfmt_misc is not mounted).
    NotFound,
    /// EACCES or EPERM: not root, or a container without `--privileged`.
    PermissionDenied,
    /// EROFS: `/proc/sys` is mounted read-only (an unprivileged container).
    ReadOnly,
    /// The write took only part of the record: whether the kernel
    /// registered it is unknown until the entry is read back.
    ShortWrite,
    /// A name we refuse to write (`status`, `register`, a path).
    Forbidden,
    /// The entry file does not parse.
    Unparsable(ParseEntryError),
    /// Anything else.
    Other,
}

fn hint_suffix(kind: &BinfmtErrorKind) -> String {
    let hint = match kind {
        BinfmtErrorKind::AlreadyRegistered => "an entry of that name is already registered",
        BinfmtErrorKind::Rejected => {
            "the kernel rejected the record (the `F` flag needs Linux 4.8 or later)"
        }
        BinfmtErrorKind::InterpreterMissing => {
            "the interpreter does not exist (with `F` the kernel opens it at registration)"
        }
        BinfmtErrorKind::NotFound => "no such entry",
        BinfmtErrorKind::PermissionDenied => {
            "permission denied: run as root, or run the container with `--privileged`"
        }
        BinfmtErrorKind::ReadOnly => {
            "`/proc/sys` is read-only here: run the container with `--privileged`"
        }
        BinfmtErrorKind::ShortWrite => "the kernel took only part of the record",
        BinfmtErrorKind::Forbidden => "only `qemu-*` entries may be written",
        BinfmtErrorKind::Unparsable(e) => return format!(": {e}"),
        BinfmtErrorKind::Other => return String::new(),
    };
    format!(": {hint}")
}

impl BinfmtError {
    pub(crate) fn new(operation: impl Into<String>, path: &Path, kind: BinfmtErrorKind) -> Self {
        Self {
            operation: operation.into(),
            path: path.to_owned(),
            kind,
            source: None,
        }
    }

    pub(crate) fn io(
        operation: impl Into<String>,
        path: &Path,
        err: io::Error,
        registering: bool,
    ) -> Self {
        let kind = match err.raw_os_error() {
            Some(libc::EEXIST) => BinfmtErrorKind::AlreadyRegistered,
            Some(libc::EINVAL) => BinfmtErrorKind::Rejected,
            Some(libc::ENOENT) if registering => BinfmtErrorKind::InterpreterMissing,
            Some(libc::ENOENT) => BinfmtErrorKind::NotFound,
            Some(libc::EACCES | libc::EPERM) => BinfmtErrorKind::PermissionDenied,
            Some(libc::EROFS) => BinfmtErrorKind::ReadOnly,
            _ => BinfmtErrorKind::Other,
        };
        Self {
            operation: operation.into(),
            path: path.to_owned(),
            kind,
            source: Some(err),
        }
    }
}

impl Binfmt {
    /// A handle on the mount at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether binfmt_misc is available and mounted here.
    pub fn state(&self) -> MountState {
        if self.root.join("register").exists() {
            MountState::Mounted
        } else if self.root.is_dir() {
            MountState::NotMounted
        } else {
            MountState::Missing
        }
    }

    /// Mounts binfmt_misc on the mount point, as `register.sh` did with
    /// `mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc`. Done with
    /// the system call, since the `register` image has no `mount` program.
    pub fn mount(&self) -> Result<(), BinfmtError> {
        rustix::mount::mount(
            "binfmt_misc",
            &self.root,
            "binfmt_misc",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .map_err(|e| BinfmtError::io("mount binfmt_misc on", &self.root, e.into(), false))
    }

    /// Names of every entry (control files excluded), sorted.
    pub fn names(&self) -> Result<Vec<String>, BinfmtError> {
        let dir =
            fs::read_dir(&self.root).map_err(|e| BinfmtError::io("list", &self.root, e, false))?;
        let mut names = Vec::new();
        for item in dir {
            let item = item.map_err(|e| BinfmtError::io("list", &self.root, e, false))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !CONTROL_FILES.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every entry, sorted by name. An entry removed while we list is
    /// skipped: another registrar may be running at the same time.
    pub fn list(&self) -> Result<Vec<Entry>, BinfmtError> {
        let mut entries = Vec::new();
        for name in self.names()? {
            if let Some(entry) = self.read(&name)? {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Reads one entry; `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Entry>, BinfmtError> {
        let path = self.entry_path(name, "read")?;
        let mut text = String::new();
        match fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut text)) {
            Ok(_) => Entry::parse(name, &text)
                .map(Some)
                .map_err(|e| BinfmtError::new("parse", &path, BinfmtErrorKind::Unparsable(e))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BinfmtError::io("read", &path, e, false)),
        }
    }

    /// Writes one register record. The record goes out in a single `write`,
    /// as the kernel requires; `name` is only for the error message.
    pub fn register(&self, name: &str, line: &str) -> Result<(), BinfmtError> {
        let path = self.root.join("register");
        let operation = format!("register `{name}` via");
        let written = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write(line.as_bytes()));
        match written {
            Ok(n) if n == line.len() => Ok(()),
            Ok(_) => Err(BinfmtError::new(
                operation,
                &path,
                BinfmtErrorKind::ShortWrite,
            )),
            Err(e) => Err(BinfmtError::io(operation, &path, e, true)),
        }
    }

    /// Removes one entry (writes `-1` to it). Refuses control files.
    pub fn remove(&self, name: &str) -> Result<(), BinfmtError> {
        self.write_entry(name, "remove", b"-1")
    }

    /// Enables (`1`) or disables (`0`) one entry.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), BinfmtError> {
        let (op, value) = if enabled {
            ("enable", b"1")
        } else {
            ("disable", b"0")
        };
        self.write_entry(name, op, value)
    }

    fn write_entry(&self, name: &str, operation: &str, value: &[u8]) -> Result<(), BinfmtError> {
        let path = self.entry_path(name, operation)?;
        // Opening without `create`: a missing entry is ENOENT, not a new file
        // (matters for the temporary directories the tests use).
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value))
            .map_err(|e| BinfmtError::io(operation, &path, e, false))
    }

    fn entry_path(&self, name: &str, operation: &str) -> Result<PathBuf, BinfmtError> {
        let path = self.root.join(name);
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || CONTROL_FILES.contains(&name)
        {
            return Err(BinfmtError::new(
                operation,
                &path,
                BinfmtErrorKind::Forbidden,
            ));
        }
        Ok(path)
    }
}

/// Every entry of a mount at one moment, to put the registry back later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// The mount's state when taken.
    pub state: MountState,
    /// Every entry (any owner), sorted by name.
    pub entries: Vec<Entry>,
}

/// What [`Binfmt::restore`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    /// Entries removed: absent from the snapshot, or different from it.
    pub removed: Vec<String>,
    /// Entries registered again from the snapshot.
    pub restored: Vec<String>,
}

impl RestoreReport {
    /// Whether the registry had changed since the snapshot.
    pub fn changed(&self) -> bool {
        !self.removed.is_empty() || !self.restored.is_empty()
    }
}

impl Binfmt {
    /// Records every entry. An unmounted or missing mount gives an empty
    /// snapshot with that state.
    pub fn snapshot(&self) -> Result<Snapshot, BinfmtError> {
        let state = self.state();
        let entries = if state == MountState::Mounted {
            self.list()?
        } else {
            Vec::new()
        };
        Ok(Snapshot { state, entries })
    }

    /// Puts the registry back as `snapshot` found it: every entry that is new
    /// or different is removed (whoever owns it), then every entry of the
    /// snapshot that is missing is registered again, with its enabled state.
    /// All steps are attempted; the first error is returned after the rest.
    pub fn restore(&self, snapshot: &Snapshot) -> Result<RestoreReport, BinfmtError> {
        let mut report = RestoreReport::default();
        if self.state() != MountState::Mounted {
            return if snapshot.entries.is_empty() {
                Ok(report)
            } else {
                Err(BinfmtError::new(
                    "restore entries into",
                    &self.root,
                    BinfmtErrorKind::NotFound,
                ))
            };
        }
        let mut first_error = None;
        let mut keep = |r: Result<(), BinfmtError>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        for now in self.list()? {
            let before = snapshot.entries.iter().find(|e| e.name == now.name);
            if before != Some(&now) {
                match self.remove(&now.name) {
                    Err(e) if e.kind == BinfmtErrorKind::NotFound => {}
                    r => keep(r),
                }
                report.removed.push(now.name);
            }
        }
        for before in &snapshot.entries {
            if self.read(&before.name)?.is_none() {
                keep(self.register(&before.name, &before.to_register_line()));
                if !before.enabled {
                    keep(self.set_enabled(&before.name, false));
                }
                report.restored.push(before.name.clone());
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

impl Default for Binfmt {
    fn default() -> Self {
        Self::new(DEFAULT_MOUNT)
    }
}

/// Facts about the host that decide what a registration can do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostFacts {
    /// `uname -m`, or `HOST_ARCH` when set.
    pub machine: String,
    /// Kernel release (`uname -r`).
    pub kernel_release: String,
    /// Kernel `(major, minor)` when the release parses.
    pub kernel: Option<(u32, u32)>,
    /// Whether this process is in the initial user namespace. When it is
    /// not, a binfmt_misc mount may be a private registry (Linux 6.7+) that
    /// the host never sees.
    pub initial_user_namespace: bool,
    /// Set when this registrar runs under QEMU user-mode emulation
    /// (`guard.rs`): `machine` is then the emulated CPU, not the host's.
    pub emulation: Option<crate::guard::Emulation>,
}

impl HostFacts {
    /// Reads the facts of the running host. `host_arch` overrides the
    /// machine as `HOST_ARCH` does for QEMU's script.
    pub fn read(host_arch: Option<&str>) -> Self {
        let uname = rustix::system::uname();
        let machine = host_arch
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| uname.machine().to_string_lossy().into_owned());
        let kernel_release = uname.release().to_string_lossy().into_owned();
        let initial_user_namespace = fs::read_to_string("/proc/self/uid_map")
            .map(|m| is_initial_uid_map(&m))
            // Without /proc we cannot tell; assume the common case.
            .unwrap_or(true);
        Self {
            kernel: parse_kernel_version(&kernel_release),
            machine,
            kernel_release,
            initial_user_namespace,
            emulation: crate::guard::detect(Path::new("/proc/self")),
        }
    }

    /// Whether the kernel is known to be older than `major.minor`.
    pub fn kernel_older_than(&self, major: u32, minor: u32) -> bool {
        self.kernel.is_some_and(|k| k < (major, minor))
    }
}

/// The initial user namespace maps every uid to itself: `0 0 4294967295`.
pub fn is_initial_uid_map(uid_map: &str) -> bool {
    let fields: Vec<_> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// `6.1.0-18-amd64` → `(6, 1)`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    /// A directory that looks like a mounted binfmt_misc with one entry.
    fn fake_mount() -> (tempfile::TempDir, Binfmt) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("register"), "").unwrap();
        fs::write(dir.path().join("status"), "enabled\n").unwrap();
        fs::write(dir.path().join("qemu-aarch64"), AARCH64).unwrap();
        let b = Binfmt::new(dir.path());
        (dir, b)
    }

    #[test]
    fn state_tells_missing_unmounted_and_mounted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Binfmt::new(dir.path().join("nope")).state(),
            MountState::Missing
        );
        assert_eq!(Binfmt::new(dir.path()).state(), MountState::NotMounted);
        let (_d, b) = fake_mount();
        assert_eq!(b.state(), MountState::Mounted);
    }

    #[test]
    fn list_skips_control_files_and_parses_entries() {
        let (_d, b) = fake_mount();
        assert_eq!(b.names().unwrap(), ["qemu-aarch64"]);
        let entries = b.list().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].interpreter, "/usr/bin/qemu-aarch64-static");
        assert!(entries[0].flags.fix_binary);
    }

    #[test]
    fn read_of_absent_entry_is_none() {
        let (_d, b) = fake_mount();
        assert!(b.read("qemu-s390x").unwrap().is_none());
    }

    #[test]
    fn unparsable_entry_names_the_file() {
        let (d, b) = fake_mount();
        fs::write(d.path().join("qemu-bad"), "enabled\nflags: X\n").unwrap();
        let err = b.read("qemu-bad").unwrap_err();
        assert!(matches!(err.kind, BinfmtErrorKind::Unparsable(_)));
        assert!(err.to_string().contains("qemu-bad"), "{err}");
    }

    #[test]
    fn register_writes_the_record_in_one_piece() {
        let (d, b) = fake_mount();
        b.register("qemu-x", ":qemu-x:M::ab:ff:/x:F").unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("register")).unwrap(),
            ":qemu-x:M::ab:ff:/x:F"
        );
    }

    #[test]
    fn remove_writes_minus_one_and_never_touches_control_files() {
        let (d, b) = fake_mount();
        b.remove("qemu-aarch64").unwrap();
        // A real entry file takes the write whole; a plain file keeps the
        // old tail, so look at what was written at the start.
        let written = fs::read_to_string(d.path().join("qemu-aarch64")).unwrap();
        assert!(
            written.starts_with("-1") && !written.starts_with("-1-"),
            "{written}"
        );
        for name in ["status", "register", "", "..", "a/b"] {
            let err = b.remove(name).unwrap_err();
            assert_eq!(err.kind, BinfmtErrorKind::Forbidden, "{name}");
        }
        assert_eq!(
            fs::read_to_string(d.path().join("status")).unwrap(),
            "enabled\n"
        );
    }

    #[test]
    fn removing_an_absent_entry_is_not_found() {
        let (_d, b) = fake_mount();
        assert_eq!(
            b.remove("qemu-s390x").unwrap_err().kind,
            BinfmtErrorKind::NotFound
        );
    }

    #[test]
    fn errno_maps_to_causes_with_hints() {
        let p = Path::new("/x");
        for (errno, registering, kind, hint) in [
            (
                libc::EEXIST,
                true,
                BinfmtErrorKind::AlreadyRegistered,
                "already registered",
            ),
            (libc::EINVAL, true, BinfmtErrorKind::Rejected, "Linux 4.8"),
            (
                libc::ENOENT,
                true,
                BinfmtErrorKind::InterpreterMissing,
                "interpreter does not exist",
            ),
            (
                libc::ENOENT,
                false,
                BinfmtErrorKind::NotFound,
                "no such entry",
            ),
            (
                libc::EACCES,
                true,
                BinfmtErrorKind::PermissionDenied,
                "--privileged",
            ),
            (libc::EPERM, true, BinfmtErrorKind::PermissionDenied, "root"),
            (libc::EROFS, true, BinfmtErrorKind::ReadOnly, "read-only"),
        ] {
            let e = BinfmtError::io(
                "register `qemu-x` via",
                p,
                io::Error::from_raw_os_error(errno),
                registering,
            );
            assert_eq!(e.kind, kind);
            let text = e.to_string();
            assert!(
                text.starts_with("failed to register `qemu-x` via `/x`: "),
                "{text}"
            );
            assert!(text.contains(hint), "{text}");
        }
    }

    #[test]
    fn uid_maps_and_kernel_versions() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1000          1\n"));
        assert!(!is_initial_uid_map(""));
        assert_eq!(parse_kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("4.4.0"), Some((4, 4)));
        assert_eq!(parse_kernel_version("garbage"), None);
        let facts = HostFacts {
            machine: "x86_64".into(),
            kernel_release: "4.4.0".into(),
            kernel: Some((4, 4)),
            initial_user_namespace: true,
            emulation: None,
        };
        assert!(facts.kernel_older_than(4, 8));
        assert!(!facts.kernel_older_than(4, 4));
    }

    #[test]
    fn host_arch_overrides_uname() {
        assert_eq!(HostFacts::read(Some("aarch64")).machine, "aarch64");
        assert_eq!(
            HostFacts::read(Some("")).machine,
            HostFacts::read(None).machine
        );
    }
}
