//! Images for another host (`images build --host-arch aarch64`) and the
//! multi-platform names over every host (`images index`), against a real
//! Docker Engine, Debian's arm64 QEMU package, Debian's `docker-registry`
//! and `skopeo`, on an x86_64 host: the aarch64 images run here under
//! emulation (Debian's `qemu-aarch64-static`, registered with `F` by a guard
//! that restores the host's binfmt_misc entries).
//!
//! Compiled only with `--features docker`. The trials need Docker, root,
//! an x86_64 host, Debian's `qemu-user-static`, `docker-registry`,
//! `skopeo`, `file`, `sha256sum` and Debian's archive; without them every
//! trial reports *ignored* with the reason, and with `QUS_REQUIRE_ENGINES=1`
//! that is a failure instead. The x86_64 and aarch64 images are built once
//! under the test repository `qus-test-hosts/qemu-user-static` (and its
//! `-aarch64`), pushed to a registry the trials start on a free loopback
//! port; every image made or pulled is removed at the end, with the
//! registry and its storage. The cross-compiled registrar stays in the
//! shared cache (`/var/cache/qus/registrar`, keyed by recipe). Writes the
//! host's binfmt_misc registry: run under `flock /tmp/qus-binfmt.lock`.

#![cfg(feature = "docker")]

#[path = "common/gated.rs"]
mod gated;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use qus_harness::images::{
    self, BuildOptions, BuildReport, DebSource, ImagesEvent, IndexOptions, IndexReport, Suite,
};
use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};
use qus_registrar::entry::{self, Flags};
use qus_registrar::targets;

/// Repository of this machine's images; the aarch64 host's are in
/// `<REPO>-aarch64`.
const REPO: &str = "qus-test-hosts/qemu-user-static";

/// The aarch64 host's repository.
const ARM_REPO: &str = "qus-test-hosts/qemu-user-static-aarch64";

type Body = fn() -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    let tests: &[(&str, Body)] = &[
        (
            "aarch64_images_hold_arm64_static_binaries_outside_its_family",
            aarch64_images_hold_arm64_static_binaries_outside_its_family,
        ),
        (
            "aarch64_latest_plans_for_an_aarch64_host_under_emulation",
            aarch64_latest_plans_for_an_aarch64_host_under_emulation,
        ),
        (
            "index_resolves_each_platform_to_its_hosts_image",
            index_resolves_each_platform_to_its_hosts_image,
        ),
    ];
    let trials = tests
        .iter()
        .map(|&(name, body)| gated::trial(name, prerequisites, move |()| body()))
        .collect();
    // One engine, one binfmt_misc registry: one trial at a time.
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    cleanup();
    conclusion.exit();
}

/// `Ok` when the trials can run here, else why not (checked once).
fn prerequisites() -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if !rustix::process::geteuid().is_root() {
                return Err("needs root (binfmt_misc)".into());
            }
            let machine = qus_registrar::binfmt::HostFacts::read(None).machine;
            if machine != "x86_64" {
                return Err(format!("runs on an x86_64 host, not `{machine}`"));
            }
            for tool in [
                "docker",
                "docker-registry",
                "skopeo",
                "dpkg-deb",
                "apt-get",
                "sha256sum",
                "file",
                "qemu-aarch64-static",
            ] {
                if which::which(tool).is_err() {
                    return Err(format!("`{tool}` is not installed"));
                }
            }
            let binfmt = Binfmt::default();
            match binfmt.state() {
                MountState::Missing => return Err("the kernel has no binfmt_misc".into()),
                MountState::NotMounted => binfmt
                    .mount()
                    .map_err(|e| format!("cannot mount binfmt_misc: {e}"))?,
                MountState::Mounted => {}
            }
            let out = docker(&["version", "--format", "{{.Server.Version}}"]);
            if !out.status.success() {
                return Err(format!("docker is unavailable: {}", stderr(&out)));
            }
            Ok(())
        })
        .clone()
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker starts")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Images pulled or built here, removed at the end.
fn made() -> &'static Mutex<BTreeSet<String>> {
    static MADE: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    MADE.get_or_init(Mutex::default)
}

fn remember(report: &BuildReport) {
    made()
        .lock()
        .unwrap()
        .extend(report.images.iter().flat_map(|i| i.tags.clone()));
}

