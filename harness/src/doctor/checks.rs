//! The checks: [`Inputs`] in, one [`Check`] per line item out. Pure.
//!
//! Each check says what it saw (`evidence`), what that means (`summary`),
//! how bad it is ([`Status`]) and, when it is not ok, the command that
//! fixes it. The rules follow the failure modes of
//! `binfmt-facts.md`: `F` needs Linux 4.8; binfmt_misc is per user
//! namespace since 6.7; systemd-binfmt flushes entries it has no file for;
//! a dynamic interpreter with `F` breaks in containers; `C` is a setuid-root
//! risk; `--privileged` needs a full capability bounding set (the harness
//! does without it when the capability fallback starts, so that alone is
//! not a warning).

use std::collections::{BTreeMap, BTreeSet};

use qus_registrar::binfmt::{MountState, is_initial_uid_map, parse_kernel_version};
use qus_registrar::entry::Entry;
use serde::Serialize;

use super::inputs::{EngineInput, Inputs, Interpreter};
use crate::capability;
use crate::runtime::{PrivilegeMode, RuntimeKind};

/// How a check came out. Ordered: `Ok < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, with a limit or a risk worth knowing.
    Warn,
    /// Something that should work here does not.
    Fail,
}

impl Status {
    /// The lowercase word used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line item of the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name of the check (`kernel`, `mount`, `entry`, `docker`...).
    pub id: &'static str,
    /// How it came out.
    pub status: Status,
    /// One line: what was found and what it implies.
    pub summary: String,
    /// The raw facts behind it (file lines, versions, engine notes).
    pub evidence: String,
    /// What to run or change, for checks that are not ok.
    pub fix: Option<String>,
}

impl Check {
    fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            status,
            summary: summary.into(),
            evidence: String::new(),
            fix: None,
        }
    }

    fn evidence(self, evidence: impl Into<String>) -> Self {
        Self {
            evidence: evidence.into(),
            ..self
        }
    }

    fn fix(self, fix: impl Into<String>) -> Self {
        Self {
            fix: Some(fix.into()),
            ..self
        }
    }
}

/// The kernel that brought the `F` flag.
const FIX_BINARY_KERNEL: (u32, u32) = (4, 8);

/// The kernel that made binfmt_misc per user namespace.
const NAMESPACED_KERNEL: (u32, u32) = (6, 7);

/// Registers every foreign target with `F` (and mounts binfmt_misc first).
const REGISTER_COMMAND: &str = "qus-register --reset -p yes";

/// The same without `F`, for kernels older than 4.8 (which reject it).
const REGISTER_COMMAND_OLD_KERNEL: &str = "qus-register --reset -p no";

/// Writes binfmt.d files so systemd-binfmt re-applies the entries.
const PERSIST_COMMAND: &str = "qus-register --systemd ALL -p yes";

/// Installs Debian's static QEMU interpreters.
const INSTALL_STATIC: &str = "apt-get install qemu-user-static";

/// The order in which `--runtime auto` tries engines (see `cli.rs`).
const AUTO_ORDER: [RuntimeKind; 3] = [
    RuntimeKind::Docker,
    RuntimeKind::Podman,
    RuntimeKind::Singularity,
];

/// Every check, in a fixed order: kernel, binfmt_misc (support, mount,
/// automount, writability), namespace and capabilities, systemd, the
/// entries (one line each for `qemu-*`), the engines, the runtime `auto`
/// would pick, and the planned instances when [`Inputs::scenarios`] is set.
pub fn checks(inputs: &Inputs) -> Vec<Check> {
    let mut out = vec![
        kernel(inputs),
        support(inputs),
        mount(inputs),
        automount(inputs),
        writable(inputs),
        user_namespace(inputs),
        capabilities(inputs),
        systemd(inputs),
        entries(inputs),
    ];
    out.extend(
        inputs
            .entries
            .iter()
            .filter(|e| e.is_owned())
            .map(|e| entry(inputs, e)),
    );
    out.extend(inputs.engines.iter().map(|e| engine(inputs, e)));
    out.push(runtime(inputs));
    out.push(emulators(inputs));
    if let Some(planned) = &inputs.scenarios {
        out.push(scenarios(planned));
    }
    out
}

fn kernel_version(inputs: &Inputs) -> Option<(u32, u32)> {
    parse_kernel_version(&inputs.kernel_release)
}

/// Whether this kernel rejects `F` (an unknown version is given the benefit
/// of the doubt, as `qus-register` does).
fn rejects_fix_binary(inputs: &Inputs) -> bool {
    kernel_version(inputs).is_some_and(|v| v < FIX_BINARY_KERNEL)
}

/// `-p yes`, or `-p no` where the kernel rejects `F`.
fn persistent_option(inputs: &Inputs) -> &'static str {
    if rejects_fix_binary(inputs) {
        "-p no"
    } else {
        "-p yes"
    }
}

fn register_command(inputs: &Inputs) -> &'static str {
    if rejects_fix_binary(inputs) {
        REGISTER_COMMAND_OLD_KERNEL
    } else {
        REGISTER_COMMAND
    }
}

fn kernel(inputs: &Inputs) -> Check {
    let release = &inputs.kernel_release;
    let evidence = format!(
        "uname -r: {release}; `F` needs Linux 4.8 or later; binfmt_misc is per user namespace since 6.7"
    );
    let check = match kernel_version(inputs) {
        None => Check::new(
            "kernel",
            Status::Warn,
            format!("`{release}`: cannot parse the version; `F` needs Linux 4.8 or later"),
        ),
        Some(v) if v < FIX_BINARY_KERNEL => Check::new(
            "kernel",
            Status::Fail,
            format!(
                "{release}: too old for `F` (needs >= 4.8): `-p yes` fails with `Invalid argument`"
            ),
        )
        .fix(format!(
            "upgrade the kernel to 4.8 or later; until then register without `F` \
             (`{REGISTER_COMMAND_OLD_KERNEL}`) and put the interpreter in every container"
        )),
        Some(v) => {
            let namespaces = if v >= NAMESPACED_KERNEL {
                "binfmt_misc is namespaced per user namespace (>= 6.7)"
            } else {
                "one binfmt_misc registry for the whole host (< 6.7)"
            };
            Check::new(
                "kernel",
                Status::Ok,
                format!("{release}: F supported (>= 4.8); {namespaces}"),
            )
        }
    };
    check.evidence(evidence)
}

/// Whether `/proc/filesystems` lists binfmt_misc (`None`: unreadable).
fn listed_in_filesystems(inputs: &Inputs) -> Option<bool> {
    inputs.filesystems.as_deref().map(|text| {
        text.lines()
            .any(|l| l.split_whitespace().last() == Some("binfmt_misc"))
    })
}

