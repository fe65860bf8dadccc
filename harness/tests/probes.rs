//! The per-architecture probes in `fixtures/probes/`, checked against the
//! registrar's target table and, where QEMU is installed, run through it.
//!
//! For every row of `fixtures/probes/probes.tsv` (`target`, `binary`, `uname`,
//! `package`):
//!
//! 1. the binary's ELF header, read with `qus_registrar::elf`, is a static
//!    executable of the target's class, byte order and machine, and the
//!    target table's binfmt magic routes it to that target and no other;
//! 2. run directly through `/usr/bin/<interpreter>-static` (no binfmt_misc
//!    needed), it prints `<uname>\n`, and `<uname>\n<argv0>\n` after
//!    `--argv0`; the aarch64 probes print `<uname>\n<euid>\n` after
//!    `--euid` (what setuid checks read). Without Debian's `qemu-user-static`
//!    (a fresh machine) that part is skipped, loudly; `QUS_REQUIRE_KERNEL=1`
//!    (the CI gate) makes a missing interpreter a failure, as it does for the
//!    registrar's kernel tests;
//! 3. `bin/`, `src/` and the table agree, and every probe is under 4 KiB;
//! 4. with `QEMU_VERSION=1` in its environment, QEMU prints its version
//!    line and exits without running the probe: what `qus_harness::qemu`
//!    relies on to tell which QEMU a registered handler runs.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qus_registrar::elf;
use qus_registrar::targets::{self, Target};

/// Columns of `probes.tsv`, in order.
const COLUMNS: [&str; 4] = ["target", "binary", "uname", "package"];
/// Largest probe accepted: they are meant to be a few hundred bytes.
const MAX_PROBE_BYTES: u64 = 4096;
/// How long one probe may run under QEMU before it counts as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a file binfmt_misc matches against (`BINPRM_BUF_SIZE` was 128
/// before Linux 5.1, 256 since): only the file's start decides the route.
const BINPRM_BUF: usize = 128;
/// Where Debian's `qemu-user-static` installs the interpreters.
const QEMU_DIR: &str = "/usr/bin";
/// Set to `1` to make a missing interpreter fail part (2) instead of skipping it.
const REQUIRE: &str = "QUS_REQUIRE_KERNEL";

/// Whether a missing interpreter is skipped (loudly) rather than a failure.
fn allow_missing() -> bool {
    std::env::var(REQUIRE).map_or(true, |v| v != "1")
}

/// One row of `probes.tsv`.
#[derive(Debug)]
struct Probe {
    /// QEMU target name (`aarch64`, `mipsn32el`, `i486`).
    target: String,
    /// Path of the binary, relative to `fixtures/probes/`.
    binary: String,
    /// What `uname -m` prints for this target under QEMU user mode.
    uname: String,
    /// Debian package(s) that build it (documentation only).
    package: String,
    /// Line number in `probes.tsv`, for messages.
    line: usize,
}

fn probes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes")
}

fn load_table() -> Vec<Probe> {
    let path = probes_dir().join("probes.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().expect("probes.tsv is empty");
    assert_eq!(
        header.split('\t').collect::<Vec<_>>(),
        COLUMNS,
        "probes.tsv header"
    );
    let mut probes = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            fields.len(),
            COLUMNS.len(),
            "probes.tsv line {}: expected {} tab-separated columns, got {:?}",
            index + 1,
            COLUMNS.len(),
            fields
        );
        assert!(
            fields.iter().all(|f| !f.is_empty() && f.trim() == *f),
            "probes.tsv line {}: empty or padded field in {fields:?}",
            index + 1
        );
        probes.push(Probe {
            target: fields[0].to_owned(),
            binary: fields[1].to_owned(),
            uname: fields[2].to_owned(),
            package: fields[3].to_owned(),
            line: index + 1,
        });
    }
    assert!(!probes.is_empty(), "probes.tsv has no rows");
    probes
}

fn target_of(probe: &Probe) -> &'static Target {
    targets::TARGETS
        .iter()
        .find(|t| t.name == probe.target)
        .unwrap_or_else(|| {
            panic!(
                "probes.tsv line {}: `{}` is not a target in qus_registrar::targets::TARGETS",
                probe.line, probe.target
            )
        })
}

