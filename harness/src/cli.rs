//! The `qus-harness` command line: every command and flag, documented.
//!
//! The main type is [`Cli`]. Parsing checks the raw arguments only (a regex
//! compiles, a partition is `k/n`, a duration parses); `app.rs` loads files,
//! finds the engine and runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use regex::Regex;

use crate::qemu::QemuSelector;
use crate::scenario::{TagExpr, parse_tag_expr};

/// Exit statuses of `qus-harness`.
pub mod exit {
    /// Every selected instance passed (or was skipped).
    pub const OK: u8 = 0;
    /// An instance failed, errored or timed out.
    pub const FAILED: u8 = 1;
    /// Usage or configuration error: bad flags, a scenario file that does
    /// not load, an empty selection without `--allow-empty`.
    pub const USAGE: u8 = 2;
    /// Environment error: the engine asked for with `--require-engine` is
    /// absent or unusable, the images the run needs could not be prepared,
    /// the host's binfmt_misc state could not be saved or restored, or
    /// `CI=true` and no instance executed.
    pub const ENVIRONMENT: u8 = 3;
    /// The run was interrupted (SIGINT or SIGTERM); the host was restored.
    pub const INTERRUPTED: u8 = 130;
}

const AFTER_HELP: &str = "\
Exit status: 0 all passed; 1 a scenario failed; 2 usage or configuration \
error; 3 environment error (engine required but absent, images the run needs \
not buildable, binfmt_misc state not restorable, CI=true and nothing executed); \
130 interrupted.";

/// Runs qus conformance scenarios (YAML) against Docker, Podman,
/// Apptainer/Singularity or the host, and restores the host's binfmt_misc
/// state afterwards.
#[derive(Debug, Parser)]
#[command(name = "qus-harness", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// More diagnostics on stderr (`-v` info, `-vv` debug); also `QUS_LOG`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios and report.
    Run(RunArgs),
    /// Load and check scenario files without running anything.
    Validate(PathsArgs),
    /// Print the JSON Schema of scenario files (for YAML editors).
    Schema,
    /// List scenarios: name, instances, tags, runtimes, requirements.
    List(PathsArgs),
    /// Show the expanded instances of a run, in order, with skip reasons.
    Plan(SelectArgs),
    /// Check this machine: kernel, binfmt_misc, user namespace, systemd,
    /// registered entries, engines, privileges, and which scenarios would
    /// be skipped here and why. Exit 0 when no check fails (with
    /// `--strict`, when none warns either).
    Doctor(DoctorArgs),
    /// Build the images qus ships and the fixture images scenarios use.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Compare two JSON reports (`run --json`): regressions, fixes, new and
    /// removed instances, workloads that got slower. The release gate's
    /// verdict: exit 0 when the candidate regressed nowhere (or only where
    /// a known difference says so), 1 when it did, 2 on a usage error.
    Compare(CompareArgs),
    /// The harness's own helper processes (private namespaces, registrar
    /// image views); not for people.
    #[command(subcommand, hide = true)]
    Internal(InternalCommand),
}

/// `internal` subcommands: what `qus-harness` does when the harness starts
/// it as a helper (`sandbox/helper.rs`).
#[derive(Debug, Subcommand)]
pub enum InternalCommand {
    /// Create a user and mount namespace with a private binfmt_misc and
    /// hold it until standard input closes (a line protocol on stdio).
    HoldNamespace,
    /// Run COMMAND in a mount namespace whose `/usr/bin` holds exactly
    /// the given emulators.
    ViewExec(ViewExecArgs),
}

/// `internal view-exec` flags.
#[derive(Debug, Clone, Args)]
pub struct ViewExecArgs {
    /// An empty directory to mount a scratch tmpfs on.
    #[arg(long, value_name = "DIR")]
    pub scratch: PathBuf,

    /// One emulator of the view, `qemu-<cpu>-static=/path/to/file`.
    #[arg(long = "emulator", value_name = "NAME=PATH", value_parser = parse_view_file)]
    pub emulators: Vec<crate::sandbox::ViewFile>,

    /// The command.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

fn parse_view_file(s: &str) -> Result<crate::sandbox::ViewFile, String> {
    crate::sandbox::ViewFile::parse(s)
}

/// `compare` flags.
#[derive(Debug, Clone, Args)]
#[command(after_help = COMPARE_AFTER_HELP)]
pub struct CompareArgs {
    /// The report of the reference run (the release before).
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,