fn support(inputs: &Inputs) -> Check {
    let listed = listed_in_filesystems(inputs);
    let dir = inputs.mount_state != MountState::Missing;
    let mp = inputs.mount_point.display();
    let evidence = format!(
        "/proc/filesystems: {}; {mp}: {}",
        match listed {
            Some(true) => "lists binfmt_misc",
            Some(false) => "does not list binfmt_misc",
            None => "unreadable",
        },
        if dir { "exists" } else { "does not exist" }
    );
    let check = match (listed, dir) {
        (Some(true), _) => Check::new(
            "binfmt",
            Status::Ok,
            "supported by the kernel (binfmt_misc in /proc/filesystems)",
        ),
        (_, true) => Check::new(
            "binfmt",
            Status::Ok,
            format!("supported by the kernel ({mp} exists)"),
        ),
        _ => Check::new(
            "binfmt",
            Status::Fail,
            "no binfmt_misc in this kernel (module not loaded?)",
        )
        .fix("load the module on the host: `modprobe binfmt_misc`"),
    };
    check.evidence(evidence)
}

/// `(file system type, options)` of each `/proc/mounts` line on the mount point.
fn mount_lines(inputs: &Inputs) -> Option<Vec<(String, String)>> {
    let mp = inputs.mount_point.to_string_lossy();
    let text = inputs.mounts.as_deref()?;
    Some(
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    [_, point, fs, options, ..] if *point == mp => {
                        Some(((*fs).to_owned(), (*options).to_owned()))
                    }
                    _ => None,
                }
            })
            .collect(),
    )
}

fn mount_evidence(inputs: &Inputs) -> String {
    let mp = inputs.mount_point.display();
    match mount_lines(inputs) {
        None => "/proc/mounts: unreadable".to_owned(),
        Some(lines) if lines.is_empty() => format!("/proc/mounts: nothing on {mp}"),
        Some(lines) => {
            let lines: Vec<String> = lines
                .iter()
                .map(|(fs, options)| format!("{fs} {options}"))
                .collect();
            format!("/proc/mounts on {mp}: {}", lines.join("; "))
        }
    }
}

fn mount_command(inputs: &Inputs) -> String {
    format!(
        "mount -t binfmt_misc binfmt_misc {}",
        inputs.mount_point.display()
    )
}

fn mount(inputs: &Inputs) -> Check {
    let mp = inputs.mount_point.display();
    let check = match inputs.mount_state {
        MountState::Mounted if inputs.binfmt_status.as_deref() == Some("disabled") => Check::new(
            "mount",
            Status::Fail,
            format!("mounted at {mp}, but binfmt_misc is disabled: no entry is used"),
        )
        .fix(format!("echo 1 > {mp}/status")),
        MountState::Mounted => {
            let options = mount_lines(inputs)
                .unwrap_or_default()
                .into_iter()
                .find(|(fs, _)| fs == "binfmt_misc")
                .map(|(_, options)| format!(" ({options})"))
                .unwrap_or_default();
            Check::new("mount", Status::Ok, format!("mounted at {mp}{options}"))
        }
        MountState::NotMounted => Check::new(
            "mount",
            Status::Warn,
            format!("not mounted at {mp}: no entry can be read or registered"),
        )
        .fix(format!(
            "`{}` (qus-register mounts it itself)",
            mount_command(inputs)
        )),
        MountState::Missing => Check::new(
            "mount",
            Status::Fail,
            format!("no mount point {mp}: the kernel has no binfmt_misc"),
        )
        .fix(format!(
            "`modprobe binfmt_misc`, then `{}`",
            mount_command(inputs)
        )),
    };
    let status = match &inputs.binfmt_status {
        Some(s) => format!("; status: {s}"),
        None => String::new(),
    };
    check.evidence(format!("{}{status}", mount_evidence(inputs)))
}

fn automount(inputs: &Inputs) -> Check {
    let mp = inputs.mount_point.display();
    let check = match mount_lines(inputs) {
        None => Check::new(
            "automount",
            Status::Warn,
            "cannot read /proc/mounts: cannot tell whether systemd automounts binfmt_misc",
        ),
        Some(lines) if lines.iter().any(|(fs, _)| fs == "autofs") => Check::new(
            "automount",
            Status::Warn,
            format!(
                "{mp} is a systemd automount (autofs): systemd-binfmt flushes every entry \
                 when it starts or stops and re-applies only binfmt.d files"
            ),
        )
        .fix(format!("persist the entries: `{PERSIST_COMMAND}`")),
        Some(_) => Check::new("automount", Status::Ok, "not an automount"),
    };
    check.evidence(mount_evidence(inputs))
}

fn writable(inputs: &Inputs) -> Check {
    let mp = inputs.mount_point.display();
    let (target, what) = match inputs.mount_state {
        MountState::Mounted => (format!("{mp}/register"), "`register`"),
        _ => (mp.to_string(), "the mount point"),
    };
    let uid = inputs.euid;
    let evidence = format!(
        "access({target}, W_OK): {}; euid {uid}",
        match inputs.writable {
            Some(true) => "ok",
            Some(false) => "denied",
            None => "not tried",
        }
    );
    let check = match (inputs.mount_state, inputs.writable) {
        (MountState::Missing, _) | (_, None) => Check::new(
            "writable",
            Status::Warn,
            "cannot tell: there is no binfmt_misc mount point",
        ),
        (MountState::Mounted, Some(true)) => Check::new(
            "writable",
            Status::Ok,
            format!("{what} is writable (uid {uid})"),
        ),
        (_, Some(true)) => Check::new(
            "writable",
            Status::Ok,
            format!("{what} is writable (uid {uid}): qus-register can mount and register"),
        ),
        (_, Some(false)) if uid != 0 => Check::new(
            "writable",
            Status::Warn,
            format!("{what} is not writable by uid {uid}: registering needs root"),
        )
        .fix(format!("run as root: `sudo {}`", register_command(inputs))),
        (_, Some(false)) => Check::new(
            "writable",
            Status::Fail,
            format!(
                "{what} is not writable even as root: \
                 /proc/sys is read-only here (an unprivileged container?)"
            ),
        )
        .fix("run `qus-register` on the host, or in a container started with `--privileged`"),
    };
    check.evidence(evidence)
}

fn user_namespace(inputs: &Inputs) -> Check {
    let Some(map) = inputs.uid_map.as_deref() else {
        return Check::new(
            "userns",
            Status::Warn,
            "cannot read /proc/self/uid_map: cannot tell whether registrations reach the host",
        )
        .evidence("/proc/self/uid_map: unreadable");
    };
    let lines: Vec<String> = map
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let evidence = format!("/proc/self/uid_map: {}", lines.join("; "));
    if is_initial_uid_map(map) {
        return Check::new(
            "userns",
            Status::Ok,
            "initial user namespace: registrations reach the host's registry",
        )
        .evidence(evidence);
    }
    let consequence = match kernel_version(inputs) {
        Some(v) if v < NAMESPACED_KERNEL => {
            "binfmt_misc cannot be mounted or written from here (before Linux 6.7 only the initial namespace may)"
        }
        _ => {
            "registrations land in a private registry the host never sees (binfmt_misc is per user namespace since 6.7)"
        }
    };
    Check::new(
        "userns",
        Status::Warn,
        format!("not the initial user namespace: {consequence}"),
    )
    .evidence(evidence)
    .fix(
        "use a rootful container (`sudo docker run --privileged ...`) or run `qus-register` on the host",
    )
}

