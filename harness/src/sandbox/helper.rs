//! What `qus-harness` does when the harness starts it as its own helper:
//! [`hold`] a private namespace, or [`view_exec`] a registrar in the view
//! of a registrar image.
//!
//! Both run in a fresh process, before any thread exists, because
//! `unshare(CLONE_NEWUSER)` refuses a process with several threads: the
//! harness itself runs tokio and so cannot enter namespaces of its own.
//!
//! **The holder** ([`hold`]) speaks a line protocol with the harness on its
//! standard input and output:
//!
//! 1. it creates a user and a mount namespace and prints `unshared`;
//! 2. the harness writes the holder's uid and gid maps (as root: every id
//!    mapped to itself, so files keep their owners and a second user exists
//!    for setuid checks) and answers `mapped`; or it answers `self` and the
//!    holder maps only its own ids to root, as `unshare -r` does;
//! 3. the holder makes every mount private, mounts a fresh binfmt_misc at
//!    `/proc/sys/fs/binfmt_misc`, checks that it is empty (a kernel older
//!    than 6.7 would show the host's registry there), and prints `ready`;
//! 4. it waits until its standard input closes: the harness closes it when
//!    the instance ends, or dies, and the namespace goes with the holder.
//!
//! A failure is one line, `error: <message>`, and exit status 125.
//!
//! **The view** ([`view_exec`]): the registrar of a registrar image sees
//! that image's `/usr/bin/qemu-*-static` and no other. It gets a mount
//! namespace of its own (inside the instance's, or the host's), a tmpfs on a
//! scratch directory, and an overlay on `/usr/bin` in which every `qemu-*`
//! file is hidden and the image's emulators are symlinks to their files (in
//! the cache, or the host's own). Then it executes the command. Nothing of
//! this is visible outside the process and its children.

use std::ffi::OsString;
use std::io::{self, BufRead as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use qus_registrar::private::{self, Facts, PrivateError, PrivateErrorKind};

/// Exit status of a helper that could not set up what it was asked for.
pub const SETUP_FAILED: u8 = 125;

/// The line the holder prints once the namespaces exist.
pub(crate) const UNSHARED: &str = "unshared";
/// The harness's answer: it wrote the maps.
pub(crate) const MAPPED: &str = "mapped";
/// The harness's answer: map your own ids.
pub(crate) const MAP_SELF: &str = "self";
/// The line the holder prints once its registry is mounted.
pub(crate) const READY: &str = "ready";

/// Where the private registry is mounted, inside the namespace.
pub const BINFMT_MOUNT: &str = "/proc/sys/fs/binfmt_misc";

/// Where the view puts the image's emulators.
pub const VIEW_DIR: &str = "/usr/bin";

/// `qus-harness internal hold-namespace`: see the module documentation.
/// Returns the exit status.
pub fn hold() -> u8 {
    let mut out = io::stdout().lock();
    match hold_inner(&mut out) {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            let _ = out.flush();
            SETUP_FAILED
        }
    }
}

fn hold_inner(out: &mut dyn io::Write) -> Result<(), String> {
    let facts = Facts::read();
    let mount = Path::new(BINFMT_MOUNT);
    let fail = |kind, source: Option<io::Error>| {
        let e = PrivateError {
            mount: mount.to_owned(),
            kind,
            source,
            facts: facts.clone(),
        };
        format!("{e}{}", cause(&e))
    };
    private::check_kernel(&facts).map_err(|kind| fail(kind, None))?;
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    unshare(UnshareWhat::UserAndMount)
        .map_err(|e| fail(PrivateErrorKind::UserNamespace, Some(e)))?;
    say(out, UNSHARED)?;
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("failed to read the harness's answer: {e}"))?;
    match answer.trim() {
        MAPPED => {}
        MAP_SELF => private::map_self(uid, gid)
            .map_err(|(file, e)| fail(PrivateErrorKind::IdMap { file }, Some(e)))?,
        other => return Err(format!("unexpected answer `{other}` from the harness")),
    }
    private::mount_fresh(mount).map_err(|(kind, e)| fail(kind, e))?;
    say(out, READY)?;
    // Hold the namespace until the harness closes our standard input.
    let mut sink = Vec::new();
    let mut stdin = io::stdin().lock();
    while stdin.read_until(b'\n', &mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
    Ok(())
}

/// The registrar's hint for a refusal, as ` (hint: ...)`.
fn cause(e: &PrivateError) -> String {
    let source = e
        .source
        .as_ref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    format!("{source} (hint: {})", e.hint())
}

fn say(out: &mut dyn io::Write, line: &str) -> Result<(), String> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("failed to write to the harness: {e}"))
}

/// Which namespaces [`unshare`] creates.
enum UnshareWhat {
    UserAndMount,
    Mount,
}