    /// The report of the run under judgement.
    #[arg(value_name = "CANDIDATE.json")]
    pub candidate: PathBuf,

    /// A workload regressed when its slowdown grew by more than this:
    /// `25%` (the default) or a fraction such as `0.25`.
    #[arg(long, value_name = "PERCENT", default_value = "25%", value_parser = parse_percent)]
    pub slowdown: f64,

    /// Also write the comparison as Markdown tables to FILE (`-`: print
    /// the Markdown instead of the listing).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Known differences (YAML, `known: [{ id | pattern, qemu, reason }]`):
    /// the regressions and slowdowns they list are reported as known and
    /// do not fail.
    #[arg(long, value_name = "FILE")]
    pub known: Option<PathBuf>,

    /// The QEMU of BASE to compare, when it holds several (a name such as
    /// `10.0` or an image version such as `10.0.2-1`).
    #[arg(long, value_name = "V")]
    pub base_qemu: Option<String>,

    /// The QEMU of CANDIDATE to compare, when it holds several.
    #[arg(long, value_name = "V")]
    pub candidate_qemu: Option<String>,
}

const COMPARE_AFTER_HELP: &str = "\
Exit status: 0 no regression and no slowdown over the threshold that is not \
a known difference; 1 a regression (passed in BASE, failed, errored or timed \
out in CANDIDATE) or such a slowdown; 2 usage error (a file that cannot be \
read, a report of another schema version, an unknown or ambiguous QEMU, a \
known-differences file that does not load).";

/// `images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build `<repo>:latest`, `:binfmt`, `:register`, the per-target images and the
    /// release artifacts from Debian's QEMU package (qemu-user-static up to
    /// QEMU 9.0, qemu-user from 9.1), from the host's APT, a file, or a
    /// Debian suite.
    Build(ImagesBuildArgs),
    /// Build the foreign-architecture Debian images (debootstrap, cached by
    /// recipe) and the per-target probe images.
    Fixtures(ImagesFixturesArgs),
    /// Cross-compile static `qus-register` binaries for other CPUs in
    /// Debian builder images (cached by recipe); print `<cpu> <how> <bytes>
    /// <path>` for each. Exit 0 built, 1 a build failed, 2 bad flags,
    /// 3 environment error (no engine, not root for debootstrap).
    Registrar(ImagesRegistrarArgs),
    /// Push `<repo>` and every other host's `<repo>-<host>` to a registry,
    /// each tag that several hosts have (`latest`, `binfmt`, `register`,
    /// versions, `<to>`) as one OCI image index over their platforms, the
    /// `<from>-<to>` tags as they are; print `<reference> <digest>
    /// <platforms>` for each. Needs skopeo. Exit 0 pushed and read back,
    /// 1 a push or check failed, 2 bad flags or nothing to push, 3
    /// environment error (no engine, no skopeo).
    Index(ImagesIndexArgs),
}

/// `images build` flags.
#[derive(Debug, Clone, Args)]
pub struct ImagesBuildArgs {
    /// The QEMU package to use, as a file: Debian's qemu-user-static (QEMU
    /// up to 9.0), qemu-user (from 9.1), or the transitional
    /// qemu-user-static (from 9.1: its qemu-user is fetched from the
    /// Debian suite that has that version). Default: the newest QEMU of
    /// Debian's suites (see `--suite`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["qemu_version", "suite", "host_apt"])]
    pub deb: Option<PathBuf>,

    /// Take `qemu-user-static` from the host's own APT sources (`apt-get
    /// download`, as the original multiarch pipeline did) instead of
    /// Debian's suites: on Debian 12, QEMU 7.2.
    #[arg(long, conflicts_with_all = ["qemu_version", "suite"])]
    pub host_apt: bool,

    /// The QEMU to fetch from Debian's suites: a QEMU version or its prefix
    /// (`11.1`, `10.0`, `7.2`, `11.1.3`) or a full Debian version
    /// (`1:10.0.2+ds-1~bpo12+1`). Searches `--suite`, else bookworm,
    /// bookworm-backports, trixie and sid; the highest matching QEMU wins,
    /// the stable-most suite on a tie. QEMU 9.1 and later come from
    /// qemu-user, older ones from qemu-user-static.
    #[arg(long, value_name = "V")]
    pub qemu_version: Option<String>,