/// Capabilities missing from this process's bounding set (`None`: unknown).
fn missing_capabilities(inputs: &Inputs) -> Option<Vec<String>> {
    let mask = capability::bounding_set(inputs.proc_status.as_deref()?)?;
    Some(capability::missing(mask, inputs.cap_last_cap))
}

fn capabilities(inputs: &Inputs) -> Check {
    let mask = inputs
        .proc_status
        .as_deref()
        .and_then(capability::bounding_set);
    let Some(mask) = mask else {
        return Check::new(
            "capabilities",
            Status::Warn,
            "cannot read the capability bounding set (CapBnd in /proc/self/status)",
        )
        .evidence("/proc/self/status: no CapBnd line");
    };
    let missing = capability::missing(mask, inputs.cap_last_cap);
    let evidence = format!(
        "CapBnd {mask:016x}; cap_last_cap {}",
        inputs
            .cap_last_cap
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
    );
    let check = if missing.is_empty() {
        Check::new("capabilities", Status::Ok, "full capability bounding set")
    } else if missing.iter().any(|c| c == capability::CAP_SYS_ADMIN) {
        Check::new(
            "capabilities",
            Status::Fail,
            format!(
                "missing from the bounding set: {}: binfmt_misc cannot be mounted or written from here",
                missing.join(", ")
            ),
        )
        .fix(
            "run as root on the host, or in a container started with `--privileged` (at least `--cap-add SYS_ADMIN`)",
        )
    } else {
        // Only CAP_SYS_ADMIN matters to qus (mounting and writing
        // binfmt_misc); without the others engines refuse `--privileged`,
        // and the harness drops them instead (the engine checks say
        // whether that works).
        Check::new(
            "capabilities",
            Status::Ok,
            format!(
                "missing from the bounding set: {}: not needed by qus; engines refuse \
                 `--privileged` here, privileged steps drop the missing capabilities",
                missing.join(", ")
            ),
        )
    };
    check.evidence(evidence)
}

/// Entry names each effective binfmt.d file registers, by file. A file
/// name in an earlier directory hides the same name in later ones.
fn persisted_names(inputs: &Inputs) -> BTreeMap<String, String> {
    let mut seen = BTreeSet::new();
    let mut names = BTreeMap::new();
    for file in &inputs.systemd.binfmt_d {
        let file_name = file.path.rsplit('/').next().unwrap_or(&file.path);
        if !seen.insert(file_name.to_owned()) {
            continue;
        }
        for line in file.text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut chars = line.chars();
            let Some(delimiter) = chars.next() else {
                continue;
            };
            if let Some(name) = chars.as_str().split(delimiter).next() {
                names.insert(name.to_owned(), file.path.clone());
            }
        }
    }
    names
}

fn systemd(inputs: &Inputs) -> Check {
    let systemd = &inputs.systemd;
    if !systemd.running {
        return Check::new(
            "systemd",
            Status::Ok,
            "not running: nothing flushes the entries (they last until reboot)",
        )
        .evidence("/run/systemd/system: absent");
    }
    let persisted = persisted_names(inputs);
    let qemu: Vec<&Entry> = inputs.entries.iter().filter(|e| e.is_owned()).collect();
    let unpersisted: Vec<&str> = qemu
        .iter()
        .filter(|e| !persisted.contains_key(&e.name))
        .map(|e| e.name.as_str())
        .collect();
    let files: Vec<String> = persisted
        .iter()
        .filter(|(name, _)| name.starts_with("qemu-"))
        .map(|(name, path)| format!("{name} ({path})"))
        .collect();
    let unit = systemd.binfmt_unit.as_deref();
    let evidence = format!(
        "systemctl is-active systemd-binfmt: {}; qemu-* in binfmt.d: {}",
        unit.unwrap_or("unknown"),
        if files.is_empty() {
            "none".to_owned()
        } else {
            files.join(", ")
        }
    );
    let check = match unit {
        Some(state) if state != "active" => Check::new(
            "systemd",
            Status::Ok,
            format!("systemd-binfmt is {state}: it flushes entries only when it starts or stops"),
        ),
        _ if qemu.is_empty() => Check::new(
            "systemd",
            Status::Ok,
            "systemd-binfmt manages binfmt_misc; no qemu-* entry to lose",
        ),
        _ if unpersisted.is_empty() => Check::new(
            "systemd",
            Status::Ok,
            "systemd-binfmt manages binfmt_misc; every qemu-* entry has a binfmt.d file",
        ),
        _ => Check::new(
            "systemd",
            Status::Warn,
            format!(
                "systemd-binfmt {}; {} qemu-* entries are in no binfmt.d file and vanish when it restarts: {}",
                if unit.is_some() {
                    "is active"
                } else {
                    "may be active"
                },
                unpersisted.len(),
                unpersisted.join(", ")
            ),
        )
        .fix(format!(
            "persist them: `{PERSIST_COMMAND}` (writes /etc/binfmt.d/qemu-*.conf)"
        )),
    };
    check.evidence(evidence)
}

