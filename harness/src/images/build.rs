//! [`build`]: the registrar images and release artifacts, from Debian's
//! QEMU package (`qemu-user-static` up to QEMU 9.0, `qemu-user` from 9.1)
//! and a static `qus-register`.
//!
//! The pipeline: check the options (no I/O) → fetch and unpack the package
//! (`fetch.rs`, `deb.rs`; a transitional `qemu-user-static` is resolved to
//! its `qemu-user`) → check every emulator is static and for this host
//! (`emulator.rs`) → compile or take the registrar, and check it → hash
//! every input → build `register`, `latest`, `binfmt` and one image per emulator
//! (`jobs` at a time, skipping those whose recipe is already built) while
//! the artifacts are written (the engine and the CPU work in parallel).
//! Unversioned tags (`latest`, `<to>`, `<from>-<to>`) are moved only when
//! the image they name is not of a newer QEMU version, so several versions
//! live side by side in one repository (`tags.rs`). Every temporary file
//! lives in one work directory removed at the end; every image is built
//! under a scratch tag and only then given its names (see `engine.rs`).
//! The version rule is in [`image_version`](super::image_version).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use qus_registrar::binfmt::HostFacts;
use qus_registrar::targets;

use super::artifacts::{self, ArtifactInput};
use super::containerfile;
use super::cross::{CrossOptions, cross_registrar};
use super::deb::{self, DebSource, Emulator, Layout, QEMU_USER};
use super::emulator::{self, Origin};
use super::engine::{BuiltImage, Engine, ImageEngine};
use super::error::ImageBuildError;
use super::fetch::Fetcher;
use super::host::{self, BuildHost};
use super::labels::{
    LABEL_CREATED, LABEL_DESCRIPTION, LABEL_LICENSES, LABEL_QEMU_VERSION, LABEL_REGISTRAR_VERSION,
    LABEL_REVISION, LABEL_SOURCE, LABEL_TITLE, LABEL_VERSION, QEMU_LICENSE, QUS_LICENSE,
    SOURCE_URL, build_time, rfc3339,
};
use super::paths::{default_cache_dir, workspace_root};
use super::progress::{Progress, Step, StepOutcome, StepTimer};
use super::recipe::{Recipe, sha256_file};
use super::registrar::{self, Registrar, RegistrarSource};
use super::session;
use super::suite::Suite;
use super::tags::{
    binfmt_tags, is_versioned, latest_tags, register_tags, stays_on_newer, target_tags,
    validate_repo, validate_tag,
};
use super::tool::{GIT, Invocation};
use super::version::{ImageVersion, QemuVersion, Selector, image_version};
use super::workdir::WorkDir;
use crate::runtime::{BuildSpec, ContextFile};

/// The repository the images are tagged in by default.
pub const DEFAULT_REPO: &str = "qus/qemu-user-static";

/// Part of every recipe: bump it when the way images are assembled
/// changes without any input changing.
const BUILDER_VERSION: &str = "1";

/// Where the registrar sits in the images.
const REGISTRAR_PATH: &str = "usr/bin/qus-register";

/// The `binfmt` image's entrypoint: a relative symlink to the registrar,
/// whose name selects tonistiigi/binfmt's command line.
const BINFMT_PATH: &str = "usr/bin/binfmt";

/// Bound on one image build (`latest` sends about 370 MB).
const IMAGE_BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// What to build, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Repository of every tag (`qus/qemu-user-static`).
    pub repo: String,
    /// The QEMU package: a file, or APT (the host's, or Debian's suites).
    pub deb: DebSource,
    /// The cache directory: suites' private APT directories live in its
    /// `apt/` (default `$QUS_CACHE_DIR`, else `/var/cache/qus`).
    pub cache_dir: PathBuf,
    /// The host CPU the images are for, as QEMU or Debian names it
    /// (`aarch64`, `arm64`); `None` is this machine's. Another host's images
    /// go to `<repo>-<host>`, with the registrar cross-compiled for it
    /// (unless [`BuildOptions::registrar`] is a file for it) and Debian's
    /// package for its architecture from a suite (this host's release's by
    /// default), for its platform (`linux/arm64`).
    pub host_arch: Option<String>,
    /// The registrar binary.
    pub registrar: RegistrarSource,
    /// qus's release number of this QEMU version: the `1` of `7.2.0-1`.
    pub release: u32,
    /// Where to write the release artifacts; `None` writes none.
    pub output_dir: Option<PathBuf>,
    /// Where to create the temporary work directory (the package is
    /// downloaded and unpacked there: about 450 MB); `None` is the system
    /// temporary directory.
    pub work_dir: Option<PathBuf>,
    /// The `org.opencontainers.image.revision` label; `None` asks git in
    /// the workspace (`unknown` without one).
    pub revision: Option<String>,
    /// Rebuild images even when their recipe is already built.
    pub force: bool,
    /// How many images to build at once (builds wait on the engine more
    /// than on the CPU), and artifact-writing threads.
    pub jobs: usize,
    /// The engine that builds, and where it answers.
    pub engine: ImageEngine,
    /// Whether Ctrl-C cancels (then cleans up); for CLIs only.
    pub handle_ctrl_c: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            repo: DEFAULT_REPO.to_owned(),
            deb: DebSource::default(),
            cache_dir: default_cache_dir(),
            host_arch: None,
            registrar: RegistrarSource::default(),
            release: 1,
            output_dir: None,
            work_dir: None,
            revision: None,
            force: false,
            jobs: 4,
            engine: ImageEngine::default(),
            handle_ctrl_c: false,
        }
    }
}