    /// The Debian suite to fetch from (its newest QEMU unless
    /// `--qemu-version`; without `--suite`, `--qemu-version` or
    /// `--host-apt`, the newest QEMU of bookworm, bookworm-backports,
    /// trixie and sid), through a private APT directory
    /// `$QUS_CACHE_DIR/apt/<suite>-<arch>/` (default cache
    /// `/var/cache/qus`); the host's APT setup is left alone. Its lists are
    /// refreshed when older than 6 hours.
    #[arg(long, value_enum, value_name = "SUITE")]
    pub suite: Option<SuiteChoice>,

    /// Repository of every tag.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "qus/qemu-user-static",
        env = "QUS_REPO"
    )]
    pub repo: String,

    /// The host CPU the images are for (`aarch64` or `arm64`, `ppc64le`,
    /// `riscv64`, `s390x`); default: this machine's. Another host's images
    /// are tagged in `<repo>-<host>` (`<from>` is that host), for its
    /// platform (`linux/arm64`), with a registrar cross-compiled for it (as
    /// `images registrar` does, cached) and Debian's QEMU package for its
    /// architecture, from the same source options (the default: the newest
    /// QEMU of Debian's suites; with `--host-apt`, the suite of this host's
    /// Debian release).
    #[arg(long, value_name = "CPU", env = "QUS_HOST_ARCH")]
    pub host_arch: Option<String>,

    /// A prebuilt static `qus-register` (for `--host-arch`'s CPU when
    /// given); default: compiled from this workspace with glibc
    /// `crt-static`.
    #[arg(long, value_name = "PATH")]
    pub registrar: Option<PathBuf>,

    /// Write the release artifacts (`qemu-<to>-static`, tarballs,
    /// `SHA256SUMS`) here.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Rebuild images whose recipe label already matches.
    #[arg(long)]
    pub force: bool,

    /// qus's release of this QEMU version: the `N` of the image version
    /// `7.2.0-N` (a rebuild with a new registrar or a Debian update).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub release: u32,

    /// The engine that builds and stores the images.
    #[arg(long, value_enum, default_value_t = BuildEngine::Docker)]
    pub engine: BuildEngine,
}

/// Debian suites `images build --suite` fetches QEMU from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SuiteChoice {
    /// Debian 12 (QEMU 7.2, qemu-user-static).
    Bookworm,
    /// Backports for Debian 12 (QEMU 10.0, qemu-user).
    BookwormBackports,
    /// Debian 13 (QEMU 10.0, qemu-user).
    Trixie,
    /// Debian unstable (the newest QEMU, qemu-user).
    Sid,
}

impl From<SuiteChoice> for crate::images::Suite {
    fn from(choice: SuiteChoice) -> Self {
        match choice {
            SuiteChoice::Bookworm => Self::Bookworm,
            SuiteChoice::BookwormBackports => Self::BookwormBackports,
            SuiteChoice::Trixie => Self::Trixie,
            SuiteChoice::Sid => Self::Sid,
        }
    }
}

/// Engines that build images (`images build`, `images fixtures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildEngine {
    /// Docker Engine, where `DOCKER_HOST` says (the local socket when unset).
    Docker,
    /// Podman's API service, where `QUS_PODMAN_SOCKET` or `CONTAINER_HOST`
    /// says (`/run/podman/podman.sock` when unset).
    Podman,
}

/// `images fixtures` flags.
#[derive(Debug, Clone, Args)]
pub struct ImagesFixturesArgs {
    /// Debian architectures to debootstrap (comma-separated), and
    /// `workload-<arch>` for the workload fixtures (minbase plus compilers,
    /// Python, Node.js, sudo); default: arm64, armhf, ppc64el, s390x, i386,
    /// workload-amd64, workload-arm64, workload-s390x. `none` builds only
    /// the probes.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub arches: Option<Vec<String>>,

    /// Cache directory of root filesystem tarballs (`$QUS_CACHE_DIR`,
    /// default `/var/cache/qus`).
    #[arg(long, value_name = "DIR", env = "QUS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Debian mirror; default: the host's APT source.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,

    /// Re-import and rebuild images whose recipe label already matches.
    #[arg(long)]
    pub force: bool,

    /// The engine that builds and stores the images.
    #[arg(long, value_enum, default_value_t = BuildEngine::Docker)]
    pub engine: BuildEngine,
}