fn cleanup() {
    let images: Vec<String> = made().lock().unwrap().iter().cloned().collect();
    for chunk in images.chunks(100) {
        let mut args = vec!["rmi", "--force"];
        args.extend(chunk.iter().map(String::as_str));
        let out = docker(&args);
        if !out.status.success() && !stderr(&out).contains("No such image") {
            eprintln!("warning: failed to remove images: {}", stderr(&out));
        }
    }
    if let Some(Ok(built)) = BUILT.get() {
        let _ = std::fs::remove_dir_all(&built.output);
    }
    if let Some(registry) = REGISTRY.get()
        && let Ok(mut registry) = registry.lock()
        && let Some(mut running) = registry.take()
    {
        let _ = running.child.kill();
        let _ = running.child.wait();
        let _ = std::fs::remove_dir_all(&running.dir);
    }
}

/// The images of both hosts and their artifacts, built once.
struct Built {
    native: BuildReport,
    arm: BuildReport,
    output: PathBuf,
}

static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();

fn built() -> Result<&'static Built, Failed> {
    BUILT
        .get_or_init(|| {
            let output =
                std::env::temp_dir().join(format!("qus-hosts-test-{}", std::process::id()));
            let build = |host_arch: Option<&str>| {
                // Both hosts' QEMU from one suite, so they share the version
                // tags on any distribution (an aarch64 host's would default to
                // this Debian release's suite, and Ubuntu has none).
                let options = BuildOptions {
                    repo: REPO.to_owned(),
                    host_arch: host_arch.map(str::to_owned),
                    deb: DebSource::Apt {
                        version: None,
                        suite: Some(Suite::Bookworm),
                    },
                    output_dir: Some(output.clone()),
                    ..BuildOptions::default()
                };
                let started = Instant::now();
                let result = images::build(&options, &|_: &ImagesEvent| {});
                eprintln!(
                    "  images build {}: {:.1}s",
                    host_arch.unwrap_or("x86_64"),
                    started.elapsed().as_secs_f64()
                );
                let report = result.map_err(|e| chain(&e))?;
                remember(&report);
                Ok::<_, String>(report)
            };
            let native = build(None)?;
            let arm = build(Some("arm64"))?;
            Ok(Built {
                native,
                arm,
                output,
            })
        })
        .as_ref()
        .map_err(|e| Failed::from(format!("the build failed: {e}")))
}

/// `file`'s description of `path`.
fn describe(path: &Path) -> Result<String, Failed> {
    let out = Command::new("file").arg("-b").arg(path).output()?;
    Ok(stdout(&out).trim().to_owned())
}

/// The regular file `path` of `image`, copied out into `dir`.
fn copy_out(image: &str, path: &str, dir: &Path) -> Result<PathBuf, Failed> {
    let out = docker(&["create", "--platform", "linux/arm64", image]);
    check(
        out.status.success(),
        format!("create {image}: {}", stderr(&out)),
    )?;
    let id = stdout(&out).trim().to_owned();
    let target = dir.join(Path::new(path).file_name().unwrap());
    let copied = docker(&["cp", &format!("{id}:{path}"), target.to_str().unwrap()]);
    docker(&["rm", &id]);
    check(
        copied.status.success(),
        format!("cp {path}: {}", stderr(&copied)),
    )?;
    Ok(target)
}