/// What [`build`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// The package the emulators came from: `qemu-user-static` (QEMU up to
    /// 9.0) or `qemu-user` (from 9.1, also when a transitional
    /// `qemu-user-static` was given or found).
    pub package: String,
    /// The Debian suite that package was fetched from; `None` for a file
    /// given as is and for the host's APT sources.
    pub suite: Option<Suite>,
    /// Debian's version of that package (`1:11.1.3+ds-1`); the images'
    /// `io.qus.qemu-version` label.
    pub debian_version: String,
    /// QEMU's version (`11.1.3`).
    pub qemu_version: String,
    /// The image version in tags (`11.1.3-1`).
    pub version: String,
    /// The host architecture: `<from>` in tags (`x86_64`, `aarch64`).
    pub host_arch: String,
    /// The repository the images are tagged in: the one asked for, or
    /// `<repo>-<host>` for another host than this machine.
    pub repo: String,
    /// The platform the images record (`linux/arm64`).
    pub platform: Option<String>,
    /// `qus-register --version`.
    pub registrar_version: String,
    /// The emulators in `latest` (every one outside the host's family).
    pub latest_emulators: Vec<String>,
    /// The emulators with their own images and artifacts (every one but
    /// the host's own architecture).
    pub target_emulators: Vec<String>,
    /// Every image: `register`, `latest`, `binfmt`, then one per emulator.
    pub images: Vec<BuiltImage>,
    /// The artifacts, `SHA256SUMS` last; empty without an output directory.
    pub artifacts: Vec<PathBuf>,
    /// Unversioned tags (`latest`, `<to>`, `<from>-<to>`) left on an image
    /// of a newer version, with that version (`("r:latest", "11.1.3-1")`),
    /// sorted.
    pub kept_newer: Vec<(String, String)>,
}

