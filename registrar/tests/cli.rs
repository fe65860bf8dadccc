//! Every option and every error path of `qus-register`, without root: the
//! binfmt_misc mount is a temporary directory (`--mount`) laid out like the
//! real one. What needs the real kernel is in `kernel.rs`.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const AARCH64_LINE: &str = r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:";

const AARCH64_F: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

/// A directory that looks like a mounted binfmt_misc.
fn fake_mount(entries: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("register"), "").unwrap();
    fs::write(dir.path().join("status"), "enabled\n").unwrap();
    for (name, text) in entries {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// `qus-register` on `mount` with the script's explicit `-F -static`, so
/// the interpreter paths do not depend on what this host has in `/usr/bin`.
fn qus(mount: &Path) -> Command {
    let mut c = qus_auto(mount);
    c.arg("--qemu-suffix=-static");
    c
}

/// `qus-register` on `mount` without `-F`: each target's interpreter is
/// chosen from the files in `--qemu-path`.
fn qus_auto(mount: &Path) -> Command {
    let mut c = Command::cargo_bin("qus-register").unwrap();
    c.env_remove("QEMU_BIN_DIR")
        .env("HOST_ARCH", "x86_64")
        .arg("--mount")
        .arg(mount);
    c
}

fn register_file(mount: &TempDir) -> String {
    fs::read_to_string(mount.path().join("register")).unwrap()
}

#[test]
fn help_documents_every_option() {
    let mut c = Command::cargo_bin("qus-register").unwrap();
    let out = c
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for flag in [
        "--reset",
        "-Q, --qemu-path",
        "-F, --qemu-suffix",
        "-p, --persistent",
        "-c, --credential",
        "-g, --preserve-argv0",
        "-i, --ignore-family",
        "-s, --systemd",
        "-d, --debian",
        "-e, --exportdir",
        "--targets",
        "--uninstall",
        "--status",
        "--json",
        "--dry-run",
        "--replace",
        "--force",
        "--verify",
        "--mount",
        "--private",
        "--wait",
        "--check-health",
        "--compat",
        "QEMU_BIN_DIR",
        "Exit status",
        "125",
    ] {
        assert!(help.contains(flag), "`{flag}` missing from --help");
    }
    Command::cargo_bin("qus-register")
        .unwrap()
        .arg("--version")
        .assert()
        .success();
}

#[test]
fn usage_errors_exit_2_and_name_the_option_and_value() {
    let m = fake_mount(&[]);
    for (args, says) in [
        (&["-p", "maybe"][..], "maybe"),
        (&["--targets", "vax"], "invalid value `vax` for `--targets`"),
        (&["--targets", "arm64,vax"], "`vax`"),
        (
            &["--uninstall", "vax"],
            "invalid value `vax` for `--uninstall`",
        ),
        (&["--systemd", "vax"], "invalid value `vax` for `--systemd`"),
        (&["--targets", ","], "no target named"),
        (&["--json"], "--status"),
        (&["--status", "--reset"], "--reset"),
        (&["--verify", "--dry-run"], "--dry-run"),
        (&["--verify", "--uninstall", "all"], "--uninstall"),
        (&["--", "true"], "--private"),
        (&["--private", "--status", "--", "true"], "--status"),
        (&["--private", "--uninstall", "all"], "--uninstall"),
        (&["--private", "--dry-run"], "--dry-run"),
        (&["--check-health"], "needs `--health-file PATH`"),
        (&["--check-health", "--wait"], "--wait"),
        (&["--check-health", "--reset"], "--reset"),
        (&["--check-health", "--verify"], "--verify"),
    ] {
        qus(m.path())
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    assert_eq!(register_file(&m), "", "a usage error wrote to the kernel");
}

#[test]
fn missing_binfmt_support_says_how_to_load_it() {
    let dir = tempfile::tempdir().unwrap();
    qus(&dir.path().join("binfmt_misc"))
        .arg("--reset")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("No binfmt support in the kernel"))
        .stderr(predicate::str::contains("/sbin/modprobe binfmt_misc"));
}

#[test]
fn dry_run_prints_the_exact_lines_and_writes_nothing() {
    let m = fake_mount(&[]);
    let out = qus(m.path())
        .args(["--dry-run", "--targets", "arm64"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains(AARCH64_LINE), "{stdout}");
    assert!(stdout.contains("dry run: nothing was changed"));
    assert_eq!(register_file(&m), "");
}

#[test]
fn dry_run_of_everything_skips_the_host_family() {
    let m = fake_mount(&[]);
    let out = qus(m.path())
        .arg("--dry-run")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(out).unwrap();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("register")).count(),
        31
    );
    for own in ["i386", "i486", "x86_64"] {
        assert!(
            stdout.contains(&format!("skip        qemu-{own}  (host family")),
            "{stdout}"
        );
    }
    // HOST_ARCH decides the family, as in QEMU's script.
    let out = qus(m.path())
        .env("HOST_ARCH", "aarch64")
        .arg("--dry-run")
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("skip        qemu-arm  (host family"),
        "{stdout}"
    );
    assert!(stdout.contains(":qemu-x86_64:M::"), "{stdout}");
}

