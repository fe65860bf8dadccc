//! `PodmanRuntime` against a real Podman service (Docker-compatible API).
//!
//! Compiled only with `--features podman`; start the service first
//! (`source .ci/lib/podman.sh && start_podman_service`). One trial per
//! behaviour: the behaviours shared with Docker (`common/engine.rs`), then
//! Podman's own: the ulimits every container gets, many short runs in a row
//! (Podman briefly reports a state bollard cannot parse), and images copied
//! from Docker. Without podman (or gcc, or docker for the copy) a trial is
//! reported as ignored with the reason; with `QUS_REQUIRE_ENGINES=1` it
//! fails instead. After the trials, anything this process left on either
//! engine fails the run.
#![cfg(feature = "podman")]

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions, ListImagesOptions};
use engine::{Fixture, LabelGuard, trial};
use futures_util::future::join_all;
use libtest_mimic::{Arguments, Completion, Failed};
use qus_harness::runtime::{
    DockerRuntime, PodmanRuntime, RUN_LABEL, RunSpec, Runtime, copy_image_from_docker,
};

#[path = "common/engine.rs"]
mod engine;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = engine::shared_trials::<PodmanRuntime>();
    trials.extend([
        trial::<PodmanRuntime, _, _>(
            "every_container_gets_the_podman_ulimits",
            every_container_gets_the_podman_ulimits,
        ),
        trial::<PodmanRuntime, _, _>(
            "many_short_runs_in_a_row_all_report_their_exit",
            many_short_runs_in_a_row_all_report_their_exit,
        ),
        trial::<PodmanRuntime, _, _>(
            "concurrent_short_runs_all_report_their_exit",
            concurrent_short_runs_all_report_their_exit,
        ),
        trial::<PodmanRuntime, _, _>(
            "removing_images_spares_containers_on_shared_layers",
            removing_images_spares_containers_on_shared_layers,
        ),
        trial::<PodmanRuntime, _, _>(
            "images_built_with_docker_run_on_podman_after_a_copy",
            images_built_with_docker_run_on_podman_after_a_copy,
        ),
    ]);
    let conclusion = libtest_mimic::run(&args, trials);
    let mut left = engine::leftovers::<PodmanRuntime>();
    left.extend(engine::leftovers::<DockerRuntime>());
    for item in &left {
        eprintln!("error: left behind: {item}");
    }
    if left.is_empty() {
        conclusion.exit_code()
    } else {
        ExitCode::FAILURE
    }
}

/// Without these limits runc cannot start a container on hosts whose hard
/// limits are below Podman's defaults; with `--privileged` too.
async fn every_container_gets_the_podman_ulimits(fx: Fixture<PodmanRuntime>) {
    for privileged in [false, true] {
        let outcome = fx
            .run(&fx.spec(["rlimit"]).with_privileged(privileged))
            .await;
        assert_eq!(outcome.exit_code, 0, "{outcome:?}");
        assert_eq!(outcome.stdout, "nofile=4096:4096 nproc=4096:4096\n");
    }
}

/// Create, start, wait, logs, remove in a tight loop: the exit of each is
/// reported through wait, never through an inspect that could meet the
/// transient `stopped` state. Prints the mean time per run.
async fn many_short_runs_in_a_row_all_report_their_exit(fx: Fixture<PodmanRuntime>) {
    const RUNS: usize = 30;
    // Warm up (connection pool, page cache).
    fx.run(&fx.spec(["echo", "warm"])).await;
    let began = Instant::now();
    for i in 0..RUNS {
        let code = (i % 4).to_string();
        let spec = fx.spec(["echo", &format!("run {i}"), "err", "e", "exit", &code]);
        let outcome = fx.runtime.run(&spec).await.expect("run succeeds");
        assert_eq!(outcome.exit_code, (i % 4) as i64, "{outcome:?}");
        assert_eq!(outcome.stdout, format!("run {i}\n"));
        assert_eq!(outcome.stderr, "e\n");
        assert!(!outcome.timed_out);
    }
    eprintln!(
        "podman: mean per run over {RUNS} sequential runs: {:?}",
        began.elapsed() / RUNS as u32
    );
    assert_eq!(fx.containers().await, 0, "runs left containers behind");
}

/// Runs overlapping in time: each still gets its own exit and output.
async fn concurrent_short_runs_all_report_their_exit(fx: Fixture<PodmanRuntime>) {
    const RUNS: usize = 12;
    let specs: Vec<RunSpec> = (0..RUNS)
        .map(|i| {
            let code = (i % 3).to_string();
            fx.spec(["echo", &format!("run {i}"), "exit", &code])
        })
        .collect();
    let began = Instant::now();
    let outcomes = join_all(specs.iter().map(|spec| fx.runtime.run(spec))).await;
    eprintln!("podman: {RUNS} concurrent runs took {:?}", began.elapsed());
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.expect("run succeeds");
        assert_eq!(outcome.exit_code, (i % 3) as i64, "{outcome:?}");
        assert_eq!(outcome.stdout, format!("run {i}\n"));
    }
    assert_eq!(fx.containers().await, 0, "runs left containers behind");
}

