//! [`fixtures`]: the images scenarios run, built without a registry.
//!
//! - `<repo>/<arch>:<suite>` (`qus-fixtures/arm64:bookworm`): a Debian root
//!   filesystem from `debootstrap --variant=minbase`, added `FROM scratch`
//!   as Debian's official images are (`ADD rootfs.tar.gz /`, `CMD
//!   ["bash"]`), built for the architecture's platform (`linux/arm64/v8`)
//!   so that engines see the architecture a registry image would have, and
//!   labelled with the `uname -m` it prints under QEMU;
//! - `<repo>/workload-<arch>:<suite>` (`qus-fixtures/workload-arm64:bookworm`):
//!   the same with [`WORKLOAD_PACKAGES`] (compilers, Python, Node.js, sudo)
//!   installed by `debootstrap --include`, for the `workload` scenarios;
//! - `<repo>/probe:<target>` (`qus-fixtures/probe:aarch64`): one probe
//!   program of `fixtures/probes` as `/probe`, `FROM scratch`.
//!
//! Root filesystems are cached by recipe (`rootfs.rs`); an image whose
//! recipe label (the root filesystem's recipe and how it becomes an image)
//! matches is left alone. Foreign `debootstrap`s need
//! binfmt_misc handlers with `F`: they are registered only when some root
//! filesystem must actually be made, and restored as soon as the last one
//! is done (`handler.rs`). Root filesystems are made `jobs` at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use qus_registrar::binfmt::HostFacts;
use qus_registrar::targets::{self, Target};

use super::containerfile;
use super::engine::{BuiltImage, Engine, ImageEngine};
use super::error::ImageBuildError;
use super::handler::Handlers;
use super::labels::{
    LABEL_CREATED, LABEL_DEBIAN_ARCH, LABEL_DESCRIPTION, LABEL_QEMU_TARGET, LABEL_SOURCE,
    LABEL_TITLE, LABEL_UNAME, SOURCE_URL, build_time, rfc3339,
};
use super::mirror::{DEFAULT_MIRROR, mirror_from_sources};
use super::paths::{default_cache_dir, workspace_root};
use super::probes::{ProbeRow, read_probe_table};
use super::progress::{Progress, Step, StepTimer};
use super::recipe::{Recipe, sha256_bytes};
use super::rootfs::{RootfsRecipe, ensure_tarball};
use super::session;
use super::tags::{validate_repo, validate_tag};
use crate::runtime::{BuildSpec, ContextFile};

pub use super::rootfs::{DebianArch, Flavor, WORKLOAD_PACKAGES};

/// The repository prefix of every fixture image.
pub const DEFAULT_FIXTURE_REPO: &str = "qus-fixtures";

/// Part of every probe image recipe.
const PROBE_BUILDER_VERSION: &str = "1";

/// Part of every root filesystem image recipe: how a cached root
/// filesystem becomes an image (`2`: `ADD` in a build for the platform;
/// `1` was a `docker import`, which records the host's architecture).
const ROOTFS_IMAGE_VERSION: &str = "2";

/// The root filesystem's name in the build context.
const ROOTFS_FILE: &str = "rootfs.tar.gz";

/// Bound on building one root filesystem image (about 50 MB of context).
const ROOTFS_IMAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What the root filesystem images get besides their files: Docker's
/// default `PATH` and Debian's `CMD`.
const ROOTFS_INSTRUCTIONS: [&str; 2] = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    r#"CMD ["bash"]"#,
];

