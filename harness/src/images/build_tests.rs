//! Unit tests of `build.rs`: the host family left out of `latest`, option
//! checks, a package for another architecture, the registrar images'
//! contexts (no engine, no network).

use super::*;

#[test]
fn the_x86_family_is_left_out_of_latest() {
    for name in ["i386", "x86_64"] {
        assert!(is_host_family(name, "i386"), "{name}");
    }
    for name in ["aarch64", "arm", "cris", "nios2", "xtensaeb"] {
        assert!(!is_host_family(name, "i386"), "{name}");
    }
    assert!(is_host_family("aarch64", "arm"));
    assert!(is_host_family("arm", "arm"));
}

#[test]
fn options_are_checked_before_any_work() {
    let bad_repo = BuildOptions {
        repo: "Qus/X".into(),
        ..BuildOptions::default()
    };
    assert!(validate(&bad_repo).unwrap_err().is_usage());
    let bad_version = BuildOptions {
        deb: DebSource::Apt {
            version: Some("7.2; rm -rf /".into()),
            suite: None,
        },
        ..BuildOptions::default()
    };
    assert!(validate(&bad_version).unwrap_err().is_usage());
    for good in ["11.1", "7.2.0", "1:10.0.2+ds-1~bpo12+1"] {
        let options = BuildOptions {
            deb: DebSource::Apt {
                version: Some(good.into()),
                suite: Some(Suite::Sid),
            },
            ..BuildOptions::default()
        };
        assert!(validate(&options).is_ok(), "{good}");
    }
    let no_jobs = BuildOptions {
        jobs: 0,
        ..BuildOptions::default()
    };
    assert!(validate(&no_jobs).unwrap_err().is_usage());
    assert!(validate(&BuildOptions::default()).is_ok());
}

#[test]
fn a_package_for_another_architecture_is_refused() {
    use crate::images::testdeb::{FakeDeb, elf_static};
    let deb = FakeDeb::new("qemu-user", "1:11.1.3+ds-1")
        .architecture("arm64")
        .file("usr/bin/qemu-x86_64", &elf_static(183))
        .build();
    let work = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime
        .block_on(unpack_for_host(&deb.path, work.path(), "x86_64"))
        .unwrap_err();
    assert!(
        err.to_string().ends_with(
            "it is built for `arm64` and this host is `amd64`: its emulators would not run here"
        ),
        "{err}"
    );
    let unpacked = runtime
        .block_on(unpack_for_host(
            &deb.path,
            &work.path().join("2"),
            "aarch64",
        ))
        .unwrap();
    assert_eq!(unpacked.emulators.len(), 1);
}

#[test]
fn registrar_contexts_hold_the_symlink_and_the_emulators() {
    let work = tempfile::tempdir().unwrap();
    let emulator_path = work.path().join("qemu-aarch64-static");
    std::fs::write(&emulator_path, b"emu").unwrap();
    let emulator = Emulator {
        name: "aarch64".into(),
        path: emulator_path,
        package_path: "usr/bin/qemu-aarch64".into(),
    };
    let registrar = Registrar {
        bytes: b"reg".to_vec(),
        sha256: String::new(),
        version: "0.1.0".into(),
    };
    let dir = work.path().join("ctx");
    write_registrar_context(&dir, "FROM scratch\n", &registrar, &[&emulator]).unwrap();
    assert_eq!(
        std::fs::read_link(dir.join("rootfs/register")).unwrap(),
        Path::new("usr/bin/qus-register")
    );
    assert_eq!(std::fs::read(dir.join("rootfs/register")).unwrap(), b"reg");
    assert_eq!(
        std::fs::read(dir.join("rootfs/usr/bin/qemu-aarch64-static")).unwrap(),
        b"emu"
    );

    // `binfmt`: the same `rootfs/`, plus the relative entrypoint link.
    let binfmt = work.path().join("binfmt");
    write_binfmt_context(&binfmt, &registrar, &[&emulator]).unwrap();
    assert_eq!(
        std::fs::read_link(binfmt.join("binfmt/usr/bin/binfmt")).unwrap(),
        Path::new("qus-register")
    );
    let files = |root: &Path| {
        let mut all = Vec::new();
        for entry in [
            "register",
            "usr/bin/qus-register",
            "usr/bin/qemu-aarch64-static",
        ] {
            all.push(std::fs::read(root.join(entry)).unwrap());
        }
        all
    };
    assert_eq!(files(&dir.join("rootfs")), files(&binfmt.join("rootfs")));
    assert_eq!(
        std::fs::read_to_string(binfmt.join("Containerfile")).unwrap(),
        containerfile::BINFMT
    );
}
