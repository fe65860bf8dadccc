//! `DockerRuntime` against a real Docker Engine.
//!
//! Compiled only with `--features docker`. Each test builds its own
//! `FROM scratch` image holding a static probe program (compiled here with
//! `gcc -static`), labels everything with its own run id, and removes it all
//! in a guard. Without an engine (or gcc) a test prints `skipped: <reason>`;
//! with `QUS_REQUIRE_ENGINES=1` that is a failure instead.
#![cfg(feature = "docker")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListImagesOptions, LogsOptions,
    RemoveContainerOptions,
};
use futures_util::StreamExt;
use qus_harness::runtime::{
    BuildSpec, ContextFile, DockerRuntime, PrivilegeMode, RUN_LABEL, RunSpec, Runtime,
    RuntimeError, RuntimeKind,
};

/// A static multi-tool: each argument is an operation, run in order.
const PROBE_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static void line(int fd, const char *s) { write(fd, s, strlen(s)); write(fd, "\n", 1); }

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(op, "echo")) { line(1, arg); i++; }
        else if (!strcmp(op, "err")) { line(2, arg); i++; }
        else if (!strcmp(op, "env")) { const char *v = getenv(arg); line(1, v ? v : "<unset>"); i++; }
        else if (!strcmp(op, "cat")) {
            int fd = open(arg, O_RDONLY); char buf[4096]; ssize_t n;
            if (fd < 0) { perror(arg); return 2; }
            while ((n = read(fd, buf, sizeof buf)) > 0) write(1, buf, n);
            close(fd); i++;
        }
        else if (!strcmp(op, "write")) {
            int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) { perror(arg); return 3; }
            close(fd); i++;
        }
        else if (!strcmp(op, "exit")) return atoi(arg);
        else if (!strcmp(op, "sleep")) { sleep(atoi(arg)); i++; }
        else if (!strcmp(op, "id")) { char b[64]; snprintf(b, sizeof b, "%d:%d", (int)getuid(), (int)getgid()); line(1, b); }
        else if (!strcmp(op, "mount")) {
            if (mount("qus", "/dev/shm", "tmpfs", 0, "") != 0) { perror("mount"); return 4; }
            line(1, "mounted");
        }
        else if (!strcmp(op, "netdev")) {
            char buf[8192]; int fd = open("/proc/net/dev", O_RDONLY); ssize_t n;
            if (fd < 0) { perror("/proc/net/dev"); return 5; }
            n = read(fd, buf, sizeof buf - 1); close(fd);
            buf[n > 0 ? n : 0] = 0;
            char *save = 0; int row = 0;
            for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(0, "\n", &save)) {
                if (row++ < 2) continue;
                while (*l == ' ') l++;
                char *colon = strchr(l, ':'); if (colon) *colon = 0;
                line(1, l);
            }
        }
        else { write(2, "unknown op: ", 12); line(2, op); return 100; }
    }
    return 0;
}
"#;

/// The probe image: the probe as entrypoint, `echo default` as command.
const PROBE_CONTAINERFILE: &str =
    "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\nCMD [\"echo\", \"default\"]\n";