/// `images index` flags.
#[derive(Debug, Clone, Args)]
pub struct ImagesIndexArgs {
    /// The local repository: this machine's images; other hosts' are in
    /// `<repo>-<host>` (`images build --host-arch`).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "qus/qemu-user-static",
        env = "QUS_REPO"
    )]
    pub repo: String,

    /// The registry repository to push to (`127.0.0.1:5000/qus/qemu-user-static`,
    /// `ghcr.io/OWNER/qemu-user-static`). A loopback registry is reached in
    /// plain HTTP, any other with TLS verified; credentials are skopeo's
    /// (`docker login` works).
    #[arg(long, value_name = "REPOSITORY")]
    pub to: String,
}

/// `images registrar` flags.
#[derive(Debug, Clone, Args)]
pub struct ImagesRegistrarArgs {
    /// CPUs to compile for (comma-separated): aarch64, ppc64le, riscv64,
    /// s390x, or an alias (arm64, ppc64el); default: all four.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = cross_cpu)]
    pub arch: Option<Vec<String>>,

    /// Also copy each binary to `DIR/qus-register-<cpu>`.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Cache of builder root filesystems and binaries (`$QUS_CACHE_DIR`,
    /// default `/var/cache/qus`).
    #[arg(long, value_name = "DIR", env = "QUS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile again even when the cache holds a binary of the same recipe.
    #[arg(long)]
    pub force: bool,

    /// The engine that builds the builder images and runs the compiler.
    #[arg(long, value_enum, default_value_t = BuildEngine::Docker)]
    pub engine: BuildEngine,
}

/// A CPU `images registrar` compiles for, as QEMU names it (`arm64` gives
/// `aarch64`).
fn cross_cpu(value: &str) -> Result<String, String> {
    crate::images::CrossTarget::find(value)
        .map(|target| target.machine.to_owned())
        .map_err(|e| e.to_string())
}

/// `doctor` flags.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print JSON (`schema_version`, `checks`, `summary`) instead of lines.
    #[arg(long)]
    pub json: bool,

    /// Exit 1 on warnings too, not only on failures (for CI).
    #[arg(long)]
    pub strict: bool,

    /// Perform the fixes the doctor prints, on Debian and Ubuntu, as root:
    /// mount binfmt_misc, install `qemu-user-static`, `docker.io` or
    /// `podman`, start dockerd or Podman's API service (each announced on
    /// stderr; what is already in place is left alone), then check again.
    #[arg(long)]
    pub fix: bool,

    /// With `--fix`: list the fixes and their commands, perform nothing.
    #[arg(long, requires = "fix")]
    pub dry_run: bool,

    /// Scenarios to plan for the "would be skipped" check (skipped when the
    /// default directory is absent).
    #[command(flatten)]
    pub select: SelectArgs,
}

/// Scenario files or directories.
#[derive(Debug, Clone, Args)]
pub struct PathsArgs {
    /// Scenario files, or directories searched for `*.yaml`/`*.yml`.
    #[arg(value_name = "PATH", default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
}

/// Which engine runs the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    /// Docker if its socket answers, else Podman, else Apptainer or
    /// Singularity if on `PATH`, else the host.
    Auto,
    /// Docker Engine (`DOCKER_HOST` or the default socket).
    Docker,
    /// Podman's Docker-compatible API service.
    Podman,
    /// Apptainer or Singularity through its command line.
    Singularity,
    /// No engine: host commands and the host registrar only.
    Host,
}

/// Which instances, with which variables.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Scenario files or directories.
    #[command(flatten)]
    pub paths: PathsArgs,

    /// Set a declared variable: `--var ARM64_IMAGE=qus-fixtures/arm64:bookworm`
    /// (repeatable; wins over the environment and the scenario's default).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Keep instances whose id matches this regex.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub filter: Option<Regex>,

    /// Keep instances whose tags satisfy this expression
    /// (`smoke and not slow`, `register or (podman and not network)`).
    #[arg(long, value_name = "EXPR", value_parser = parse_tags)]
    pub tags: Option<TagExpr>,

    /// Keep the k-th of n shares of the sorted instances (CI matrices).
    #[arg(long, value_name = "K/N", value_parser = crate::plan::parse_partition)]
    pub partition: Option<(usize, usize)>,

    /// The container engine.
    #[arg(long, value_enum, default_value = "auto", env = "QUS_RUNTIME")]
    pub runtime: RuntimeChoice,

    /// The Apptainer/Singularity command (a name on `PATH` or a path).
    #[arg(long, value_name = "CMD", env = "QUS_SINGULARITY_BIN")]
    pub singularity_bin: Option<String>,

    /// Words put before every Apptainer/Singularity command (`sudo -n`).
    #[arg(long, value_name = "WORDS", env = "QUS_SINGULARITY_PREFIX")]
    pub singularity_prefix: Option<String>,
}

