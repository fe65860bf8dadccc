//! `qus_harness::images` against a real Docker Engine: the registrar images
//! built from the installed `qemu-user-static` version (fetched from
//! Debian's suites), the images of several QEMU versions from Debian's
//! `trixie` and `sid` side by side (`images/versions.rs`), the probe images,
//! and one `debootstrap` fixture.
//!
//! Compiled only with `--features docker`. The trials need Docker, root
//! (binfmt_misc, `debootstrap`), Debian's `qemu-user-static`, `dpkg-deb`,
//! `apt-get`, `file` and Debian's archive; without them every trial reports
//! *ignored* with the reason, and with `QUS_REQUIRE_ENGINES=1` that is a
//! failure instead. The registrar images are built once (on first use)
//! under the test repository `qus-test/qemu-user-static`, the versions
//! under `qus-test-versions/qemu-user-static`, fixtures under
//! `qus-test-fixtures`; every image the trials made is removed at the end
//! (by a guard), the private APT directories live in a temporary cache
//! removed with them, the root filesystem cache (`$QUS_CACHE_DIR`,
//! `/var/cache/qus`) is kept for the next run, and the host's binfmt_misc
//! entries are restored by guards. Trials run one at a time: they share the
//! engine and the binfmt_misc registry.

#![cfg(feature = "docker")]

#[path = "common/gated.rs"]
mod gated;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures_util::TryStreamExt as _;
use libtest_mimic::{Arguments, Failed};
use qus_harness::images::{
    self, BuildOptions, BuildReport, DebSource, DebianArch, FixtureOptions, FixturesReport,
    ImageStatus, ImagesEvent, LABEL_CREATED, LABEL_DESCRIPTION, LABEL_LICENSES, LABEL_QEMU_VERSION,
    LABEL_RECIPE, LABEL_REGISTRAR_VERSION, LABEL_REVISION, LABEL_SOURCE, LABEL_TITLE, LABEL_UNAME,
    LABEL_VERSION, RegistrarSource, Step, StepOutcome,
};
use qus_harness::runtime::{DockerRuntime, RunOutcome, RunSpec, Runtime as _};
use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};
use qus_registrar::entry::{self, Flags};
use qus_registrar::targets::{self, Target};
use qus_testcontainers::{QusRegistrar, run_foreign};

#[path = "images/binfmt.rs"]
mod binfmt;
#[path = "images/versions.rs"]
mod versions;

/// Repository of the registrar images built here.
const REPO: &str = "qus-test/qemu-user-static";

/// Repository prefix of the fixtures built here.
const FIXTURE_REPO: &str = "qus-test-fixtures";

/// The `register` image must stay below this.
const REGISTER_MAX_BYTES: i64 = 3 * 1024 * 1024;

type Body = fn() -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    let tests: &[(&str, Body)] = &[
        (
            "every_tag_names_a_labelled_image",
            every_tag_names_a_labelled_image,
        ),
        (
            "latest_holds_the_registrar_and_every_foreign_emulator",
            latest_holds_the_registrar_and_every_foreign_emulator,
        ),
        (
            "binfmt_is_latest_entered_as_binfmt_sharing_its_layer",
            binfmt::binfmt_is_latest_entered_as_binfmt_sharing_its_layer,
        ),
        (
            "register_holds_only_the_registrar_and_is_small",
            register_holds_only_the_registrar_and_is_small,
        ),
        (
            "target_image_holds_one_emulator_that_runs",
            target_image_holds_one_emulator_that_runs,
        ),
        (
            "artifacts_verify_with_sha256sum",
            artifacts_verify_with_sha256sum,
        ),
        ("a_second_build_is_a_no_op", a_second_build_is_a_no_op),
        (
            "sid_images_hold_static_qemu_user_emulators_as_static_names",
            versions::sid_images_hold_static_qemu_user_emulators_as_static_names,
        ),
        (
            "suites_are_fetched_without_touching_the_hosts_apt",
            versions::suites_are_fetched_without_touching_the_hosts_apt,
        ),
        (
            "the_newest_version_keeps_latest_and_the_unversioned_tags",
            versions::the_newest_version_keeps_latest_and_the_unversioned_tags,
        ),
        (
            "a_warm_suite_build_fetches_and_builds_nothing",
            versions::a_warm_suite_build_fetches_and_builds_nothing,
        ),
        (
            "a_transitional_package_resolves_to_qemu_user",
            versions::a_transitional_package_resolves_to_qemu_user,
        ),
        (
            "a_dynamic_qemu_user_is_refused_by_name",
            versions::a_dynamic_qemu_user_is_refused_by_name,
        ),
        (
            "probe_images_print_their_uname_through_registered_handlers",
            probe_images_print_their_uname_through_registered_handlers,
        ),
        (
            "arm64_fixture_is_debootstrapped_cached_and_runs",
            arm64_fixture_is_debootstrapped_cached_and_runs,
        ),
        (
            "a_failed_debootstrap_leaves_nothing_behind",
            a_failed_debootstrap_leaves_nothing_behind,
        ),
    ];
    let trials = tests
        .iter()
        .map(|&(name, body)| gated::trial(name, prerequisites, move |()| body()))
        .collect();
    // One engine, one binfmt_misc registry: one trial at a time.
    args.test_threads = Some(1);
    // Removes what the version trials made and the temporary cache, even if
    // this function panics; `exit` below runs no destructor, hence `drop`.
    let versions = versions::Guard;
    let conclusion = libtest_mimic::run(&args, trials);
    cleanup();
    drop(versions);
    conclusion.exit();
}

