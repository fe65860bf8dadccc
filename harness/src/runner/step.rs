//! Executing one step: an [`Action`] on a [`Runtime`], with its timeout and
//! retries, giving a [`StepResult`].
//!
//! A failed assertion is `Failed`, a step past its time limit `TimedOut`,
//! and an engine that could not do what was asked `Errored`: the three are
//! kept apart so a reader can tell a broken engine from a broken emulator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qus_registrar::binfmt::Binfmt;

use super::expect;
use crate::report::{Status, StepResult};
use crate::runtime::{self, BuildSpec, RunOutcome, RunSpec, Runtime, RuntimeError, RuntimeKind};
use crate::sandbox::{Launch, Namespace, Sandbox};
use crate::scenario::{Action, BuildSource, Expect, NetworkMode, Probe, Registrar, Run, Step};

/// Extra time past a step's own limit before the harness stops waiting for
/// the engine (which enforces the limit itself and reports `timed_out`).
const GRACE: Duration = Duration::from_secs(30);

/// What every step of a run shares.
pub(crate) struct StepContext<'a, R> {
    pub runtime: &'a R,
    pub run_id: &'a str,
    pub scenario: &'a str,
    pub binfmt: &'a Binfmt,
    pub default_timeout: Duration,
    /// Numbers images built without a tag, unique within the run.
    pub builds: &'a AtomicUsize,
    /// Builds skip the engine's layer cache (the instances of a QEMU
    /// matrix: a cached `RUN` would not run under this QEMU).
    pub fresh_builds: bool,
    /// The host runtime's sandbox: registrar images, probes.
    pub sandbox: Option<&'a Sandbox>,
    /// The instance's private namespace, where host steps run.
    pub namespace: Option<&'a Namespace>,
}

impl<R: Runtime> StepContext<'_, R> {
    /// Whether the runtime is the host runtime (no engine).
    fn on_host(&self) -> bool {
        self.runtime.kind() == RuntimeKind::Host
    }

    /// How host commands start: in the instance's namespace, if any.
    fn launch(&self) -> Launch<'_> {
        Launch {
            namespace: self.namespace,
            user: None,
            direct: false,
        }
    }
}

/// Where a setuid copy of a probe goes in a container.
const SETUID_PROBE: &str = "/probe-setuid";

/// The engine-neutral spec of a `probe` step; `setuid_copy` is the host
/// file bound in as the setuid program.
pub fn probe_spec(probe: &Probe, setuid_copy: Option<&std::path::Path>) -> RunSpec {
    let program = if setuid_copy.is_some() {
        SETUID_PROBE
    } else {
        "/probe"
    };
    let mut spec = RunSpec::new(
        probe.image.clone(),
        std::iter::once(program.to_owned()).chain(probe.args.iter().cloned()),
    );
    if let Some(copy) = setuid_copy {
        spec = spec.with_mount(copy, SETUID_PROBE, true);
    }
    if let Ok(Some((uid, gid))) = probe.credentials() {
        spec = spec.with_user(format!("{uid}:{gid}"));
    }
    spec
}

/// The engine-neutral spec of a `run` step.
pub fn run_spec(run: &Run, run_id: &str, scenario: &str) -> RunSpec {
    let mut spec = RunSpec::new(run.image.clone(), run.command.clone().unwrap_or_default())
        .with_privileged(run.privileged)
        .with_run_id(run_id)
        .with_scenario(scenario);
    if let Some(entrypoint) = &run.entrypoint {
        spec = spec.with_entrypoint(entrypoint.clone());
    }
    for (k, v) in &run.env {
        spec = spec.with_env(k.clone(), v.clone());
    }
    for b in &run.binds {
        spec = spec.with_mount(&b.host, &b.container, b.read_only);
    }
    if let Some(network) = &run.network {
        spec = spec.with_network(match network {
            NetworkMode::None => "none",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
        });
    }
    if let Some(platform) = &run.platform {
        spec = spec.with_platform(platform.clone());
    }
    if let Some(user) = &run.user {
        spec = spec.with_user(user.clone());
    }
    spec
}