/// Which fixtures to build, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureOptions {
    /// Repository prefix (`qus-fixtures`).
    pub repo: String,
    /// Root filesystems to build; may be empty.
    pub arches: Vec<DebianArch>,
    /// [`Flavor::Workload`] root filesystems to build
    /// (`<repo>/workload-<arch>:<suite>`); none by default (the CLI's
    /// default list adds [`DebianArch::WORKLOADS`]).
    pub workloads: Vec<DebianArch>,
    /// Debian suite, also the images' tag (`bookworm`).
    pub suite: String,
    /// `debootstrap --variant` (`minbase`).
    pub variant: String,
    /// Debian mirror; `None` takes the host's APT source for the suite, or
    /// [`DEFAULT_MIRROR`].
    pub mirror: Option<String>,
    /// Extra packages (`debootstrap --include`).
    pub include: Vec<String>,
    /// Cache of root filesystem tarballs: `$QUS_CACHE_DIR` or
    /// `/var/cache/qus` by default.
    pub cache_dir: PathBuf,
    /// Directory of `probes.tsv` for the probe images; `None` builds none.
    pub probes_dir: Option<PathBuf>,
    /// Re-import and rebuild images even when their recipe matches (the
    /// cached root filesystems are reused; delete the cache to remake them).
    pub force: bool,
    /// How many root filesystems to make at once (`debootstrap` under
    /// emulation is CPU-bound: one per core); probe images are built twice
    /// as many at a time.
    pub jobs: usize,
    /// The engine that builds, and where it answers.
    pub engine: ImageEngine,
    /// Whether Ctrl-C cancels (then cleans up); for CLIs only.
    pub handle_ctrl_c: bool,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            repo: DEFAULT_FIXTURE_REPO.to_owned(),
            arches: DebianArch::DEFAULT.to_vec(),
            workloads: Vec::new(),
            suite: "bookworm".to_owned(),
            variant: "minbase".to_owned(),
            mirror: None,
            include: Vec::new(),
            cache_dir: default_cache_dir(),
            probes_dir: Some(workspace_root().join("fixtures/probes")),
            force: false,
            jobs: 2,
            engine: ImageEngine::default(),
            handle_ctrl_c: false,
        }
    }
}

/// One root filesystem fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsReport {
    /// Its architecture.
    pub arch: DebianArch,
    /// What it holds besides `minbase`.
    pub flavor: Flavor,
    /// The image (`qus-fixtures/arm64:bookworm`).
    pub image: String,
    /// The cache file.
    pub tarball: PathBuf,
    /// Whether `debootstrap` ran (the cache had no tarball and the image
    /// was not already up to date).
    pub debootstrapped: bool,
    /// The `uname -m` label.
    pub uname: String,
}

/// What [`fixtures`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixturesReport {
    /// The mirror `debootstrap` used (or would have).
    pub mirror: String,
    /// Root filesystems, in option order: `arches`, then `workloads`.
    pub rootfs: Vec<RootfsReport>,
    /// Every image: root filesystems first, then probes in table order.
    pub images: Vec<BuiltImage>,
}

/// Builds the fixture images as `options` say.
///
/// Blocking: it runs its own tokio runtime; call it from synchronous code.
/// Making a foreign root filesystem needs root (binfmt_misc, `debootstrap`).
///
/// # Errors
///
/// A rejected option or probe table (before any work), a missing tool
/// (naming its Debian package), a failed `debootstrap`, binfmt_misc
/// trouble, an engine failure. Work directories, scratch tags and
/// binfmt_misc entries are cleaned up whatever fails.
pub fn fixtures(
    options: &FixtureOptions,
    progress: &dyn Progress,
) -> Result<FixturesReport, ImageBuildError> {
    validate(options)?;
    let probes = match &options.probes_dir {
        Some(dir) => read_probe_table(dir)?,
        None => Vec::new(),
    };
    let mirror = options
        .mirror
        .clone()
        .or_else(|| mirror_from_sources(Path::new("/"), &options.suite))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned());
    let machine = HostFacts::read(None).machine;
    session::run(
        &options.engine,
        options.handle_ctrl_c,
        |engine| async move {
            let (mut images, rootfs) =
                build_rootfs_images(&engine, options, &mirror, &machine, progress).await?;
            images.extend(build_probe_images(&engine, options, &probes, progress).await?);
            Ok(FixturesReport {
                mirror,
                rootfs,
                images,
            })
        },
    )
}