/// `Ok` when the trials can run here, else why not (checked once).
fn prerequisites() -> Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if !rustix::process::geteuid().is_root() {
                return Err("needs root (binfmt_misc, debootstrap)".into());
            }
            for tool in [
                "dpkg-deb",
                "apt-get",
                "dpkg-query",
                "debootstrap",
                "sha256sum",
                "file",
            ] {
                if which::which(tool).is_err() {
                    return Err(format!("`{tool}` is not installed"));
                }
            }
            if installed_qemu_version().is_none() {
                return Err("Debian's qemu-user-static is not installed".into());
            }
            let binfmt = Binfmt::default();
            match binfmt.state() {
                MountState::Missing => return Err("the kernel has no binfmt_misc".into()),
                MountState::NotMounted => binfmt
                    .mount()
                    .map_err(|e| format!("cannot mount binfmt_misc: {e}"))?,
                MountState::Mounted => {}
            }
            block_on(async {
                DockerRuntime::connect()
                    .await
                    .map(drop)
                    .map_err(|e| format!("docker is unavailable: {}", chain(&e)))
            })
        })
        .clone()
}

/// The installed `qemu-user-static` version (`1:7.2+dfsg-7+deb12u18+b3`).
fn installed_qemu_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "qemu-user-static"])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !version.is_empty()).then_some(version)
}

/// The installed emulators' names (`aarch64`, ...), sorted.
fn installed_emulators() -> BTreeSet<String> {
    std::fs::read_dir("/usr/bin")
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            Some(
                name.strip_prefix("qemu-")?
                    .strip_suffix("-static")?
                    .to_owned(),
            )
        })
        .collect()
}

fn host_machine() -> String {
    qus_registrar::binfmt::HostFacts::read(None).machine
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
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

/// Records events, and prints the slow steps with their times.
#[derive(Default)]
struct Recorder(Mutex<Vec<ImagesEvent>>);

impl Recorder {
    fn record(&self, event: &ImagesEvent) {
        if let ImagesEvent::StepFinished {
            step,
            outcome,
            elapsed,
        } = event
            && (*elapsed >= Duration::from_millis(1500)
                || matches!(outcome, StepOutcome::Failed { .. }))
        {
            eprintln!(
                "    {:>7.1}s {} {:?}",
                elapsed.as_secs_f64(),
                step_name(step),
                outcome
            );
        }
        self.0.lock().unwrap().push(event.clone());
    }

    fn finished(&self) -> Vec<(Step, StepOutcome)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ImagesEvent::StepFinished { step, outcome, .. } => {
                    Some((step.clone(), outcome.clone()))
                }
                ImagesEvent::StepStarted { .. } => None,
            })
            .collect()
    }
}

fn step_name(step: &Step) -> String {
    match step {
        Step::UpdateLists { suite, .. } => format!("apt-get update {suite}"),
        Step::SelectPackage { .. } => "choose the package".into(),
        Step::FetchDeb { package, suite, .. } => format!(
            "fetch {package}{}",
            suite.map(|s| format!(" from {s}")).unwrap_or_default()
        ),
        Step::UnpackDeb { .. } => "unpack the package".into(),
        Step::CheckEmulators { .. } => "check the emulators".into(),
        Step::CompileRegistrar { .. } => "compile qus-register".into(),
        Step::CheckRegistrar { .. } => "check qus-register".into(),
        Step::HashInputs => "hash inputs".into(),
        Step::Image { tags } => format!("image {}", tags[0]),
        Step::WriteArtifacts { .. } => "write artifacts".into(),
        Step::RegisterHandlers { entries } => format!("register {}", entries.join(",")),
        Step::Rootfs { arch, .. } => format!("rootfs {arch}"),
        Step::VendorCrates { .. } => "vendor crates".into(),
        Step::CrossCompile { machine, .. } => format!("cross-compile {machine}"),
        Step::ExportImage { image, .. } => format!("export {image}"),
        Step::PushTag { reference } => format!("push {reference}"),
    }
}

