//! Trials of `images build` from Debian's suites (part of `tests/images.rs`):
//! Debian's current QEMU in the `qemu-user` layout, fetched through private
//! APT directories, and several versions side by side in one repository.
//!
//! One sequence of real builds, run once on first use into the throwaway
//! repository [`REPO`] with a temporary cache directory (so every private
//! APT directory starts empty): `--suite trixie` (QEMU 10.0), `--suite sid`
//! (11.1, newer: takes `latest`), `--suite trixie` again (older: adds
//! nothing, moves nothing). The trials then check what each build did.
//! [`Guard`] removes every image of [`REPO`] and the temporary directories
//! at the end; [`REPO`] is also emptied before the sequence, so a run
//! killed earlier cannot make this one's cold builds warm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use qus_harness::images::{
    self, BuildOptions, BuildReport, DebSource, ImageStatus, ImageVersion, ImagesEvent,
    LABEL_VERSION, QemuVersion, RegistrarSource, Step, StepOutcome, Suite,
};
use qus_harness::runtime::{DockerRuntime, RunSpec, Runtime as _};
use qus_registrar::targets;
use sha2::{Digest as _, Sha256};

use super::{
    Node, Recorder, block_on, chain, check, docker, host_machine, image_files, labels, non_dirs,
    run,
};

/// The throwaway repository of these trials.
pub const REPO: &str = "qus-test-versions/qemu-user-static";

/// The temporary cache directory (private APT directories) of the other
/// trials of this process.
pub fn test_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("qus-images-test-cache-{}", std::process::id()))
}

/// The sequence's own cache directory: its suites start cold whatever the
/// other trials fetched before.
fn sequence_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("qus-images-test-suites-{}", std::process::id()))
}

/// Where the sid build writes its artifacts.
fn output_dir() -> PathBuf {
    std::env::temp_dir().join(format!("qus-images-test-sid-{}", std::process::id()))
}

/// Removes every image of [`REPO`], the temporary cache and the artifacts
/// when dropped.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        if super::prerequisites().is_ok() {
            remove_repo();
        }
        let _ = std::fs::remove_dir_all(test_cache_dir());
        let _ = std::fs::remove_dir_all(sequence_cache_dir());
        let _ = std::fs::remove_dir_all(output_dir());
    }
}

/// Removes every image tagged in [`REPO`].
fn remove_repo() {
    block_on(async {
        let docker = docker().await;
        let all = docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions::default()))
            .await
            .unwrap_or_default();
        let tags: Vec<&String> = all
            .iter()
            .flat_map(|i| &i.repo_tags)
            .filter(|t| t.starts_with(&format!("{REPO}:")))
            .collect();
        for tag in tags {
            let options = bollard::query_parameters::RemoveImageOptions {
                force: true,
                ..Default::default()
            };
            if let Err(err) = docker.remove_image(tag, Some(options), None).await {
                eprintln!("warning: failed to remove `{tag}`: {err}");
            }
        }
    });
}

/// One build of the sequence.
struct Build {
    report: BuildReport,
    events: Vec<(Step, StepOutcome)>,
    elapsed: Duration,
}

/// The sequence's builds, and the host's APT state around them.
struct Sequence {
    trixie: Build,
    sid: Build,
    trixie_again: Build,
    apt_before: String,
    apt_after: String,
}

static SEQUENCE: OnceLock<Result<Sequence, String>> = OnceLock::new();

fn options(suite: Suite, output: Option<PathBuf>) -> BuildOptions {
    BuildOptions {
        repo: REPO.to_owned(),
        deb: DebSource::Apt {
            version: None,
            suite: Some(suite),
        },
        cache_dir: sequence_cache_dir(),
        registrar: RegistrarSource::default(),
        output_dir: output,
        ..BuildOptions::default()
    }
}

