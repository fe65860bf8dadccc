//! `SingularityRuntime` against a real Apptainer (or Singularity) and the
//! local Docker engine its images come from.
//!
//! Compiled only with `--features singularity`. The command is
//! `$QUS_SINGULARITY_BIN`, else the first of `apptainer-sid` (the CI wrapper,
//! `source .ci/lib/apptainer.sh && setup_apptainer`), `apptainer` and
//! `singularity` on `PATH`. Each trial builds its own `FROM scratch` image in
//! Docker (a static probe compiled here with `gcc -static`, labelled with the
//! trial's run id), unpacks sandboxes under its own directory in `/tmp`, and
//! removes everything in a guard; then it checks that nothing is left.
//!
//! Without the command, Docker or gcc a trial is ignored with the reason;
//! with `QUS_REQUIRE_ENGINES=1` it fails instead. The binfmt_misc trials
//! (privileged registration, a foreign aarch64 probe) also need root, a
//! mounted binfmt_misc and `qemu-aarch64-static`; with
//! `QUS_REQUIRE_KERNEL=1` missing those fails too. They run one at a time
//! and put the host's binfmt_misc entries back in a guard.
#![cfg(feature = "singularity")]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_harness::runtime::{
    BuildSpec, ContextFile, DockerRuntime, PrivilegeMode, RUN_LABEL, RunOutcome, RunSpec, Runtime,
    RuntimeError, RuntimeKind, SingularityRuntime, StepCapability,
};
use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};
use qus_registrar::entry::{Entry, Flags, register_line};

#[path = "common/tool.rs"]
mod tool;

/// The probe image: the probe as entrypoint, `echo default` as command, an
/// environment and a working directory to inherit. Built after
/// [`UNIQUE_BASE`].
const PROBE_CONTAINERFILE: &str = "COPY probe /probe\nENV FROM_IMAGE=image OVERRIDDEN=image\n\
    WORKDIR /work\nENTRYPOINT [\"/probe\"]\nCMD [\"echo\", \"default\"]\n";

/// The foreign probe image: the committed aarch64 probe, which prints
/// `aarch64` through QEMU. Built after [`UNIQUE_BASE`].
const FOREIGN_CONTAINERFILE: &str = "COPY aarch64 /aarch64\nENTRYPOINT [\"/aarch64\"]\n";

/// The start of every test image, `{}` being the run id. A first layer of
/// its own keeps trials from sharing cached layers: Docker 20.10 fails a
/// build ("failed to get digest") whose cached parent another trial's
/// cleanup removes at the same moment.
const UNIQUE_BASE: &str = "FROM scratch\nLABEL io.qus.test-run={}\n";

/// A Containerfile made unique to `run_id`.
fn containerfile(run_id: &str, body: &str) -> String {
    UNIQUE_BASE.replace("{}", run_id) + body
}

/// A Debian arm64 image other parts of the project build, used when present.
const ARM64_FIXTURE_IMAGE: &str = "qus-fixtures/arm64:bookworm";

/// Where Debian's qemu-user-static puts the aarch64 interpreter.
const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// Generous per-run limit: these runs finish in well under a second.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn env_is_one(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// A missing engine prerequisite: ignored, or a failure when required.
fn unavailable(reason: &str) -> Result<Completion, Failed> {
    if env_is_one("QUS_REQUIRE_ENGINES") {
        Err(format!("QUS_REQUIRE_ENGINES=1 but {reason}").into())
    } else {
        Ok(Completion::ignored_with(reason))
    }
}

/// A missing kernel prerequisite: ignored, or a failure when required.
fn kernel_unavailable(reason: &str) -> Result<Completion, Failed> {
    if env_is_one("QUS_REQUIRE_KERNEL") {
        Err(format!("QUS_REQUIRE_KERNEL=1 but {reason}").into())
    } else {
        Ok(Completion::ignored_with(reason))
    }
}

/// The command under test: `$QUS_SINGULARITY_BIN` or the first one found.
fn singularity_bin() -> Result<String, String> {
    if let Ok(bin) = std::env::var("QUS_SINGULARITY_BIN") {
        return which::which(&bin)
            .map(|_| bin.clone())
            .map_err(|_| format!("QUS_SINGULARITY_BIN=`{bin}` is not on PATH"));
    }
    ["apptainer-sid", "apptainer", "singularity"]
        .into_iter()
        .find(|bin| which::which(bin).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            "none of apptainer-sid, apptainer, singularity is on PATH (set QUS_SINGULARITY_BIN, \
             or run setup_apptainer from .ci/lib/apptainer.sh)"
                .to_owned()
        })
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Why a trial cannot run.
enum Skip {
    Engine(String),
    Kernel(String),
}