#[expect(
    unsafe_code,
    reason = "rustix's unshare is unsafe for CLONE_FILES only; see the SAFETY note"
)]
fn unshare(what: UnshareWhat) -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    let flags = match what {
        UnshareWhat::UserAndMount => UnshareFlags::NEWUSER | UnshareFlags::NEWNS,
        UnshareWhat::Mount => UnshareFlags::NEWNS,
    };
    // SAFETY: `unshare_unsafe` is unsafe because `CLONE_FILES` would give
    // this thread a descriptor table other threads do not see. These flags
    // leave the descriptor table shared, and the helper has one thread
    // (`CLONE_NEWUSER` fails with EINVAL otherwise).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

/// One emulator of a view: `/usr/bin/<name>` is a symlink to `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFile {
    /// The file name in `/usr/bin` (`qemu-aarch64-static`).
    pub name: String,
    /// The file it stands for.
    pub source: PathBuf,
}

impl ViewFile {
    /// Parses `NAME=SOURCE` (`qemu-aarch64-static=/var/cache/...`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, source) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not of the form NAME=PATH"))?;
        if !name.starts_with("qemu-") || name.contains('/') {
            return Err(format!("`{name}` is not a `qemu-*` file name"));
        }
        if !Path::new(source).is_absolute() {
            return Err(format!("`{source}` is not an absolute path"));
        }
        Ok(Self {
            name: name.to_owned(),
            source: source.into(),
        })
    }

    /// `NAME=SOURCE`, as [`ViewFile::parse`] reads it.
    pub fn to_arg(&self) -> String {
        format!("{}={}", self.name, self.source.display())
    }
}

/// `qus-harness internal view-exec --scratch DIR --emulator NAME=PATH...
/// -- COMMAND...`: see the module documentation. Returns only on failure:
/// 125 when the view could not be set up, 126 or 127 when the command could
/// not be executed.
pub fn view_exec(scratch: &Path, files: &[ViewFile], command: &[OsString]) -> u8 {
    if let Err(message) = set_up_view(scratch, files) {
        eprintln!("error: failed to set up the registrar image's view of `{VIEW_DIR}`: {message}");
        return SETUP_FAILED;
    }
    let e = private::exec(command);
    eprintln!("error: {e}: {}", e.source);
    e.exit_code()
}

fn set_up_view(scratch: &Path, files: &[ViewFile]) -> Result<(), String> {
    use rustix::mount::{MountFlags, MountPropagationFlags};
    for path in [scratch, Path::new(VIEW_DIR)] {
        let bytes = path.as_os_str().as_bytes();
        if bytes.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
            return Err(format!(
                "`{}` holds a character overlayfs options cannot carry",
                path.display()
            ));
        }
    }
    unshare(UnshareWhat::Mount).map_err(|e| format!("cannot create a mount namespace: {e}"))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("cannot make the mounts private: {e}"))?;
    rustix::mount::mount(
        "qus-view",
        scratch,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=0700"),
    )
    .map_err(|e| format!("cannot mount a tmpfs on `{}`: {e}", scratch.display()))?;
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    for dir in [&upper, &work] {
        std::fs::create_dir(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let options = format!(
        "lowerdir={VIEW_DIR},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let options = std::ffi::CString::new(options).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        "qus-view",
        VIEW_DIR,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .map_err(|e| format!("cannot mount an overlay on `{VIEW_DIR}`: {e}"))?;
    let dir = Path::new(VIEW_DIR);
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list `{VIEW_DIR}`: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list `{VIEW_DIR}`: {e}"))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("qemu-") {
            continue;
        }
        let path = dir.join(&*name);
        // The host's own file, where the image holds exactly it, stays.
        if files.iter().any(|f| f.name == name && f.source == path) {
            continue;
        }
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot hide `{}`: {e}", path.display()))?;
    }
    for file in files {
        let path = dir.join(&file.name);
        if file.source == path {
            continue;
        }
        std::os::unix::fs::symlink(&file.source, &path).map_err(|e| {
            format!(
                "cannot link `{}` to `{}`: {e}",
                path.display(),
                file.source.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_files_parse_and_print_alike() {
        let f =
            ViewFile::parse("qemu-aarch64-static=/var/cache/qus/x/qemu-aarch64-static").unwrap();
        assert_eq!(f.name, "qemu-aarch64-static");
        assert_eq!(ViewFile::parse(&f.to_arg()).unwrap(), f);
        for bad in [
            "qemu-aarch64-static",
            "sh=/bin/sh",
            "qemu-x/y=/a",
            "qemu-a=relative",
        ] {
            assert!(ViewFile::parse(bad).is_err(), "{bad}");
        }
    }
}