/// Generous per-run limit: these containers finish in milliseconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The probe binary, compiled once per test process.
fn probe_binary() -> Result<&'static [u8], String> {
    static BINARY: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let source = dir.path().join("probe.c");
            let binary = dir.path().join("probe");
            std::fs::write(&source, PROBE_C).map_err(|e| e.to_string())?;
            let output = Command::new("gcc")
                .args(["-static", "-O2", "-o"])
                .arg(&binary)
                .arg(&source)
                .output()
                .map_err(|e| format!("gcc is unavailable: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "gcc -static failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            std::fs::read(&binary).map_err(|e| e.to_string())
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// Reports an unusable prerequisite: a skip, or a failure when engines
/// are required.
fn skip(reason: &str) {
    if std::env::var("QUS_REQUIRE_ENGINES").is_ok_and(|v| v == "1") {
        panic!("QUS_REQUIRE_ENGINES=1 but {reason}");
    }
    eprintln!("skipped: {reason}");
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's engine connection, probe image and run id; dropping it
/// removes everything labelled with the run id.
struct Fixture {
    runtime: DockerRuntime,
    docker: Docker,
    run_id: String,
    image: String,
}

impl Fixture {
    /// `None` (after printing why) when docker or gcc is unavailable.
    async fn new(test: &str) -> Option<Self> {
        let binary = match probe_binary() {
            Ok(binary) => binary,
            Err(reason) => {
                skip(&format!("cannot build the probe program: {reason}"));
                return None;
            }
        };
        let runtime = match DockerRuntime::connect().await {
            Ok(runtime) => runtime,
            Err(err) => {
                let mut reason = format!("docker is unavailable: {err}");
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    reason.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                skip(&reason);
                return None;
            }
        };
        let docker = Docker::connect_with_defaults()
            .expect("bollard connects where DockerRuntime connected")
            .negotiate_version()
            .await
            .expect("the engine answered DockerRuntime");
        let run_id = unique(&format!("qus-test-{test}"));
        let image = format!("qus-test/probe:{run_id}");
        let fixture = Self {
            runtime,
            docker,
            run_id,
            image,
        };
        let spec = BuildSpec::inline(
            PROBE_CONTAINERFILE,
            vec![ContextFile::executable("probe", binary.to_vec())],
            fixture.image.clone(),
        )
        .with_run_id(fixture.run_id.clone());
        let built = fixture.runtime.build(&spec).await.expect("build runs");
        assert!(built.success, "probe image build failed:\n{}", built.output);
        Some(fixture)
    }

    fn spec<const N: usize>(&self, command: [&str; N]) -> RunSpec {
        RunSpec::new(self.image.clone(), command)
            .with_run_id(self.run_id.clone())
            .with_timeout(RUN_TIMEOUT)
    }

    /// Runs `spec` and checks that its container is gone afterwards.
    async fn run(&self, spec: &RunSpec) -> qus_harness::runtime::RunOutcome {
        let outcome = self.runtime.run(spec).await.expect("run succeeds");
        assert_eq!(self.containers().await, 0, "run left a container behind");
        outcome
    }

    /// How many containers carry this test's run id.
    async fn containers(&self) -> usize {
        let options = ListContainersOptions {
            all: true,
            filters: Some(self.filter()),
            ..ListContainersOptions::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .unwrap()
            .len()
    }

    /// How many images carry this test's run id.
    async fn images(&self) -> usize {
        let options = ListImagesOptions {
            filters: Some(self.filter()),
            ..ListImagesOptions::default()
        };
        self.docker.list_images(Some(options)).await.unwrap().len()
    }

    fn filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![format!("{RUN_LABEL}={}", self.run_id)],
        )])
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A fresh thread and connection: the test's runtime may be unwinding
        // or blocked in this very call.
        let run_id = self.run_id.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let runtime = DockerRuntime::connect().await?;
                runtime.remove_labelled(RUN_LABEL, &run_id).await
            })
            .map_err(std::io::Error::other)
        });
        match cleanup.join() {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => eprintln!("cleanup of `{}` failed: {err}", self.run_id),
            Err(_) => eprintln!("cleanup of `{}` panicked", self.run_id),
        }
    }
}

macro_rules! fixture {
    ($name:expr) => {
        match Fixture::new($name).await {
            Some(fixture) => fixture,
            None => return,
        }
    };
}

#[tokio::test]
async fn run_reports_exit_zero_and_stdout() {
    let fx = fixture!("stdout");
    let outcome = fx.run(&fx.spec(["echo", "hello"])).await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.stdout, "hello\n");
    assert_eq!(outcome.stderr, "");
    assert!(!outcome.timed_out);
    assert!(outcome.duration > Duration::ZERO);
}