/// Builds the registrar images (and artifacts) as `options` say.
///
/// Blocking: it runs its own tokio runtime; call it from synchronous code.
///
/// # Errors
///
/// A rejected option (before any work), a missing tool (naming its Debian
/// package), an unusable package or registrar, an engine failure or a
/// failed build. Whatever fails, temporary files and scratch tags are
/// removed; images finished before the failure keep their tags.
pub fn build(
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport, ImageBuildError> {
    validate(options)?;
    let running = HostFacts::read(None).machine;
    let host = host::resolve(
        options.host_arch.as_deref(),
        &options.registrar,
        &options.repo,
        &running,
    )?;
    let deb = host::deb_source(&options.deb, &host, Suite::of_host(Path::new("/")))?;
    // Another host's registrar is cross-compiled first (its own engine
    // session), or found in the cache.
    let registrar = match &options.registrar {
        RegistrarSource::Workspace(workspace) if host.is_foreign() => {
            cross_for(&host, workspace, options, progress)?
        }
        RegistrarSource::Cross { .. } => cross_for(&host, &workspace_root(), options, progress)?,
        other => other.clone(),
    };
    let resolved = BuildOptions {
        deb,
        registrar,
        ..options.clone()
    };
    session::run(&options.engine, options.handle_ctrl_c, |engine| {
        build_all(engine, &resolved, &options.registrar, host, progress)
    })
}

/// The registrar for another host, cross-compiled from `workspace` (or
/// from the cache), as a file.
fn cross_for(
    host: &BuildHost,
    workspace: &Path,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<RegistrarSource, ImageBuildError> {
    let cross = CrossOptions {
        workspace: workspace.to_owned(),
        cache_dir: options.cache_dir.clone(),
        engine: options.engine.clone(),
        handle_ctrl_c: options.handle_ctrl_c,
        ..CrossOptions::default()
    };
    cross_registrar(&host.machine, &cross, progress).map(RegistrarSource::File)
}

/// Checks what can be checked without I/O.
fn validate(options: &BuildOptions) -> Result<(), ImageBuildError> {
    let invalid = |what, value: &str, reason: String| ImageBuildError::InvalidOption {
        what,
        value: value.to_owned(),
        reason,
    };
    validate_repo(&options.repo).map_err(|r| invalid("repository name", &options.repo, r))?;
    if options.release == 0 {
        return Err(invalid("release", "0", "releases start at 1".into()));
    }
    if options.jobs == 0 {
        return Err(invalid(
            "job count",
            "0",
            "at least one job is needed".into(),
        ));
    }
    if let DebSource::Apt {
        version: Some(version),
        ..
    } = &options.deb
    {
        Selector::parse(version).map_err(|reason| invalid("QEMU version", version, reason))?;
    }
    Ok(())
}

/// The build once the host is known; `options` has the package source
/// and registrar resolved for it (`asked` is the registrar source asked
/// for, whose workspace names the images' revision).
async fn build_all(
    engine: Arc<Engine>,
    options: &BuildOptions,
    asked: &RegistrarSource,
    host: BuildHost,
    progress: &dyn Progress,
) -> Result<BuildReport, ImageBuildError> {
    let machine = host.machine.clone();
    let parent = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent, "qus-images")?;

    let uses_suites = matches!(options.deb, DebSource::Apt { .. });
    let arch = match deb::debian_arch(&machine) {
        Some(arch) => arch,
        None if uses_suites => {
            return Err(ImageBuildError::InvalidOption {
                what: "QEMU source",
                value: format!("Debian's suites on `{machine}`"),
                reason:
                    "Debian ships no static QEMU for this CPU; pass a package with `--deb PATH`"
                        .to_owned(),
            });
        }
        None => "",
    };
    let fetcher = Fetcher {
        cache_dir: &options.cache_dir,
        arch,
        work: work.path(),
        root: Path::new("/"),
        progress,
    };
    let mut fetched = fetcher.fetch(&options.deb).await?;
    let mut unpacked =
        unpack_step(&fetched.deb, &work.path().join("deb"), &machine, progress).await?;
    if unpacked.layout == Layout::Transitional {
        let transitional = unpacked;
        fetched = fetcher
            .qemu_user_for(&options.deb, &transitional.version)
            .await?;
        unpacked = unpack_step(
            &fetched.deb,
            &work.path().join("deb-qemu-user"),
            &machine,
            progress,
        )
        .await?;
        if unpacked.layout != Layout::QemuUser || unpacked.version != transitional.version {
            return Err(ImageBuildError::InvalidDeb {
                path: fetched.deb.clone(),
                reason: format!(
                    "expected `{QEMU_USER}` {} with static `usr/bin/qemu-<cpu>`, found `{}` {}",
                    transitional.version, unpacked.package, unpacked.version
                ),
            });
        }
    }
    check_emulators(&unpacked, &fetched.deb, &machine, progress).await?;
    let qemu = QemuVersion::from_debian(&unpacked.version)?;
    let version = image_version(&unpacked.version, options.release)?;
    validate_tag(&version).map_err(|reason| ImageBuildError::Version {
        version: unpacked.version.clone(),
        reason,
    })?;

    let registrar = obtain_registrar(&options.registrar, &host, progress).await?;

    let family = targets::host_family(&machine);
    let in_latest: Vec<&Emulator> = unpacked
        .emulators
        .iter()
        .filter(|e| !is_host_family(&e.name, &family))
        .collect();
    let own_images: Vec<&Emulator> = unpacked
        .emulators
        .iter()
        .filter(|e| e.name != machine)
        .collect();

    let timer = StepTimer::start(progress, Step::HashInputs);
    let hashes = timer.done(hash_emulators(&unpacked.emulators, options.jobs).await)?;

    let revision = match &options.revision {
        Some(revision) => revision.clone(),
        None => source_revision(asked).await,
    };
    let building: ImageVersion = version.parse()?;
    let plan = Plan {
        repo: &host.repo,
        machine: &machine,
        platform: host.platform.as_deref(),
        version: &version,
        package: &unpacked.package,
        qemu_version: &unpacked.version,
        registrar: &registrar,
        hashes: &hashes,
        created: rfc3339(build_time()),
        revision,
    };

    // Jobs in one group run one after the other: `binfmt` after `latest`,
    // so that the engine's build cache hands it `latest`'s big layer
    // instead of storing the emulators twice.
    let mut groups = vec![
        vec![plan.register_job(work.path())?],
        vec![
            plan.latest_job(work.path(), &in_latest)?,
            plan.binfmt_job(work.path(), &in_latest)?,
        ],
    ];
    groups.extend(own_images.iter().map(|e| vec![plan.target_job(e)]));
    // Images keep the engine busy, artifacts the CPU: do both at once.
    let images = futures_util::stream::iter(groups)
        .map(|group| {
            let engine = Arc::clone(&engine);
            let version = &version;
            let building = &building;
            let plan = &plan;
            async move {
                let mut done = Vec::with_capacity(group.len());
                for job in group {
                    done.push(
                        run_job(&engine, job, version, building, options, plan, progress).await?,
                    );
                }
                Ok::<_, ImageBuildError>(done)
            }
        })
        .buffered(options.jobs)
        .map_ok(|done| futures_util::stream::iter(done.into_iter().map(Ok)))
        .try_flatten()
        .try_collect::<Vec<(BuiltImage, Vec<(String, String)>)>>();
    let artifacts = async {
        match &options.output_dir {
            Some(dir) => write_artifacts(dir, &plan, &own_images, options.jobs, progress).await,
            None => Ok(Vec::new()),
        }
    };
    let (images, artifacts) = tokio::try_join!(images, artifacts)?;
    let (images, kept): (Vec<BuiltImage>, Vec<Vec<(String, String)>>) = images.into_iter().unzip();
    let mut kept_newer: Vec<(String, String)> = kept.into_iter().flatten().collect();
    kept_newer.sort();
    Ok(BuildReport {
        package: unpacked.package.clone(),
        suite: fetched.suite,
        debian_version: unpacked.version.clone(),
        qemu_version: qemu.to_string(),
        version,
        host_arch: machine.clone(),
        repo: host.repo.clone(),
        platform: host.platform.clone(),
        registrar_version: registrar.version.clone(),
        latest_emulators: in_latest.iter().map(|e| e.name.clone()).collect(),
        target_emulators: own_images.iter().map(|e| e.name.clone()).collect(),
        images,
        artifacts,
        kept_newer,
    })
}

/// Makes sure one job's image exists under its tags; returns it with the
/// unversioned tags left on a newer version.
async fn run_job(
    engine: &Engine,
    job: ImageJob,
    version: &str,
    building: &ImageVersion,
    options: &BuildOptions,
    plan: &Plan<'_>,
    progress: &dyn Progress,
) -> Result<(BuiltImage, Vec<(String, String)>), ImageBuildError> {
    let ImageJob {
        tags,
        recipe,
        spec,
        versioned,
    } = job;
    let (tags, kept) = if versioned {
        keep_newer_tags(engine, tags, version, building).await?
    } else {
        (tags, Vec::new())
    };
    let image = engine
        .ensure(&tags, &recipe, options.force, progress, || async {
            spec.into_spec().await
        })
        .await?;
    // The classic builder's cache ignores the platform: an image whose
    // steps it found cached would keep the platform it was first built
    // for. Every host's files differ, so this should never fire; it is
    // checked because a wrong platform breaks the multi-platform names.
    if let Some(wanted) = plan.platform {
        let primary = &image.tags[0];
        let actual = engine
            .inspect(primary)
            .await?
            .map(|info| info.platform)
            .unwrap_or_default();
        if !same_platform(&actual, wanted) {
            return Err(ImageBuildError::WrongPlatform {
                tag: primary.clone(),
                expected: wanted.to_owned(),
                actual,
            });
        }
    }
    Ok((image, kept))
}

/// Whether `actual` (`linux/arm64/v8`) is the platform `wanted`
/// (`linux/arm64`) names: the same OS and architecture.
fn same_platform(actual: &str, wanted: &str) -> bool {
    actual.split('/').take(2).eq(wanted.split('/').take(2))
}

/// `tags` without the unversioned ones whose image is of a newer version
/// than `building`, and those left out with that version. A tag is
/// versioned when it names `version` (`<version>`, `...-<version>`).
async fn keep_newer_tags(
    engine: &Engine,
    tags: Vec<String>,
    version: &str,
    building: &ImageVersion,
) -> Result<(Vec<String>, Vec<(String, String)>), ImageBuildError> {
    let mut moved = Vec::with_capacity(tags.len());
    let mut kept = Vec::new();
    for tag in tags {
        if is_versioned(&tag, version) {
            moved.push(tag);
            continue;
        }
        let current = engine.inspect(&tag).await?.and_then(|info| info.version);
        match current {
            Some(newer) if stays_on_newer(Some(&newer), building) => kept.push((tag, newer)),
            _ => moved.push(tag),
        }
    }
    Ok((moved, kept))
}

/// Unpacks the package as one step and checks it is built for this host.
async fn unpack_step(
    deb_path: &Path,
    dir: &Path,
    machine: &str,
    progress: &dyn Progress,
) -> Result<deb::Unpacked, ImageBuildError> {
    let timer = StepTimer::start(
        progress,
        Step::UnpackDeb {
            path: deb_path.to_owned(),
        },
    );
    timer.done(unpack_for_host(deb_path, dir, machine).await)
}

/// Checks, as one step, that every emulator is static and for this host.
async fn check_emulators(
    unpacked: &deb::Unpacked,
    deb_path: &Path,
    machine: &str,
    progress: &dyn Progress,
) -> Result<(), ImageBuildError> {
    let timer = StepTimer::start(
        progress,
        Step::CheckEmulators {
            package: unpacked.package.clone(),
            count: unpacked.emulators.len(),
            machine: machine.to_owned(),
        },
    );
    let (emulators, machine) = (unpacked.emulators.clone(), machine.to_owned());
    let (deb, package, version) = (
        deb_path.to_owned(),
        unpacked.package.clone(),
        unpacked.version.clone(),
    );
    let result = tokio::task::spawn_blocking(move || {
        let origin = Origin {
            deb: &deb,
            package: &package,
            version: &version,
        };
        emulator::check_all(&emulators, &machine, origin)
    })
    .await
    .map_err(|join| ImageBuildError::Spawn {
        program: "the emulator check".to_owned(),
        source: std::io::Error::other(join),
    })
    .and_then(|r| r);
    timer.done(result)
}

/// Unpacks the package into `dir` and checks it is built for this host.
async fn unpack_for_host(
    deb_path: &Path,
    dir: &Path,
    machine: &str,
) -> Result<deb::Unpacked, ImageBuildError> {
    let unpacked = deb::unpack(deb_path, dir).await?;
    if let Some(host) = deb::debian_arch(machine)
        && unpacked.architecture != host
    {
        return Err(ImageBuildError::InvalidDeb {
            path: deb_path.to_owned(),
            reason: format!(
                "it is built for `{}` and this host is `{host}`: its emulators would not run here",
                unpacked.architecture
            ),
        });
    }
    Ok(unpacked)
}

/// Compiles or takes the registrar, then checks it.
async fn obtain_registrar(
    source: &RegistrarSource,
    host: &BuildHost,
    progress: &dyn Progress,
) -> Result<Registrar, ImageBuildError> {
    let machine = host.machine.as_str();
    let path = match source {
        RegistrarSource::File(path) => path.clone(),
        // `build` turns a cross source, and the workspace for another
        // host, into the cross-compiled file.
        RegistrarSource::Cross { .. } => return Err(unresolved(source, machine)),
        RegistrarSource::Workspace(_) if host.is_foreign() => {
            return Err(unresolved(source, machine));
        }
        RegistrarSource::Workspace(workspace) => {
            let timer = StepTimer::start(
                progress,
                Step::CompileRegistrar {
                    workspace: workspace.clone(),
                },
            );
            timer.done(registrar::compile(workspace, machine).await)?
        }
    };
    let timer = StepTimer::start(progress, Step::CheckRegistrar { path: path.clone() });
    timer.done(registrar::load(&path, machine, &host.running).await)
}

fn unresolved(source: &RegistrarSource, machine: &str) -> ImageBuildError {
    ImageBuildError::InvalidOption {
        what: "registrar source",
        value: format!("{source:?}"),
        reason: format!("a registrar for `{machine}` is cross-compiled or given as a file"),
    }
}

/// Whether emulator `name` runs binaries of the host's own family, which
/// QEMU's script never registers (on x86_64: `i386` and `x86_64`).
fn is_host_family(name: &str, family: &str) -> bool {
    let interpreter = format!("qemu-{name}");
    targets::TARGETS
        .iter()
        .any(|t| t.interpreter == interpreter && t.family == family)
}

/// The SHA-256 of every emulator, hashed on `jobs` blocking threads.
async fn hash_emulators(
    emulators: &[Emulator],
    jobs: usize,
) -> Result<BTreeMap<String, String>, ImageBuildError> {
    let emulators = emulators.to_vec();
    tokio::task::spawn_blocking(move || {
        let chunk = emulators.len().div_ceil(jobs).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = emulators
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|e| {
                                sha256_file(&e.path)
                                    .map(|sha| (e.name.clone(), sha))
                                    .map_err(ImageBuildError::io("hash", &e.path))
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut hashes = BTreeMap::new();
            for worker in workers {
                hashes.extend(worker.join().expect("hashing does not panic")?);
            }
            Ok(hashes)
        })
    })
    .await
    .map_err(|join| ImageBuildError::Spawn {
        program: "the hashing threads".to_owned(),
        source: std::io::Error::other(join),
    })?
}