impl Skip {
    fn complete(self) -> Result<Completion, Failed> {
        match self {
            Skip::Engine(reason) => unavailable(&reason),
            Skip::Kernel(reason) => kernel_unavailable(&reason),
        }
    }
}

/// One trial's runtimes, image, run id and sandbox root; dropping it
/// removes everything labelled with the run id and the sandbox root.
struct Fixture {
    tokio: tokio::runtime::Runtime,
    singularity: SingularityRuntime,
    docker_runtime: DockerRuntime,
    docker: Docker,
    run_id: String,
    image: String,
    sandbox_root: tempfile::TempDir,
}

impl Fixture {
    /// Connects, builds the probe image (plus `extra` images: tag suffix,
    /// Containerfile, files).
    fn new(test: &str) -> Result<Self, Skip> {
        let bin = singularity_bin().map_err(Skip::Engine)?;
        let binary = tool::tool_binary()
            .map_err(|e| Skip::Engine(format!("cannot build the probe program: {e}")))?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime starts");
        let run_id = unique(&format!("qus-sg-{test}"));
        let sandbox_root = tempfile::Builder::new()
            .prefix("qus-sg-test-")
            .tempdir_in("/tmp")
            .map_err(|e| Skip::Engine(format!("cannot create a directory in /tmp: {e}")))?;
        let (singularity, docker_runtime, docker) = tokio.block_on(async {
            let docker_runtime = DockerRuntime::connect()
                .await
                .map_err(|e| Skip::Engine(format!("docker is unavailable: {}", chain(&e))))?;
            let singularity = SingularityRuntime::connect(bin.clone())
                .await
                .map_err(|e| Skip::Engine(format!("docker is unavailable: {}", chain(&e))))?
                .with_sandbox_root(sandbox_root.path());
            let docker = Docker::connect_with_defaults()
                .map_err(|e| Skip::Engine(e.to_string()))?
                .negotiate_version()
                .await
                .map_err(|e| Skip::Engine(e.to_string()))?;
            // An unusable command (a wrapper without its rootfs) is an
            // absent engine, not a failing run.
            singularity
                .probe()
                .await
                .map_err(|e| Skip::Engine(format!("`{bin}` does not work: {}", chain(&e))))?;
            Ok::<_, Skip>((singularity, docker_runtime, docker))
        })?;
        let fixture = Self {
            tokio,
            singularity,
            docker_runtime,
            docker,
            image: format!("qus-test/sg-probe:{run_id}"),
            run_id,
            sandbox_root,
        };
        let spec = BuildSpec::inline(
            containerfile(&fixture.run_id, PROBE_CONTAINERFILE),
            vec![ContextFile::executable("probe", binary.to_vec())],
            fixture.image.clone(),
        )
        .with_run_id(fixture.run_id.clone());
        fixture.build(&spec);
        Ok(fixture)
    }

    /// Builds `spec` in Docker; panics (fails the trial) if it fails.
    fn build(&self, spec: &BuildSpec) {
        let built = self
            .tokio
            .block_on(self.docker_runtime.build(spec))
            .expect("docker builds");
        assert!(built.success, "image build failed:\n{}", built.output);
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.tokio.block_on(future)
    }

    fn spec<const N: usize>(&self, command: [&str; N]) -> RunSpec {
        RunSpec::new(self.image.clone(), command)
            .with_run_id(self.run_id.clone())
            .with_timeout(RUN_TIMEOUT)
    }

    fn run(&self, spec: &RunSpec) -> RunOutcome {
        self.block_on(self.singularity.run(spec))
            .unwrap_or_else(|e| panic!("run failed: {}", chain(&e)))
    }