#[test]
fn identical_entry_is_reported_as_already_registered() {
    // `-p yes` opens the interpreter: one in a directory of the test's own,
    // so that the test does not depend on this host's `/usr/bin`.
    let q = tempfile::tempdir().unwrap();
    let interpreter = q.path().join("qemu-aarch64-static");
    fs::write(&interpreter, x86_64_elf(false, None)).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&interpreter, fs::Permissions::from_mode(0o755)).unwrap();
    let entry = AARCH64_F.replace(
        "/usr/bin/qemu-aarch64-static",
        interpreter.to_str().unwrap(),
    );
    let m = fake_mount(&[("qemu-aarch64", &entry)]);
    qus(m.path())
        .args(["--targets", "arm64", "-p", "yes", "--dry-run", "-Q"])
        .arg(q.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "qemu-aarch64  (already registered)",
        ));
    qus(m.path())
        .args(["--targets", "arm64", "-p", "yes", "-Q"])
        .arg(q.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("unchanged   qemu-aarch64"));
    assert_eq!(register_file(&m), "");
}

#[test]
fn different_entry_is_reported_field_by_field_and_kept() {
    let m = fake_mount(&[("qemu-aarch64", AARCH64_F)]);
    qus(m.path())
        .args(["--targets", "arm64", "-Q", "/opt/qemu"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "interpreter: `/usr/bin/qemu-aarch64-static` -> `/opt/qemu/qemu-aarch64-static`",
        ))
        .stderr(predicate::str::contains("flags: `F` -> ``"))
        .stderr(predicate::str::contains("--replace"));
    assert_eq!(
        fs::read_to_string(m.path().join("qemu-aarch64")).unwrap(),
        AARCH64_F
    );
}

#[test]
fn persistent_without_interpreters_names_the_path_and_writes_nothing() {
    let m = fake_mount(&[("qemu-s390x", &AARCH64_F.replace("aarch64", "s390x"))]);
    qus(m.path())
        .args(["--reset", "-p", "yes", "-Q", "/nonexistent"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "`/nonexistent/qemu-aarch64-static` does not exist",
        ))
        .stderr(predicate::str::contains("cannot use `-p yes`"))
        .stderr(predicate::str::contains("nothing was changed"));
    assert_eq!(register_file(&m), "");
    // Not even the reset happened.
    assert!(
        fs::read_to_string(m.path().join("qemu-s390x"))
            .unwrap()
            .starts_with("enabled")
    );
}

#[test]
fn persistent_refuses_non_executable_and_non_elf_interpreters() {
    let m = fake_mount(&[]);
    let dir = tempfile::tempdir().unwrap();
    let interp = dir.path().join("qemu-aarch64-static");
    fs::write(&interp, "#!/bin/sh\n").unwrap();
    let qemu_path = dir.path().to_str().unwrap();
    qus(m.path())
        .args(["--targets", "arm64", "-p", "yes", "-Q", qemu_path])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not executable"));
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&interp, fs::Permissions::from_mode(0o755)).unwrap();
    qus(m.path())
        .args(["--targets", "arm64", "-p", "yes", "-Q", qemu_path])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot be checked"));
    assert_eq!(register_file(&m), "");
}