/// Everything the trials made, removed at the end.
struct Made {
    images: Mutex<BTreeSet<String>>,
}

fn made() -> &'static Made {
    static MADE: OnceLock<Made> = OnceLock::new();
    MADE.get_or_init(|| Made {
        images: Mutex::default(),
    })
}

fn remember(images: impl IntoIterator<Item = String>) {
    made().images.lock().unwrap().extend(images);
}

/// Removes every image the trials made (output directories are `TempDir`s
/// in statics: removed here too).
fn cleanup() {
    let images: Vec<String> = made().images.lock().unwrap().iter().cloned().collect();
    if !images.is_empty() && prerequisites().is_ok() {
        block_on(async {
            let docker = docker().await;
            for image in &images {
                let options = bollard::query_parameters::RemoveImageOptions {
                    force: true,
                    ..Default::default()
                };
                if let Err(err) = docker.remove_image(image, Some(options), None).await {
                    let gone = matches!(
                        err,
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        }
                    );
                    if !gone {
                        eprintln!("warning: failed to remove `{image}`: {err}");
                    }
                }
            }
        });
    }
    if let Some(Ok(built)) = BUILT.get() {
        let _ = std::fs::remove_dir_all(&built.output);
    }
}

async fn docker() -> Docker {
    Docker::connect_with_defaults()
        .expect("bollard connects where DockerRuntime connected")
        .negotiate_version()
        .await
        .expect("the engine answers")
}

/// The registrar images, built once.
struct Built {
    options: BuildOptions,
    report: BuildReport,
    output: PathBuf,
}

static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();

fn built() -> Result<&'static Built, Failed> {
    BUILT
        .get_or_init(|| {
            let output =
                std::env::temp_dir().join(format!("qus-images-test-{}", std::process::id()));
            // The installed version, searched in every suite (it is
            // bookworm's, or its security update's).
            let options = BuildOptions {
                repo: REPO.to_owned(),
                deb: DebSource::Apt {
                    version: installed_qemu_version(),
                    suite: None,
                },
                cache_dir: versions::test_cache_dir(),
                registrar: RegistrarSource::default(),
                output_dir: Some(output.clone()),
                ..BuildOptions::default()
            };
            let recorder = Recorder::default();
            let started = Instant::now();
            let result = images::build(&options, &|e: &ImagesEvent| recorder.record(e));
            eprintln!(
                "  images build (cold): {:.1}s",
                started.elapsed().as_secs_f64()
            );
            let report = result.map_err(|e| chain(&e))?;
            remember(report.images.iter().flat_map(|i| i.tags.clone()));
            Ok(Built {
                options,
                report,
                output,
            })
        })
        .as_ref()
        .map_err(|e| Failed::from(format!("the build failed: {e}")))
}

async fn labels(docker: &Docker, image: &str) -> BTreeMap<String, String> {
    let inspect = docker.inspect_image(image).await.unwrap();
    inspect
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// What one entry of an image's file system is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { size: u64, mode: u32 },
    Symlink(String),
}

/// The files of `image`, from `docker save` (the image's own layers, none
/// of what a container adds), paths without a leading `/`.
async fn image_files(docker: &Docker, image: &str) -> BTreeMap<String, Node> {
    let saved: Vec<u8> = docker
        .export_image(image)
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .unwrap();
    let mut manifest = None;
    for entry in tar::Archive::new(saved.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            manifest = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        }
    }
    let manifest = manifest.expect("docker save writes manifest.json");
    let layers: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    let mut files = BTreeMap::new();
    for layer in &layers {
        for entry in tar::Archive::new(saved.as_slice()).entries().unwrap() {
            let entry = entry.unwrap();
            if entry.path().unwrap().to_str() != Some(layer.as_str()) {
                continue;
            }
            for inner in tar::Archive::new(entry).entries().unwrap() {
                let inner = inner.unwrap();
                let path = inner.path().unwrap().display().to_string();
                let path = path
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_owned();
                let header = inner.header();
                let node = match header.entry_type() {
                    tar::EntryType::Directory => Node::Dir,
                    tar::EntryType::Symlink => {
                        Node::Symlink(inner.link_name().unwrap().unwrap().display().to_string())
                    }
                    _ => Node::File {
                        size: header.size().unwrap(),
                        mode: header.mode().unwrap() & 0o7777,
                    },
                };
                if !path.is_empty() {
                    files.insert(path, node);
                }
            }
        }
    }
    files
}