fn entries(inputs: &Inputs) -> Check {
    match inputs.mount_state {
        MountState::Mounted => {}
        MountState::NotMounted => {
            return Check::new(
                "entries",
                Status::Warn,
                "none readable: binfmt_misc is not mounted",
            )
            .fix(format!(
                "`{}` mounts it and registers",
                register_command(inputs)
            ));
        }
        // The `binfmt` and `mount` checks say what to do.
        MountState::Missing => {
            return Check::new(
                "entries",
                Status::Warn,
                "none: the kernel has no binfmt_misc",
            );
        }
    }
    if let Some(error) = &inputs.entries_error {
        return Check::new("entries", Status::Warn, "cannot list the entries")
            .evidence(error.clone());
    }
    let (qemu, others): (Vec<&Entry>, Vec<&Entry>) =
        inputs.entries.iter().partition(|e| e.is_owned());
    let others: Vec<&str> = others.iter().map(|e| e.name.as_str()).collect();
    let evidence = format!(
        "entries: {}",
        if inputs.entries.is_empty() {
            "none".to_owned()
        } else {
            inputs
                .entries
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let other_text = if others.is_empty() {
        String::new()
    } else {
        format!(
            "; {} other entr{} left alone: {}",
            others.len(),
            if others.len() == 1 { "y" } else { "ies" },
            others.join(", ")
        )
    };
    let check = if qemu.is_empty() {
        Check::new(
            "entries",
            Status::Warn,
            format!("no qemu-* entries: foreign-architecture binaries do not run here{other_text}"),
        )
        .fix(format!("register them: `{}`", register_command(inputs)))
    } else {
        let enabled = qemu.iter().filter(|e| e.enabled).count();
        Check::new(
            "entries",
            Status::Ok,
            format!(
                "{} qemu-* entries ({enabled} enabled){other_text}",
                qemu.len()
            ),
        )
    };
    check.evidence(evidence)
}

fn entry(inputs: &Inputs, e: &Entry) -> Check {
    let name = &e.name;
    let target = name.strip_prefix("qemu-").unwrap_or(name);
    let replace = format!(
        "qus-register --targets {target} --replace {}",
        persistent_option(inputs)
    );
    let letters = e.flags.readback_letters();
    let fixed = e.flags.fix_binary;
    let interpreter =
        inputs
            .interpreters
            .get(&e.interpreter)
            .cloned()
            .unwrap_or(Interpreter::Unreadable {
                reason: "not inspected".to_owned(),
            });
    let mut problems: Vec<(Status, String)> = Vec::new();
    let mut needs_install = false;
    let kind = match &interpreter {
        Interpreter::Static => "static".to_owned(),
        Interpreter::Dynamic { loader } => {
            if fixed {
                needs_install = true;
                problems.push((
                    Status::Fail,
                    format!(
                        "dynamic interpreter with `F`: fails in containers (no {loader} and libraries there)"
                    ),
                ));
            }
            format!("dynamic, needs {loader}")
        }
        Interpreter::Missing => {
            needs_install = true;
            problems.push((
                Status::Warn,
                if fixed {
                    "interpreter absent here: the kernel keeps the file it opened at \
                     registration, but it cannot be checked or registered again from here"
                        .to_owned()
                } else {
                    "interpreter missing: binaries fail on this host and in containers without it"
                        .to_owned()
                },
            ));
            "missing".to_owned()
        }
        Interpreter::Unreadable { reason } => {
            problems.push((
                Status::Warn,
                format!("interpreter cannot be inspected ({reason})"),
            ));
            "unreadable".to_owned()
        }
    };
    if !fixed {
        problems.push((
            Status::Warn,
            if rejects_fix_binary(inputs) {
                "no `F` (this kernel has none): every container needs its own interpreter"
            } else {
                "no `F`: every container needs its own interpreter"
            }
            .to_owned(),
        ));
    }
    if e.flags.credential {
        problems.push((
            Status::Warn,
            "`C`: a setuid-root foreign binary runs the interpreter as root".to_owned(),
        ));
    }
    if !e.enabled {
        problems.push((Status::Warn, "disabled".to_owned()));
    }
    let status = problems.iter().map(|(s, _)| *s).max().unwrap_or(Status::Ok);
    let flags = if letters.is_empty() {
        "none".to_owned()
    } else {
        letters.clone()
    };
    let mut summary = format!("{name}: {} ({kind}), flags {flags}", e.interpreter);
    if !problems.is_empty() {
        let texts: Vec<&str> = problems.iter().map(|(_, t)| t.as_str()).collect();
        summary.push_str(": ");
        summary.push_str(&texts.join("; "));
    }
    let evidence = format!(
        "{}; interpreter {}; flags: {letters}",
        if e.enabled { "enabled" } else { "disabled" },
        e.interpreter
    );
    let check = Check::new("entry", status, summary).evidence(evidence);
    // Re-registering fixes every problem but a missing `F` on a kernel
    // that has none.
    let needs_kernel = !fixed && rejects_fix_binary(inputs);
    let needs_replace = problems.len() > usize::from(needs_kernel);
    let mut steps = Vec::new();
    if needs_install {
        steps.push(format!("`{INSTALL_STATIC}`"));
    }
    if needs_replace {
        steps.push(format!("`{replace}`"));
    }
    let mut fix = steps.join(", then ");
    if needs_kernel {
        if !fix.is_empty() {
            fix.push_str("; ");
        }
        fix.push_str("for `F`, upgrade the kernel to 4.8 or later");
    }
    if fix.is_empty() {
        check
    } else {
        check.fix(fix)
    }
}

/// Where the host runtime's emulators come from: the host's
/// `/usr/bin/qemu-*-static`, else Debian's QEMU fetched into the cache.
fn emulators(inputs: &Inputs) -> Check {
    let cache = match &inputs.emulator_cache {
        Some((dir, packages)) if packages.is_empty() => format!("`{}`: empty", dir.display()),
        Some((dir, packages)) => format!("`{}`: {}", dir.display(), packages.join(", ")),
        None => "cache not read".to_owned(),
    };
    let n = inputs.host_emulators.len();
    if n > 0 {
        Check::new(
            "emulators",
            Status::Ok,
            format!(
                "the host runtime uses the host's {n} static `/usr/bin/qemu-*-static` \
                 (other QEMU versions are fetched from Debian into the cache)"
            ),
        )
        .evidence(format!(
            "{}; cache {cache}",
            inputs.host_emulators.join(" ")
        ))
    } else {
        Check::new(
            "emulators",
            Status::Ok,
            "no static `/usr/bin/qemu-*-static`: the host runtime fetches Debian's QEMU into \
             the cache (nothing is installed on the host)",
        )
        .evidence(format!("cache {cache}"))
    }
}

fn engine_fix(engine: &EngineInput, found: bool) -> String {
    match (engine.kind, found) {
        (RuntimeKind::Singularity | RuntimeKind::Host, true) => {
            format!("check that `{} --version` runs", engine.location)
        }
        (kind, found) => engine_hint(kind, found),
    }
}

/// The command that gets an engine of `kind` answering: installing it
/// when its program was not `found`, else starting it (shared with the
/// run's fallback notice).
pub fn engine_hint(kind: RuntimeKind, found: bool) -> String {
    match (kind, found) {
        (RuntimeKind::Docker, false) => {
            "install Docker (`apt-get install docker.io`) and start it".to_owned()
        }
        (RuntimeKind::Docker, true) => {
            "start the daemon (`systemctl start docker`, or `dockerd &` without systemd); \
             as a user, join the `docker` group"
                .to_owned()
        }
        (RuntimeKind::Podman, false) => {
            "install Podman (`apt-get install podman`) and start its API service: \
             `podman system service --time=0 unix:///run/podman/podman.sock &`"
                .to_owned()
        }
        (RuntimeKind::Podman, true) => "start its API service: \
             `podman system service --time=0 unix:///run/podman/podman.sock &` \
             (or point QUS_PODMAN_SOCKET at it)"
            .to_owned(),
        (_, false) => "install Apptainer, or point QUS_SINGULARITY_BIN at it".to_owned(),
        (_, true) => "check that `apptainer --version` runs".to_owned(),
    }
}

fn engine(inputs: &Inputs, engine: &EngineInput) -> Check {
    let id = engine.kind.as_str();
    let mut evidence = vec![format!("{}: {}", engine.name, engine.location)];
    if let Some(note) = &engine.privilege_note {
        evidence.push(note.clone());
    }
    if let Some(error) = &engine.error {
        evidence.push(error.clone());
    }
    let evidence = evidence.join("; ");
    if !engine.found {
        return Check::new(
            id,
            Status::Warn,
            format!(
                "{} not found ({}): its scenarios would be skipped",
                engine.name, engine.location
            ),
        )
        .evidence(evidence)
        .fix(engine_fix(engine, false));
    }
    let mut described = engine.name.clone();
    if let Some(version) = &engine.version {
        described.push_str(&format!(" {version}"));
    }
    if let Some(error) = &engine.error {
        return Check::new(
            id,
            Status::Warn,
            format!("{described} found but unusable: {error}"),
        )
        .evidence(evidence)
        .fix(engine_fix(engine, true));
    }
    if let Some(api) = &engine.api_version {
        described.push_str(&format!(" (API {api})"));
    }
    described.push_str(&format!(" at {}", engine.location));
    let check = match engine.privilege {
        Some(PrivilegeMode::Privileged) => Check::new(
            id,
            Status::Ok,
            format!("{described}: privileged containers with `--privileged`"),
        ),
        Some(PrivilegeMode::CapabilityFallback) => {
            let missing = missing_capabilities(inputs)
                .filter(|m| !m.is_empty())
                .map_or_else(
                    || "the engine's bounding set is smaller than `--privileged` asks".to_owned(),
                    |m| format!("{} missing from the bounding set", m.join(", ")),
                );
            let consequence = if engine.kind == RuntimeKind::Singularity {
                format!(
                    "not every capability can be kept ({missing}); \
                     privileged steps drop those with `--drop-caps`"
                )
            } else {
                format!(
                    "`--privileged` refused ({missing}); \
                     privileged steps use the capability fallback, which starts here"
                )
            };
            // The probe started a container this way: privileged steps work.
            Check::new(id, Status::Ok, format!("{described}: {consequence}"))
        }
        Some(PrivilegeMode::Unavailable) => Check::new(
            id,
            Status::Warn,
            format!(
                "{described}: neither `--privileged` nor the capability fallback is granted: \
                 privileged steps would be skipped"
            ),
        )
        .fix(
            "run the engine as root with its full capability set \
             (rootless engines cannot grant it)",
        ),
        Some(PrivilegeMode::NotApplicable) | None => Check::new(
            id,
            Status::Ok,
            format!("{described}: privileged containers not probed"),
        ),
    };
    check.evidence(evidence)
}

fn runtime(inputs: &Inputs) -> Check {
    let pick = AUTO_ORDER.iter().find_map(|kind| {
        inputs
            .engines
            .iter()
            .find(|e| e.kind == *kind && e.is_usable())
    });
    let considered: Vec<String> = AUTO_ORDER
        .iter()
        .map(|kind| {
            let state = inputs.engines.iter().find(|e| e.kind == *kind).map_or(
                "not looked for",
                |e| match (e.found, e.is_usable()) {
                    (true, true) => "usable",
                    (true, false) => "unusable",
                    (false, _) => "not found",
                },
            );
            format!("{kind}: {state}")
        })
        .collect();
    let evidence = format!(
        "auto tries docker, podman, singularity, then host; {}",
        considered.join(", ")
    );
    match pick {
        Some(engine) => Check::new(
            "runtime",
            Status::Ok,
            format!(
                "`--runtime auto` would pick {}{}",
                engine.kind,
                engine
                    .version
                    .as_ref()
                    .map(|v| format!(" ({} {v})", engine.name))
                    .unwrap_or_default()
            ),
        )
        .evidence(evidence),
        None => Check::new(
            "runtime",
            Status::Warn,
            "`--runtime auto` would pick host: no container engine answers, container scenarios would be skipped",
        )
        .evidence(evidence)
        .fix("install and start Docker (`apt-get install docker.io`) or Podman"),
    }
}

fn scenarios(planned: &[(String, Option<String>)]) -> Check {
    let total = planned.len();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in planned.iter().filter_map(|(_, r)| r.as_deref()) {
        *skipped.entry(reason).or_default() += 1;
    }
    let skipped_count: usize = skipped.values().sum();
    let running = total - skipped_count;
    let mut reasons: Vec<(&str, usize)> = skipped.into_iter().collect();
    // Most frequent first; ties by reason, for stable output.
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let evidence = planned
        .iter()
        .filter_map(|(id, r)| r.as_ref().map(|r| format!("{id}: {r}")))
        .collect::<Vec<_>>()
        .join("; ");
    if total == 0 {
        return Check::new("scenarios", Status::Warn, "no scenario instances planned")
            .fix("pass scenario files or directories (default `scenarios/`)");
    }
    if reasons.is_empty() {
        return Check::new(
            "scenarios",
            Status::Ok,
            format!("{running} of {total} instances would run"),
        );
    }
    let reasons: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{reason} ({n})"))
        .collect();
    Check::new(
        "scenarios",
        Status::Warn,
        format!(
            "{running} of {total} instances would run; skipped: {}",
            reasons.join(", ")
        ),
    )
    .evidence(evidence)
    .fix("`qus-harness plan` lists each instance with its skip reason")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::inputs::fixture;

    /// The only check with `id` (panics on none or several).
    fn check(checks: &[Check], id: &str) -> Check {
        let found: Vec<&Check> = checks.iter().filter(|c| c.id == id).collect();
        assert_eq!(found.len(), 1, "checks with id `{id}`: {found:#?}");
        found[0].clone()
    }

    /// The `entry` check of entry `name`.
    fn entry_check(checks: &[Check], name: &str) -> Check {
        checks
            .iter()
            .find(|c| c.id == "entry" && c.summary.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no entry check for `{name}`"))
            .clone()
    }

    fn run(inputs: &Inputs, id: &str) -> Check {
        check(&checks(inputs), id)
    }

    /// Asserts the status and that the fix names `command` (`None`: no fix).
    #[track_caller]
    fn assert_check(c: &Check, status: Status, command: Option<&str>) {
        assert_eq!(c.status, status, "{c:#?}");
        match command {
            Some(command) => {
                let fix = c.fix.as_deref().unwrap_or_else(|| panic!("no fix: {c:#?}"));
                assert!(
                    fix.contains(command),
                    "fix does not name `{command}`: {c:#?}"
                );
            }
            None => assert_eq!(c.fix, None, "{c:#?}"),
        }
    }

    #[test]
    fn emulators_say_where_the_host_runtime_takes_them_from() {
        let host = Inputs {
            host_emulators: vec!["qemu-aarch64-static".to_owned()],
            emulator_cache: Some(("/var/cache/qus/emulators".into(), vec![])),
            ..fixture("ci-host")
        };
        let c = run(&host, "emulators");
        assert_check(&c, Status::Ok, None);
        assert!(c.summary.contains("the host's 1 static"), "{c:?}");
        assert!(
            c.evidence.contains("`/var/cache/qus/emulators`: empty"),
            "{c:?}"
        );
        let fetched = Inputs {
            host_emulators: vec![],
            emulator_cache: Some((
                "/c/emulators".into(),
                vec!["qemu-user-static_1%3a7.2_amd64.deb".to_owned()],
            )),
            ..fixture("ci-host")
        };
        let c = run(&fetched, "emulators");
        assert!(c.summary.contains("fetches Debian's QEMU"), "{c:?}");
        assert!(
            c.evidence.contains("qemu-user-static_1%3a7.2_amd64.deb"),
            "{c:?}"
        );
    }

    #[test]
    fn every_check_of_the_ci_host_in_order() {
        let ids: Vec<&str> = checks(&fixture("ci-host")).iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            [
                "kernel",
                "binfmt",
                "mount",
                "automount",
                "writable",
                "userns",
                "capabilities",
                "systemd",
                "entries",
                "entry",
                "entry",
                "entry",
                "docker",
                "podman",
                "singularity",
                "runtime",
                "emulators",
                "scenarios",
            ]
        );
    }

    // kernel

    #[test]
    fn kernel_6_1_supports_f_with_one_global_registry() {
        let c = run(&fixture("ci-host"), "kernel");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "6.1.0-18-amd64: F supported (>= 4.8); one binfmt_misc registry for the whole host (< 6.7)"
        );
    }

    #[test]
    fn kernel_6_8_is_namespaced() {
        let c = run(&fixture("systemd-host"), "kernel");
        assert_check(&c, Status::Ok, None);
        assert!(
            c.summary
                .ends_with("binfmt_misc is namespaced per user namespace (>= 6.7)")
        );
    }

    #[test]
    fn kernel_4_4_fails_for_f() {
        let c = run(&fixture("broken-host"), "kernel");
        assert_check(&c, Status::Fail, Some("qus-register --reset -p no"));
        assert!(c.summary.contains("Invalid argument"), "{c:#?}");
        assert!(c.fix.as_deref().unwrap().contains("4.8"));
    }

    #[test]
    fn unparsable_kernel_release_warns() {
        let inputs = Inputs {
            kernel_release: "custom".to_owned(),
            ..fixture("ci-host")
        };
        assert_check(&run(&inputs, "kernel"), Status::Warn, None);
    }

    // binfmt support

    #[test]
    fn binfmt_support_listed_in_proc_filesystems() {
        assert_check(&run(&fixture("ci-host"), "binfmt"), Status::Ok, None);
    }

    #[test]
    fn binfmt_support_from_the_mount_point_when_proc_filesystems_is_unreadable() {
        let inputs = Inputs {
            filesystems: None,
            ..fixture("ci-host")
        };
        let c = run(&inputs, "binfmt");
        assert_check(&c, Status::Ok, None);
        assert!(c.evidence.contains("unreadable"));
    }

    #[test]
    fn no_binfmt_support_fails_with_modprobe() {
        let c = run(&fixture("no-binfmt"), "binfmt");
        assert_check(&c, Status::Fail, Some("modprobe binfmt_misc"));
    }

    // mount

    #[test]
    fn mounted_shows_options() {
        let c = run(&fixture("ci-host"), "mount");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "mounted at /proc/sys/fs/binfmt_misc (rw,nosuid,nodev,noexec,relatime)"
        );
    }

    #[test]
    fn not_mounted_warns_with_the_mount_command() {
        let c = run(&fixture("rootless-container"), "mount");
        assert_check(
            &c,
            Status::Warn,
            Some("mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"),
        );
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .contains("qus-register mounts it itself")
        );
    }

    #[test]
    fn missing_mount_point_fails_with_modprobe_then_mount() {
        let c = run(&fixture("no-binfmt"), "mount");
        assert_check(&c, Status::Fail, Some("modprobe binfmt_misc"));
        assert!(c.fix.as_deref().unwrap().contains("mount -t binfmt_misc"));
    }

    #[test]
    fn globally_disabled_binfmt_misc_fails() {
        let inputs = Inputs {
            binfmt_status: Some("disabled".to_owned()),
            ..fixture("ci-host")
        };
        let c = run(&inputs, "mount");
        assert_check(
            &c,
            Status::Fail,
            Some("echo 1 > /proc/sys/fs/binfmt_misc/status"),
        );
    }

    // automount

    #[test]
    fn plain_mount_is_not_an_automount() {
        assert_check(&run(&fixture("ci-host"), "automount"), Status::Ok, None);
    }

    #[test]
    fn systemd_autofs_mount_warns_and_persists() {
        let c = run(&fixture("systemd-host"), "automount");
        assert_check(&c, Status::Warn, Some("qus-register --systemd ALL -p yes"));
        assert!(c.evidence.contains("autofs"), "{c:#?}");
    }

    #[test]
    fn unreadable_proc_mounts_warns() {
        let inputs = Inputs {
            mounts: None,
            ..fixture("ci-host")
        };
        assert_check(&run(&inputs, "automount"), Status::Warn, None);
    }

    // writable

    #[test]
    fn register_writable_by_root() {
        let c = run(&fixture("ci-host"), "writable");
        assert_check(&c, Status::Ok, None);
        assert_eq!(c.summary, "`register` is writable (uid 0)");
    }

    #[test]
    fn unmounted_but_writable_mount_point_is_ok() {
        let inputs = Inputs {
            writable: Some(true),
            ..fixture("rootless-container")
        };
        let c = run(&inputs, "writable");
        assert_check(&c, Status::Ok, None);
        assert!(c.summary.contains("can mount and register"));
    }

    #[test]
    fn not_root_warns_with_sudo() {
        let mut inputs = fixture("broken-host");
        inputs.kernel_release = "5.15.0-113-generic".to_owned();
        let c = run(&inputs, "writable");
        assert_check(&c, Status::Warn, Some("sudo qus-register --reset -p yes"));
        assert!(c.summary.contains("uid 1000"));
    }

    #[test]
    fn read_only_for_root_fails() {
        let c = run(&fixture("rootless-container"), "writable");
        assert_check(&c, Status::Fail, Some("--privileged"));
        assert!(c.summary.contains("read-only"));
    }

    #[test]
    fn no_mount_point_cannot_tell() {
        assert_check(&run(&fixture("no-binfmt"), "writable"), Status::Warn, None);
    }

    // userns

    #[test]
    fn initial_user_namespace_is_ok() {
        assert_check(&run(&fixture("ci-host"), "userns"), Status::Ok, None);
    }

    #[test]
    fn rootless_container_on_6_8_lands_in_a_private_registry() {
        let c = run(&fixture("rootless-container"), "userns");
        assert_check(&c, Status::Warn, Some("rootful container"));
        assert!(c.summary.contains("private registry"), "{c:#?}");
        assert_eq!(c.evidence, "/proc/self/uid_map: 0 1000 1; 1 100000 65536");
    }

    #[test]
    fn rootless_container_before_6_7_cannot_write() {
        let inputs = Inputs {
            kernel_release: "5.15.0-113-generic".to_owned(),
            ..fixture("rootless-container")
        };
        let c = run(&inputs, "userns");
        assert_check(&c, Status::Warn, Some("rootful container"));
        assert!(c.summary.contains("cannot be mounted or written"), "{c:#?}");
    }

    #[test]
    fn unreadable_uid_map_warns() {
        let inputs = Inputs {
            uid_map: None,
            ..fixture("ci-host")
        };
        assert_check(&run(&inputs, "userns"), Status::Warn, None);
    }

    // capabilities

    #[test]
    fn full_bounding_set_is_ok() {
        assert_check(
            &run(&fixture("systemd-host"), "capabilities"),
            Status::Ok,
            None,
        );
    }

    #[test]
    fn ci_vm_lacks_sys_resource() {
        let c = run(&fixture("ci-host"), "capabilities");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "missing from the bounding set: CAP_SYS_RESOURCE: not needed by qus; engines refuse \
             `--privileged` here, privileged steps drop the missing capabilities"
        );
    }

    #[test]
    fn missing_sys_admin_fails() {
        let c = run(&fixture("rootless-container"), "capabilities");
        assert_check(&c, Status::Fail, Some("--cap-add SYS_ADMIN"));
        assert!(c.summary.contains("CAP_SYS_ADMIN"), "{c:#?}");
        assert!(c.summary.contains("CAP_SYS_RESOURCE"), "{c:#?}");
    }

    #[test]
    fn unreadable_bounding_set_warns() {
        let inputs = Inputs {
            proc_status: None,
            ..fixture("ci-host")
        };
        assert_check(&run(&inputs, "capabilities"), Status::Warn, None);
    }

    // systemd

    #[test]
    fn no_systemd_nothing_flushes() {
        assert_check(&run(&fixture("ci-host"), "systemd"), Status::Ok, None);
    }

    #[test]
    fn entry_without_binfmt_d_file_vanishes_on_restart() {
        // qemu-aarch64 is in /etc/binfmt.d; qemu-riscv64's vendor file is
        // masked by an empty /etc/binfmt.d/qemu-riscv64.conf.
        let c = run(&fixture("systemd-host"), "systemd");
        assert_check(&c, Status::Warn, Some("qus-register --systemd ALL -p yes"));
        assert!(
            c.summary.ends_with("vanish when it restarts: qemu-riscv64"),
            "{c:#?}"
        );
        assert!(
            c.evidence
                .contains("qemu-aarch64 (/etc/binfmt.d/qemu-aarch64.conf)"),
            "{c:#?}"
        );
    }

    #[test]
    fn every_entry_persisted_is_ok() {
        let mut inputs = fixture("systemd-host");
        inputs.entries.retain(|e| e.name == "qemu-aarch64");
        assert_check(&run(&inputs, "systemd"), Status::Ok, None);
    }

    #[test]
    fn inactive_systemd_binfmt_flushes_nothing() {
        let mut inputs = fixture("systemd-host");
        inputs.systemd.binfmt_unit = Some("inactive".to_owned());
        let c = run(&inputs, "systemd");
        assert_check(&c, Status::Ok, None);
        assert!(c.summary.contains("inactive"));
    }

    #[test]
    fn unknown_unit_state_is_taken_as_active() {
        let mut inputs = fixture("systemd-host");
        inputs.systemd.binfmt_unit = None;
        let c = run(&inputs, "systemd");
        assert_check(&c, Status::Warn, Some("qus-register --systemd ALL -p yes"));
        assert!(c.summary.contains("may be active"));
    }

    #[test]
    fn systemd_without_qemu_entries_is_ok() {
        let mut inputs = fixture("systemd-host");
        inputs.entries.clear();
        assert_check(&run(&inputs, "systemd"), Status::Ok, None);
    }

    // entries

    #[test]
    fn entries_counts_qemu_and_names_the_others() {
        let c = run(&fixture("broken-host"), "entries");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "2 qemu-* entries (2 enabled); 1 other entry left alone: python3.5"
        );
    }

    #[test]
    fn no_qemu_entries_warns_with_register() {
        let mut inputs = fixture("ci-host");
        inputs.entries.clear();
        let c = run(&inputs, "entries");
        assert_check(&c, Status::Warn, Some("qus-register --reset -p yes"));
    }

    #[test]
    fn unmounted_entries_warn_with_register() {
        let c = run(&fixture("rootless-container"), "entries");
        assert_check(&c, Status::Warn, Some("qus-register --reset -p yes"));
    }

    #[test]
    fn no_binfmt_no_entries_and_no_register_fix() {
        assert_check(&run(&fixture("no-binfmt"), "entries"), Status::Warn, None);
    }

    #[test]
    fn unlistable_entries_warn() {
        let inputs = Inputs {
            entries: Vec::new(),
            entries_error: Some("failed to list `/proc/sys/fs/binfmt_misc`".to_owned()),
            ..fixture("ci-host")
        };
        let c = run(&inputs, "entries");
        assert_check(&c, Status::Warn, None);
        assert!(c.evidence.contains("failed to list"));
    }

    // entry

    #[test]
    fn static_f_entries_are_ok() {
        let all = checks(&fixture("ci-host"));
        let c = entry_check(&all, "qemu-aarch64");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "qemu-aarch64: /usr/bin/qemu-aarch64-static (static), flags F"
        );
    }

    #[test]
    fn f_entry_with_missing_interpreter_warns() {
        let all = checks(&fixture("broken-entries"));
        let c = entry_check(&all, "qemu-aarch64");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets aarch64 --replace -p yes"),
        );
        assert!(c.summary.contains("kernel keeps the file"), "{c:#?}");
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .contains("apt-get install qemu-user-static")
        );
    }

    #[test]
    fn entry_without_f_and_interpreter_warns_twice() {
        let all = checks(&fixture("broken-entries"));
        let c = entry_check(&all, "qemu-arm");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets arm --replace -p yes"),
        );
        assert!(c.summary.contains("interpreter missing"), "{c:#?}");
        assert!(c.summary.contains("no `F`"), "{c:#?}");
    }

    #[test]
    fn dynamic_interpreter_with_f_fails() {
        let all = checks(&fixture("broken-entries"));
        let c = entry_check(&all, "qemu-riscv64");
        assert_check(&c, Status::Fail, Some("apt-get install qemu-user-static"));
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .contains("qus-register --targets riscv64 --replace -p yes")
        );
        assert!(
            c.summary
                .contains("(dynamic, needs /lib64/ld-linux-x86-64.so.2)"),
            "{c:#?}"
        );
    }

    #[test]
    fn dynamic_interpreter_without_f_only_warns() {
        let mut inputs = fixture("broken-host");
        inputs.kernel_release = "5.15.0-113-generic".to_owned();
        let c = entry_check(&checks(&inputs), "qemu-arm");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets arm --replace -p yes"),
        );
        assert!(c.summary.contains("flags none"), "{c:#?}");
    }

    #[test]
    fn fixes_on_a_kernel_without_f_register_without_it() {
        let all = checks(&fixture("broken-host"));
        let c = entry_check(&all, "qemu-aarch64");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets aarch64 --replace -p no"),
        );
        assert!(c.summary.contains("this kernel has none"), "{c:#?}");
        // Only `F` is wrong, and re-registering cannot add it here.
        let c = entry_check(&all, "qemu-arm");
        assert_check(&c, Status::Warn, Some("upgrade the kernel to 4.8"));
        assert!(
            !c.fix.as_deref().unwrap().contains("qus-register"),
            "{c:#?}"
        );
        let c = check(&all, "writable");
        assert_check(&c, Status::Warn, Some("sudo qus-register --reset -p no"));
    }

    #[test]
    fn credential_flag_warns_of_setuid_root() {
        let all = checks(&fixture("broken-entries"));
        let c = entry_check(&all, "qemu-s390x");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets s390x --replace -p yes"),
        );
        assert!(c.summary.contains("flags OCF: `C`"), "{c:#?}");
    }

    #[test]
    fn disabled_entry_warns() {
        let all = checks(&fixture("broken-entries"));
        let c = entry_check(&all, "qemu-ppc64le");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets ppc64le --replace -p yes"),
        );
        assert!(c.summary.ends_with(": disabled"), "{c:#?}");
    }

    #[test]
    fn script_interpreter_cannot_be_inspected() {
        let all = checks(&fixture("broken-entries"));
        let c = entry_check(&all, "qemu-mips");
        assert_check(
            &c,
            Status::Warn,
            Some("qus-register --targets mips --replace -p yes"),
        );
        assert!(c.summary.contains("not an ELF file"), "{c:#?}");
    }

    #[test]
    fn entries_of_other_software_get_no_line() {
        let all = checks(&fixture("broken-entries"));
        assert!(!all.iter().any(|c| c.summary.starts_with("jar")));
        assert_eq!(all.iter().filter(|c| c.id == "entry").count(), 6);
    }

    // engines

    #[test]
    fn docker_capability_fallback_names_the_missing_capability() {
        let c = run(&fixture("ci-host"), "docker");
        assert_check(&c, Status::Ok, None);
        assert!(
            c.summary.contains(
                "`--privileged` refused (CAP_SYS_RESOURCE missing from the bounding set); \
                 privileged steps use the capability fallback, which starts here"
            ),
            "{c:#?}"
        );
        assert!(c.evidence.contains("unable to apply caps"), "{c:#?}");
    }

    #[test]
    fn fallback_without_a_readable_bounding_set_says_so() {
        let inputs = Inputs {
            proc_status: None,
            ..fixture("ci-host")
        };
        let c = run(&inputs, "docker");
        assert_eq!(c.status, Status::Ok);
        assert!(c.summary.contains("bounding set is smaller"), "{c:#?}");
    }

    #[test]
    fn privileged_engine_is_ok() {
        let c = run(&fixture("ci-host"), "podman");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "podman 4.3.1 (API 1.41) at unix:///run/podman/podman.sock: privileged containers with `--privileged`"
        );
    }

    #[test]
    fn unprobed_apptainer_is_ok() {
        let mut inputs = fixture("ci-host");
        inputs.engines[2].privilege = None;
        let c = run(&inputs, "singularity");
        assert_check(&c, Status::Ok, None);
        assert!(c.summary.starts_with("apptainer 1.4.5 at "), "{c:#?}");
    }

    #[test]
    fn apptainer_capability_fallback_drops_caps() {
        let c = run(&fixture("ci-host"), "singularity");
        assert_check(&c, Status::Ok, None);
        let expected = "(CAP_SYS_RESOURCE missing from the bounding set); \
                        privileged steps drop those with `--drop-caps`";
        assert!(c.summary.contains(expected), "{c:#?}");
    }

    #[test]
    fn unavailable_privileges_warn() {
        let mut inputs = fixture("ci-host");
        inputs.engines[0].privilege = Some(PrivilegeMode::Unavailable);
        let c = run(&inputs, "docker");
        assert_check(&c, Status::Warn, Some("full capability set"));
        assert!(c.summary.contains("would be skipped"));
    }

    #[test]
    fn unreachable_docker_warns_with_start_hint() {
        let c = run(&fixture("broken-host"), "docker");
        assert_check(&c, Status::Warn, Some("`docker` group"));
        assert!(
            c.summary.starts_with("docker 18.09.7 found but unusable: "),
            "{c:#?}"
        );
    }

    #[test]
    fn unreachable_podman_warns_with_service_hint() {
        let mut inputs = fixture("ci-host");
        inputs.engines[1].privilege = None;
        inputs.engines[1].error = Some("no answer within 10s".to_owned());
        let c = run(&inputs, "podman");
        assert_check(&c, Status::Warn, Some("podman system service"));
    }

    #[test]
    fn broken_apptainer_warns() {
        let mut inputs = fixture("ci-host");
        inputs.engines[2].error = Some("`apptainer --version` failed: FATAL".to_owned());
        let c = run(&inputs, "singularity");
        assert_check(&c, Status::Warn, Some("--version` runs"));
    }

    #[test]
    fn engines_not_found_warn_with_install_hints() {
        let all = checks(&fixture("broken-host"));
        assert_check(
            &check(&all, "podman"),
            Status::Warn,
            Some("apt-get install podman"),
        );
        assert_check(
            &check(&all, "singularity"),
            Status::Warn,
            Some("QUS_SINGULARITY_BIN"),
        );
        let docker = check(&checks(&fixture("rootless-container")), "docker");
        assert_check(&docker, Status::Warn, Some("apt-get install docker.io"));
    }

    // runtime

    #[test]
    fn auto_picks_docker_first() {
        let c = run(&fixture("ci-host"), "runtime");
        assert_check(&c, Status::Ok, None);
        assert_eq!(
            c.summary,
            "`--runtime auto` would pick docker (docker 20.10.24+dfsg1)"
        );
    }

    #[test]
    fn auto_falls_back_to_podman_then_singularity() {
        let mut inputs = fixture("ci-host");
        inputs.engines[0].error = Some("unreachable".to_owned());
        assert!(run(&inputs, "runtime").summary.contains("pick podman"));
        inputs.engines[1].found = false;
        assert!(run(&inputs, "runtime").summary.contains("pick singularity"));
    }

    #[test]
    fn auto_without_engines_picks_host_and_warns() {
        let c = run(&fixture("broken-host"), "runtime");
        assert_check(&c, Status::Warn, Some("apt-get install docker.io"));
        assert!(c.summary.contains("would pick host"));
    }

    // scenarios

    #[test]
    fn skipped_instances_are_counted_by_reason() {
        let c = run(&fixture("ci-host"), "scenarios");
        assert_check(&c, Status::Warn, Some("qus-harness plan"));
        assert_eq!(
            c.summary,
            "4 of 7 instances would run; skipped: applies to runtimes podman, not `docker` (2), \
             requires kernel 6.7, this one is 6.1 (1)"
        );
    }

    #[test]
    fn all_instances_running_is_ok() {
        let inputs = fixture("ci-host").with_scenarios(vec![
            ("a@docker".to_owned(), None),
            ("b@docker".to_owned(), None),
        ]);
        let c = run(&inputs, "scenarios");
        assert_check(&c, Status::Ok, None);
        assert_eq!(c.summary, "2 of 2 instances would run");
    }

    #[test]
    fn no_instances_warns() {
        let inputs = fixture("ci-host").with_scenarios(Vec::new());
        assert_check(&run(&inputs, "scenarios"), Status::Warn, Some("scenarios/"));
    }

    #[test]
    fn no_plan_no_scenarios_check() {
        let all = checks(&fixture("systemd-host"));
        assert!(!all.iter().any(|c| c.id == "scenarios"));
    }
}
