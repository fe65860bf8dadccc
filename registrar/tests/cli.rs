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

fn qus(mount: &Path) -> Command {
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
        "--mount",
        "QEMU_BIN_DIR",
        "Exit status",
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
    let m = fake_mount(&[("qemu-aarch64", AARCH64_F)]);
    qus(m.path())
        .args(["--targets", "arm64", "-p", "yes", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "qemu-aarch64  (already registered)",
        ));
    qus(m.path())
        .args(["--targets", "arm64", "-p", "yes"])
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
    qus(m.path())
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