/// Runs a step, retrying it while it fails and attempts remain.
pub(crate) async fn run_step<R: Runtime>(ctx: &StepContext<'_, R>, step: &Step) -> StepResult {
    let start = Instant::now();
    let timeout = step.timeout.unwrap_or(ctx.default_timeout);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut result = attempt(ctx, &step.action, timeout).await;
        if result.status == Status::Passed || attempts > step.retries {
            result.attempts = attempts;
            result.duration = start.elapsed();
            return result;
        }
        tracing::info!(
            "step `{}` failed (attempt {attempts} of {}), retrying",
            step.label(),
            step.retries + 1
        );
    }
}

async fn attempt<R: Runtime>(
    ctx: &StepContext<'_, R>,
    action: &Action,
    timeout: Duration,
) -> StepResult {
    let start = Instant::now();
    let engine = ctx.runtime.kind().as_str();
    match action {
        Action::Register(r) => match &r.registrar {
            Registrar::Image(image) if ctx.on_host() => {
                registrar_on_host(ctx, image, &r.args, &r.expect, start, timeout).await
            }
            Registrar::Image(image) => {
                let spec = RunSpec::new(image.clone(), r.args.clone())
                    .with_privileged(true)
                    .with_run_id(ctx.run_id)
                    .with_scenario(ctx.scenario);
                let command = format!("{engine} run --privileged {image} {}", r.args.join(" "));
                let outcome = run_container(ctx, spec, timeout).await;
                process_result(
                    command,
                    outcome,
                    |o| expect::process(&r.expect, o),
                    start,
                    timeout,
                )
            }
            Registrar::Host { binary } => {
                let mut command = vec![binary.clone()];
                command.extend(r.args.iter().cloned());
                let outcome = host_exec(&command, &[], timeout, ctx.launch()).await;
                process_result(
                    command.join(" "),
                    outcome,
                    |o| expect::process(&r.expect, o),
                    start,
                    timeout,
                )
            }
        },
        Action::Reset(r) => match &r.image {
            Some(image) if ctx.on_host() => {
                let args = ["--uninstall".to_owned(), "all".to_owned()];
                registrar_on_host(ctx, image, &args, &Expect::default(), start, timeout).await
            }
            Some(image) => {
                let args = ["--uninstall", "all"];
                let spec = RunSpec::new(image.clone(), args)
                    .with_privileged(true)
                    .with_run_id(ctx.run_id)
                    .with_scenario(ctx.scenario);
                let command = format!("{engine} run --privileged {image} --uninstall all");
                let outcome = run_container(ctx, spec, timeout).await;
                process_result(
                    command,
                    outcome,
                    |o| expect::process(&Default::default(), o),
                    start,
                    timeout,
                )
            }
            None => reset_in_process(ctx.binfmt, start),
        },
        Action::Binfmt(check) => {
            let (status, message) = match ctx.binfmt.read(&check.entry) {
                Ok(entry) => match expect::binfmt(check, entry.as_ref()) {
                    None => (Status::Passed, None),
                    Some(m) => (Status::Failed, Some(m)),
                },
                Err(e) => (Status::Errored, Some(error_chain(&e))),
            };
            let mut result = StepResult::new(status, start.elapsed());
            result.message = message;
            result
        }
        Action::Run(run) => {
            let spec = run_spec(run, ctx.run_id, ctx.scenario);
            let command = describe_run(engine, &spec);
            let outcome = run_container(ctx, spec, timeout).await;
            process_result(
                command,
                outcome,
                |o| expect::process(&run.expect, o),
                start,
                timeout,
            )
        }
        Action::Build(build) => {
            let tag = build.tag.clone().unwrap_or_else(|| {
                let n = ctx.builds.fetch_add(1, Ordering::Relaxed);
                format!("qus-harness/build:{}-{n}", sanitize_tag(ctx.run_id))
            });
            let mut spec = match &build.source {
                BuildSource::Containerfile(text) => {
                    BuildSpec::inline(text.clone(), Vec::new(), tag.clone())
                }
                BuildSource::Context(dir) => BuildSpec::dir(dir.clone(), tag.clone()),
            }
            .with_run_id(ctx.run_id)
            .with_timeout(timeout)
            .with_no_cache(ctx.fresh_builds);
            for (k, v) in &build.build_args {
                spec = spec.with_build_arg(k.clone(), v.clone());
            }
            let mut command = format!("{engine} build -t {tag}");
            if ctx.fresh_builds {
                command.push_str(" --no-cache");
            }
            if let Some(platform) = &build.platform {
                spec = spec.with_platform(platform.clone());
                command.push_str(&format!(" --platform {platform}"));
            }
            let outcome = match tokio::time::timeout(timeout + GRACE, ctx.runtime.build(&spec))
                .await
            {
                Ok(r) => r,
                Err(_) => {
                    let mut result = StepResult::new(Status::TimedOut, start.elapsed());
                    result.message = Some(format!("build timed out after {}", humantime(timeout)));
                    result.command = Some(command);
                    return result;
                }
            };
            match outcome {
                Ok(o) => {
                    let status = if o.timed_out {
                        Status::TimedOut
                    } else if expect::build(&build.expect, &o).is_some() {
                        Status::Failed
                    } else {
                        Status::Passed
                    };
                    let mut result = StepResult::new(status, start.elapsed());
                    result.message = if o.timed_out {
                        Some(format!("build timed out after {}", humantime(timeout)))
                    } else {
                        expect::build(&build.expect, &o)
                    };
                    result.command = Some(command);
                    result.stdout = o.output;
                    result
                }
                Err(e) => errored(command, &e, start),
            }
        }
        Action::Exec(exec) => {
            let env: Vec<(String, String)> = exec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let outcome = host_exec(&exec.command, &env, timeout, ctx.launch()).await;
            process_result(
                exec.command.join(" "),
                outcome,
                |o| expect::process(&exec.expect, o),
                start,
                timeout,
            )
        }
        Action::Probe(probe) => run_probe(ctx, probe, start, timeout).await,
    }
}