fn build(options: &BuildOptions, what: &str) -> Result<Build, String> {
    let recorder = Recorder::default();
    let started = Instant::now();
    let result = images::build(options, &|e: &ImagesEvent| recorder.record(e));
    let elapsed = started.elapsed();
    eprintln!("  images build {what}: {:.1}s", elapsed.as_secs_f64());
    let report = result.map_err(|e| format!("{what}: {}", chain(&e)))?;
    Ok(Build {
        report,
        events: recorder.finished(),
        elapsed,
    })
}

fn sequence() -> Result<&'static Sequence, Failed> {
    SEQUENCE
        .get_or_init(|| {
            remove_repo();
            let apt_before = apt_state();
            let trixie = build(&options(Suite::Trixie, None), "--suite trixie (cold)")?;
            let sid = build(
                &options(Suite::Sid, Some(output_dir())),
                "--suite sid (cold)",
            )?;
            let trixie_again = build(&options(Suite::Trixie, None), "--suite trixie (again)")?;
            let apt_after = apt_state();
            Ok(Sequence {
                trixie,
                sid,
                trixie_again,
                apt_before,
                apt_after,
            })
        })
        .as_ref()
        .map_err(|e| Failed::from(format!("the build sequence failed: {e}")))
}

/// A hash of every path, symlink target and file content under the host's
/// `/etc/apt` and `/var/lib/apt/lists`.
fn apt_state() -> String {
    fn walk(path: &Path, hasher: &mut Sha256) {
        hasher.update(path.as_os_str().as_encoded_bytes());
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.is_symlink() {
            if let Ok(target) = std::fs::read_link(path) {
                hasher.update(target.as_os_str().as_encoded_bytes());
            }
        } else if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for entry in entries {
                walk(&entry, hasher);
            }
        } else if let Ok(bytes) = std::fs::read(path) {
            hasher.update(&bytes);
        }
    }
    let mut hasher = Sha256::new();
    for root in ["/etc/apt", "/var/lib/apt/lists"] {
        walk(Path::new(root), &mut hasher);
    }
    format!("{:x}", hasher.finalize())
}

/// The `org.opencontainers.image.version` label of `image`, if it exists.
async fn version_of(image: &str) -> Option<String> {
    let docker = docker().await;
    docker.inspect_image(image).await.ok()?;
    labels(&docker, image).await.remove(LABEL_VERSION)
}

fn find(events: &[(Step, StepOutcome)], what: impl Fn(&Step) -> bool) -> Vec<&StepOutcome> {
    events
        .iter()
        .filter(|(step, _)| what(step))
        .map(|(_, outcome)| outcome)
        .collect()
}

