//! Debian root filesystems for the fixture images: made with `debootstrap`,
//! cached as tarballs keyed by recipe.
//!
//! The main items are [`DebianArch`] (the architectures bookworm ships,
//! with their QEMU target and `uname -m`), [`Flavor`] (what a fixture holds
//! besides `minbase`: nothing, or the workload scenarios' toolchains),
//! [`RootfsRecipe`] (what decides a root filesystem's content) and
//! [`ensure_tarball`]. A tarball lives at
//! `<cache>/rootfs/<stem>-<recipe>.tar.gz`, the stem being the architecture
//! (`arm64`) or the flavoured name (`workload-arm64`); it is rebuilt only
//! when absent, and replaces any tarball of the same stem with another
//! recipe.
//! `debootstrap` runs in a work directory under the cache (same file
//! system, so the finished tarball is renamed into place atomically) that
//! is removed afterwards, unmounting what a killed `debootstrap` left
//! mounted. Registering the binfmt_misc handlers a foreign `debootstrap`
//! needs is the caller's job (`handler.rs`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use qus_registrar::targets::{self, Target};

use super::error::ImageBuildError;
use super::progress::{Progress, Step, StepOutcome, StepTimer};
use super::recipe::Recipe;
use super::tool::{DEBOOTSTRAP, Invocation, TAR, last_lines};
use super::workdir::WorkDir;

/// Part of every root filesystem recipe: bump it when the way a root
/// filesystem or its image is made changes (cleaning, tar flags, the
/// image's `CMD`, `ENV` and labels).
const ROOTFS_BUILDER_VERSION: &str = "1";

/// Bound on one `debootstrap` (about 2 minutes under emulation).
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Bound on packing one root filesystem.
const TAR_TIMEOUT: Duration = Duration::from_secs(1800);

/// How many lines of `debootstrap.log` a failure keeps.
const LOG_TAIL_LINES: usize = 20;

/// What the workload fixtures add to `minbase` (`debootstrap --include`,
/// sorted): the compilers, interpreters and tools the `workload` scenarios
/// run under emulation (C and C++ builds, `pip install`, Node.js worker
/// threads, `sudo`, `make`), and the CA certificates `pip` needs for HTTPS.
/// Installing them in each run under emulation would take minutes.
pub const WORKLOAD_PACKAGES: [&str; 9] = [
    "ca-certificates",
    "g++",
    "gcc",
    "libc6-dev",
    "make",
    "nodejs",
    "python3",
    "python3-pip",
    "sudo",
];

/// What a root filesystem fixture holds besides `debootstrap --variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flavor {
    /// Nothing more: `qus-fixtures/<arch>:<suite>`.
    Base,
    /// [`WORKLOAD_PACKAGES`]: `qus-fixtures/workload-<arch>:<suite>`.
    Workload,
}

impl Flavor {
    /// Every flavour.
    pub const ALL: [Flavor; 2] = [Flavor::Base, Flavor::Workload];

    /// The packages it adds to `minbase`.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Flavor::Base => &[],
            Flavor::Workload => &WORKLOAD_PACKAGES,
        }
    }

    /// The fixture's name for `arch`: its image repository below the
    /// fixture prefix and its cache file's stem (`arm64`, `workload-arm64`).
    pub fn stem(self, arch: DebianArch) -> String {
        match self {
            Flavor::Base => arch.to_string(),
            Flavor::Workload => format!("{WORKLOAD_PREFIX}{arch}"),
        }
    }

    /// The flavour and architecture a fixture name stands for (the inverse
    /// of [`stem`](Flavor::stem)); `None` for any other name.
    pub fn parse_stem(name: &str) -> Option<(Flavor, DebianArch)> {
        let (flavor, arch) = match name.strip_prefix(WORKLOAD_PREFIX) {
            Some(arch) => (Flavor::Workload, arch),
            None => (Flavor::Base, name),
        };
        let arch = DebianArch::ALL.into_iter().find(|a| a.as_str() == arch)?;
        Some((flavor, arch))
    }
}

/// The name prefix of [`Flavor::Workload`] fixtures.
const WORKLOAD_PREFIX: &str = "workload-";

/// A Debian architecture of bookworm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DebianArch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
    /// 32-bit ARM, soft float (ARMv5).
    Armel,
    /// 32-bit ARM, hard float (ARMv7).
    Armhf,
    /// 32-bit x86.
    I386,
    /// 64-bit little-endian MIPS.
    Mips64el,
    /// 32-bit little-endian MIPS.
    Mipsel,
    /// 64-bit little-endian POWER.
    Ppc64el,
    /// IBM Z.
    S390x,
}