#[test]
fn host_family_target_is_refused_unless_forced() {
    let m = fake_mount(&[]);
    qus(m.path())
        .args(["--targets", "i386"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("host's own family"));
    qus(m.path())
        .args(["--targets", "i386", "--force", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(":qemu-i386:M::"));
}

#[test]
fn a_registration_the_kernel_does_not_confirm_fails_and_is_rolled_back() {
    // A plain directory accepts the write to `register` but grows no entry:
    // the readback check must catch it, name the target, and undo the run.
    let m = fake_mount(&[]);
    qus(m.path())
        .args(["--targets", "arm64"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "failed to find `qemu-aarch64` after registering it",
        ))
        .stderr(predicate::str::contains("nothing was changed"));
}

#[test]
fn status_table_and_json() {
    let python = "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n";
    let m = fake_mount(&[("qemu-aarch64", AARCH64_F), ("python3.11", python)]);
    qus(m.path())
        .arg("--status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "qemu-aarch64         enabled   F      /usr/bin/qemu-aarch64-static",
        ))
        .stdout(predicate::str::contains(
            "other entries (not ours, never touched): python3.11",
        ));
    let out = qus(m.path())
        .args(["--status", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        doc["emulators"],
        serde_json::json!(["python3.11", "qemu-aarch64"])
    );
    assert_eq!(
        doc["supported"],
        serde_json::json!(["linux/amd64", "linux/386", "linux/arm64"])
    );
    assert_eq!(doc["entries"].as_array().unwrap().len(), 1);
    let e = &doc["entries"][0];
    assert_eq!(e["name"], "qemu-aarch64");
    assert_eq!(e["interpreter"], "/usr/bin/qemu-aarch64-static");
    assert_eq!(e["flags"], "F");
    assert_eq!(e["enabled"], true);
    assert_eq!(e["offset"], 0);
    assert_eq!(e["magic"], "7f454c460201010000000000000000000200b700");
    assert_eq!(e["mask"], "ffffffffffffff00fffffffffffffffffeffffff");
}

#[test]
fn status_names_an_unreadable_entry() {
    let m = fake_mount(&[("qemu-bad", "enabled\nflags: Z\n")]);
    qus(m.path())
        .arg("--status")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("qemu-bad"))
        .stderr(predicate::str::contains("unknown flag letter `Z`"));
}

#[test]
fn systemd_export_writes_qemus_files() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("binfmt.d");
    qus(Path::new("/nonexistent"))
        .args(["--systemd", "ALL", "-e"])
        .arg(&dir)
        .assert()
        .success();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 31);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("qemu-") && n.ends_with(".conf"))
    );
    assert_eq!(
        fs::read_to_string(dir.join("qemu-aarch64.conf")).unwrap(),
        format!("{AARCH64_LINE}\n")
    );

    let one = out.path().join("one");
    qus(Path::new("/nonexistent"))
        .args(["--systemd", "arm64", "-p", "yes", "-e"])
        .arg(&one)
        .assert()
        .success();
    assert_eq!(fs::read_dir(&one).unwrap().count(), 1);
    assert_eq!(
        fs::read_to_string(one.join("qemu-aarch64.conf")).unwrap(),
        format!("{AARCH64_LINE}F\n")
    );
}

#[test]
fn debian_export_writes_update_binfmts_templates() {
    let out = tempfile::tempdir().unwrap();
    qus(Path::new("/nonexistent"))
        .args(["--debian", "--targets", "arm64", "-c", "yes", "-e"])
        .arg(out.path())
        .assert()
        .success();
    let expected = "package qemu-aarch64\n\
        interpreter /usr/bin/qemu-aarch64-static\n\
        magic \\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00\n\
        mask \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff\n\
        credentials yes\n\
        preserve no\n\
        fix_binary no\n";
    assert_eq!(
        fs::read_to_string(out.path().join("qemu-aarch64")).unwrap(),
        expected
    );
}