fn validate(options: &FixtureOptions) -> Result<(), ImageBuildError> {
    let invalid = |what, value: &str, reason: String| ImageBuildError::InvalidOption {
        what,
        value: value.to_owned(),
        reason,
    };
    validate_repo(&options.repo).map_err(|r| invalid("repository prefix", &options.repo, r))?;
    validate_tag(&options.suite).map_err(|r| invalid("suite", &options.suite, r))?;
    let is_word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
    };
    if !is_word(&options.variant) {
        return Err(invalid(
            "debootstrap variant",
            &options.variant,
            "expected a word such as `minbase`".into(),
        ));
    }
    if let Some(package) = options.include.iter().find(|p| !is_word(p)) {
        return Err(invalid(
            "package name",
            package,
            "Debian package names are lowercase letters, digits and `+-.`".into(),
        ));
    }
    if let Some(mirror) = &options.mirror {
        let usable = ["http://", "https://", "ftp://", "file:"]
            .iter()
            .any(|s| mirror.starts_with(s));
        if !usable {
            return Err(invalid(
                "mirror",
                mirror,
                "expected an http(s)://, ftp:// or file: URL".into(),
            ));
        }
    }
    if options.jobs == 0 {
        return Err(invalid(
            "job count",
            "0",
            "at least one job is needed".into(),
        ));
    }
    Ok(())
}

/// The root filesystem images, with what was done for each.
async fn build_rootfs_images(
    engine: &Arc<Engine>,
    options: &FixtureOptions,
    mirror: &str,
    machine: &str,
    progress: &dyn Progress,
) -> Result<(Vec<BuiltImage>, Vec<RootfsReport>), ImageBuildError> {
    let plans = rootfs_plans(options, mirror);

    // Register handlers only for root filesystems that will be made.
    let family = targets::host_family(machine);
    let mut to_make = 0;
    let mut needed: BTreeMap<&str, &'static Target> = BTreeMap::new();
    for (arch, recipe, image) in &plans {
        let up_to_date = !options.force
            && engine.inspect(image).await?.is_some_and(|info| {
                info.recipe.as_deref() == Some(image_recipe(*arch, recipe).as_str())
            });
        let cached = recipe.tarball(&options.cache_dir).is_file();
        if up_to_date || cached {
            continue;
        }
        to_make += 1;
        let target = arch.qemu_target();
        if target.family != family {
            needed.insert(target.name, target);
        }
    }
    if to_make > 0 && !rustix::process::geteuid().is_root() {
        return Err(ImageBuildError::NotRoot {
            operation: "debootstrap",
        });
    }
    let handlers = if needed.is_empty() {
        None
    } else {
        let entries = needed.values().map(|t| t.entry_name()).collect();
        let timer = StepTimer::start(progress, Step::RegisterHandlers { entries });
        let targets: Vec<&'static Target> = needed.into_values().collect();
        Some(timer.done(Handlers::register(&targets))?)
    };

    let created = rfc3339(build_time());
    let results: Vec<(BuiltImage, RootfsReport)> = futures_util::stream::iter(plans)
        .map(|(arch, recipe, image)| {
            let created = created.clone();
            async move {
                let hash = image_recipe(arch, &recipe);
                let tarball = recipe.tarball(&options.cache_dir);
                let debootstrapped = std::cell::Cell::new(false);
                let built = engine
                    .ensure(
                        std::slice::from_ref(&image),
                        &hash,
                        options.force,
                        progress,
                        || async {
                            let (tarball, cached) =
                                ensure_tarball(&recipe, &options.cache_dir, progress).await?;
                            debootstrapped.set(!cached);
                            let bytes = tokio::fs::read(&tarball)
                                .await
                                .map_err(ImageBuildError::io("read", &tarball))?;
                            let spec = BuildSpec::inline(
                                rootfs_containerfile(arch, &recipe, &created),
                                vec![ContextFile::new(ROOTFS_FILE, bytes)],
                                image.clone(),
                            )
                            .with_platform(arch.platform())
                            .with_timeout(ROOTFS_IMAGE_TIMEOUT);
                            Ok(spec)
                        },
                    )
                    .await?;
                let report = RootfsReport {
                    arch,
                    flavor: recipe.flavor,
                    image,
                    tarball,
                    debootstrapped: debootstrapped.get(),
                    uname: arch.uname().to_owned(),
                };
                Ok::<_, ImageBuildError>((built, report))
            }
        })
        .buffered(options.jobs)
        .try_collect()
        .await?;
    // The handlers were only for debootstrap: restore binfmt_misc now.
    drop(handlers);
    Ok(results.into_iter().unzip())
}