impl DebianArch {
    /// Every architecture, in name order.
    pub const ALL: [DebianArch; 9] = [
        DebianArch::Amd64,
        DebianArch::Arm64,
        DebianArch::Armel,
        DebianArch::Armhf,
        DebianArch::I386,
        DebianArch::Mips64el,
        DebianArch::Mipsel,
        DebianArch::Ppc64el,
        DebianArch::S390x,
    ];

    /// The fixtures built by default: the architectures the scenarios use.
    pub const DEFAULT: [DebianArch; 5] = [
        DebianArch::Arm64,
        DebianArch::Armhf,
        DebianArch::Ppc64el,
        DebianArch::S390x,
        DebianArch::I386,
    ];

    /// The [`Flavor::Workload`] fixtures built by default: the native
    /// baseline (amd64) and the two emulated architectures the workload
    /// scenarios run on. s390x rather than riscv64: bookworm has it (riscv64
    /// starts with trixie), so the three run the same package versions and
    /// the slowdown compares like with like, and it is big-endian.
    pub const WORKLOADS: [DebianArch; 3] =
        [DebianArch::Amd64, DebianArch::Arm64, DebianArch::S390x];

    /// Debian's name (`arm64`).
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The QEMU target that runs its binaries (`aarch64`).
    pub fn qemu_target(self) -> &'static Target {
        targets::find(self.row().1).expect("every Debian architecture maps to a QEMU target")
    }

    /// What `uname -m` prints in its root filesystem under QEMU user mode
    /// with the default CPU (the `uname` column of `fixtures/probes/probes.tsv`
    /// for the same target). Natively, on a host of the same family, the
    /// host's kernel answers instead (`x86_64` for `i386` on an x86-64 host).
    pub fn uname(self) -> &'static str {
        self.row().2
    }

    /// The OCI platform its images carry, as Docker Hub's official images
    /// of the architecture do (`linux/arm64/v8` for `arm64v8/debian`).
    pub fn platform(self) -> &'static str {
        match self {
            DebianArch::Amd64 => "linux/amd64",
            DebianArch::Arm64 => "linux/arm64/v8",
            DebianArch::Armel => "linux/arm/v5",
            DebianArch::Armhf => "linux/arm/v7",
            DebianArch::I386 => "linux/386",
            DebianArch::Mips64el => "linux/mips64le",
            DebianArch::Mipsel => "linux/mipsle",
            DebianArch::Ppc64el => "linux/ppc64le",
            DebianArch::S390x => "linux/s390x",
        }
    }

    /// Name, QEMU target, `uname -m`.
    fn row(self) -> (&'static str, &'static str, &'static str) {
        match self {
            DebianArch::Amd64 => ("amd64", "x86_64", "x86_64"),
            DebianArch::Arm64 => ("arm64", "aarch64", "aarch64"),
            // QEMU's `arm` has one default CPU model whatever the float ABI.
            DebianArch::Armel => ("armel", "arm", "armv7l"),
            DebianArch::Armhf => ("armhf", "arm", "armv7l"),
            DebianArch::I386 => ("i386", "i386", "i686"),
            DebianArch::Mips64el => ("mips64el", "mips64el", "mips64"),
            DebianArch::Mipsel => ("mipsel", "mipsel", "mips"),
            DebianArch::Ppc64el => ("ppc64el", "ppc64le", "ppc64le"),
            DebianArch::S390x => ("s390x", "s390x", "s390x"),
        }
    }
}

impl fmt::Display for DebianArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DebianArch {
    type Err = ImageBuildError;

    /// Debian's name (`arm64`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        DebianArch::ALL
            .into_iter()
            .find(|a| a.as_str() == wanted)
            .ok_or_else(|| ImageBuildError::InvalidOption {
                what: "Debian architecture",
                value: s.to_owned(),
                reason: format!(
                    "expected one of {}",
                    DebianArch::ALL.map(DebianArch::as_str).join(", ")
                ),
            })
    }
}

/// Everything that decides a root filesystem's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootfsRecipe {
    /// Only names the fixture (its cache file's stem); what it holds is in
    /// `include`, so the base fixtures' recipes are those of before
    /// flavours existed.
    pub(crate) flavor: Flavor,
    pub(crate) arch: DebianArch,
    pub(crate) suite: String,
    pub(crate) variant: String,
    pub(crate) mirror: String,
    /// Extra packages (`--include`), sorted.
    pub(crate) include: Vec<String>,
}