fn aarch64_images_hold_arm64_static_binaries_outside_its_family() -> Result<(), Failed> {
    let built = built()?;
    let arm = &built.arm;
    check(
        arm.host_arch == "aarch64"
            && arm.repo == ARM_REPO
            && arm.platform.as_deref() == Some("linux/arm64"),
        format!(
            "host {} repo {} platform {:?}",
            arm.host_arch, arm.repo, arm.platform
        ),
    )?;
    // The same tags as this host's, `<from>` = aarch64.
    let tags = |report: &BuildReport| -> BTreeSet<String> {
        report
            .images
            .iter()
            .flat_map(|i| i.tags.iter())
            .map(|t| t.rsplit_once(':').unwrap().1.to_owned())
            .collect()
    };
    let (arm_tags, native_tags) = (tags(arm), tags(&built.native));
    for tag in [
        "latest",
        "register",
        "binfmt",
        "x86_64",
        "aarch64-x86_64",
        "aarch64-i386",
        "aarch64-riscv64",
    ] {
        check(
            arm_tags.contains(tag),
            format!("aarch64 host has no `{tag}`: {arm_tags:?}"),
        )?;
    }
    // As on this host (`x86_64-i386`, no `x86_64-x86_64`): an image for
    // every emulator of the package but the host's own CPU's.
    for tag in ["aarch64", "aarch64-aarch64"] {
        check(!arm_tags.contains(tag), format!("aarch64 host has `{tag}`"))?;
    }
    check(
        arm_tags.contains("aarch64-arm"),
        "aarch64 host has no aarch64-arm",
    )?;
    check(
        native_tags.contains("x86_64-aarch64"),
        "x86_64 host has no x86_64-aarch64",
    )?;
    // `latest`: every emulator outside the aarch64 family.
    let foreign: BTreeSet<&str> = arm.latest_emulators.iter().map(String::as_str).collect();
    for name in ["x86_64", "i386", "riscv64", "s390x", "aarch64_be", "armeb"] {
        check(
            foreign.contains(name),
            format!("latest lacks qemu-{name}: {foreign:?}"),
        )?;
    }
    for name in ["aarch64", "arm"] {
        check(!foreign.contains(name), format!("latest holds qemu-{name}"))?;
    }
    // Its registrar and an emulator are arm64 static executables.
    let scratch = tempfile::tempdir()?;
    let latest = format!("{ARM_REPO}:latest");
    for path in ["/usr/bin/qus-register", "/usr/bin/qemu-x86_64-static"] {
        let file = copy_out(&latest, path, scratch.path())?;
        let what = describe(&file)?;
        check(
            what.contains("ARM aarch64") && what.contains("static"),
            format!("{path} in {latest}: {what}"),
        )?;
    }
    // Release tarballs of both hosts, under one SHA256SUMS that verifies.
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&built.output)
        .output()?;
    check(
        sums.status.success(),
        format!("sha256sum -c: {}", stdout(&sums)),
    )?;
    let listed = std::fs::read_to_string(built.output.join("SHA256SUMS"))?;
    for name in [
        "aarch64_qemu-x86_64-static.tar.gz",
        "x86_64_qemu-aarch64-static.tar.gz",
        "qemu-aarch64-static",
    ] {
        check(
            listed.lines().any(|l| l.ends_with(&format!("  {name}"))),
            format!("SHA256SUMS does not list {name}"),
        )?;
    }
    let out = Command::new("tar")
        .args(["-xzf", "aarch64_qemu-x86_64-static.tar.gz", "-C"])
        .arg(scratch.path())
        .current_dir(&built.output)
        .output()?;
    check(out.status.success(), stderr(&out))?;
    let what = describe(&scratch.path().join("qemu-x86_64-static"))?;
    check(
        what.contains("ARM aarch64") && what.contains("static"),
        format!("aarch64_qemu-x86_64-static.tar.gz holds {what}"),
    )
}

/// Registers Debian's `qemu-aarch64-static` with `F` for the lifetime of
/// the guard; restores the host's entries on drop.
struct Handlers {
    binfmt: Binfmt,
    snapshot: Snapshot,
}

impl Handlers {
    fn aarch64() -> Result<Self, Failed> {
        let binfmt = Binfmt::default();
        let guard = Self {
            snapshot: binfmt.snapshot().map_err(|e| chain(&e))?,
            binfmt,
        };
        let target = targets::find("aarch64").expect("aarch64 is a target");
        let name = target.entry_name();
        if guard.binfmt.read(&name).map_err(|e| chain(&e))?.is_some() {
            guard.binfmt.remove(&name).map_err(|e| chain(&e))?;
        }
        let interpreter = entry::interpreter_path("/usr/bin", target, "-static");
        let line = entry::register_line(target, &interpreter, Flags::requested(false, true, false));
        guard.binfmt.register(&name, &line).map_err(|e| chain(&e))?;
        Ok(guard)
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        if let Err(err) = self.binfmt.restore(&self.snapshot) {
            eprintln!("error: failed to restore the host's binfmt_misc entries: {err}");
        }
    }
}

/// The targets of the `register` lines of a `--dry-run` plan.
fn planned(plan: &str) -> BTreeSet<String> {
    plan.lines()
        .filter_map(|l| l.strip_prefix("register    :qemu-"))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The `register` lines of a plan, sorted.
fn register_lines(plan: &str) -> BTreeSet<String> {
    plan.lines()
        .filter(|l| l.starts_with("register    :"))
        .map(str::to_owned)
        .collect()
}

/// Every file of `dir` with its bytes, sorted by name.
fn files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Failed> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files.push((
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path())?,
        ));
    }
    files.sort();
    Ok(files)
}