    /// Every file and directory under the sandbox root.
    fn sandbox_entries(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                out.push(entry.path());
                if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&entry.path(), depth - 1, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.sandbox_root.path(), 1, &mut out);
        out
    }

    /// Removes what the run id labels, then checks that nothing is left:
    /// no sandbox, no container, no image.
    fn clean_up_and_check(&self) -> Result<(), String> {
        self.block_on(async {
            self.singularity
                .remove_labelled(RUN_LABEL, &self.run_id)
                .await
                .map_err(|e| format!("singularity cleanup failed: {}", chain(&e)))?;
            self.docker_runtime
                .remove_labelled(RUN_LABEL, &self.run_id)
                .await
                .map_err(|e| format!("docker cleanup failed: {}", chain(&e)))?;
            let filter = format!("{RUN_LABEL}={}", self.run_id);
            let filters =
                std::collections::HashMap::from([("label".to_owned(), vec![filter.clone()])]);
            let containers = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..ListContainersOptions::default()
                }))
                .await
                .map_err(|e| e.to_string())?;
            let images = self
                .docker
                .list_images(Some(ListImagesOptions {
                    filters: Some(filters),
                    ..ListImagesOptions::default()
                }))
                .await
                .map_err(|e| e.to_string())?;
            if !containers.is_empty() || !images.is_empty() {
                return Err(format!(
                    "left behind: {} containers, {} images labelled {filter}",
                    containers.len(),
                    images.len()
                ));
            }
            Ok(())
        })?;
        let left = self.sandbox_entries();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind under the sandbox root: {left:?}"))
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The backstop of a failed trial: the check already ran otherwise.
        let _ = self.block_on(self.singularity.remove_labelled(RUN_LABEL, &self.run_id));
        let _ = self.block_on(self.docker_runtime.remove_labelled(RUN_LABEL, &self.run_id));
    }
}