/// Podman's forced image removal would also remove containers using a
/// parent layer (such as another build's working container); the runtime's
/// unforced removal deletes the image and leaves the layer to its user.
async fn removing_images_spares_containers_on_shared_layers(fx: Fixture<PodmanRuntime>) {
    let options = ListImagesOptions {
        all: true,
        ..ListImagesOptions::default()
    };
    // Podman 4.3 fails a listing with a transient "image not known" while
    // another removal runs (the runtime retries the same way).
    let mut tries = 0;
    let images = loop {
        match fx.client.list_images(Some(options.clone())).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message,
            }) if tries < 50 && message.contains("image not known") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            listed => break listed.unwrap(),
        }
    };
    let probe = fx.client.inspect_image(&fx.image).await.unwrap().id;
    let parent = images
        .into_iter()
        .find(|i| Some(&i.id) == probe.as_ref())
        .map(|i| i.parent_id)
        .filter(|p| !p.is_empty())
        .expect("the probe image has a parent layer");
    // Another run's container on the parent layer, removed by its own guard
    // (before the fixture's, which then removes the dangling layer).
    let other = engine::unique("other");
    let _other = LabelGuard::<PodmanRuntime>::new(other.clone());
    let body = ContainerCreateBody {
        image: Some(parent.clone()),
        entrypoint: Some(vec!["/probe".into()]),
        labels: Some(HashMap::from([(RUN_LABEL.to_owned(), other.clone())])),
        host_config: Some(<PodmanRuntime as engine::Engine>::base_host_config()),
        ..ContainerCreateBody::default()
    };
    fx.client
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap();

    let removed = fx
        .runtime
        .remove_labelled(RUN_LABEL, &fx.run_id)
        .await
        .expect("an in-use parent layer is not a failure");
    assert_eq!(removed, 1);
    assert!(!fx.runtime.image_exists(&fx.image).await.unwrap());
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{RUN_LABEL}={other}")],
        )])),
        ..ListContainersOptions::default()
    };
    let survivors = fx.client.list_containers(Some(options)).await.unwrap();
    assert_eq!(survivors.len(), 1, "the other run's container was removed");
}

/// Build in Docker, copy into Podman, run there; a second copy is skipped
/// because Podman already has the same image ID.
async fn images_built_with_docker_run_on_podman_after_a_copy(
    fx: Fixture<PodmanRuntime>,
) -> Result<Completion, Failed> {
    let docker = match Fixture::<DockerRuntime>::new("copy").await {
        Ok(docker) => docker,
        Err(reason) => return engine::unavailable(&reason),
    };
    // The copy carries Docker's run id label into Podman: remove it there too.
    let _copies = LabelGuard::<PodmanRuntime>::new(docker.run_id.clone());
    assert!(!fx.runtime.image_exists(&docker.image).await.unwrap());

    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let began = Instant::now();
    {
        let _capture = tracing::subscriber::set_default(subscriber);
        assert!(
            copy_image_from_docker(&docker.runtime, &fx.runtime, &docker.image)
                .await
                .expect("the copy succeeds"),
            "the first copy copies"
        );
        let copied = began.elapsed();
        assert!(
            log.take()
                .contains("copied the image from docker to podman")
        );
        let began = Instant::now();
        assert!(
            !copy_image_from_docker(&docker.runtime, &fx.runtime, &docker.image)
                .await
                .expect("the second copy succeeds"),
            "the second copy has nothing to copy"
        );
        eprintln!(
            "podman: copy {copied:?}, skipped copy {:?}",
            began.elapsed()
        );
        assert!(log.take().contains("podman already has the image"));
    }

    let ids = (
        docker.client.inspect_image(&docker.image).await.unwrap().id,
        fx.client.inspect_image(&docker.image).await.unwrap().id,
    );
    assert_eq!(ids.0, ids.1);
    let spec = RunSpec::new(docker.image.clone(), ["echo", "copied"])
        .with_run_id(fx.run_id.clone())
        .with_timeout(engine::RUN_TIMEOUT);
    let outcome = fx.run(&spec).await;
    assert_eq!(outcome.exit_code, 0, "{outcome:?}");
    assert_eq!(outcome.stdout, "copied\n");

    let absent = format!("qus-test/absent:{}", docker.run_id);
    let err = copy_image_from_docker(&docker.runtime, &fx.runtime, &absent)
        .await
        .unwrap_err();
    assert!(!err.is_engine_failure(), "{err:?}");
    assert!(!fx.runtime.image_exists(&absent).await.unwrap());
    Ok(Completion::Completed)
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// The text written since the last call.
    fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