/// A registrar image on the host runtime: the host's `qus-register` in a
/// view of the image (see `sandbox`), in the instance's namespace.
async fn registrar_on_host<R: Runtime>(
    ctx: &StepContext<'_, R>,
    image: &str,
    args: &[String],
    expected: &Expect,
    start: Instant,
    timeout: Duration,
) -> StepResult {
    let Some((command, description)) = ctx
        .sandbox
        .and_then(|sandbox| sandbox.registrar_in_view(image, args))
    else {
        let mut result = StepResult::new(Status::Errored, start.elapsed());
        result.message = Some(format!(
            "the host runtime prepared no view of `{image}` for this run"
        ));
        return result;
    };
    let launch = ctx.launch();
    let outcome = runtime::exec_with(&command, &[], timeout, |c| {
        // The image sets no `QEMU_BIN_DIR`: the registrar looks in `/usr/bin`.
        c.env_remove("QEMU_BIN_DIR");
        launch.apply(c)
    })
    .await;
    process_result(
        description,
        outcome,
        |o| expect::process(expected, o),
        start,
        timeout,
    )
}

/// A `probe` step: the probe image on an engine, the probe program on the
/// host runtime; a setuid copy when asked.
async fn run_probe<R: Runtime>(
    ctx: &StepContext<'_, R>,
    probe: &Probe,
    start: Instant,
    timeout: Duration,
) -> StepResult {
    let errored = |message: String| {
        let mut result = StepResult::new(Status::Errored, start.elapsed());
        result.message = Some(message);
        result
    };
    let user = match probe.credentials() {
        Ok(user) => user,
        Err(e) => return errored(format!("invalid `user` of the probe step: {e}")),
    };
    let program = if ctx.on_host() {
        match ctx.sandbox.and_then(|s| s.probe(&probe.target)) {
            Some(path) => path,
            None => {
                return errored(format!(
                    "the host runtime has no probe program for `{}`",
                    probe.target
                ));
            }
        }
    } else {
        match qus_registrar::verify::probe(&probe.target) {
            Some(_) => std::path::PathBuf::new(),
            None => return errored(format!("no probe program for `{}`", probe.target)),
        }
    };
    // A root-owned copy with mode 4755, removed when the step ends.
    let copy = if probe.setuid {
        match SetuidCopy::make(ctx, probe) {
            Ok(copy) => Some(copy),
            Err(e) => {
                return errored(format!(
                    "failed to make a setuid copy of the `{}` probe: {e}",
                    probe.target
                ));
            }
        }
    } else {
        None
    };
    let as_user = user
        .map(|(uid, gid)| format!(" (as {uid}:{gid})"))
        .unwrap_or_default();
    if ctx.on_host() {
        let program = copy.as_ref().map_or(program, |c| c.path.clone());
        let mut command = vec![program.display().to_string()];
        command.extend(probe.args.iter().cloned());
        let launch = Launch {
            namespace: ctx.namespace,
            user,
            direct: true,
        };
        let outcome = host_exec(&command, &[], timeout, launch)
            .await
            .or_else(not_started);
        process_result(
            format!("{}{as_user}", command.join(" ")),
            outcome,
            |o| expect::process(&probe.expect, o),
            start,
            timeout,
        )
    } else {
        let spec = probe_spec(probe, copy.as_ref().map(|c| c.path.as_path()))
            .with_run_id(ctx.run_id)
            .with_scenario(ctx.scenario);
        let command = describe_run(ctx.runtime.kind().as_str(), &spec);
        let outcome = run_container(ctx, spec, timeout).await;
        process_result(
            command,
            outcome,
            |o| expect::process(&probe.expect, o),
            start,
            timeout,
        )
    }
}