impl RootfsRecipe {
    /// A bookworm `minbase` recipe from Debian's mirror, for tests.
    #[cfg(test)]
    pub(crate) fn bookworm(arch: DebianArch) -> Self {
        RootfsRecipe {
            flavor: Flavor::Base,
            arch,
            suite: "bookworm".into(),
            variant: "minbase".into(),
            mirror: "http://deb.debian.org/debian".into(),
            include: Vec::new(),
        }
    }

    /// The recipe hash.
    pub(crate) fn hash(&self) -> String {
        Recipe::new("qus-fixtures/rootfs")
            .field("builder", ROOTFS_BUILDER_VERSION)
            .field("arch", self.arch.as_str())
            .field("suite", &self.suite)
            .field("variant", &self.variant)
            .field("mirror", &self.mirror)
            .field("include", self.include.join(","))
            .finish()
    }

    /// The fixture's name: `arm64`, `workload-arm64`.
    pub(crate) fn stem(&self) -> String {
        self.flavor.stem(self.arch)
    }

    /// `<cache>/rootfs/<stem>-<recipe>.tar.gz`.
    pub(crate) fn tarball(&self, cache_dir: &Path) -> PathBuf {
        self.tarball_in(&cache_dir.join("rootfs"))
    }

    /// `<dir>/<stem>-<recipe>.tar.gz`: the tarball's name in a cache
    /// directory of its own (the cross builders keep theirs apart from the
    /// fixtures', so that neither replaces the other's).
    pub(crate) fn tarball_in(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-{}.tar.gz", self.stem(), self.hash()))
    }

    /// The `debootstrap` arguments after the program name.
    fn debootstrap_args(&self, root: &Path) -> Vec<String> {
        let mut args = vec![
            format!("--variant={}", self.variant),
            format!("--arch={}", self.arch),
        ];
        if !self.include.is_empty() {
            args.push(format!("--include={}", self.include.join(",")));
        }
        args.extend([
            self.suite.clone(),
            root.display().to_string(),
            self.mirror.clone(),
        ]);
        args
    }
}

/// Makes sure the recipe's tarball is in the cache; returns its path and
/// whether it was already there. Reports one [`Step::Rootfs`].
pub(crate) async fn ensure_tarball(
    recipe: &RootfsRecipe,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<(PathBuf, bool), ImageBuildError> {
    ensure_tarball_at(recipe, recipe.tarball(cache_dir), progress).await
}

/// [`ensure_tarball`] for a tarball named by [`RootfsRecipe::tarball_in`]:
/// tarballs of the same architecture with another recipe in its directory
/// are removed once it is made.
pub(crate) async fn ensure_tarball_at(
    recipe: &RootfsRecipe,
    tarball: PathBuf,
    progress: &dyn Progress,
) -> Result<(PathBuf, bool), ImageBuildError> {
    let timer = StepTimer::start(
        progress,
        Step::Rootfs {
            arch: recipe.stem(),
            tarball: tarball.clone(),
        },
    );
    if tarball.is_file() {
        timer.finish(StepOutcome::Skipped {
            reason: "cached".to_owned(),
        });
        return Ok((tarball, true));
    }
    timer
        .done(make_tarball(recipe, &tarball).await)
        .map(|()| (tarball, false))
}

/// `debootstrap`, clean, pack, rename into place, drop older recipes.
async fn make_tarball(recipe: &RootfsRecipe, tarball: &Path) -> Result<(), ImageBuildError> {
    let dir = tarball
        .parent()
        .expect("a cache tarball path has a parent directory");
    let work = WorkDir::create(dir, &format!(".work-{}", recipe.stem()))?;
    let root = work.path().join("root");
    let result = Invocation::new(DEBOOTSTRAP)
        .args(recipe.debootstrap_args(&root))
        .timeout(DEBOOTSTRAP_TIMEOUT)
        .hint(format!(
            "check that `{}` serves {} for `{}`",
            recipe.mirror, recipe.suite, recipe.arch
        ))
        .output()
        .await;
    if let Err(ImageBuildError::CommandFailed {
        command,
        status,
        mut output,
        hint,
    }) = result
    {
        // debootstrap's own log says what went wrong inside the chroot;
        // it goes first so that its own `E:` line stays the last one.
        let log = root.join("debootstrap/debootstrap.log");
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        if !log_text.trim().is_empty() {
            output = format!(
                "--- {}:\n{}--- debootstrap:\n{output}",
                log.display(),
                last_lines(&log_text, LOG_TAIL_LINES)
            );
        }
        return Err(ImageBuildError::CommandFailed {
            command,
            status,
            output,
            hint,
        });
    }
    result?;
    clean(&root)?;
    let packed = work.path().join("rootfs.tar.gz");
    Invocation::new(TAR)
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&root)
        .arg("-czf")
        .arg(&packed)
        .arg(".")
        .timeout(TAR_TIMEOUT)
        .output()
        .await?;
    std::fs::rename(&packed, tarball)
        .map_err(ImageBuildError::io("move into the cache", tarball))?;
    remove_other_recipes(dir, &recipe.stem(), tarball);
    Ok(())
}