pub fn sid_images_hold_static_qemu_user_emulators_as_static_names() -> Result<(), Failed> {
    let sid = &sequence()?.sid;
    let report = &sid.report;
    eprintln!(
        "    {} {} from {:?}: images {}",
        report.package, report.debian_version, report.suite, report.version
    );
    // Debian's layout since 9.1: static emulators in qemu-user.
    let qemu = QemuVersion::from_debian(&report.debian_version).map_err(|e| chain(&e))?;
    check(
        report.package == "qemu-user" && report.suite == Some(Suite::Sid),
        format!("package {} from {:?}", report.package, report.suite),
    )?;
    check(qemu.is_in_qemu_user(), format!("sid's QEMU is {qemu}"))?;
    check(report.qemu_version == qemu.to_string(), "qemu version")?;
    check(
        report.version == images::image_version(&report.debian_version, 1).unwrap(),
        format!("image version {}", report.version),
    )?;
    check(
        images::qemu_version_matches(&format!("{}.{}", qemu.major, qemu.minor), &report.version),
        "the major.minor selector matches the image version",
    )?;
    let machine = host_machine();
    block_on(async {
        let docker = docker().await;
        // The interpreter keeps the name users script against.
        let image = format!("{REPO}:aarch64-{}", report.version);
        let runtime = DockerRuntime::connect().await.unwrap();
        let out = runtime
            .run(
                &RunSpec::new(image.clone(), ["--version"])
                    .with_entrypoint(["/usr/bin/qemu-aarch64-static"])
                    .with_timeout(Duration::from_secs(120)),
            )
            .await
            .unwrap();
        check(
            out.is_success()
                && out
                    .stdout
                    .starts_with(&format!("qemu-aarch64 version {qemu}")),
            format!("{image} qemu-aarch64-static --version: {out:?}"),
        )?;
        // `COPY --from=<repo>:x86_64-aarch64 /usr/bin/qemu-aarch64-static` works.
        let files = non_dirs(&image_files(&docker, &format!("{REPO}:{machine}-aarch64")).await);
        let names: Vec<&String> = files.keys().collect();
        check(
            names == ["usr/bin/qemu-aarch64-static"],
            format!("{machine}-aarch64 holds {names:?}"),
        )?;
        // latest: the registrar and every foreign emulator, `-static` named.
        let files = non_dirs(&image_files(&docker, &format!("{REPO}:latest")).await);
        let mut want: Vec<String> = report
            .latest_emulators
            .iter()
            .map(|e| format!("usr/bin/qemu-{e}-static"))
            .collect();
        want.extend(["register".to_owned(), "usr/bin/qus-register".to_owned()]);
        want.sort();
        let have: Vec<String> = files.keys().cloned().collect();
        check(have == want, format!("latest holds {have:?}"))?;
        check(
            files
                .iter()
                .filter(|(p, _)| p.starts_with("usr/bin/qemu-"))
                .all(|(_, n)| matches!(n, Node::File { mode: 0o755, .. })),
            "the emulators are executable files",
        )?;
        // `--dry-run --reset -p yes` plans every foreign target: each
        // interpreter exists in the image and is static.
        let out = run(
            &format!("{REPO}:latest"),
            &["--dry-run", "--reset", "-p", "yes"],
        )
        .await;
        check(out.is_success(), format!("latest --dry-run: {out:?}"))?;
        let family = targets::host_family(&machine);
        for target in targets::TARGETS.iter().filter(|t| t.family != family) {
            let line = format!("register    :{}:M:", target.entry_name());
            let interpreter = format!(":/usr/bin/{}-static:F\n", target.interpreter);
            check(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with(&line) && format!("{l}\n").ends_with(&interpreter)),
                format!("the plan lacks {}: {}", target.entry_name(), out.stdout),
            )?;
        }
        Ok::<(), Failed>(())
    })?;
    // The artifacts keep their names, verify, and are static.
    let dir = output_dir();
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()?;
    check(out.status.success(), "sha256sum -c")?;
    for name in [
        "qemu-aarch64-static".to_owned(),
        "qemu-aarch64-static.tar.gz".to_owned(),
        format!("{machine}_qemu-aarch64-static.tar.gz"),
    ] {
        check(
            dir.join(&name).is_file(),
            format!("artifact {name} missing"),
        )?;
    }
    let file = Command::new("file")
        .arg(dir.join("qemu-aarch64-static"))
        .output()?;
    let file = String::from_utf8_lossy(&file.stdout);
    eprintln!("    {}", file.trim());
    check(
        file.contains("statically linked") || file.contains("static-pie linked"),
        format!("file: {file}"),
    )?;
    check(
        !file.contains("dynamically linked"),
        format!("file: {file}"),
    )
}