/// The non-directory entries of `files`.
fn non_dirs(files: &BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    files
        .iter()
        .filter(|(_, n)| **n != Node::Dir)
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

async fn run(image: &str, command: &[&str]) -> RunOutcome {
    let runtime = DockerRuntime::connect().await.unwrap();
    runtime
        .run(&RunSpec::new(image, command.iter().copied()).with_timeout(Duration::from_secs(120)))
        .await
        .unwrap()
}

fn every_tag_names_a_labelled_image() -> Result<(), Failed> {
    let built = built()?;
    let report = &built.report;
    let machine = host_machine();
    let qemu_version = installed_qemu_version().unwrap();
    check(
        report.debian_version == qemu_version,
        format!("debian version {}", report.debian_version),
    )?;
    check(
        report.package == "qemu-user-static" && report.suite.is_some(),
        format!("package {} from {:?}", report.package, report.suite),
    )?;
    let version = images::image_version(&qemu_version, 1).map_err(|e| chain(&e))?;
    check(
        report.version == version,
        format!("version {} != {version}", report.version),
    )?;

    // The expected tag set, derived here from the installed package.
    let installed = installed_emulators();
    let own: Vec<&String> = installed.iter().filter(|e| **e != machine).collect();
    let mut expected: BTreeSet<String> = BTreeSet::from([
        format!("{REPO}:latest"),
        format!("{REPO}:{}", report.version),
        format!("{REPO}:binfmt"),
        format!("{REPO}:binfmt-{}", report.version),
        format!("{REPO}:register"),
    ]);
    for to in &own {
        for tag in [
            format!("{machine}-{to}-{}", report.version),
            format!("{machine}-{to}"),
            format!("{to}-{}", report.version),
            (*to).clone(),
        ] {
            expected.insert(format!("{REPO}:{tag}"));
        }
    }
    let reported: BTreeSet<String> = report.images.iter().flat_map(|i| i.tags.clone()).collect();
    check(
        reported == expected,
        format!(
            "tags differ: {:?}",
            reported.symmetric_difference(&expected).collect::<Vec<_>>()
        ),
    )?;
    check(
        report.images.len() == 3 + own.len(),
        "one image per emulator plus latest, binfmt and register",
    )?;

    block_on(async {
        let docker = docker().await;
        for image in &report.images {
            for tag in &image.tags {
                let inspect = docker
                    .inspect_image(tag)
                    .await
                    .map_err(|e| format!("{tag}: {e}"))?;
                check(
                    inspect.id.as_deref() == Some(image.id.as_str()),
                    format!("{tag} names another image"),
                )?;
            }
            let labels = labels(&docker, &image.tags[0]).await;
            for key in [
                LABEL_TITLE,
                LABEL_DESCRIPTION,
                LABEL_VERSION,
                LABEL_SOURCE,
                LABEL_LICENSES,
                LABEL_REVISION,
                LABEL_CREATED,
                LABEL_RECIPE,
            ] {
                check(
                    labels.get(key).is_some_and(|v| !v.is_empty()),
                    format!("{} lacks {key}", image.tags[0]),
                )?;
            }
            check(labels[LABEL_RECIPE] == image.recipe, "recipe label")?;
            // `register` holds no QEMU: its version is the registrar's.
            if image.tags == [format!("{REPO}:register")] {
                check(
                    labels[LABEL_VERSION] == report.registrar_version
                        && !labels.contains_key(LABEL_QEMU_VERSION),
                    "register's version labels",
                )?;
                continue;
            }
            check(labels[LABEL_VERSION] == report.version, "version label")?;
            check(
                labels[LABEL_QEMU_VERSION] == qemu_version,
                "qemu version label",
            )?;
        }
        let latest = labels(&docker, &format!("{REPO}:latest")).await;
        check(
            latest.get(LABEL_REGISTRAR_VERSION).map(String::as_str)
                == Some(env!("CARGO_PKG_VERSION")),
            "registrar version label",
        )?;
        let revision = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(images::workspace_root())
            .output()
            .unwrap();
        let revision = String::from_utf8_lossy(&revision.stdout).trim().to_owned();
        check(
            latest[LABEL_REVISION] == revision,
            format!("revision {} != {revision}", latest[LABEL_REVISION]),
        )?;
        Ok(())
    })
}

fn latest_holds_the_registrar_and_every_foreign_emulator() -> Result<(), Failed> {
    let built = built()?;
    let family = targets::host_family(&host_machine());
    let foreign: BTreeSet<String> = installed_emulators()
        .into_iter()
        .filter(|name| {
            !targets::TARGETS
                .iter()
                .any(|t| t.interpreter == format!("qemu-{name}") && t.family == family)
        })
        .collect();
    // On x86_64: everything but i386 and x86_64 (cris and nios2 have no
    // binfmt entry but ship all the same, as in the original image).
    if host_machine() == "x86_64" {
        check(
            !foreign.contains("x86_64") && !foreign.contains("i386") && foreign.contains("aarch64"),
            "x86 family",
        )?;
    }
    check(
        built
            .report
            .latest_emulators
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            == foreign,
        "reported emulators",
    )?;
    block_on(async {
        let docker = docker().await;
        let files = non_dirs(&image_files(&docker, &format!("{REPO}:latest")).await);
        let mut expected = BTreeMap::from([(
            "register".to_owned(),
            Node::Symlink("usr/bin/qus-register".into()),
        )]);
        let registrar = files.get("usr/bin/qus-register").cloned();
        check(
            matches!(registrar, Some(Node::File { mode: 0o755, .. })),
            format!("registrar: {registrar:?}"),
        )?;
        expected.insert("usr/bin/qus-register".into(), registrar.unwrap());
        for name in &foreign {
            let path = format!("/usr/bin/qemu-{name}-static");
            let size = std::fs::metadata(&path).unwrap().len();
            expected.insert(path[1..].to_owned(), Node::File { size, mode: 0o755 });
        }
        check(
            files == expected,
            format!(
                "latest differs: extra {:?}, missing {:?}",
                files
                    .keys()
                    .filter(|k| !expected.contains_key(*k))
                    .collect::<Vec<_>>(),
                expected
                    .keys()
                    .filter(|k| !files.contains_key(*k))
                    .collect::<Vec<_>>()
            ),
        )?;
        // The entrypoint is the registrar, static, in an image with no libc.
        for image in [format!("{REPO}:latest"), format!("{REPO}:register")] {
            let out = run(&image, &["--version"]).await;
            check(
                out.is_success()
                    && out.stdout == format!("qus-register {}\n", env!("CARGO_PKG_VERSION")),
                format!("{image} --version: {out:?}"),
            )?;
        }
        // The original entrypoint path works too.
        let runtime = DockerRuntime::connect().await.unwrap();
        let out = runtime
            .run(
                &RunSpec::new(format!("{REPO}:latest"), ["--version"])
                    .with_entrypoint(["/register"]),
            )
            .await
            .unwrap();
        check(out.is_success(), format!("/register --version: {out:?}"))
    })
}

fn register_holds_only_the_registrar_and_is_small() -> Result<(), Failed> {
    built()?;
    block_on(async {
        let docker = docker().await;
        let image = format!("{REPO}:register");
        let files = non_dirs(&image_files(&docker, &image).await);
        let names: Vec<&String> = files.keys().collect();
        check(
            names == ["register", "usr/bin/qus-register"],
            format!("register holds {names:?}"),
        )?;
        let size = docker.inspect_image(&image).await.unwrap().size.unwrap();
        eprintln!("  register image: {size} bytes");
        check(
            size < REGISTER_MAX_BYTES,
            format!("register is {size} bytes"),
        )
    })
}

fn target_image_holds_one_emulator_that_runs() -> Result<(), Failed> {
    let built = built()?;
    block_on(async {
        let docker = docker().await;
        let image = format!("{REPO}:aarch64");
        let files = non_dirs(&image_files(&docker, &image).await);
        let names: Vec<&String> = files.keys().collect();
        check(
            names == ["usr/bin/qemu-aarch64-static"],
            format!("aarch64 holds {names:?}"),
        )?;
        let out = run(&image, &["/usr/bin/qemu-aarch64-static", "--version"]).await;
        let upstream = built.report.version.split('-').next().unwrap().to_owned();
        let short = upstream.trim_end_matches(".0");
        check(
            out.is_success()
                && out.stdout.starts_with("qemu-aarch64 version ")
                && out.stdout.contains(short),
            format!("qemu-aarch64-static --version: {out:?}"),
        )?;
        // COPY --from works as the original documented.
        let machine = host_machine();
        let labels = labels(
            &docker,
            &format!("{REPO}:{machine}-aarch64-{}", built.report.version),
        )
        .await;
        check(labels[LABEL_TITLE] == "qemu-aarch64-static", "title")
    })
}

fn artifacts_verify_with_sha256sum() -> Result<(), Failed> {
    let built = built()?;
    let dir = &built.output;
    let machine = host_machine();
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()?;
    check(
        out.status.success(),
        format!("sha256sum -c: {}", String::from_utf8_lossy(&out.stdout)),
    )?;
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS"))?;
    let targets = &built.report.target_emulators;
    check(
        sums.lines().count() == 3 * targets.len(),
        "three artifacts per emulator",
    )?;
    for to in targets {
        for name in [
            format!("qemu-{to}-static"),
            format!("qemu-{to}-static.tar.gz"),
            format!("{machine}_qemu-{to}-static.tar.gz"),
        ] {
            check(
                sums.lines().any(|l| l.ends_with(&format!("  {name}"))),
                format!("{name} not in SHA256SUMS"),
            )?;
        }
    }
    check(
        built.report.artifacts.len() == 3 * targets.len() + 1,
        "reported artifacts",
    )?;
    // A tarball unpacks to the installed binary, byte for byte.
    let unpack = tempfile::tempdir()?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(dir.join(format!("{machine}_qemu-aarch64-static.tar.gz")))
        .arg("-C")
        .arg(unpack.path())
        .status()?;
    check(status.success(), "tar -xzf")?;
    let unpacked = std::fs::read(unpack.path().join("qemu-aarch64-static"))?;
    check(
        unpacked == std::fs::read("/usr/bin/qemu-aarch64-static")?,
        "tarball content",
    )?;
    check(
        std::fs::read(dir.join("qemu-aarch64-static"))? == unpacked,
        "binary artifact content",
    )
}

fn a_second_build_is_a_no_op() -> Result<(), Failed> {
    let built = built()?;
    let recorder = Recorder::default();
    let started = Instant::now();
    let report = images::build(&built.options, &|e: &ImagesEvent| recorder.record(e))
        .map_err(|e| chain(&e))?;
    eprintln!(
        "  images build (warm): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for image in &report.images {
        check(
            image.status == ImageStatus::Unchanged,
            format!("{} was {:?}", image.tags[0], image.status),
        )?;
    }
    let ids: Vec<&String> = report.images.iter().map(|i| &i.id).collect();
    let before: Vec<&String> = built.report.images.iter().map(|i| &i.id).collect();
    check(ids == before, "image ids changed")?;
    let artifacts = recorder
        .finished()
        .into_iter()
        .find(|(step, _)| matches!(step, Step::WriteArtifacts { .. }));
    check(
        matches!(artifacts, Some((_, StepOutcome::Skipped { .. }))),
        format!("artifacts: {artifacts:?}"),
    )?;
    // Nothing left behind: no scratch tags, no work directory.
    block_on(async {
        let docker = docker().await;
        let all = docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions::default()))
            .await
            .unwrap();
        let scratch: Vec<&String> = all
            .iter()
            .flat_map(|i| &i.repo_tags)
            .filter(|t| t.contains(":qus-scratch-"))
            .collect();
        check(
            scratch.is_empty(),
            format!("scratch tags left: {scratch:?}"),
        )
    })?;
    let pid = std::process::id();
    let work_left = std::fs::read_dir(std::env::temp_dir())?
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("qus-images-{pid}-"))
        });
    check(
        !work_left,
        "a work directory was left in the temporary directory",
    )
}