fn aarch64_latest_plans_for_an_aarch64_host_under_emulation() -> Result<(), Failed> {
    let built = built()?;
    let arm_latest = format!("{}:latest", built.arm.repo);
    let native_latest = format!("{}:latest", built.native.repo);
    // Neither image sets HOST_ARCH: the emulated one must find its host.
    for image in [&arm_latest, &native_latest] {
        let env = docker(&["image", "inspect", "-f", "{{json .Config.Env}}", image]);
        check(
            !stdout(&env).contains("HOST_ARCH"),
            format!("{image} sets HOST_ARCH: {}", stdout(&env)),
        )?;
    }
    let exported = tempfile::tempdir()?;
    let (emulated, expected) = (exported.path().join("arm"), exported.path().join("ref"));
    std::fs::create_dir_all(&emulated)?;
    std::fs::create_dir_all(&expected)?;
    let handlers = Handlers::aarch64()?;
    let started = Instant::now();
    let plan = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &arm_latest,
        "--dry-run",
        "--reset",
        "-p",
        "yes",
    ]);
    let mount = format!("{}:/out", emulated.display());
    let export = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "-v",
        &mount,
        &arm_latest,
        "--systemd",
        "ALL",
        "--exportdir",
        "/out",
    ]);
    // Its qemu-x86_64-static (arm64, emulated) runs an x86_64 probe.
    let probe = images::workspace_root().join("fixtures/probes/bin/x86_64");
    let probe_mount = format!("{}:/probe:ro", probe.display());
    let probed = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "-v",
        &probe_mount,
        "--entrypoint",
        "/usr/bin/qemu-x86_64-static",
        &arm_latest,
        "/probe",
    ]);
    let version = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &arm_latest,
        "--version",
    ]);
    drop(handlers);
    eprintln!("  emulated runs: {:.1}s", started.elapsed().as_secs_f64());

    // The independent expectation: this host's registrar told the host is
    // an aarch64 one.
    // Its `latest` has no x86 emulators, which `-p yes` needs: the host's
    // (Debian's, of the same version) are mounted where the aarch64 image
    // has its own.
    let reference = |args: &[&str]| {
        let mut all = vec![
            "run",
            "--rm",
            "-e",
            "HOST_ARCH=aarch64",
            "-v",
            "/usr/bin/qemu-x86_64-static:/usr/bin/qemu-x86_64-static:ro",
            "-v",
            "/usr/bin/qemu-i386-static:/usr/bin/qemu-i386-static:ro",
        ];
        all.extend(args);
        docker(&all)
    };
    let reference_plan = reference(&[&native_latest, "--dry-run", "--reset", "-p", "yes"]);
    let mount = format!("{}:/out", expected.display());
    let reference_export = reference(&[
        "-v",
        &mount,
        &native_latest,
        "--systemd",
        "ALL",
        "--exportdir",
        "/out",
    ]);
    for (what, out) in [
        ("emulated plan", &plan),
        ("emulated export", &export),
        ("reference plan", &reference_plan),
        ("reference export", &reference_export),
        ("emulated --version", &version),
    ] {
        check(
            out.status.success(),
            format!("{what}: {:?}\n{}{}", out.status, stdout(out), stderr(out)),
        )?;
    }
    let targets = planned(&stdout(&plan));
    for name in ["x86_64", "i386", "riscv64", "s390x", "ppc64le"] {
        check(
            targets.contains(name),
            format!("the plan does not register {name}: {targets:?}"),
        )?;
    }
    for name in ["aarch64", "arm"] {
        check(
            !targets.contains(name),
            format!("the plan registers {name}"),
        )?;
    }
    check(
        register_lines(&stdout(&plan)) == register_lines(&stdout(&reference_plan)),
        format!(
            "register lines differ:\n--- emulated\n{}\n--- HOST_ARCH=aarch64\n{}",
            stdout(&plan),
            stdout(&reference_plan)
        ),
    )?;
    let (got, want) = (files(&emulated)?, files(&expected)?);
    check(
        got.len() > 20 && got == want,
        format!(
            "--systemd ALL files differ: {:?} vs {:?}",
            got.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            want.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ),
    )?;
    check(
        probed.status.success() && stdout(&probed) == "x86_64\n",
        format!(
            "x86_64 probe: {:?} {:?} {}",
            probed.status,
            stdout(&probed),
            stderr(&probed)
        ),
    )?;
    check(
        stdout(&version).contains(&built.arm.registrar_version),
        format!(
            "--version {:?} does not name {}",
            stdout(&version),
            built.arm.registrar_version
        ),
    )
}