fn read_probe(probe: &Probe) -> Vec<u8> {
    let path = probes_dir().join(&probe.binary);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Panics with every collected failure, one per line, if there is any.
fn report(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn table_matches_bin_and_src() {
    let dir = probes_dir();
    let probes = load_table();
    let mut failures = Vec::new();

    let mut seen = BTreeSet::new();
    for probe in &probes {
        if !seen.insert(probe.target.as_str()) {
            failures.push(format!("{}: listed twice", probe.target));
        }
        target_of(probe);
        let expected_binary = format!("bin/{}", probe.target);
        if probe.binary != expected_binary {
            failures.push(format!(
                "{}: binary is `{}`, expected `{expected_binary}`",
                probe.target, probe.binary
            ));
        }
        match std::fs::metadata(dir.join(&probe.binary)) {
            Ok(meta) if !meta.is_file() => {
                failures.push(format!("{}: {} is not a file", probe.target, probe.binary));
            }
            Ok(meta) if meta.len() >= MAX_PROBE_BYTES => failures.push(format!(
                "{}: {} is {} bytes, probes must stay under {MAX_PROBE_BYTES}",
                probe.target,
                probe.binary,
                meta.len()
            )),
            Ok(meta) => {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o111 == 0 {
                    failures.push(format!(
                        "{}: {} is not executable",
                        probe.target, probe.binary
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {}: {e}", probe.target, probe.binary)),
        }
        let sources = ["S", "s", "c"].map(|ext| dir.join(format!("src/{}.{ext}", probe.target)));
        if !sources.iter().any(|s| s.is_file()) {
            failures.push(format!(
                "{}: no source src/{}.S (or .s, .c)",
                probe.target, probe.target
            ));
        }
        if probe.package.is_empty() {
            failures.push(format!("{}: no package", probe.target));
        }
    }

    let listed: BTreeSet<String> = probes.iter().map(|p| p.binary.clone()).collect();
    let entries = std::fs::read_dir(dir.join("bin")).expect("fixtures/probes/bin");
    for entry in entries {
        let entry = entry.expect("read_dir entry");
        let name = format!("bin/{}", entry.file_name().to_string_lossy());
        if !listed.contains(&name) {
            failures.push(format!("{name} has no row in probes.tsv"));
        }
    }
    report("probes.tsv against bin/ and src/", &failures);
}

#[test]
fn headers_are_static_and_route_to_their_target() {
    let mut failures = Vec::new();
    for probe in load_table() {
        let target = target_of(&probe);
        let bytes = read_probe(&probe);
        let header = match elf::parse(&bytes) {
            Ok(header) => header,
            Err(e) => {
                failures.push(format!("{}: {e} ({:?})", probe.target, e.kind()));
                continue;
            }
        };
        if !header.is_static() {
            failures.push(format!(
                "{}: not static, PT_INTERP is {:?}",
                probe.target, header.interp
            ));
        }
        if header.kind != 2 {
            failures.push(format!(
                "{}: e_type {} is not ET_EXEC",
                probe.target, header.kind
            ));
        }
        let fields = (header.class, header.endian, header.machine);
        let wanted = (target.class, target.endian, target.machine);
        if fields != wanted {
            failures.push(format!(
                "{}: (class, endian, e_machine) is {fields:?}, the table says {wanted:?}",
                probe.target
            ));
        }
        let file_start = &bytes[..bytes.len().min(BINPRM_BUF)];
        let routed: Vec<&str> = elf::matching_targets(file_start)
            .iter()
            .map(|t| t.name)
            .collect();
        if routed != [target.name] {
            failures.push(format!(
                "{}: binfmt magic routes it to {routed:?} (e_flags {:#010x})",
                probe.target, header.flags
            ));
        }
    }
    report("probe ELF headers", &failures);
}

/// Runs `program args` with a clean QEMU environment, returning
/// (exit code, stdout, stderr), or an error if it hangs or cannot start.
fn run(program: &Path, args: &[&str]) -> Result<(Option<i32>, String, String), String> {
    run_with(program, args, &[])
}

/// [`run`] with `env` added after the `QEMU_*` variables are removed.
fn run_with(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(Option<i32>, String, String), String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // QEMU_CPU, QEMU_STRACE, QEMU_LD_PREFIX, ... would change what we measure.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QEMU_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {RUN_TIMEOUT:?}, killed"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).map_err(|e| e.to_string())?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).map_err(|e| e.to_string())?;
    }
    Ok((status.code(), stdout, stderr))
}

#[test]
fn probes_print_their_uname_under_qemu() {
    let allow_missing = allow_missing();
    let dir = probes_dir();
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    let mut ran = 0;
    for probe in load_table() {
        let target = target_of(&probe);
        let qemu = Path::new(QEMU_DIR).join(format!("{}-static", target.interpreter));
        if !qemu.is_file() {
            missing.push(format!("{} ({})", probe.target, qemu.display()));
            continue;
        }
        let binary = dir.join(&probe.binary);
        let binary_arg = binary.to_str().expect("UTF-8 path");
        let uname = &probe.uname;
        let cases: [(&[&str], String); 4] = [
            (&[binary_arg], format!("{uname}\n")),
            (&[binary_arg, "--argv0"], format!("{uname}\n{binary_arg}\n")),
            // Only the exact word asks for argv[0].
            (&[binary_arg, "--argv0x"], format!("{uname}\n")),
            // QEMU's -0 sets the argv[0] the guest sees.
            (
                &["-0", "qus-probe", binary_arg, "--argv0"],
                format!("{uname}\nqus-probe\n"),
            ),
        ];
        // The aarch64 probes also tell their effective uid.
        let euid = rustix::process::geteuid().as_raw();
        let euid_args = [binary_arg, "--euid"];
        let euid_line = if probe.target.starts_with("aarch64") {
            format!("{uname}\n{euid}\n")
        } else {
            format!("{uname}\n")
        };
        let euid_case: (&[&str], String) = (&euid_args, euid_line);
        for (args, expected) in cases.into_iter().chain([euid_case]) {
            match run(&qemu, args) {
                Ok((Some(0), stdout, _)) if stdout == expected => {}
                Ok((code, stdout, stderr)) => failures.push(format!(
                    "{}: `{} {}` exited {code:?} with stdout {stdout:?} (expected {expected:?}), \
                     stderr {stderr:?}",
                    probe.target,
                    qemu.display(),
                    args.join(" ")
                )),
                Err(e) => failures.push(format!("{}: {e}", probe.target)),
            }
        }
        ran += 1;
    }
    report("probes under QEMU", &failures);
    if !missing.is_empty() {
        let list = missing.join("\n  ");
        assert!(
            allow_missing,
            "no QEMU interpreter for {} probe(s) and {REQUIRE}=1 (install \
             qemu-user-static):\n  {list}",
            missing.len()
        );
        eprintln!(
            "SKIPPED running {} probe(s): interpreter not installed (install qemu-user-static; \
             {REQUIRE}=1 makes this a failure):\n  {list}",
            missing.len()
        );
    }
    eprintln!("ran {ran} probe(s) under QEMU");
}

#[test]
fn qemu_version_in_the_environment_prints_the_version_instead_of_running() {
    let allow_missing = allow_missing();
    let qemu = Path::new(QEMU_DIR).join("qemu-aarch64-static");
    if !qemu.is_file() {
        assert!(
            allow_missing,
            "no {} and {REQUIRE}=1 (install qemu-user-static)",
            qemu.display()
        );
        eprintln!(
            "SKIPPED: {} not installed (install qemu-user-static; {REQUIRE}=1 makes this a failure)",
            qemu.display()
        );
        return;
    }
    let probe = probes_dir().join("bin/aarch64");
    let probe = probe.to_str().expect("UTF-8 path");
    let (code, stdout, _) = run_with(&qemu, &[probe], &[("QEMU_VERSION", "1")]).unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("qemu-aarch64 version ") && first.contains("(Debian "),
        "{stdout:?}"
    );
    assert!(!stdout.contains("\naarch64\n"), "the probe ran: {stdout:?}");
    // Without it, the probe runs.
    let (_, stdout, _) = run(&qemu, &[probe]).unwrap();
    assert_eq!(stdout, "aarch64\n");
}