/// Drops what the public Debian images drop too: downloaded packages and
/// package lists (a container runs `apt-get update` first).
fn clean(root: &Path) -> Result<(), ImageBuildError> {
    for (dir, keep) in [
        (root.join("var/cache/apt/archives"), ["lock", "partial"]),
        (root.join("var/lib/apt/lists"), ["lock", "partial"]),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && !keep.iter().any(|k| name == *k) {
                std::fs::remove_file(entry.path())
                    .map_err(ImageBuildError::io("remove", entry.path()))?;
            }
        }
    }
    Ok(())
}

/// Removes `<stem>-<recipe>.tar.gz` files other than `keep`: a recipe
/// changed. `arm64-*` never matches a `workload-arm64-*` file.
fn remove_other_recipes(dir: &Path, stem: &str, keep: &Path) {
    let prefix = format!("{stem}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tar.gz"));
        let is_recipe =
            stem.is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if is_recipe
            && path != keep
            && let Err(err) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %err, "failed to remove an old root filesystem");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> RootfsRecipe {
        RootfsRecipe::bookworm(DebianArch::Arm64)
    }

    #[test]
    fn architectures_parse_and_map_to_targets() {
        assert_eq!("arm64".parse::<DebianArch>().unwrap(), DebianArch::Arm64);
        assert_eq!(
            "PPC64EL".parse::<DebianArch>().unwrap(),
            DebianArch::Ppc64el
        );
        let err = "aarch64".parse::<DebianArch>().unwrap_err();
        assert!(err.is_usage());
        assert!(err.to_string().contains("arm64, armel"), "{err}");
        for arch in DebianArch::ALL {
            assert_eq!(arch.to_string().parse::<DebianArch>().unwrap(), arch);
            // The target's ELF class decides nothing here, but the table
            // lookup must succeed for every row.
            let _ = arch.qemu_target();
        }
        assert_eq!(DebianArch::Ppc64el.qemu_target().name, "ppc64le");
        assert_eq!(DebianArch::Armhf.qemu_target().name, "arm");
    }

    #[test]
    fn unames_agree_with_the_probe_table() {
        let dir = crate::images::paths::workspace_root().join("fixtures/probes");
        let probes = crate::images::probes::read_probe_table(&dir).unwrap();
        for arch in DebianArch::ALL {
            let target = arch.qemu_target().name;
            let row = probes.iter().find(|r| r.target == target).unwrap();
            assert_eq!(arch.uname(), row.uname, "{arch}");
        }
    }

    #[test]
    fn every_recipe_field_changes_the_key() {
        let base = recipe();
        let hash = base.hash();
        assert_eq!(hash, recipe().hash());
        let variants = [
            RootfsRecipe {
                arch: DebianArch::S390x,
                ..recipe()
            },
            RootfsRecipe {
                suite: "trixie".into(),
                ..recipe()
            },
            RootfsRecipe {
                variant: "buildd".into(),
                ..recipe()
            },
            RootfsRecipe {
                mirror: "http://m.example/debian".into(),
                ..recipe()
            },
            RootfsRecipe {
                include: vec!["gcc".into()],
                ..recipe()
            },
        ];
        for other in variants {
            assert_ne!(other.hash(), hash, "{other:?}");
        }
        let path = base.tarball(Path::new("/c"));
        assert_eq!(
            path,
            PathBuf::from(format!("/c/rootfs/arm64-{hash}.tar.gz"))
        );
    }

    #[test]
    fn base_recipes_did_not_change_with_flavours() {
        // Taken from the cache file names the code wrote before flavours
        // existed (`/var/cache/qus/rootfs/arm64-aa2b5d6004a553b4.tar.gz`):
        // adding flavours must not invalidate anyone's cache.
        assert_eq!(recipe().hash(), "aa2b5d6004a553b4");
        assert_eq!(
            RootfsRecipe::bookworm(DebianArch::S390x).hash(),
            "529ec186ce4b51a7"
        );
    }

    #[test]
    fn flavours_name_their_fixtures_and_cache_files() {
        assert_eq!(Flavor::Base.stem(DebianArch::Arm64), "arm64");
        assert_eq!(Flavor::Workload.stem(DebianArch::S390x), "workload-s390x");
        for flavor in Flavor::ALL {
            for arch in DebianArch::ALL {
                assert_eq!(Flavor::parse_stem(&flavor.stem(arch)), Some((flavor, arch)));
            }
        }
        for other in [
            "probe",
            "workload-",
            "workload-sparc",
            "aarch64",
            "Workload-arm64",
            "",
        ] {
            assert_eq!(Flavor::parse_stem(other), None, "{other}");
        }
        assert!(Flavor::Base.packages().is_empty());
        let mut sorted = WORKLOAD_PACKAGES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, WORKLOAD_PACKAGES, "sorted and unique");
        let workload = RootfsRecipe {
            flavor: Flavor::Workload,
            include: WORKLOAD_PACKAGES.map(str::to_owned).to_vec(),
            ..recipe()
        };
        let name = workload.tarball(Path::new("/c"));
        assert_eq!(
            name,
            PathBuf::from(format!(
                "/c/rootfs/workload-arm64-{}.tar.gz",
                workload.hash()
            ))
        );
        assert_ne!(workload.hash(), recipe().hash());
    }

    #[test]
    fn debootstrap_gets_variant_arch_suite_dir_and_mirror() {
        let with_include = RootfsRecipe {
            include: vec!["ca-certificates".into(), "gcc".into()],
            ..recipe()
        };
        assert_eq!(
            with_include.debootstrap_args(Path::new("/w/root")),
            [
                "--variant=minbase",
                "--arch=arm64",
                "--include=ca-certificates,gcc",
                "bookworm",
                "/w/root",
                "http://deb.debian.org/debian"
            ]
        );
    }

    #[test]
    fn cleaning_drops_packages_and_lists_only() {
        let root = tempfile::tempdir().unwrap();
        let archives = root.path().join("var/cache/apt/archives");
        let lists = root.path().join("var/lib/apt/lists");
        std::fs::create_dir_all(archives.join("partial")).unwrap();
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::write(archives.join("apt_2.6.1_arm64.deb"), b"x").unwrap();
        std::fs::write(archives.join("lock"), b"").unwrap();
        std::fs::write(
            lists.join("deb.debian.org_debian_dists_bookworm_InRelease"),
            b"x",
        )
        .unwrap();
        clean(root.path()).unwrap();
        assert!(!archives.join("apt_2.6.1_arm64.deb").exists());
        assert!(archives.join("lock").exists());
        assert!(archives.join("partial").is_dir());
        assert_eq!(std::fs::read_dir(&lists).unwrap().count(), 0);
    }

    #[test]
    fn older_recipes_of_the_same_arch_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("arm64-0123456789abcdef.tar.gz");
        for name in [
            "arm64-0123456789abcdef.tar.gz",
            "arm64-fedcba9876543210.tar.gz",
            "armhf-fedcba9876543210.tar.gz",
            "arm64-notes.tar.gz",
            "workload-arm64-fedcba9876543210.tar.gz",
            "workload-arm64-0011223344556677.tar.gz",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_other_recipes(dir.path(), "arm64", &keep);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "arm64-0123456789abcdef.tar.gz",
                "arm64-notes.tar.gz",
                "armhf-fedcba9876543210.tar.gz",
                "workload-arm64-0011223344556677.tar.gz",
                "workload-arm64-fedcba9876543210.tar.gz",
            ]
        );
        // A workload recipe replaces only workload tarballs.
        let keep = dir.path().join("workload-arm64-0011223344556677.tar.gz");
        remove_other_recipes(dir.path(), "workload-arm64", &keep);
        assert!(
            !dir.path()
                .join("workload-arm64-fedcba9876543210.tar.gz")
                .exists()
        );
        assert!(keep.exists());
        assert!(dir.path().join("arm64-0123456789abcdef.tar.gz").exists());
    }
}