/// A `docker-registry` on a free loopback port, storing in a temporary
/// directory.
struct Registry {
    child: Child,
    dir: PathBuf,
}

static REGISTRY: OnceLock<Mutex<Option<Registry>>> = OnceLock::new();

fn start_registry() -> Result<String, Failed> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("qus-hosts-registry-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("store"))?;
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.join("store").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("registry.log"))?)
        .spawn()?;
    let address = format!("127.0.0.1:{port}");
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap()
        .replace(Registry { child, dir });
    for _ in 0..100 {
        if std::net::TcpStream::connect(&address).is_ok() {
            return Ok(address);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("docker-registry did not listen on {address}").into())
}

fn index_resolves_each_platform_to_its_hosts_image() -> Result<(), Failed> {
    let built = built()?;
    let address = start_registry()?;
    let destination = format!("{address}/{REPO}");
    let started = Instant::now();
    // Its exported layouts die with the trial (the images do at the end).
    let oci_cache = tempfile::tempdir()?;
    let report: IndexReport = images::index(
        &IndexOptions {
            repo: REPO.to_owned(),
            destination: destination.clone(),
            cache_dir: oci_cache.path().to_owned(),
            ..IndexOptions::default()
        },
        &|_: &ImagesEvent| {},
    )
    .map_err(|e| chain(&e))?;
    eprintln!("  images index: {:.1}s", started.elapsed().as_secs_f64());
    let hosts: Vec<(&str, &str)> = report
        .hosts
        .iter()
        .map(|h| (h.machine.as_str(), h.platform.as_str()))
        .collect();
    check(
        hosts == [("x86_64", "linux/amd64"), ("aarch64", "linux/arm64")],
        format!("hosts {hosts:?}"),
    )?;
    // `latest`, `register`, `binfmt` and the version are indexes over both.
    for tag in ["latest", "register", "binfmt", built.arm.version.as_str()] {
        let reference = format!("{destination}:{tag}");
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()?;
        check(
            out.status.success(),
            format!("skopeo inspect {reference}: {}", stderr(&out)),
        )?;
        let index: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let platforms: Vec<String> = index["manifests"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|d| {
                        format!(
                            "{}/{}",
                            d["platform"]["os"].as_str().unwrap_or(""),
                            d["platform"]["architecture"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        check(
            index["mediaType"] == "application/vnd.oci.image.index.v1+json"
                && platforms == ["linux/amd64", "linux/arm64"],
            format!("{reference}: {index}"),
        )?;
    }
    // A pull by platform gets that host's image: its labels (recipe,
    // registrar, versions) and architecture. Not its id: the copy through
    // skopeo re-encodes the config Docker hashed.
    let id = |image: &str| {
        stdout(&docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Labels}} {{.Architecture}}",
            image,
        ]))
    };
    for (platform, local, arch) in [
        ("linux/arm64", format!("{ARM_REPO}:latest"), "arm64"),
        ("linux/amd64", format!("{REPO}:latest"), "amd64"),
    ] {
        let pulled = format!("{destination}:latest");
        let out = docker(&["pull", "--quiet", "--platform", platform, &pulled]);
        made().lock().unwrap().insert(pulled.clone());
        check(
            out.status.success(),
            format!("pull {platform}: {}", stderr(&out)),
        )?;
        let (got, want) = (id(&pulled), id(&local));
        check(
            got == want && got.trim().ends_with(arch),
            format!("{platform} pulled {got:?}, the host's image is {want:?}"),
        )?;
    }
    // The arm64 image pulled from the index runs (under emulation) and is
    // the aarch64 build.
    let handlers = Handlers::aarch64()?;
    let pulled = format!("{destination}:latest");
    let out = docker(&["pull", "--quiet", "--platform", "linux/arm64", &pulled]);
    let version = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &pulled,
        "--version",
    ]);
    drop(handlers);
    check(
        out.status.success(),
        format!("pull linux/arm64: {}", stderr(&out)),
    )?;
    check(
        version.status.success() && stdout(&version).contains(&built.arm.registrar_version),
        format!(
            "--version of the pulled arm64 image: {:?} {}",
            stdout(&version),
            stderr(&version)
        ),
    )?;
    // A host's own tag is its single image.
    let single = report
        .pushed
        .iter()
        .find(|t| t.reference.ends_with(":aarch64-x86_64"))
        .ok_or("aarch64-x86_64 was not pushed")?;
    check(
        !single.is_index && single.platforms == ["linux/arm64"],
        format!("{single:?}"),
    )
}