/// `git rev-parse HEAD` in the workspace the registrar is compiled from;
/// `unknown` when there is no such workspace or git cannot tell.
async fn source_revision(source: &RegistrarSource) -> String {
    let workspace = match source {
        RegistrarSource::Workspace(workspace) => workspace.clone(),
        RegistrarSource::Cross { .. } => workspace_root(),
        RegistrarSource::File(_) => return "unknown".to_owned(),
    };
    let output = Invocation::new(GIT)
        .args(["rev-parse", "HEAD"])
        .current_dir(&workspace)
        .timeout(Duration::from_secs(30))
        .output()
        .await;
    match output {
        Ok(output) => {
            let revision = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if revision.is_empty() {
                "unknown".to_owned()
            } else {
                revision
            }
        }
        Err(_) => "unknown".to_owned(),
    }
}

/// Writes the artifacts of `emulators` into `dir` as one step.
async fn write_artifacts(
    dir: &Path,
    plan: &Plan<'_>,
    emulators: &[&Emulator],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, ImageBuildError> {
    let timer = StepTimer::start(
        progress,
        Step::WriteArtifacts {
            dir: dir.to_owned(),
        },
    );
    let mut recipe = Recipe::new("qus-images/artifacts")
        .field("builder", BUILDER_VERSION)
        .field("from", plan.machine);
    for emulator in emulators {
        recipe = recipe.field(&emulator.name, &plan.hashes[&emulator.name]);
    }
    let recipe = recipe.finish();
    let inputs: Vec<ArtifactInput> = emulators
        .iter()
        .map(|e| ArtifactInput {
            name: e.name.clone(),
            path: e.path.clone(),
        })
        .collect();
    let (dir_owned, from) = (dir.to_owned(), plan.machine.to_owned());
    let result = tokio::task::spawn_blocking(move || {
        artifacts::write(&dir_owned, &from, &inputs, &recipe, jobs)
    })
    .await
    .map_err(|join| ImageBuildError::Spawn {
        program: "the artifact writers".to_owned(),
        source: std::io::Error::other(join),
    })
    .and_then(|r| r);
    match result {
        Ok(written) => {
            timer.finish(if written.changed {
                StepOutcome::Done
            } else {
                StepOutcome::Skipped {
                    reason: "the directory already holds them".to_owned(),
                }
            });
            Ok(written.files)
        }
        Err(err) => timer.done(Err(err)),
    }
}

/// The inputs every image of one build shares.
struct Plan<'a> {
    repo: &'a str,
    machine: &'a str,
    /// The platform every image records (`linux/arm64`).
    platform: Option<&'a str>,
    version: &'a str,
    /// The package the emulators came from (`qemu-user`).
    package: &'a str,
    /// Debian's version of it.
    qemu_version: &'a str,
    registrar: &'a Registrar,
    hashes: &'a BTreeMap<String, String>,
    created: String,
    revision: String,
}