/// Each root filesystem to make, in option order (`arches`, then
/// `workloads`, each once): its architecture, recipe (the flavour's packages
/// merged into `include`, sorted) and image name.
fn rootfs_plans(options: &FixtureOptions, mirror: &str) -> Vec<(DebianArch, RootfsRecipe, String)> {
    let mut seen = BTreeSet::new();
    let fixtures: Vec<(Flavor, DebianArch)> = options
        .arches
        .iter()
        .map(|&a| (Flavor::Base, a))
        .chain(options.workloads.iter().map(|&a| (Flavor::Workload, a)))
        .filter(|f| seen.insert(*f))
        .collect();
    fixtures
        .iter()
        .map(|&(flavor, arch)| {
            let mut include = options.include.clone();
            include.extend(flavor.packages().iter().map(|p| (*p).to_owned()));
            include.sort();
            include.dedup();
            let recipe = RootfsRecipe {
                flavor,
                arch,
                suite: options.suite.clone(),
                variant: options.variant.clone(),
                mirror: mirror.to_owned(),
                include,
            };
            let image = format!("{}/{}:{}", options.repo, recipe.stem(), options.suite);
            (arch, recipe, image)
        })
        .collect()
}

/// The recipe of a root filesystem's image: the root filesystem's own
/// recipe (also its cache key) and how it becomes an image.
fn image_recipe(arch: DebianArch, recipe: &RootfsRecipe) -> String {
    Recipe::new("qus-fixtures/rootfs-image")
        .field("rootfs", recipe.hash())
        .field("image", ROOTFS_IMAGE_VERSION)
        .field("platform", arch.platform())
        .finish()
}

/// The Containerfile of a root filesystem image: the tarball added
/// `FROM scratch`, Docker's `PATH`, Debian's `CMD`, and the labels.
fn rootfs_containerfile(arch: DebianArch, recipe: &RootfsRecipe, created: &str) -> String {
    let (title_extra, include) = match recipe.include.as_slice() {
        [] => (String::new(), String::new()),
        packages => (
            match recipe.flavor {
                Flavor::Base => " + packages",
                Flavor::Workload => " + workload packages",
            }
            .to_owned(),
            format!(" --include={}", packages.join(",")),
        ),
    };
    let labels = [
        (
            LABEL_TITLE,
            format!(
                "Debian {} ({arch}), {}{title_extra}",
                recipe.suite, recipe.variant
            ),
        ),
        (
            LABEL_DESCRIPTION,
            format!(
                "debootstrap --variant={} --arch={arch}{include} {} from {}, for qus scenarios",
                recipe.variant, recipe.suite, recipe.mirror
            ),
        ),
        (LABEL_SOURCE, SOURCE_URL.to_owned()),
        (LABEL_CREATED, created.to_owned()),
        (LABEL_DEBIAN_ARCH, arch.to_string()),
        (LABEL_QEMU_TARGET, arch.qemu_target().name.to_owned()),
        (LABEL_UNAME, arch.uname().to_owned()),
    ];
    let mut text = format!("FROM scratch\nADD {ROOTFS_FILE} /\n");
    for line in ROOTFS_INSTRUCTIONS {
        text.push_str(line);
        text.push('\n');
    }
    for (key, value) in labels {
        text.push_str(&format!("LABEL {key}={}\n", quote(&value)));
    }
    text
}