pub fn suites_are_fetched_without_touching_the_hosts_apt() -> Result<(), Failed> {
    let sequence = sequence()?;
    check(
        sequence.apt_before == sequence.apt_after,
        "/etc/apt or /var/lib/apt/lists changed during the builds",
    )?;
    let arch = match host_machine().as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => return Err(format!("no Debian name known here for `{other}`").into()),
    };
    let mut downloaded = 0;
    for (suite, build) in [
        (Suite::Trixie, &sequence.trixie),
        (Suite::Sid, &sequence.sid),
    ] {
        let dir = sequence_cache_dir()
            .join("apt")
            .join(format!("{suite}-{arch}"));
        let sources = std::fs::read_to_string(dir.join("sources.list"))?;
        check(
            sources
                .lines()
                .any(|l| l.starts_with("deb ") && l.ends_with(&format!(" {suite} main"))),
            format!("{suite} sources: {sources}"),
        )?;
        let lists: u64 = std::fs::read_dir(dir.join("lists"))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum();
        check(lists > 0, format!("{suite}: no package list"))?;
        let debs: Vec<(String, u64)> = std::fs::read_dir(dir.join("archives"))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".deb"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().map_or(0, |m| m.len()),
                )
            })
            .collect();
        check(
            debs.len() == 1 && debs[0].0.starts_with("qemu-user_"),
            format!("{suite} archives: {debs:?}"),
        )?;
        downloaded += lists + debs[0].1;
        eprintln!(
            "    {suite}: lists {:.1} MB (as stored), {} {:.1} MB",
            lists as f64 / 1e6,
            debs[0].0,
            debs[0].1 as f64 / 1e6
        );
        // A cold build refreshes the lists and downloads, as steps.
        let updates = find(
            &build.events,
            |s| matches!(s, Step::UpdateLists { suite: s, .. } if *s == suite),
        );
        check(
            updates == [&StepOutcome::Done],
            format!("{suite} update: {updates:?}"),
        )?;
        let fetches = find(
            &build.events,
            |s| matches!(s, Step::FetchDeb { package, size: Some(_), suite: Some(_), .. } if package == "qemu-user"),
        );
        check(
            fetches == [&StepOutcome::Done],
            format!("{suite} fetch: {fetches:?}"),
        )?;
    }
    eprintln!(
        "    stored after two cold suites: {:.1} MB",
        downloaded as f64 / 1e6
    );
    // The second trixie build reused both.
    let again = &sequence.trixie_again.events;
    check(
        find(again, |s| matches!(s, Step::UpdateLists { .. }))
            .iter()
            .all(|o| matches!(o, StepOutcome::Skipped { .. })),
        "trixie's lists were refreshed again",
    )?;
    check(
        find(again, |s| matches!(s, Step::FetchDeb { .. }))
            .iter()
            .all(|o| matches!(o, StepOutcome::Skipped { .. })),
        "trixie's package was downloaded again",
    )
}