/// One image to make: its tags, recipe and build.
struct ImageJob {
    tags: Vec<String>,
    recipe: String,
    spec: PendingSpec,
    /// Whether the image is of this build's version, so that its
    /// unversioned tags stay on an image of a newer version (`latest` and
    /// per-emulator images; not `register`).
    versioned: bool,
}

/// A build spec whose large inputs are read only when the image is built.
enum PendingSpec {
    /// Ready.
    Ready(BuildSpec),
    /// One emulator, read from `path` into an inline context.
    Emulator {
        spec: BuildSpec,
        file_name: String,
        path: PathBuf,
    },
}

impl PendingSpec {
    async fn into_spec(self) -> Result<BuildSpec, ImageBuildError> {
        match self {
            PendingSpec::Ready(spec) => Ok(spec),
            PendingSpec::Emulator {
                mut spec,
                file_name,
                path,
            } => {
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(ImageBuildError::io("read", &path))?;
                spec.context = crate::runtime::BuildContext::Inline {
                    containerfile: containerfile::TARGET.to_owned(),
                    files: vec![ContextFile::executable(file_name, bytes)],
                };
                Ok(spec)
            }
        }
    }
}

impl Plan<'_> {
    /// Labels whose values are part of the content (everything but the
    /// build time and revision).
    fn content_labels(
        &self,
        title: &str,
        description: &str,
        licenses: &str,
    ) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_TITLE.to_owned(), title.to_owned()),
            (LABEL_DESCRIPTION.to_owned(), description.to_owned()),
            (LABEL_VERSION.to_owned(), self.version.to_owned()),
            (LABEL_SOURCE.to_owned(), SOURCE_URL.to_owned()),
            (LABEL_LICENSES.to_owned(), licenses.to_owned()),
            (LABEL_QEMU_VERSION.to_owned(), self.qemu_version.to_owned()),
        ])
    }

    /// The recipe of an image and its build spec (tag filled in later).
    fn spec(
        &self,
        kind: &str,
        containerfile: &str,
        files: &[(String, &str)],
        labels: BTreeMap<String, String>,
        context: crate::runtime::BuildContext,
    ) -> (String, BuildSpec) {
        let mut recipe = Recipe::new(&format!("qus-images/{kind}"))
            .field("builder", BUILDER_VERSION)
            .field("containerfile", containerfile)
            .field("platform", self.platform.unwrap_or(""));
        let mut files = files.to_vec();
        files.sort();
        for (path, sha) in files {
            recipe = recipe.field(&format!("file:{path}"), sha);
        }
        for (key, value) in &labels {
            recipe = recipe.field(&format!("label:{key}"), value);
        }
        let mut spec = BuildSpec::new(context, String::new()).with_timeout(IMAGE_BUILD_TIMEOUT);
        if let Some(platform) = self.platform {
            spec = spec.with_platform(platform);
        }
        spec.labels = labels;
        let spec = spec
            .with_label(LABEL_CREATED, &self.created)
            .with_label(LABEL_REVISION, &self.revision);
        (recipe.finish(), spec)
    }

    /// `register`: the registrar alone.
    fn register_job(&self, work: &Path) -> Result<ImageJob, ImageBuildError> {
        let context = work.join("context-register");
        write_registrar_context(&context, containerfile::REGISTER, self.registrar, &[])?;
        let mut labels = self.content_labels(
            "qus-register",
            "qus-register, the binfmt_misc registrar of qus, alone: registers the host's /usr/bin/qemu-*-static",
            QUS_LICENSE,
        );
        // It holds no QEMU: its version is the registrar's, so that builds
        // of several QEMU versions into one repository leave it alone.
        labels.remove(LABEL_QEMU_VERSION);
        labels.insert(LABEL_VERSION.to_owned(), self.registrar.version.clone());
        labels.insert(
            LABEL_REGISTRAR_VERSION.to_owned(),
            self.registrar.version.clone(),
        );
        let files = [(REGISTRAR_PATH.to_owned(), self.registrar.sha256.as_str())];
        let (recipe, spec) = self.spec(
            "register",
            containerfile::REGISTER,
            &files,
            labels,
            crate::runtime::BuildContext::Dir(context),
        );
        Ok(ImageJob {
            tags: register_tags(self.repo),
            recipe,
            spec: PendingSpec::Ready(spec),
            versioned: false,
        })
    }

    /// `latest`: the registrar and every emulator outside the host family.
    fn latest_job(
        &self,
        work: &Path,
        emulators: &[&Emulator],
    ) -> Result<ImageJob, ImageBuildError> {
        let context = work.join("context-latest");
        write_registrar_context(&context, containerfile::LATEST, self.registrar, emulators)?;
        let mut labels = self.content_labels(
            "qemu-user-static",
            &format!(
                "qus-register with the QEMU user-mode emulators of Debian's {} {} \
                 for {} foreign targets; run with --reset -p yes",
                self.package,
                self.qemu_version,
                emulators.len()
            ),
            &format!("{QUS_LICENSE} AND {QEMU_LICENSE}"),
        );
        labels.insert(
            LABEL_REGISTRAR_VERSION.to_owned(),
            self.registrar.version.clone(),
        );
        let mut files = vec![(REGISTRAR_PATH.to_owned(), self.registrar.sha256.as_str())];
        files.extend(emulators.iter().map(|e| {
            (
                format!("usr/bin/{}", e.file_name()),
                self.hashes[&e.name].as_str(),
            )
        }));
        let (recipe, spec) = self.spec(
            "latest",
            containerfile::LATEST,
            &files,
            labels,
            crate::runtime::BuildContext::Dir(context),
        );
        Ok(ImageJob {
            tags: latest_tags(self.repo, self.version),
            recipe,
            spec: PendingSpec::Ready(spec),
            versioned: true,
        })
    }

    /// `binfmt`: `latest`'s content, entered as tonistiigi/binfmt's
    /// command line through the `usr/bin/binfmt` symlink.
    fn binfmt_job(
        &self,
        work: &Path,
        emulators: &[&Emulator],
    ) -> Result<ImageJob, ImageBuildError> {
        let context = work.join("context-binfmt");
        write_binfmt_context(&context, self.registrar, emulators)?;
        let mut labels = self.content_labels(
            "binfmt",
            &format!(
                "qus-register as tonistiigi/binfmt's command line (entrypoint /usr/bin/binfmt, \
                 for docker/setup-qemu-action's image input) with the QEMU user-mode emulators \
                 of Debian's {} {} for {} foreign targets",
                self.package,
                self.qemu_version,
                emulators.len()
            ),
            &format!("{QUS_LICENSE} AND {QEMU_LICENSE}"),
        );
        labels.insert(
            LABEL_REGISTRAR_VERSION.to_owned(),
            self.registrar.version.clone(),
        );
        let mut files = vec![
            (REGISTRAR_PATH.to_owned(), self.registrar.sha256.as_str()),
            (BINFMT_PATH.to_owned(), "symlink:qus-register"),
        ];
        files.extend(emulators.iter().map(|e| {
            (
                format!("usr/bin/{}", e.file_name()),
                self.hashes[&e.name].as_str(),
            )
        }));
        let (recipe, spec) = self.spec(
            "binfmt",
            containerfile::BINFMT,
            &files,
            labels,
            crate::runtime::BuildContext::Dir(context),
        );
        Ok(ImageJob {
            tags: binfmt_tags(self.repo, self.version),
            recipe,
            spec: PendingSpec::Ready(spec),
            versioned: true,
        })
    }

    /// One emulator's image.
    fn target_job(&self, emulator: &Emulator) -> ImageJob {
        let labels = self.content_labels(
            &emulator.file_name(),
            &format!(
                "QEMU user-mode emulator for {} from Debian's {} {}, alone, \
                 as /usr/bin/{}",
                emulator.name,
                self.package,
                self.qemu_version,
                emulator.file_name()
            ),
            QEMU_LICENSE,
        );
        let files = [(
            format!("usr/bin/{}", emulator.file_name()),
            self.hashes[&emulator.name].as_str(),
        )];
        let placeholder = crate::runtime::BuildContext::Inline {
            containerfile: containerfile::TARGET.to_owned(),
            files: Vec::new(),
        };
        let (recipe, spec) =
            self.spec("target", containerfile::TARGET, &files, labels, placeholder);
        ImageJob {
            tags: target_tags(self.repo, self.machine, &emulator.name, self.version),
            recipe,
            spec: PendingSpec::Emulator {
                spec,
                file_name: emulator.file_name(),
                path: emulator.path.clone(),
            },
            versioned: true,
        }
    }
}