/// `run` flags.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Selection and variables.
    #[command(flatten)]
    pub select: SelectArgs,

    /// How many instances run at once (those that write binfmt_misc always
    /// run alone); default: the number of CPUs.
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Stop starting instances after the first failure.
    #[arg(long)]
    pub fail_fast: bool,

    /// Succeed when the selection is empty (otherwise a usage error).
    #[arg(long)]
    pub allow_empty: bool,

    /// Limit for the whole run (`30m`, `90s`); unfinished instances are
    /// reported as errored and the host is restored.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Limit for a step that sets no `timeout`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub step_timeout: Duration,

    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Leave the run's containers and images in place.
    #[arg(long)]
    pub keep: bool,

    /// Identifier of the run (labels containers; `${RUN_ID}`); default:
    /// derived from the time and process id.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,

    /// Treat an absent or unusable engine as an error (exit 3) instead of
    /// skipping the scenarios that need it. Also `QUS_REQUIRE_ENGINES=1`.
    #[arg(long)]
    pub require_engine: bool,

    /// Run with the engine's images as they are. By default the qus images
    /// and fixtures the run needs and the engine lacks are built first,
    /// with Docker, as `images build` and `images fixtures` would, and
    /// Podman gets a copy of what it lacks from Docker.
    #[arg(long)]
    pub no_prepare: bool,

    /// Run every instance once per QEMU: names such as `7.2,11.1`
    /// (comma-separated, repeatable), each resolved to the newest image
    /// version of that QEMU in the registrar repository (`QUS_REPO` from
    /// `--var` or the environment, else `qus/qemu-user-static`), built
    /// first when no image holds it. Scenarios read it as `${QUS_VERSION}`.
    /// Also `QUS_QEMU`.
    #[arg(
        long,
        value_name = "VERSIONS",
        value_delimiter = ',',
        env = "QUS_QEMU",
        value_parser = parse_qemu
    )]
    pub qemu: Vec<QemuSelector>,
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