/// The error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A trial with a fixture: skipped or failed as the prerequisites say,
/// cleaned up and checked for leftovers afterwards.
fn trial(name: &'static str, body: fn(&Fixture) -> Result<(), Failed>) -> Trial {
    Trial::ignorable_test(name, move || {
        let fixture = match Fixture::new(name) {
            Ok(fixture) => fixture,
            Err(skip) => return skip.complete(),
        };
        body(&fixture)?;
        fixture.clean_up_and_check()?;
        Ok(Completion::Completed)
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = vec![
        trial(
            "probe_reports_the_version_and_privilege",
            probe_reports_the_version_and_privilege,
        ),
        trial(
            "runs_the_image_entrypoint_and_command",
            runs_the_image_entrypoint_and_command,
        ),
        trial(
            "exit_codes_and_output_are_the_command_s",
            exit_codes_and_output_are_the_command_s,
        ),
        trial(
            "environment_is_clean_and_spec_env_wins",
            environment_is_clean_and_spec_env_wins,
        ),
        trial(
            "binds_are_mounted_and_read_only_when_asked",
            binds_are_mounted_and_read_only_when_asked,
        ),
        trial(
            "timeout_kills_the_run_and_its_processes",
            timeout_kills_the_run_and_its_processes,
        ),
        trial(
            "dropping_a_run_kills_its_processes",
            dropping_a_run_kills_its_processes,
        ),
        trial(
            "writes_go_to_a_layer_thrown_away_after_the_run",
            writes_go_to_a_layer_thrown_away_after_the_run,
        ),
        trial(
            "build_and_platform_are_unsupported_with_reasons",
            build_and_platform_are_unsupported_with_reasons,
        ),
        trial(
            "sandboxes_are_reused_then_removed_with_the_label",
            sandboxes_are_reused_then_removed_with_the_label,
        ),
        trial(
            "kept_sandboxes_stay_in_the_shared_cache",
            kept_sandboxes_stay_in_the_shared_cache,
        ),
        binfmt_trial(
            "privileged_registration_reaches_the_host_binfmt_misc",
            privileged_registration_reaches_the_host_binfmt_misc,
        ),
        binfmt_trial(
            "foreign_aarch64_probe_runs_through_qemu",
            foreign_aarch64_probe_runs_through_qemu,
        ),
        binfmt_trial(
            "arm64_fixture_image_runs_uname",
            arm64_fixture_image_runs_uname,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn probe_reports_the_version_and_privilege(f: &Fixture) -> Result<(), Failed> {
    let info = f.block_on(f.singularity.probe()).map_err(|e| chain(&e))?;
    assert_eq!(info.kind, RuntimeKind::Singularity);
    ensure(
        info.version.starts_with("apptainer ") || info.version.starts_with("singularity"),
        || format!("unexpected version `{}`", info.version),
    )?;
    let expected = if is_root() {
        vec![PrivilegeMode::Privileged, PrivilegeMode::CapabilityFallback]
    } else {
        vec![PrivilegeMode::Unavailable]
    };
    ensure(expected.contains(&info.privilege), || {
        format!("privilege {:?} ({:?})", info.privilege, info.privilege_note)
    })?;
    Ok(())
}

fn runs_the_image_entrypoint_and_command(f: &Fixture) -> Result<(), Failed> {
    let outcome = f.run(&f.spec([]));
    assert_eq!(
        (
            outcome.exit_code,
            outcome.stdout.as_str(),
            outcome.stderr.as_str()
        ),
        (0, "default\n", ""),
        "{outcome:?}"
    );
    assert!(outcome.is_success() && !outcome.timed_out);
    // The image's WORKDIR is the working directory; the spec's command
    // replaces CMD and keeps the entrypoint.
    let outcome = f.run(&f.spec(["write", "here", "echo", "x"]));
    assert_eq!(outcome.stdout, "x\n", "{outcome:?}");
    let outcome = f.run(&f.spec(["cat", "/work/here"]));
    assert_eq!(outcome.exit_code, 2, "writes are thrown away: {outcome:?}");
    // A new entrypoint drops the image's command.
    let outcome = f.run(
        &RunSpec::new(f.image.clone(), Vec::<String>::new())
            .with_entrypoint(["/probe", "echo", "other"])
            .with_run_id(f.run_id.clone()),
    );
    assert_eq!(outcome.stdout, "other\n", "{outcome:?}");
    Ok(())
}

fn exit_codes_and_output_are_the_command_s(f: &Fixture) -> Result<(), Failed> {
    let outcome = f.run(&f.spec(["echo", "out", "err", "oops", "exit", "3"]));
    assert_eq!(
        (
            outcome.exit_code,
            outcome.stdout.as_str(),
            outcome.stderr.as_str()
        ),
        (3, "out\n", "oops\n")
    );
    // 255 from the command itself is not mistaken for Apptainer's FATAL.
    let outcome = f.run(&f.spec(["exit", "255"]));
    assert_eq!(outcome.exit_code, 255, "{outcome:?}");
    // Arguments that look like options reach the command.
    let outcome = f.run(&f.spec(["echo", "--help"]));
    assert_eq!(outcome.stdout, "--help\n", "{outcome:?}");
    let missing = RunSpec::new(f.image.clone(), Vec::<String>::new())
        .with_entrypoint(["/nonexistent"])
        .with_run_id(f.run_id.clone());
    let outcome = f.run(&missing);
    assert_eq!(outcome.exit_code, 127, "{outcome:?}");
    let not_executable = RunSpec::new(f.image.clone(), Vec::<String>::new())
        .with_entrypoint(["/work"])
        .with_run_id(f.run_id.clone());
    let outcome = f.run(&not_executable);
    assert_eq!(outcome.exit_code, 126, "{outcome:?}");
    let absent = RunSpec::new("qus-test/absent:never", ["x"]);
    let err = f.block_on(f.singularity.run(&absent)).unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
    assert!(
        !f.block_on(f.singularity.image_exists("qus-test/absent:never"))
            .unwrap()
    );
    assert!(f.block_on(f.singularity.image_exists(&f.image)).unwrap());
    Ok(())
}

fn environment_is_clean_and_spec_env_wins(f: &Fixture) -> Result<(), Failed> {
    // Image ENV is inherited, spec env overrides it, values are passed
    // verbatim (no shell evaluation, commas kept).
    let spec = f
        .spec([
            "env",
            "FROM_IMAGE",
            "env",
            "OVERRIDDEN",
            "env",
            "FROM_SPEC",
            "env",
            "COMMA",
            "env",
            "SPACES",
            "env",
            "HOME",
            "env",
            "PATH",
        ])
        .with_env("OVERRIDDEN", "spec")
        .with_env("FROM_SPEC", "$HOME")
        .with_env("COMMA", "a,B=b")
        .with_env("SPACES", " two  words ");
    let outcome = f.run(&spec);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines[..5],
        ["image", "spec", "$HOME", "a,B=b", " two  words "],
        "{outcome:?}"
    );
    assert_eq!(lines[5], "/root", "{outcome:?}");
    assert!(!lines[6].is_empty());
    // Variables of the harness process stay out (--cleanenv): cargo test
    // sets CARGO_MANIFEST_DIR for this process.
    ensure(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), || {
        "run under cargo test: CARGO_MANIFEST_DIR is the variable that must not leak".to_owned()
    })?;
    let outcome = f.run(&f.spec(["env", "CARGO_MANIFEST_DIR"]));
    assert_eq!(outcome.stdout, "<unset>\n", "{outcome:?}");
    Ok(())
}

fn binds_are_mounted_and_read_only_when_asked(f: &Fixture) -> Result<(), Failed> {
    let data = tempfile::Builder::new()
        .prefix("qus-sg-bind-")
        .tempdir_in("/tmp")?;
    std::fs::write(data.path().join("in"), "from the host\n")?;
    let ro = f
        .spec(["cat", "/data/in", "write", "/data/out"])
        .with_mount(data.path(), "/data", true);
    let outcome = f.run(&ro);
    assert_eq!(outcome.stdout, "from the host\n", "{outcome:?}");
    assert_eq!(
        outcome.exit_code, 3,
        "a read-only bind refuses writes: {outcome:?}"
    );
    assert!(!data.path().join("out").exists());
    let rw = f
        .spec(["write", "/data/out", "echo", "ok"])
        .with_mount(data.path(), "/data", false);
    let outcome = f.run(&rw);
    assert_eq!(outcome.exit_code, 0, "{outcome:?}");
    assert!(
        data.path().join("out").exists(),
        "the write reached the host"
    );
    let volume = f.spec(["echo", "x"]).with_bind("named-volume:/data");
    let err = f.block_on(f.singularity.run(&volume)).unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err:?}");
    Ok(())
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn timeout_kills_the_run_and_its_processes(f: &Fixture) -> Result<(), Failed> {
    // An unusual duration marks this run's processes.
    let spec = f
        .spec(["echo", "started", "sleep", "31337"])
        .with_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let outcome = f.run(&spec);
    assert!(outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.exit_code, 137, "{outcome:?}");
    assert_eq!(outcome.stdout, "started\n", "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let left = processes_with("sleep 31337");
    ensure(left.is_empty(), || format!("processes left: {left:?}"))?;
    Ok(())
}

fn dropping_a_run_kills_its_processes(f: &Fixture) -> Result<(), Failed> {
    // What a runner does on Ctrl-C: the run's future is dropped mid-run.
    let spec = f.spec(["sleep", "31338"]);
    let dropped = f.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), f.singularity.run(&spec)).await
    });
    assert!(
        dropped.is_err(),
        "the run should still be going: {dropped:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let left = processes_with("sleep 31338");
    ensure(left.is_empty(), || format!("processes left: {left:?}"))?;
    Ok(())
}

fn writes_go_to_a_layer_thrown_away_after_the_run(f: &Fixture) -> Result<(), Failed> {
    let outcome = f.run(&f.spec(["write", "/new", "cat", "/new"]));
    assert_eq!(
        outcome.exit_code, 0,
        "the root filesystem is writable: {outcome:?}"
    );
    let outcome = f.run(&f.spec(["cat", "/new"]));
    assert_eq!(
        outcome.exit_code, 2,
        "the next run starts clean: {outcome:?}"
    );
    Ok(())
}

fn build_and_platform_are_unsupported_with_reasons(f: &Fixture) -> Result<(), Failed> {
    let rt = &f.singularity;
    let build = BuildSpec::inline("FROM scratch\n", Vec::new(), "qus-test/never:1");
    let err = f.block_on(rt.build(&build)).unwrap_err();
    assert_eq!(
        err.skip_reason(),
        Some("singularity builds no images from Containerfiles in this harness")
    );
    assert!(rt.supports(StepCapability::Build).is_err());
    let platform = f.spec(["echo", "x"]).with_platform("linux/arm64");
    let reason = rt.supports_spec(&platform).unwrap_err();
    assert!(reason.contains("platform"), "{reason}");
    let err = f.block_on(rt.run(&platform)).unwrap_err();
    assert_eq!(err.skip_reason(), Some(reason.as_str()));
    let none = f.spec(["echo", "x"]).with_network("none");
    assert!(rt.supports_spec(&none).is_err());
    let host = f.spec(["echo", "x"]).with_network("host");
    assert_eq!(rt.supports_spec(&host), Ok(()));
    assert_eq!(f.run(&host).stdout, "x\n");
    Ok(())
}

fn sandboxes_are_reused_then_removed_with_the_label(f: &Fixture) -> Result<(), Failed> {
    let first = f.run(&f.spec(["echo", "1"]));
    assert_eq!(first.stdout, "1\n");
    let sandboxes: Vec<PathBuf> = f
        .sandbox_entries()
        .into_iter()
        .filter(|p| p.join("probe").exists())
        .collect();
    assert_eq!(sandboxes.len(), 1, "{:?}", f.sandbox_entries());
    let marker = std::fs::metadata(sandboxes[0].join("probe"))?.modified()?;
    let second = f.run(&f.spec(["echo", "2"]));
    assert_eq!(second.stdout, "2\n");
    assert_eq!(
        std::fs::metadata(sandboxes[0].join("probe"))?.modified()?,
        marker,
        "the sandbox is reused, not unpacked again"
    );
    // Another label's cleanup leaves it alone.
    let other = f.block_on(f.singularity.remove_labelled(RUN_LABEL, "someone-else"))?;
    assert_eq!(other, 0);
    assert!(sandboxes[0].exists());
    let removed = f.block_on(f.singularity.remove_labelled(RUN_LABEL, &f.run_id))?;
    assert_eq!(removed, 1);
    assert!(!sandboxes[0].exists());
    let again = f.run(&f.spec(["echo", "3"]));
    assert_eq!(again.stdout, "3\n", "a removed sandbox is unpacked again");
    Ok(())
}

fn kept_sandboxes_stay_in_the_shared_cache(f: &Fixture) -> Result<(), Failed> {
    let kept = f.singularity.clone().with_keep(true);
    let outcome = f.block_on(kept.run(&f.spec(["echo", "kept"])))?;
    assert_eq!(outcome.stdout, "kept\n");
    let id = f
        .block_on(f.docker.inspect_image(&f.image))?
        .id
        .unwrap_or_default();
    let shared = f.sandbox_root.path().join(id.trim_start_matches("sha256:"));
    assert!(shared.join("probe").exists(), "{:?}", f.sandbox_entries());
    assert_eq!(f.block_on(kept.remove_labelled(RUN_LABEL, &f.run_id))?, 0);
    assert!(shared.exists(), "--keep never removes the shared cache");
    std::fs::remove_dir_all(&shared)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// binfmt_misc trials: root, one at a time, host entries restored.

/// Serialises the trials that change the host's binfmt_misc.
fn binfmt_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Puts the host's binfmt_misc entries back as they were when dropped.
struct BinfmtGuard {
    binfmt: Binfmt,
    snapshot: Snapshot,
}

impl BinfmtGuard {
    fn take() -> Result<Self, Skip> {
        if !is_root() {
            return Err(Skip::Kernel("binfmt_misc trials need root".to_owned()));
        }
        let binfmt = Binfmt::default();
        if binfmt.state() != MountState::Mounted {
            return Err(Skip::Kernel(
                "binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
                    .to_owned(),
            ));
        }
        let snapshot = binfmt
            .snapshot()
            .map_err(|e| Skip::Kernel(format!("cannot read binfmt_misc: {e}")))?;
        Ok(Self { binfmt, snapshot })
    }

    /// Registers qemu-aarch64 with `F`, unless an identical entry is there.
    fn register_aarch64(&self) -> Result<(), String> {
        let target = qus_registrar::targets::find("aarch64").ok_or("no aarch64 target")?;
        let flags = Flags::requested(false, true, false);
        let wanted = Entry::expected(target, QEMU_AARCH64, flags);
        let name = target.entry_name();
        match self.binfmt.read(&name).map_err(|e| e.to_string())? {
            Some(current) if current == wanted => return Ok(()),
            Some(_) => self.binfmt.remove(&name).map_err(|e| e.to_string())?,
            None => {}
        }
        self.binfmt
            .register(&name, &register_line(target, QEMU_AARCH64, flags))
            .map_err(|e| e.to_string())
    }
}

impl Drop for BinfmtGuard {
    fn drop(&mut self) {
        if let Err(err) = self.binfmt.restore(&self.snapshot) {
            eprintln!("error: failed to restore the host's binfmt_misc entries: {err}");
        }
    }
}

fn binfmt_trial(
    name: &'static str,
    body: fn(&Fixture, &BinfmtGuard) -> Result<Completion, Failed>,
) -> Trial {
    Trial::ignorable_test(name, move || {
        let _serial = binfmt_lock();
        let fixture = match Fixture::new(name) {
            Ok(fixture) => fixture,
            Err(skip) => return skip.complete(),
        };
        let guard = match BinfmtGuard::take() {
            Ok(guard) => guard,
            Err(skip) => return skip.complete(),
        };
        let completion = body(&fixture, &guard)?;
        drop(guard);
        fixture.clean_up_and_check()?;
        Ok(completion)
    })
}

fn privileged_registration_reaches_the_host_binfmt_misc(
    f: &Fixture,
    guard: &BinfmtGuard,
) -> Result<Completion, Failed> {
    // A harmless entry: a magic no file starts with, an interpreter that
    // does not need to exist (no `F`).
    let name = format!("qus-sgtest-{}", std::process::id());
    let line = format!(":{name}:M::qus-sg-never::/nonexistent/qus:");
    let unprivileged = f.run(&f.spec(["register", &line]));
    assert_ne!(unprivileged.exit_code, 0, "{unprivileged:?}");
    assert!(
        guard.binfmt.read(&name)?.is_none(),
        "an unprivileged run must not register"
    );
    let privileged = f.run(&f.spec(["register", &line]).with_privileged(true));
    assert_eq!(
        (privileged.exit_code, privileged.stdout.as_str()),
        (0, "registered\n"),
        "{privileged:?}"
    );
    let entry = guard.binfmt.read(&name)?;
    ensure(entry.is_some(), || {
        format!("`{name}` is not in the host's binfmt_misc after a privileged run")
    })?;
    Ok(Completion::Completed)
}

/// Builds the foreign probe image; `Err` is the reason to skip.
fn foreign_image(f: &Fixture, guard: &BinfmtGuard) -> Result<String, Skip> {
    if !Path::new(QEMU_AARCH64).exists() {
        return Err(Skip::Kernel(format!(
            "{QEMU_AARCH64} is missing (apt-get install qemu-user-static)"
        )));
    }
    guard
        .register_aarch64()
        .map_err(|e| Skip::Kernel(format!("cannot register qemu-aarch64: {e}")))?;
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes/bin/aarch64");
    let binary = std::fs::read(&probe)
        .map_err(|e| Skip::Engine(format!("cannot read `{}`: {e}", probe.display())))?;
    let image = format!("qus-test/sg-aarch64:{}", f.run_id);
    f.build(
        &BuildSpec::inline(
            containerfile(&f.run_id, FOREIGN_CONTAINERFILE),
            vec![ContextFile::executable("aarch64", binary)],
            image.clone(),
        )
        .with_run_id(f.run_id.clone()),
    );
    Ok(image)
}

fn foreign_aarch64_probe_runs_through_qemu(
    f: &Fixture,
    guard: &BinfmtGuard,
) -> Result<Completion, Failed> {
    let image = match foreign_image(f, guard) {
        Ok(image) => image,
        Err(skip) => return skip.complete(),
    };
    let spec = RunSpec::new(image, Vec::<String>::new())
        .with_run_id(f.run_id.clone())
        .with_timeout(RUN_TIMEOUT);
    let outcome = f.run(&spec);
    assert_eq!(
        (outcome.exit_code, outcome.stdout.as_str()),
        (0, "aarch64\n"),
        "{outcome:?}"
    );
    Ok(Completion::Completed)
}

fn arm64_fixture_image_runs_uname(f: &Fixture, guard: &BinfmtGuard) -> Result<Completion, Failed> {
    if !f.block_on(f.singularity.image_exists(ARM64_FIXTURE_IMAGE))? {
        return Ok(Completion::ignored_with(format!(
            "the fixture image `{ARM64_FIXTURE_IMAGE}` is not built on this host"
        )));
    }
    if let Err(skip) = foreign_image(f, guard) {
        return skip.complete();
    }
    let spec = RunSpec::new(ARM64_FIXTURE_IMAGE, ["uname", "-m"])
        .with_run_id(f.run_id.clone())
        .with_timeout(RUN_TIMEOUT);
    let outcome = f.run(&spec);
    assert_eq!(
        (outcome.exit_code, outcome.stdout.as_str()),
        (0, "aarch64\n"),
        "{outcome:?}"
    );
    Ok(Completion::Completed)
}