/// Writes a directory context: `Containerfile`, `rootfs/usr/bin/qus-register`,
/// the emulators next to it (hard links when possible), and the
/// `rootfs/register` symlink.
fn write_registrar_context(
    dir: &Path,
    containerfile: &str,
    registrar: &Registrar,
    emulators: &[&Emulator],
) -> Result<(), ImageBuildError> {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("rootfs/usr/bin");
    std::fs::create_dir_all(&bin).map_err(ImageBuildError::io("create directory", &bin))?;
    let file = dir.join("Containerfile");
    std::fs::write(&file, containerfile).map_err(ImageBuildError::io("write", &file))?;
    let target = dir.join("rootfs").join(REGISTRAR_PATH);
    std::fs::write(&target, &registrar.bytes).map_err(ImageBuildError::io("write", &target))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .map_err(ImageBuildError::io("set the mode of", &target))?;
    for emulator in emulators {
        let link = bin.join(emulator.file_name());
        if std::fs::hard_link(&emulator.path, &link).is_err() {
            std::fs::copy(&emulator.path, &link).map_err(ImageBuildError::io("copy", &link))?;
        }
    }
    let symlink = dir.join("rootfs/register");
    std::os::unix::fs::symlink(REGISTRAR_PATH, &symlink)
        .map_err(ImageBuildError::io("create symlink", &symlink))?;
    Ok(())
}

/// `binfmt`'s context: `latest`'s under `rootfs/`, and
/// `binfmt/usr/bin/binfmt` → `qus-register`.
fn write_binfmt_context(
    dir: &Path,
    registrar: &Registrar,
    emulators: &[&Emulator],
) -> Result<(), ImageBuildError> {
    write_registrar_context(dir, containerfile::BINFMT, registrar, emulators)?;
    let bin = dir.join("binfmt/usr/bin");
    std::fs::create_dir_all(&bin).map_err(ImageBuildError::io("create directory", &bin))?;
    let link = dir.join("binfmt").join(BINFMT_PATH);
    std::os::unix::fs::symlink("qus-register", &link)
        .map_err(ImageBuildError::io("create symlink", &link))
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