#[tokio::test]
async fn non_zero_exit_is_an_outcome() {
    let fx = fixture!("exit");
    let outcome = fx.run(&fx.spec(["echo", "before", "exit", "42"])).await;
    assert_eq!(outcome.exit_code, 42);
    assert_eq!(outcome.stdout, "before\n");
    assert!(!outcome.is_success());
}

#[tokio::test]
async fn stderr_is_separated_from_stdout() {
    let fx = fixture!("stderr");
    let outcome = fx
        .run(&fx.spec(["echo", "o1", "err", "e1", "echo", "o2"]))
        .await;
    assert_eq!(outcome.stdout, "o1\no2\n");
    assert_eq!(outcome.stderr, "e1\n");
}

#[tokio::test]
async fn command_and_entrypoint_follow_engine_semantics() {
    let fx = fixture!("entrypoint");
    let image_default = fx.run(&fx.spec([])).await;
    assert_eq!(image_default.stdout, "default\n");
    let overridden = fx
        .run(&fx.spec(["x"]).with_entrypoint(["/probe", "err"]))
        .await;
    assert_eq!(overridden.stderr, "x\n");
    assert_eq!(overridden.stdout, "");
}

#[tokio::test]
async fn env_binds_user_and_network_are_applied() {
    let fx = fixture!("options");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "from the host\n").unwrap();

    let spec = fx
        .spec(["env", "QUS_A", "env", "QUS_B", "cat", "/data/file"])
        .with_env("QUS_A", "one")
        .with_env("QUS_B", "two words")
        .with_mount(dir.path(), "/data", true);
    let outcome = fx.run(&spec).await;
    assert_eq!(
        outcome.stdout, "one\ntwo words\nfrom the host\n",
        "{outcome:?}"
    );

    let read_only = fx
        .run(
            &fx.spec(["write", "/data/new"])
                .with_mount(dir.path(), "/data", true),
        )
        .await;
    assert_eq!(read_only.exit_code, 3, "{read_only:?}");
    let writable = fx
        .run(
            &fx.spec(["write", "/data/new"])
                .with_mount(dir.path(), "/data", false),
        )
        .await;
    assert_eq!(writable.exit_code, 0, "{writable:?}");
    assert!(dir.path().join("new").exists());

    let user = fx.run(&fx.spec(["id"]).with_user("1234:5678")).await;
    assert_eq!(user.stdout, "1234:5678\n");

    let isolated = fx.run(&fx.spec(["netdev"]).with_network("none")).await;
    assert_eq!(isolated.stdout, "lo\n");
    let bridged = fx.run(&fx.spec(["netdev"])).await;
    assert!(bridged.stdout.lines().count() > 1, "{bridged:?}");
}