pub fn the_newest_version_keeps_latest_and_the_unversioned_tags() -> Result<(), Failed> {
    let sequence = sequence()?;
    let (old, new) = (&sequence.trixie.report, &sequence.sid.report);
    let (old_v, new_v): (ImageVersion, ImageVersion) = (
        old.version.parse().map_err(|e| chain(&e))?,
        new.version.parse().map_err(|e| chain(&e))?,
    );
    check(old_v < new_v, format!("{old_v} is not older than {new_v}"))?;
    eprintln!(
        "    trixie {} ({:.0}s), sid {} ({:.0}s), trixie again ({:.0}s)",
        old.version,
        sequence.trixie.elapsed.as_secs_f64(),
        new.version,
        sequence.sid.elapsed.as_secs_f64(),
        sequence.trixie_again.elapsed.as_secs_f64()
    );
    let machine = host_machine();
    let tags_of = |report: &BuildReport| -> Vec<String> {
        report.images.iter().flat_map(|i| i.tags.clone()).collect()
    };
    // The first build, into an empty repository, took every tag.
    let first = tags_of(old);
    for tag in ["latest", "binfmt", "aarch64", &format!("{machine}-aarch64")] {
        check(
            first.contains(&format!("{REPO}:{tag}")),
            format!("the first build lacks {tag}"),
        )?;
    }
    check(old.kept_newer.is_empty(), "the first build kept tags")?;
    // The newer one moved them.
    check(
        new.kept_newer.is_empty(),
        "sid kept tags on an older version",
    )?;
    check(
        tags_of(new).contains(&format!("{REPO}:latest")),
        "sid did not take latest",
    )?;
    // The older one again: its images unchanged, no unversioned tag moved.
    let again = &sequence.trixie_again.report;
    check(
        again
            .images
            .iter()
            .all(|i| i.status == ImageStatus::Unchanged),
        "trixie's images were rebuilt",
    )?;
    let moved: Vec<String> = tags_of(again)
        .into_iter()
        .filter(|t| !t.ends_with(&old.version) && !t.ends_with(":register"))
        .collect();
    check(moved.is_empty(), format!("trixie moved {moved:?}"))?;
    let kept: BTreeMap<&str, &str> = again
        .kept_newer
        .iter()
        .map(|(t, v)| (t.as_str(), v.as_str()))
        .collect();
    for tag in ["latest", "binfmt"] {
        check(
            kept.get(format!("{REPO}:{tag}").as_str()) == Some(&new.version.as_str()),
            format!("kept {kept:?}"),
        )?;
    }
    // What the engine holds: unversioned tags on the newest version that
    // has the emulator, versioned ones on their own.
    block_on(async {
        for tag in ["latest", "binfmt"] {
            check(
                version_of(&format!("{REPO}:{tag}")).await.as_deref() == Some(new.version.as_str()),
                format!("{tag} is not on the newest version"),
            )?;
        }
        for (report, other) in [(old, new), (new, old)] {
            check(
                version_of(&format!("{REPO}:{}", report.version))
                    .await
                    .as_deref()
                    == Some(report.version.as_str()),
                format!("{REPO}:{} is missing", report.version),
            )?;
            for to in &report.target_emulators {
                for tag in [
                    format!("{to}-{}", report.version),
                    format!("{machine}-{to}-{}", report.version),
                ] {
                    check(
                        version_of(&format!("{REPO}:{tag}")).await.as_deref()
                            == Some(report.version.as_str()),
                        format!("{tag} is not on {}", report.version),
                    )?;
                }
                let newest =
                    if report.version == new.version || !other.target_emulators.contains(to) {
                        &report.version
                    } else {
                        &other.version
                    };
                for tag in [to.clone(), format!("{machine}-{to}")] {
                    check(
                        version_of(&format!("{REPO}:{tag}")).await.as_deref()
                            == Some(newest.as_str()),
                        format!("{tag} is not on {newest}"),
                    )?;
                }
            }
        }
        Ok::<(), Failed>(())
    })
}

pub fn a_warm_suite_build_fetches_and_builds_nothing() -> Result<(), Failed> {
    let sequence = sequence()?;
    let warm = build(
        &options(Suite::Sid, Some(output_dir())),
        "--suite sid (warm)",
    )?;
    eprintln!(
        "    sid cold {:.1}s, warm {:.1}s",
        sequence.sid.elapsed.as_secs_f64(),
        warm.elapsed.as_secs_f64()
    );
    for (what, outcomes) in [
        (
            "update",
            find(&warm.events, |s| matches!(s, Step::UpdateLists { .. })),
        ),
        (
            "download",
            find(&warm.events, |s| matches!(s, Step::FetchDeb { .. })),
        ),
        (
            "artifacts",
            find(&warm.events, |s| matches!(s, Step::WriteArtifacts { .. })),
        ),
    ] {
        check(
            outcomes.len() == 1 && matches!(outcomes[0], StepOutcome::Skipped { .. }),
            format!("{what}: {outcomes:?}"),
        )?;
    }
    check(
        warm.report
            .images
            .iter()
            .all(|i| i.status == ImageStatus::Unchanged),
        "images rebuilt",
    )?;
    check(
        warm.report.version == sequence.sid.report.version,
        "another version",
    )
}