#[test]
fn uninstall_on_a_fake_mount_only_writes_qemu_entries() {
    let python = "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n";
    let m = fake_mount(&[("qemu-aarch64", AARCH64_F), ("python3.11", python)]);
    qus(m.path())
        .args(["--uninstall", "all"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed     qemu-aarch64"));
    assert!(
        fs::read_to_string(m.path().join("qemu-aarch64"))
            .unwrap()
            .starts_with("-1")
    );
    assert_eq!(
        fs::read_to_string(m.path().join("python3.11")).unwrap(),
        python
    );
    assert_eq!(
        fs::read_to_string(m.path().join("status")).unwrap(),
        "enabled\n"
    );
}

#[test]
fn credential_prints_the_setuid_risk() {
    let m = fake_mount(&[]);
    qus(m.path())
        .args(["--dry-run", "--targets", "arm64", "-c", "yes"])
        .assert()
        .success()
        .stderr(predicate::str::contains("setuid-root"))
        .stdout(predicate::str::contains("qemu-aarch64-static:OC"));
}

#[test]
fn flags_are_written_in_qemus_order() {
    let m = fake_mount(&[]);
    qus(m.path())
        .args(["--dry-run", "--targets", "s390x", "-c", "yes", "-g", "yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("/usr/bin/qemu-s390x-static:OCP\n"));
    qus_auto(m.path())
        .args([
            "--dry-run",
            "--targets",
            "s390x",
            "--preserve-argv0",
            "yes",
            "-F",
            "",
            "-Q",
            "/opt/q",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(":/opt/q/qemu-s390x:P\n"));
}

#[test]
fn ignore_family_adds_the_family_but_never_the_host_itself() {
    let m = fake_mount(&[]);
    let out = qus(m.path())
        .env("HOST_ARCH", "aarch64")
        .args(["--dry-run", "-i", "yes"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(out).unwrap();
    assert!(stdout.contains(":qemu-arm:M::"), "{stdout}");
    assert!(!stdout.contains(":qemu-aarch64:M::"), "{stdout}");
    assert!(
        stdout.contains("skip        qemu-aarch64  (host family"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------
// The interpreter choice without `-F` (Debian's `qemu-user` since QEMU 9.1).
// ---------------------------------------------------------------------------

/// An x86-64 ELF executable: a header and one program header, `PT_LOAD`
/// for a static file or `PT_INTERP` naming a loader for a dynamic one;
/// `ET_DYN` with `PT_LOAD` only is static-pie, as Debian's `qemu-user`
/// binaries are since QEMU 9.1. Written here, independently of the code
/// under test.
fn x86_64_elf(pie: bool, loader: Option<&str>) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4..7].copy_from_slice(&[2, 1, 1]);
    f[16..18].copy_from_slice(&(if pie { 3u16 } else { 2u16 }).to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let data = loader.map_or_else(|| b"code".to_vec(), |l| format!("{l}\0").into_bytes());
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&(if loader.is_some() { 3u32 } else { 1 }).to_le_bytes());
    ph[8..16].copy_from_slice(&120u64.to_le_bytes());
    ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    f.extend(ph);
    f.extend(data);
    f
}

/// A `--qemu-path` directory in the new Debian layout for aarch64 (a
/// static-pie `qemu-aarch64`, no `-static` file), a dynamic `qemu-arm`, the
/// old layout for riscv64 (`qemu-riscv64-static`), and nothing for s390x.
fn mixed_qemu_dir() -> TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("qemu-aarch64", x86_64_elf(true, None)),
        (
            "qemu-arm",
            x86_64_elf(true, Some("/lib64/ld-linux-x86-64.so.2")),
        ),
        ("qemu-riscv64-static", x86_64_elf(false, None)),
        // A plain one next to a `-static` one: the `-static` one wins.
        ("qemu-riscv64", x86_64_elf(true, None)),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Output with the temporary directory replaced by `<Q>`.
fn redact(output: &[u8], dir: &Path) -> String {
    String::from_utf8_lossy(output).replace(dir.to_str().unwrap(), "<Q>")
}

#[test]
fn without_suffix_dry_run_says_which_interpreter_and_why() {
    let m = fake_mount(&[]);
    let q = mixed_qemu_dir();
    let out = qus_auto(m.path())
        .args(["--dry-run", "--targets", "arm64,riscv64,s390x,arm"])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let stdout = redact(&out.get_output().stdout, q.path());
    insta::assert_snapshot!(stdout);
    // The register line is QEMU's for the chosen path, byte for byte.
    assert!(
        stdout.contains(&AARCH64_LINE.replace("/usr/bin/qemu-aarch64-static", "<Q>/qemu-aarch64")),
        "{stdout}"
    );
    assert_eq!(register_file(&m), "");
}

#[test]
fn persistent_accepts_a_static_pie_qemu_cpu_and_names_what_it_passed_over() {
    let m = fake_mount(&[]);
    let q = mixed_qemu_dir();
    // aarch64 and riscv64 are accepted; arm's only candidate is dynamic.
    let out = qus_auto(m.path())
        .args(["--dry-run", "-p", "yes", "--targets", "arm64,riscv64"])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let stdout = redact(&out.get_output().stdout, q.path());
    assert!(stdout.contains(":<Q>/qemu-aarch64:F\n"), "{stdout}");
    assert!(stdout.contains(":<Q>/qemu-riscv64-static:F\n"), "{stdout}");
    let out = qus_auto(m.path())
        .args(["--dry-run", "-p", "yes", "--targets", "arm64,arm,s390x"])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .code(1);
    let stderr = redact(&out.get_output().stderr, q.path());
    for says in [
        "refused `qemu-arm`: interpreter `<Q>/qemu-arm-static` does not exist",
        "note: `<Q>/qemu-arm` was passed over: it is dynamically linked (loader `/lib64/ld-linux-x86-64.so.2`)",
        "refused `qemu-s390x`: interpreter `<Q>/qemu-s390x-static` does not exist",
        "note: `<Q>/qemu-s390x` does not exist either",
        "nothing was changed",
    ] {
        assert!(stderr.contains(says), "`{says}` missing from:\n{stderr}");
    }
    assert!(!stderr.contains("qemu-aarch64"), "{stderr}");
}

#[test]
fn an_explicit_suffix_keeps_the_scripts_exact_behaviour() {
    let m = fake_mount(&[]);
    let q = mixed_qemu_dir();
    // `-F -static`: the missing `qemu-aarch64-static` is refused, the
    // static-pie `qemu-aarch64` next to it is not considered.
    let out = qus_auto(m.path())
        .args([
            "--dry-run",
            "-p",
            "yes",
            "--targets",
            "arm64",
            "-F",
            "-static",
        ])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .code(1);
    let stderr = redact(&out.get_output().stderr, q.path());
    assert!(
        stderr.contains("`<Q>/qemu-aarch64-static` does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("note:"), "{stderr}");
    // `-F ""`: the dynamic `qemu-arm` is the script's path, and refused.
    let out = qus_auto(m.path())
        .args(["--dry-run", "-p", "yes", "--targets", "arm", "-F", ""])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .code(1);
    let stderr = redact(&out.get_output().stderr, q.path());
    assert!(
        stderr.contains("`<Q>/qemu-arm` is dynamically linked"),
        "{stderr}"
    );
    // No interpreter lines in a dry run with an explicit suffix.
    let out = qus_auto(m.path())
        .args(["--dry-run", "--targets", "arm64", "-F", ""])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let stdout = redact(&out.get_output().stdout, q.path());
    assert!(!stdout.contains("interpreter "), "{stdout}");
    assert!(stdout.contains(":<Q>/qemu-aarch64:\n"), "{stdout}");
}

#[test]
fn status_says_which_interpreter_a_registration_would_use() {
    let m = fake_mount(&[]);
    let q = mixed_qemu_dir();
    let out = qus_auto(m.path())
        .arg("--status")
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let stdout = redact(&out.get_output().stdout, q.path());
    for says in [
        "interpreters qemu-<cpu>-static (found): riscv64\n",
        "interpreters qemu-<cpu> (static, no -static file): aarch64\n",
        "note: `<Q>/qemu-arm` was passed over: it is dynamically linked",
    ] {
        assert!(stdout.contains(says), "`{says}` missing from:\n{stdout}");
    }
    let out = qus_auto(m.path())
        .args(["--status", "--json"])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let doc: serde_json::Value =
        serde_json::from_str(&redact(&out.get_output().stdout, q.path())).unwrap();
    let list = doc["interpreters"].as_array().unwrap();
    assert_eq!(list.len(), 34);
    let of = |t: &str| list.iter().find(|i| i["target"] == t).unwrap().clone();
    assert_eq!(
        of("aarch64"),
        serde_json::json!({"target": "aarch64", "path": "<Q>/qemu-aarch64", "reason": "plain", "missing": "<Q>/qemu-aarch64-static"})
    );
    assert_eq!(of("riscv64")["reason"], "static-suffix");
    assert_eq!(of("arm")["reason"], "fallback");
    assert_eq!(of("arm")["passed_over"], "<Q>/qemu-arm");
    assert_eq!(of("i486")["path"], "<Q>/qemu-i386-static");
}

#[test]
fn exports_choose_the_interpreter_the_same_way() {
    let q = mixed_qemu_dir();
    let out = tempfile::tempdir().unwrap();
    qus_auto(Path::new("/nonexistent"))
        .args(["--systemd", "ALL", "-p", "yes", "-e"])
        .arg(out.path())
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let read = |cpu: &str| {
        redact(
            &fs::read(out.path().join(format!("qemu-{cpu}.conf"))).unwrap(),
            q.path(),
        )
    };
    assert_eq!(
        read("aarch64"),
        format!(
            "{}F\n",
            AARCH64_LINE.replace("/usr/bin/qemu-aarch64-static", "<Q>/qemu-aarch64")
        )
    );
    assert!(read("riscv64").ends_with(":<Q>/qemu-riscv64-static:F\n"));
    assert!(read("arm").ends_with(":<Q>/qemu-arm-static:F\n"));
    let deb = tempfile::tempdir().unwrap();
    qus_auto(Path::new("/nonexistent"))
        .args(["--debian", "--targets", "arm64", "-e"])
        .arg(deb.path())
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let text = redact(
        &fs::read(deb.path().join("qemu-aarch64")).unwrap(),
        q.path(),
    );
    assert!(text.contains("\ninterpreter <Q>/qemu-aarch64\n"), "{text}");
    // A dry run of an export says which was chosen, too.
    let dry = qus_auto(Path::new("/nonexistent"))
        .args(["--systemd", "aarch64", "--dry-run", "-e", "/x"])
        .arg("-Q")
        .arg(q.path())
        .assert()
        .success();
    let stdout = redact(&dry.get_output().stdout, q.path());
    assert!(
        stdout.starts_with("interpreter qemu-aarch64  `<Q>/qemu-aarch64` (statically linked;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would write /x/qemu-aarch64.conf"),
        "{stdout}"
    );
}

#[test]
fn a_closed_stdout_keeps_the_errors_and_the_exit_status() {
    // `qus-register ... | head -0`: the reader is gone before the report is
    // written. A failed run must still exit 1 with its errors on stderr.
    // The removal of `qemu-s390x` puts a line in the report before the
    // registration fails (a plain directory grows no entry).
    let m = fake_mount(&[("qemu-s390x", &AARCH64_F.replace("aarch64", "s390x"))]);
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("qus-register"))
        .env_remove("QEMU_BIN_DIR")
        .env("HOST_ARCH", "x86_64")
        .arg("--mount")
        .arg(m.path())
        .args(["-F", "-static", "--reset", "--targets", "arm64"])
        .stdout(std::process::Stdio::from(writer))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("error: `qemu-aarch64` failed"),
        "stderr:\n{stderr}"
    );
    // A plain file is no entry: the rollback cannot be checked, and says so.
    assert!(stderr.contains("rollback incomplete"), "stderr:\n{stderr}");
}

#[test]
fn check_health_reads_the_health_file_and_nothing_else() {
    // The mount has no `register`: anything but reading the health file
    // would fail with "No binfmt support".
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("binfmt_misc");
    let health = dir.path().join("ready");
    let check = || {
        let mut c = Command::cargo_bin("qus-register").unwrap();
        c.env_remove("QUS_INTERVAL")
            .env("QUS_BINFMT_MOUNT", &mount)
            .env("QUS_HEALTH_FILE", &health)
            .arg("--check-health");
        c
    };
    check()
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("not healthy: the health file"))
        .stderr(predicate::str::contains("does not exist"));
    fs::write(&health, "qemu-aarch64\nqemu-riscv64\n").unwrap();
    check()
        .assert()
        .success()
        .stdout("qemu-aarch64\nqemu-riscv64\n")
        .stderr("");
    // Written 90 s ago: stale at the default 10 s interval (80 s), fresh
    // at `--interval 20` (100 s).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(90);
    fs::File::options()
        .write(true)
        .open(&health)
        .unwrap()
        .set_modified(old)
        .unwrap();
    check()
        .assert()
        .code(1)
        .stderr(predicate::str::contains("more than 80 s"));
    check().args(["--interval", "20"]).assert().success();
    assert!(!mount.exists(), "the check touched the mount");
}