fn parse_tags(s: &str) -> Result<TagExpr, String> {
    parse_tag_expr(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::scenario::parse_duration(s)
}

fn parse_qemu(s: &str) -> Result<QemuSelector, String> {
    QemuSelector::parse(s.trim())
}

/// `25%` or `0.25` as the fraction 0.25; not negative.
fn parse_percent(s: &str) -> Result<f64, String> {
    let (number, scale) = match s.trim().strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s.trim(), 1.0),
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("`{s}` is not a percentage such as `25%` or a fraction such as `0.25`")
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{s}` is negative or not finite"));
    }
    Ok(value / scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("qus-harness").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_to_the_scenarios_directory() {
        let Command::Run(r) = parse(&["run"]).unwrap().command else {
            panic!("not run")
        };
        assert_eq!(r.select.paths.paths, [PathBuf::from("scenarios")]);
        assert_eq!(r.step_timeout, Duration::from_secs(600));
        assert_eq!(r.select.runtime, RuntimeChoice::Auto);
    }

    #[test]
    fn qemu_names_are_comma_separated_and_repeatable() {
        let Command::Run(r) = parse(&["run", "--qemu", "7.2, 10.0", "--qemu", "11.1.3-2"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        let names: Vec<&str> = r.qemu.iter().map(QemuSelector::as_str).collect();
        assert_eq!(names, ["7.2", "10.0", "11.1.3-2"]);
        let Command::Run(r) = parse(&["run"]).unwrap().command else {
            panic!("not run")
        };
        assert!(r.qemu.is_empty() || std::env::var_os("QUS_QEMU").is_some());
    }

    #[test]
    fn compare_thresholds_are_percentages_or_fractions() {
        let threshold = |args: &[&str]| match parse(args).unwrap().command {
            Command::Compare(c) => c.slowdown,
            other => panic!("{other:?}"),
        };
        assert_eq!(threshold(&["compare", "a", "b"]), 0.25);
        assert_eq!(threshold(&["compare", "a", "b", "--slowdown", "10%"]), 0.1);
        assert_eq!(threshold(&["compare", "a", "b", "--slowdown", "0.5"]), 0.5);
    }

    #[test]
    fn images_build_takes_a_suite_and_a_version() {
        use crate::images::Suite;
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(["qus-harness", "images", "build"].iter().chain(args));
            match cli.map(|c| c.command) {
                Ok(Command::Images(ImagesCommand::Build(b))) => Ok(b),
                Ok(_) => panic!("not images build"),
                Err(e) => Err(e),
            }
        };
        let b = parse(&["--suite", "bookworm-backports", "--qemu-version", "10.0"]).unwrap();
        assert_eq!(b.suite.map(Suite::from), Some(Suite::BookwormBackports));
        assert_eq!(b.qemu_version.as_deref(), Some("10.0"));
        for (value, suite) in [
            ("bookworm", Suite::Bookworm),
            ("trixie", Suite::Trixie),
            ("sid", Suite::Sid),
        ] {
            let b = parse(&["--suite", value]).unwrap();
            assert_eq!(b.suite.map(Suite::from), Some(suite));
            // The CLI's names are Debian's, as `Suite` spells them.
            assert_eq!(suite.to_string(), value);
        }
        assert!(parse(&["--suite", "buster"]).is_err());
        assert!(parse(&["--deb", "x.deb", "--suite", "sid"]).is_err());
        assert!(parse(&["--host-apt", "--suite", "sid"]).is_err());
        assert!(parse(&["--host-apt", "--qemu-version", "7.2"]).is_err());
        assert!(parse(&["--host-apt", "--deb", "x.deb"]).is_err());
        assert!(parse(&["--host-apt"]).unwrap().host_apt);
        assert!(parse(&["--deb", "x.deb", "--qemu-version", "7.2"]).is_err());
        let b = parse(&[]).unwrap();
        assert_eq!((b.suite, b.qemu_version, b.deb), (None, None, None));
    }

    #[test]
    fn images_build_with_docker_unless_told_podman() {
        let engine = |args: &[&str]| match parse(args).unwrap().command {
            Command::Images(ImagesCommand::Build(b)) => b.engine,
            Command::Images(ImagesCommand::Fixtures(f)) => f.engine,
            other => panic!("{other:?}"),
        };
        assert_eq!(engine(&["images", "build"]), BuildEngine::Docker);
        assert_eq!(engine(&["images", "fixtures"]), BuildEngine::Docker);
        assert_eq!(
            engine(&["images", "build", "--engine", "podman"]),
            BuildEngine::Podman
        );
        assert_eq!(
            engine(&["images", "fixtures", "--engine", "podman"]),
            BuildEngine::Podman
        );
    }

    #[test]
    fn images_registrar_takes_cpus_by_name_or_alias() {
        let args = |argv: &[&str]| match parse(argv).unwrap().command {
            Command::Images(ImagesCommand::Registrar(r)) => r,
            other => panic!("{other:?}"),
        };
        let all = args(&["images", "registrar"]);
        assert_eq!(all.arch, None);
        assert_eq!(all.output, None);
        assert!(!all.force);
        assert_eq!(all.engine, BuildEngine::Docker);
        let some = args(&[
            "images",
            "registrar",
            "--arch",
            "arm64,riscv64,ppc64el",
            "--output",
            "dist",
            "--force",
        ]);
        assert_eq!(
            some.arch.as_deref(),
            Some(&["aarch64".to_owned(), "riscv64".into(), "ppc64le".into()][..])
        );
        assert_eq!(some.output, Some(PathBuf::from("dist")));
        assert!(some.force);
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for (args, flag) in [
            (&["run", "--filter", "("][..], "--filter"),
            (&["run", "--tags", "a and"], "--tags"),
            (&["run", "--partition", "4/3"], "--partition"),
            (&["run", "--timeout", "soon"], "--timeout"),
            (&["run", "--runtime", "lxc"], "--runtime"),
            (&["images", "build", "--engine", "buildah"], "--engine"),
            (&["images", "fixtures", "--engine", "kaniko"], "--engine"),
            (&["run", "--qemu", "7.2,latest"], "--qemu"),
            (&["run", "--qemu", "7.2.0-"], "--qemu"),
            (
                &["compare", "a.json", "b.json", "--slowdown", "much"],
                "--slowdown",
            ),
            (
                &["compare", "a.json", "b.json", "--slowdown=-5%"],
                "--slowdown",
            ),
            (&["compare", "a.json"], "CANDIDATE.json"),
            (&["images", "registrar", "--arch", "x86_64"], "--arch"),
            (&["images", "registrar", "--arch", "aarch64,mips"], "--arch"),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
    }
}