/// A probe the kernel would not start (no handler: `exec format error`)
/// is an outcome, as a container engine reports it: 127 not found, 126 not
/// executable, 125 anything else, with `exec <path>: <cause>` on stderr.
fn not_started(e: RuntimeError) -> Result<RunOutcome, RuntimeError> {
    match e {
        RuntimeError::Io {
            operation: runtime::Operation::Exec,
            object,
            source,
        } => {
            let exit_code = match source.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 125,
            };
            Ok(RunOutcome {
                exit_code,
                stdout: String::new(),
                stderr: format!("exec {object}: {}\n", errno_text(&source)),
                duration: Duration::ZERO,
                timed_out: false,
            })
        }
        other => Err(other),
    }
}

/// `exec format error` for ENOEXEC: the C library's text, lowercase,
/// without Rust's ` (os error 8)`.
fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A setuid-root copy of a probe, in a directory every user may enter;
/// removed when dropped.
struct SetuidCopy {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl SetuidCopy {
    fn make<R: Runtime>(ctx: &StepContext<'_, R>, probe: &Probe) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "setuid-{}-{}",
            sanitize_tag(ctx.run_id),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = match ctx.sandbox {
            Some(sandbox) => sandbox.private_dir(&name)?,
            None => {
                let dir = std::env::temp_dir().join(format!("qus-{name}"));
                std::fs::create_dir_all(&dir)?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
                dir
            }
        };
        let copy = Self {
            path: dir.join("probe"),
            dir,
        };
        let (bytes, _) = qus_registrar::verify::probe(&probe.target)
            .ok_or_else(|| std::io::Error::other("no probe program"))?;
        std::fs::write(&copy.path, bytes)?;
        std::os::unix::fs::chown(&copy.path, Some(0), Some(0))?;
        // `chown` clears the setuid bit: set the mode after it.
        std::fs::set_permissions(&copy.path, std::fs::Permissions::from_mode(0o4755))?;
        Ok(copy)
    }
}

impl Drop for SetuidCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run_container<R: Runtime>(
    ctx: &StepContext<'_, R>,
    spec: RunSpec,
    timeout: Duration,
) -> Result<RunOutcome, RuntimeError> {
    let spec = spec.with_timeout(timeout);
    match tokio::time::timeout(timeout + GRACE, ctx.runtime.run(&spec)).await {
        Ok(r) => r,
        // The engine did not enforce the limit: report a timeout ourselves.
        Err(_) => Ok(RunOutcome {
            exit_code: 137,
            stdout: String::new(),
            stderr: String::new(),
            duration: timeout + GRACE,
            timed_out: true,
        }),
    }
}

async fn host_exec(
    command: &[String],
    env: &[(String, String)],
    timeout: Duration,
    launch: Launch<'_>,
) -> Result<RunOutcome, RuntimeError> {
    runtime::exec_with(command, env, timeout, |c| launch.apply(c)).await
}

fn process_result(
    command: String,
    outcome: Result<RunOutcome, RuntimeError>,
    check: impl Fn(&RunOutcome) -> Option<String>,
    start: Instant,
    limit: Duration,
) -> StepResult {
    match outcome {
        Ok(o) => {
            let message = check(&o);
            let status = if o.timed_out {
                Status::TimedOut
            } else if message.is_some() {
                Status::Failed
            } else {
                Status::Passed
            };
            let mut result = StepResult::new(status, start.elapsed());
            result.message = if o.timed_out {
                Some(format!("timed out after {}", humantime(limit)))
            } else {
                message
            };
            result.command = Some(command);
            result.exit_code = Some(o.exit_code);
            result.stdout = o.stdout;
            result.stderr = o.stderr;
            result
        }
        Err(e) => errored(command, &e, start),
    }
}

fn errored(command: String, e: &RuntimeError, start: Instant) -> StepResult {
    let mut result = StepResult::new(Status::Errored, start.elapsed());
    result.message = Some(error_chain(e));
    result.command = Some(command);
    result
}

/// Removes every `qemu-*` entry, through the registrar library.
fn reset_in_process(binfmt: &Binfmt, start: Instant) -> StepResult {
    let outcome = binfmt.list().and_then(|entries| {
        entries
            .iter()
            .filter(|e| e.is_owned())
            .try_for_each(|e| binfmt.remove(&e.name))
    });
    let mut result = StepResult::new(
        if outcome.is_ok() {
            Status::Passed
        } else {
            Status::Errored
        },
        start.elapsed(),
    );
    result.command = Some("reset: remove every qemu-* entry".into());
    result.message = outcome.err().map(|e| error_chain(&e));
    result
}

fn describe_run(engine: &str, spec: &RunSpec) -> String {
    let mut parts = vec![format!("{engine} run")];
    if spec.privileged {
        parts.push("--privileged".into());
    }
    for b in &spec.binds {
        parts.push(format!("-v {b}"));
    }
    if let Some(p) = &spec.platform {
        parts.push(format!("--platform {p}"));
    }
    if let Some(e) = &spec.entrypoint {
        parts.push(format!("--entrypoint {}", e.join(" ")));
    }
    parts.push(spec.image.clone());
    parts.extend(spec.command.iter().cloned());
    parts.join(" ")
}

/// `error: cause: cause`, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn sanitize_tag(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `1.5s`, `2m`, for messages.
pub(crate) fn humantime(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 && d.as_secs().is_multiple_of(60) {
        format!("{}m", d.as_secs() / 60)
    } else if secs >= 1.0 {
        format!("{}s", (secs * 10.0).round() / 10.0)
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(humantime(Duration::from_secs(120)), "2m");
        assert_eq!(humantime(Duration::from_millis(1500)), "1.5s");
        assert_eq!(humantime(Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn a_probe_the_kernel_refuses_reads_as_an_engine_reports_it() {
        let refused = |errno: i32| {
            not_started(RuntimeError::Io {
                operation: runtime::Operation::Exec,
                object: "/p/aarch64".into(),
                source: std::io::Error::from_raw_os_error(errno),
            })
            .unwrap()
        };
        let o = refused(libc::ENOEXEC);
        assert_eq!(
            (o.exit_code, o.stderr.as_str()),
            (125, "exec /p/aarch64: exec format error\n")
        );
        assert_eq!(refused(libc::ENOENT).exit_code, 127);
        assert_eq!(refused(libc::EACCES).exit_code, 126);
    }

    #[test]
    fn generated_tags_are_valid() {
        assert_eq!(sanitize_tag("Run_01:x"), "run-01-x");
    }
}