/// Downloads `package=version` with the private APT directory of `suite`
/// that a build left in `cache`, into a new temporary directory; returns
/// the directory and the `.deb`.
fn download_with(
    cache: &Path,
    suite: Suite,
    package: &str,
    version: &str,
) -> Result<(tempfile::TempDir, PathBuf), Failed> {
    let arch = match host_machine().as_str() {
        "x86_64" => "amd64",
        other => return Err(format!("no Debian name known here for `{other}`").into()),
    };
    let apt = cache.join("apt").join(format!("{suite}-{arch}"));
    let out = tempfile::tempdir()?;
    let status = Command::new("apt-get")
        .arg("-q")
        .args([
            "-o",
            &format!("Dir::Etc::sourcelist={}/sources.list", apt.display()),
        ])
        .args([
            "-o",
            &format!("Dir::Etc::sourceparts={}/sources.list.d", apt.display()),
        ])
        .args(["-o", &format!("Dir::State::Lists={}/lists", apt.display())])
        .args([
            "-o",
            &format!("Dir::State::status={}/status", apt.display()),
        ])
        .args(["-o", &format!("Dir::Cache={}/cache", apt.display())])
        .args(["-o", "APT::Sandbox::User=root"])
        .args(["download", &format!("{package}={version}")])
        .current_dir(out.path())
        .output()?;
    check(
        status.status.success(),
        format!(
            "apt-get download: {}",
            String::from_utf8_lossy(&status.stderr)
        ),
    )?;
    let deb = std::fs::read_dir(out.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or("apt-get download wrote no .deb")?;
    Ok((out, deb))
}

pub fn a_transitional_package_resolves_to_qemu_user() -> Result<(), Failed> {
    let trixie = &sequence()?.trixie.report;
    // trixie's qemu-user-static is the transitional package of its qemu-user.
    let (_dir, deb) = download_with(
        &sequence_cache_dir(),
        Suite::Trixie,
        "qemu-user-static",
        &trixie.debian_version,
    )?;
    let options = BuildOptions {
        deb: DebSource::File(deb.clone()),
        ..options(Suite::Trixie, None)
    };
    let built = build(&options, "--deb <trixie's transitional qemu-user-static>")?;
    let report = &built.report;
    check(
        report.package == "qemu-user"
            && report.debian_version == trixie.debian_version
            && report.suite == Some(Suite::Trixie),
        format!(
            "resolved to {} {} from {:?}",
            report.package, report.debian_version, report.suite
        ),
    )?;
    // Said in the progress: the qemu-user download names the reason.
    let reasons: Vec<&Option<String>> = built
        .events
        .iter()
        .filter_map(|(s, _)| match s {
            Step::FetchDeb {
                package, reason, ..
            } if package == "qemu-user" => Some(reason),
            _ => None,
        })
        .collect();
    check(
        reasons.len() == 1
            && reasons[0]
                .as_deref()
                .is_some_and(|r| r.contains("transitional")),
        format!("reasons: {reasons:?}"),
    )?;
    // The same emulators as the trixie build: nothing to rebuild.
    check(
        report
            .images
            .iter()
            .all(|i| i.status == ImageStatus::Unchanged),
        "the transitional build made other images than trixie's",
    )
}

pub fn a_dynamic_qemu_user_is_refused_by_name() -> Result<(), Failed> {
    // The build of the installed version searched every suite, leaving
    // bookworm's private APT directory in the test cache.
    super::built()?;
    let version = super::installed_qemu_version().ok_or("no installed version")?;
    // bookworm's qemu-user (QEMU 7.2) is dynamically linked.
    let (_dir, deb) = download_with(&test_cache_dir(), Suite::Bookworm, "qemu-user", &version)?;
    let options = BuildOptions {
        deb: DebSource::File(deb.clone()),
        ..options(Suite::Bookworm, None)
    };
    let err = match images::build(&options, &images::NoProgress) {
        Ok(report) => {
            return Err(format!(
                "built {} images from a dynamic qemu-user",
                report.images.len()
            )
            .into());
        }
        Err(err) => err,
    };
    let message = err.to_string();
    eprintln!("    {message}");
    check(
        message.starts_with(&format!(
            "the emulator `usr/bin/qemu-aarch64` of `{}` cannot go into an image: it is \
             dynamically linked (interpreter `/lib",
            deb.display()
        )),
        message,
    )?;
    check(!err.is_usage() && !err.is_environment(), "exit status 1")
}