#[tokio::test]
async fn timeout_kills_reports_timed_out_and_removes_the_container() {
    let fx = fixture!("timeout");
    let spec = fx
        .spec(["echo", "started", "sleep", "120"])
        .with_timeout(Duration::from_secs(2));
    let began = Instant::now();
    let outcome = fx.run(&spec).await;
    assert!(outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.exit_code, 137);
    assert_eq!(outcome.stdout, "started\n");
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn missing_command_is_exit_127_not_an_error() {
    let fx = fixture!("missing");
    let outcome = fx.run(&fx.spec([]).with_entrypoint(["/nonexistent"])).await;
    assert_eq!(outcome.exit_code, 127, "{outcome:?}");
    assert!(
        outcome.stderr.contains("no such file or directory"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn dropping_a_run_still_removes_its_container() {
    let fx = fixture!("dropped");
    let spec = fx.spec(["sleep", "120"]);
    let dropped = tokio::time::timeout(Duration::from_secs(2), fx.runtime.run(&spec)).await;
    assert!(dropped.is_err(), "the run should still be going");
    let began = Instant::now();
    while fx.containers().await > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the dropped run's container was not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn absent_image_is_image_not_found() {
    let fx = fixture!("absent");
    let absent = format!("qus-test/absent:{}", fx.run_id);
    assert!(!fx.runtime.image_exists(&absent).await.unwrap());
    assert!(fx.runtime.image_exists(&fx.image).await.unwrap());
    let err = fx
        .runtime
        .run(&RunSpec::new(absent.clone(), ["x"]).with_run_id(fx.run_id.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::ImageNotFound { image, .. } if *image == absent),
        "{err:?}"
    );
    assert!(!err.is_engine_failure());
}

#[tokio::test]
async fn platform_is_passed_to_the_engine() {
    let fx = fixture!("platform");
    let (native, foreign) = match std::env::consts::ARCH {
        "x86_64" => ("linux/amd64", "linux/arm64"),
        "aarch64" => ("linux/arm64", "linux/amd64"),
        other => return skip(&format!("no platform pair for host `{other}`")),
    };
    let outcome = fx.run(&fx.spec(["echo", "ok"]).with_platform(native)).await;
    assert_eq!(outcome.stdout, "ok\n");
    let err = fx
        .runtime
        .run(&fx.spec(["echo", "ok"]).with_platform(foreign))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn privileged_runs_work_through_the_detected_mode() {
    let fx = fixture!("privileged");
    let info = fx.runtime.probe().await.unwrap();
    eprintln!(
        "engine {} (api {:?}), privilege {} ({:?})",
        info.version, info.api_version, info.privilege, info.privilege_note
    );
    assert_eq!(info.kind, RuntimeKind::Docker);
    assert!(!info.version.is_empty());

    // Cross-check the detection against a plain `--privileged` start.
    let body = ContainerCreateBody {
        image: Some(fx.image.clone()),
        entrypoint: Some(vec!["/nonexistent".into()]),
        labels: Some(HashMap::from([(RUN_LABEL.to_owned(), fx.run_id.clone())])),
        host_config: Some(HostConfig {
            privileged: Some(true),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = fx
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap();
    let start = fx.docker.start_container(&created.id, None).await;
    let remove = RemoveContainerOptions {
        force: true,
        ..RemoveContainerOptions::default()
    };
    fx.docker
        .remove_container(&created.id, Some(remove))
        .await
        .unwrap();
    let refused = format!("{start:?}").contains("unable to apply caps");
    let expected = if refused {
        PrivilegeMode::CapabilityFallback
    } else {
        PrivilegeMode::Privileged
    };
    assert_eq!(info.privilege, expected);
    assert_eq!(info.privilege_note.is_some(), refused);

    let privileged = fx.run(&fx.spec(["mount"]).with_privileged(true)).await;
    assert_eq!(privileged.exit_code, 0, "{privileged:?}");
    assert_eq!(privileged.stdout, "mounted\n");
    let unprivileged = fx.run(&fx.spec(["mount"])).await;
    assert_eq!(unprivileged.exit_code, 4, "{unprivileged:?}");
}

#[tokio::test]
async fn builds_succeed_fail_and_label_images() {
    let fx = fixture!("build");
    let tag = format!("qus-test/built:{}", fx.run_id);
    let ok = BuildSpec::inline(
        "FROM scratch\nCOPY data /data\n",
        vec![ContextFile::new("data", b"payload".to_vec())],
        tag.clone(),
    )
    .with_run_id(fx.run_id.clone());
    let built = fx.runtime.build(&ok).await.unwrap();
    assert!(built.success, "{}", built.output);
    assert!(!built.timed_out);
    assert!(
        built.output.contains("Successfully tagged"),
        "{}",
        built.output
    );
    assert!(fx.runtime.image_exists(&tag).await.unwrap());

    let missing_tag = format!("qus-test/missing:{}", fx.run_id);
    let missing = BuildSpec::inline(
        "FROM scratch\nCOPY missing /missing\n",
        Vec::new(),
        missing_tag.clone(),
    )
    .with_run_id(fx.run_id.clone());
    let failed = fx.runtime.build(&missing).await.unwrap();
    assert!(!failed.success);
    assert!(failed.output.contains("missing"), "{}", failed.output);
    assert!(!fx.runtime.image_exists(&missing_tag).await.unwrap());

    let bogus = BuildSpec::inline("FROM scratch\nBOGUS x\n", Vec::new(), missing_tag.clone())
        .with_run_id(fx.run_id.clone());
    let rejected = fx.runtime.build(&bogus).await.unwrap();
    assert!(!rejected.success);
    assert!(
        rejected.output.contains("unknown instruction"),
        "{}",
        rejected.output
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Containerfile"),
        "FROM scratch\nARG NAME\nCOPY ${NAME} /f\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let from_dir = BuildSpec::dir(PathBuf::from(dir.path()), format!("{tag}-dir"))
        .with_build_arg("NAME", "file")
        .with_run_id(fx.run_id.clone());
    let built = fx.runtime.build(&from_dir).await.unwrap();
    assert!(built.success, "{}", built.output);

    // Probe image, inline build and directory build.
    assert_eq!(fx.images().await, 3);
}

#[tokio::test]
async fn remove_labelled_removes_containers_and_images() {
    let fx = fixture!("labelled");
    for _ in 0..2 {
        let body = ContainerCreateBody {
            image: Some(fx.image.clone()),
            labels: Some(HashMap::from([(RUN_LABEL.to_owned(), fx.run_id.clone())])),
            ..ContainerCreateBody::default()
        };
        fx.docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .unwrap();
    }
    assert_eq!(fx.containers().await, 2);
    assert_eq!(fx.images().await, 1);
    let removed = fx
        .runtime
        .remove_labelled(RUN_LABEL, &fx.run_id)
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert_eq!(fx.containers().await, 0);
    assert_eq!(fx.images().await, 0);
    assert_eq!(
        fx.runtime
            .remove_labelled(RUN_LABEL, &fx.run_id)
            .await
            .unwrap(),
        0
    );
}

/// Bare bollard create/start/wait/logs/remove, for the overhead comparison.
async fn bare_run(docker: &Docker, image: &str, run_id: &str) {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["echo".into(), "x".into()]),
        labels: Some(HashMap::from([(RUN_LABEL.to_owned(), run_id.to_owned())])),
        ..ContainerCreateBody::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    docker.start_container(&id, None).await.unwrap();
    let _ = docker.wait_container(&id, None).next().await;
    let logs = LogsOptions {
        stdout: true,
        stderr: true,
        ..LogsOptions::default()
    };
    let output: Vec<_> = docker.logs(&id, Some(logs)).collect().await;
    assert!(!output.is_empty());
    let remove = RemoveContainerOptions {
        force: true,
        ..RemoveContainerOptions::default()
    };
    docker.remove_container(&id, Some(remove)).await.unwrap();
}

#[tokio::test]
async fn run_overhead_over_bare_bollard_is_small() {
    const RUNS: u32 = 20;
    let fx = fixture!("overhead");
    // Warm up both paths (connection pool, page cache).
    bare_run(&fx.docker, &fx.image, &fx.run_id).await;
    fx.run(&fx.spec(["echo", "x"])).await;

    // Interleave the two paths so that engine drift affects both alike.
    let (mut bare, mut harness) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..RUNS {
        let began = Instant::now();
        bare_run(&fx.docker, &fx.image, &fx.run_id).await;
        bare += began.elapsed();
        let began = Instant::now();
        let outcome = fx.runtime.run(&fx.spec(["echo", "x"])).await.unwrap();
        harness += began.elapsed();
        assert_eq!(outcome.stdout, "x\n");
    }
    let (bare, harness) = (bare / RUNS, harness / RUNS);
    eprintln!("mean per run: DockerRuntime::run {harness:?}, bare bollard {bare:?}");
    assert!(
        harness < bare * 2 + Duration::from_millis(100),
        "run {harness:?} vs bare {bare:?}"
    );
}