/// A Dockerfile double-quoted string.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One `FROM scratch` image per probe, `jobs` at a time.
async fn build_probe_images(
    engine: &Arc<Engine>,
    options: &FixtureOptions,
    probes: &[ProbeRow],
    progress: &dyn Progress,
) -> Result<Vec<BuiltImage>, ImageBuildError> {
    let created = rfc3339(build_time());
    let mut jobs = Vec::with_capacity(probes.len());
    for row in probes {
        let bytes = std::fs::read(&row.binary).map_err(ImageBuildError::io("read", &row.binary))?;
        let labels = BTreeMap::from([
            (
                LABEL_TITLE.to_owned(),
                format!("qus probe for {}", row.target),
            ),
            (
                LABEL_DESCRIPTION.to_owned(),
                "a static program that prints uname -m, as /probe".to_owned(),
            ),
            (LABEL_SOURCE.to_owned(), SOURCE_URL.to_owned()),
            (LABEL_QEMU_TARGET.to_owned(), row.target.clone()),
            (LABEL_UNAME.to_owned(), row.uname.clone()),
        ]);
        let mut recipe = Recipe::new("qus-fixtures/probe")
            .field("builder", PROBE_BUILDER_VERSION)
            .field("containerfile", containerfile::PROBE)
            .field("probe", sha256_bytes(&bytes));
        for (key, value) in &labels {
            recipe = recipe.field(&format!("label:{key}"), value);
        }
        let mut spec = BuildSpec::inline(
            containerfile::PROBE,
            vec![ContextFile::executable("probe", bytes)],
            String::new(),
        );
        spec.labels = labels;
        let spec = spec.with_label(LABEL_CREATED, &created);
        let tag = format!("{}/probe:{}", options.repo, row.target);
        jobs.push((tag, recipe.finish(), spec));
    }
    futures_util::stream::iter(jobs)
        .map(|(tag, recipe, spec)| async move {
            engine
                .ensure(&[tag], &recipe, options.force, progress, || async {
                    Ok(spec)
                })
                .await
        })
        .buffered(options.jobs * 2)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_any_work() {
        let ok = FixtureOptions::default();
        assert!(validate(&ok).is_ok());
        for bad in [
            FixtureOptions {
                repo: "Bad".into(),
                ..FixtureOptions::default()
            },
            FixtureOptions {
                suite: "-x".into(),
                ..FixtureOptions::default()
            },
            FixtureOptions {
                variant: "min base".into(),
                ..FixtureOptions::default()
            },
            FixtureOptions {
                include: vec!["gcc;ls".into()],
                ..FixtureOptions::default()
            },
            FixtureOptions {
                mirror: Some("deb.debian.org".into()),
                ..FixtureOptions::default()
            },
            FixtureOptions {
                jobs: 0,
                ..FixtureOptions::default()
            },
        ] {
            let err = validate(&bad).unwrap_err();
            assert!(err.is_usage(), "{err}");
        }
    }

    #[test]
    fn rootfs_images_add_the_tarball_with_path_cmd_and_labels() {
        let recipe = RootfsRecipe::bookworm(DebianArch::Arm64);
        let text = rootfs_containerfile(DebianArch::Arm64, &recipe, "2024-05-01T12:00:00Z");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            ["FROM scratch", "ADD rootfs.tar.gz /", lines[2]]
        );
        assert!(lines[2].starts_with("ENV PATH=/usr/local/sbin:"));
        assert_eq!(lines[3], r#"CMD ["bash"]"#);
        assert!(lines.contains(&r#"LABEL io.qus.uname="aarch64""#));
        assert!(lines.contains(&r#"LABEL io.qus.debian-arch="arm64""#));
        assert!(lines.contains(&r#"LABEL io.qus.qemu-target="aarch64""#));
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }

    #[test]
    fn plans_name_base_then_workload_fixtures_once_each() {
        let options = FixtureOptions {
            arches: vec![DebianArch::Arm64, DebianArch::S390x, DebianArch::Arm64],
            workloads: vec![DebianArch::Amd64, DebianArch::Arm64, DebianArch::Amd64],
            include: vec!["zstd".into(), "gcc".into()],
            ..FixtureOptions::default()
        };
        let plans = rootfs_plans(&options, "http://m.example/debian");
        let names: Vec<&str> = plans.iter().map(|(_, _, image)| image.as_str()).collect();
        assert_eq!(
            names,
            [
                "qus-fixtures/arm64:bookworm",
                "qus-fixtures/s390x:bookworm",
                "qus-fixtures/workload-amd64:bookworm",
                "qus-fixtures/workload-arm64:bookworm",
            ]
        );
        let (arch, base, _) = &plans[0];
        assert_eq!(*arch, DebianArch::Arm64);
        assert_eq!(
            (base.flavor, base.include.as_slice()),
            (Flavor::Base, &["gcc".to_owned(), "zstd".to_owned()][..])
        );
        let (arch, workload, _) = &plans[3];
        assert_eq!(
            (*arch, workload.flavor),
            (DebianArch::Arm64, Flavor::Workload)
        );
        // The flavour's packages and the extra ones, sorted, `gcc` once.
        let mut expected: Vec<String> = WORKLOAD_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        expected.push("zstd".into());
        expected.sort();
        assert_eq!(workload.include, expected);
        assert_eq!(workload.mirror, "http://m.example/debian");
        assert_ne!(workload.hash(), base.hash());
        // Without workloads (the library's default), nothing changes for
        // the base fixtures.
        let default = rootfs_plans(&FixtureOptions::default(), "http://m.example/debian");
        assert_eq!(default.len(), DebianArch::DEFAULT.len());
        assert!(
            default
                .iter()
                .all(|(_, r, _)| r.flavor == Flavor::Base && r.include.is_empty())
        );
    }

    #[test]
    fn workload_images_say_what_they_include() {
        let recipe = RootfsRecipe {
            flavor: Flavor::Workload,
            include: vec!["gcc".into(), "nodejs".into()],
            ..RootfsRecipe::bookworm(DebianArch::S390x)
        };
        let text = rootfs_containerfile(DebianArch::S390x, &recipe, "2024-05-01T12:00:00Z");
        assert!(
            text.contains(
                r#"LABEL org.opencontainers.image.title="Debian bookworm (s390x), minbase + workload packages""#
            ),
            "{text}"
        );
        assert!(
            text.contains("--arch=s390x --include=gcc,nodejs bookworm from"),
            "{text}"
        );
        let base = rootfs_containerfile(
            DebianArch::S390x,
            &RootfsRecipe::bookworm(DebianArch::S390x),
            "2024-05-01T12:00:00Z",
        );
        assert!(
            base.contains(r#"title="Debian bookworm (s390x), minbase""#),
            "{base}"
        );
        assert!(!base.contains("--include"), "{base}");
    }

    #[test]
    fn image_recipes_follow_the_rootfs_and_the_platform() {
        let recipe = RootfsRecipe::bookworm;
        let arm64 = recipe(DebianArch::Arm64);
        let image = image_recipe(DebianArch::Arm64, &arm64);
        assert_eq!(image.len(), 16);
        // Not the tarball's recipe: the cache stays valid when only the
        // way an image is made changes.
        assert_ne!(image, arm64.hash());
        assert_eq!(
            image,
            image_recipe(DebianArch::Arm64, &recipe(DebianArch::Arm64))
        );
        assert_ne!(
            image,
            image_recipe(DebianArch::S390x, &recipe(DebianArch::S390x))
        );
        let trixie = RootfsRecipe {
            suite: "trixie".into(),
            ..recipe(DebianArch::Arm64)
        };
        assert_ne!(image, image_recipe(DebianArch::Arm64, &trixie));
    }

    #[test]
    fn platforms_are_the_official_images_ones() {
        let platforms: Vec<(&str, &str)> = DebianArch::ALL
            .iter()
            .map(|a| (a.as_str(), a.platform()))
            .collect();
        assert_eq!(
            platforms,
            [
                ("amd64", "linux/amd64"),
                ("arm64", "linux/arm64/v8"),
                ("armel", "linux/arm/v5"),
                ("armhf", "linux/arm/v7"),
                ("i386", "linux/386"),
                ("mips64el", "linux/mips64le"),
                ("mipsel", "linux/mipsle"),
                ("ppc64el", "linux/ppc64le"),
                ("s390x", "linux/s390x"),
            ]
        );
    }
}