/// Registers `targets` with `F` for the lifetime of the guard; restores
/// the host's entries on drop.
struct Handlers {
    binfmt: Binfmt,
    snapshot: Snapshot,
}

impl Handlers {
    fn register(targets: &[&Target]) -> Result<Self, Failed> {
        let binfmt = Binfmt::default();
        let guard = Self {
            snapshot: binfmt.snapshot().map_err(|e| chain(&e))?,
            binfmt,
        };
        for target in targets {
            let interpreter = entry::interpreter_path("/usr/bin", target, "-static");
            let name = target.entry_name();
            if guard.binfmt.read(&name).map_err(|e| chain(&e))?.is_some() {
                guard.binfmt.remove(&name).map_err(|e| chain(&e))?;
            }
            let line =
                entry::register_line(target, &interpreter, Flags::requested(false, true, false));
            guard.binfmt.register(&name, &line).map_err(|e| chain(&e))?;
        }
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

fn fixture_options(arches: Vec<DebianArch>, probes: bool) -> FixtureOptions {
    FixtureOptions {
        repo: FIXTURE_REPO.to_owned(),
        arches,
        probes_dir: probes.then(|| images::workspace_root().join("fixtures/probes")),
        ..FixtureOptions::default()
    }
}

fn build_fixtures(options: &FixtureOptions, what: &str) -> Result<FixturesReport, Failed> {
    let recorder = Recorder::default();
    let started = Instant::now();
    let result = images::fixtures(options, &|e: &ImagesEvent| recorder.record(e));
    eprintln!("  fixtures {what}: {:.1}s", started.elapsed().as_secs_f64());
    let report = result.map_err(|e| chain(&e))?;
    remember(report.images.iter().flat_map(|i| i.tags.clone()));
    Ok(report)
}

fn probe_images_print_their_uname_through_registered_handlers() -> Result<(), Failed> {
    let options = fixture_options(Vec::new(), true);
    let report = build_fixtures(&options, "probes")?;
    let probes =
        images::read_probe_table(options.probes_dir.as_ref().unwrap()).map_err(|e| chain(&e))?;
    check(report.images.len() == probes.len(), "one image per probe")?;
    check(report.rootfs.is_empty(), "no root filesystem asked for")?;

    let machine = host_machine();
    let family = targets::host_family(&machine);
    // Every foreign target, plus `i486`: no native binary has its
    // `e_machine` (6), so its handler cannot disturb the host.
    let handled: Vec<&Target> = targets::TARGETS
        .iter()
        .filter(|t| t.family != family || t.name == "i486")
        .collect();
    let _handlers = Handlers::register(&handled)?;
    block_on(async {
        let docker = docker().await;
        for probe in &probes {
            let image = format!("{FIXTURE_REPO}/probe:{}", probe.target);
            let labels = labels(&docker, &image).await;
            check(
                labels.get(LABEL_UNAME) == Some(&probe.uname),
                format!("{image} uname label"),
            )?;
            let through_handler = handled.iter().any(|t| t.name == probe.target);
            // Host-family probes the kernel runs itself: it answers.
            let want = if through_handler {
                probe.uname.clone()
            } else {
                machine.clone()
            };
            let out = run(&image, &[]).await;
            check(
                out.is_success() && out.stdout == format!("{want}\n"),
                format!("{image}: expected `{want}`, got {out:?}"),
            )?;
        }
        Ok::<(), Failed>(())
    })?;
    // Built again: nothing to do.
    let again = build_fixtures(&options, "probes (warm)")?;
    check(
        again
            .images
            .iter()
            .all(|i| i.status == ImageStatus::Unchanged),
        "probe images rebuilt",
    )
}

fn arm64_fixture_is_debootstrapped_cached_and_runs() -> Result<(), Failed> {
    let options = fixture_options(vec![DebianArch::Arm64], false);
    let before = Binfmt::default().snapshot().map_err(|e| chain(&e))?;
    let first = build_fixtures(&options, "arm64 (first)")?;
    let after = Binfmt::default().snapshot().map_err(|e| chain(&e))?;
    check(before == after, "fixtures left binfmt_misc changed")?;
    let rootfs = &first.rootfs[0];
    eprintln!("    debootstrapped: {}", rootfs.debootstrapped);
    check(
        rootfs.image == format!("{FIXTURE_REPO}/arm64:bookworm"),
        &rootfs.image,
    )?;
    check(
        rootfs.tarball.is_file(),
        format!("{} missing", rootfs.tarball.display()),
    )?;
    let image = &first.images[0];
    let file_name = rootfs
        .tarball
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let tarball_recipe = file_name
        .strip_prefix("arm64-")
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .unwrap_or_default();
    check(
        tarball_recipe.len() == 16 && tarball_recipe.chars().all(|c| c.is_ascii_hexdigit()),
        format!("cache file name {file_name}"),
    )?;
    check(
        rootfs.tarball.starts_with(images::default_cache_dir()),
        "cache directory",
    )?;

    // The image, as a scenario and as a user's `cargo test` see it: the
    // handler registered by the registrar image built here, through
    // qus-testcontainers (which removes its entry again; the guard puts
    // back the rest), and `uname -m` run through testcontainers.
    {
        built()?;
        let _saved = Handlers::register(&[])?;
        let name = DebianArch::Arm64.qemu_target().entry_name();
        let binfmt = Binfmt::default();
        if binfmt.read(&name).map_err(|e| chain(&e))?.is_some() {
            binfmt.remove(&name).map_err(|e| chain(&e))?;
        }
        block_on(async {
            let _qemu = QusRegistrar::new(["linux/arm64"])
                .map_err(|e| chain(&e))?
                .with_image(REPO, "latest")
                .register()
                .await
                .map_err(|e| chain(&e))?;
            let out = run_foreign(&rootfs.image, "linux/arm64", ["uname", "-m"])
                .await
                .map_err(|e| chain(&e))?;
            check(
                out.is_success() && out.stdout == "aarch64\n",
                format!("uname -m through testcontainers: {out:?}"),
            )?;
            let docker = docker().await;
            let labels = labels(&docker, &rootfs.image).await;
            check(
                labels.get(LABEL_UNAME).map(String::as_str) == Some("aarch64"),
                "uname label",
            )?;
            check(
                labels.get(LABEL_RECIPE) == Some(&image.recipe),
                "recipe label",
            )?;
            // The platform a registry's arm64 image has, so engines treat
            // it as one.
            let inspect = docker.inspect_image(&rootfs.image).await.unwrap();
            check(
                (
                    inspect.os.as_deref(),
                    inspect.architecture.as_deref(),
                    inspect.variant.as_deref(),
                ) == (Some("linux"), Some("arm64"), Some("v8")),
                format!(
                    "platform {:?}/{:?}/{:?}",
                    inspect.os, inspect.architecture, inspect.variant
                ),
            )?;
            // Owners and modes survive the trip into the image (setuid
            // `su`, setgid `/var/mail` of group `mail`).
            let out = run(
                &rootfs.image,
                &["stat", "-c", "%n %U:%G %a", "/bin/su", "/var/mail"],
            )
            .await;
            check(
                out.is_success()
                    && out.stdout == "/bin/su root:root 4755\n/var/mail root:mail 2775\n",
                format!("owners and modes: {out:?}"),
            )?;
            // Cleaned as Debian's own images are: no .debs, no package lists.
            let script = "ls /var/cache/apt/archives | grep -c '[.]deb$'; \
                          ls /var/lib/apt/lists | grep -c -v -e '^lock$' -e '^partial$'; \
                          test -x /usr/bin/apt-get";
            let out = run(&rootfs.image, &["sh", "-c", script]).await;
            check(
                out.is_success() && out.stdout == "0\n0\n",
                format!("cleaning: {out:?}"),
            )?;
            Ok::<(), Failed>(())
        })?;
    }

    // Again with the image present: nothing to do.
    let second = build_fixtures(&options, "arm64 (image present)")?;
    check(
        second.images[0].status == ImageStatus::Unchanged,
        format!("{:?}", second.images[0].status),
    )?;
    check(!second.rootfs[0].debootstrapped, "debootstrap ran again")?;
    // Image gone, cache kept: built again without debootstrap.
    block_on(async {
        let docker = docker().await;
        docker
            .remove_image(
                &rootfs.image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap();
    });
    let third = build_fixtures(&options, "arm64 (from the cache)")?;
    check(third.images[0].status == ImageStatus::Built, "rebuilt")?;
    check(
        !third.rootfs[0].debootstrapped,
        "debootstrap ran despite the cache",
    )?;
    check(third.images[0].recipe == image.recipe, "same recipe")
}

fn a_failed_debootstrap_leaves_nothing_behind() -> Result<(), Failed> {
    let cache = tempfile::tempdir()?;
    let options = FixtureOptions {
        repo: format!("{FIXTURE_REPO}-failing"),
        arches: vec![DebianArch::Arm64],
        mirror: Some("file:///nonexistent/qus/debian".to_owned()),
        cache_dir: cache.path().to_owned(),
        probes_dir: None,
        ..FixtureOptions::default()
    };
    let before = Binfmt::default().snapshot().map_err(|e| chain(&e))?;
    let recorder = Recorder::default();
    let result = images::fixtures(&options, &|e: &ImagesEvent| recorder.record(e));
    let after = Binfmt::default().snapshot().map_err(|e| chain(&e))?;
    let err = match result {
        Ok(report) => {
            remember(report.images.iter().flat_map(|i| i.tags.clone()));
            return Err("debootstrap from a missing mirror succeeded".into());
        }
        Err(err) => err,
    };
    let message = chain(&err);
    check(
        message.contains("debootstrap")
            && message.contains("--arch=arm64")
            && message.contains("E: Failed getting release file"),
        format!("error: {message}"),
    )?;
    check(!err.is_environment() && !err.is_usage(), "a failed command")?;
    // The handler was registered for the attempt and is gone again.
    check(
        recorder
            .finished()
            .iter()
            .any(|(step, _)| matches!(step, Step::RegisterHandlers { .. })),
        "no handler was registered",
    )?;
    check(before == after, "binfmt_misc entries changed")?;
    // Neither a work directory nor a tarball is left in the cache.
    let left: Vec<String> = std::fs::read_dir(cache.path().join("rootfs"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    check(left.is_empty(), format!("left in the cache: {left:?}"))?;
    block_on(async {
        let docker = docker().await;
        let all = docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions::default()))
            .await
            .unwrap();
        let named: Vec<&String> = all
            .iter()
            .flat_map(|i| &i.repo_tags)
            .filter(|t| t.starts_with(&options.repo))
            .collect();
        check(named.is_empty(), format!("images left: {named:?}"))
    })
}
