//! `qus-harness run` end to end on a real Docker Engine.
//!
//! Compiled with `--features docker`. Each trial runs the real binary on the
//! scenarios in `tests/fixtures/docker/`, whose images are built offline from
//! a static tool (`tests/fixtures/tool/tool.c`, compiled by `common/tool.rs`), or by the
//! run itself (the qus images and fixtures it lacks). Without an
//! engine (or gcc) every trial is *ignored* with the reason; with
//! `QUS_REQUIRE_ENGINES=1` that is a failure. Each trial checks that no
//! container or image with its run label is left behind.
#![cfg(feature = "docker")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_registrar::binfmt::Binfmt;

#[path = "common/tool.rs"]
mod tool;

type Body = fn(&Path) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    // Trials share the engine and, for one of them, the host's binfmt_misc.
    args.test_threads = Some(1);
    let trials: &[(&str, Body)] = &[
        ("a_passing_run_exits_0_with_a_junit_report", passing_run),
        ("a_failing_run_exits_1_with_a_readable_diff", failing_run),
        ("a_step_timeout_kills_the_container", step_timeout),
        (
            "ctrl_c_mid_run_tears_down_cleans_up_and_restores_binfmt",
            ctrl_c_mid_run,
        ),
        (
            "ctrl_c_mid_run_restores_a_differing_qemu_s390x_entry",
            ctrl_c_mid_run_over_a_differing_entry,
        ),
        ("two_runs_in_parallel_both_pass", two_runs_in_parallel),
        (
            "missing_qus_images_are_built_before_the_run",
            missing_images_are_built,
        ),
        (
            "absent_foreign_images_are_named_not_pulled",
            absent_images_are_named,
        ),
        (
            "a_qemu_matrix_runs_each_qemu_after_its_baseline",
            qemu_matrix,
        ),
    ];
    #[cfg_attr(not(feature = "podman"), allow(unused_mut))]
    let mut trials: Vec<Trial> = trials
        .iter()
        .map(|&(name, body)| trial(name, prerequisites, body))
        .collect();
    #[cfg(feature = "podman")]
    trials.push(trial(
        "podman_builds_what_it_lacks_when_docker_does_not_answer",
        || prerequisites().and_then(|context| podman_available().map(|()| context)),
        podman_builds_without_docker,
    ));
    let conclusion = libtest_mimic::run(&args, trials);
    // The trials' shared build context goes with them.
    let _ = std::fs::remove_dir_all(context_dir());
    conclusion.exit();
}

/// The build context the trials share, named by this process.
fn context_dir() -> PathBuf {
    std::env::temp_dir().join(format!("qus-run-docker-{}", std::process::id()))
}

/// A trial that runs `body` when `prerequisites` are met, and is ignored
/// with the reason otherwise (a failure with `QUS_REQUIRE_ENGINES=1`).
fn trial(name: &str, prerequisites: fn() -> Result<&'static Path, String>, body: Body) -> Trial {
    Trial::ignorable_test(name, move || match prerequisites() {
        Ok(context) => body(context).map(|()| Completion::Completed),
        Err(reason) if require_engines() => {
            Err(format!("QUS_REQUIRE_ENGINES=1 but {reason}").into())
        }
        Err(reason) => Ok(Completion::ignored_with(reason)),
    })
}

fn require_engines() -> bool {
    std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1")
}

/// The build context of the tool image, made once: `Err` says what is missing.
fn prerequisites() -> Result<&'static Path, String> {
    static CONTEXT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let docker = Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            match docker {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    return Err(format!(
                        "docker is unavailable: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ));
                }
                Err(e) => return Err(format!("docker is unavailable: {e}")),
            }
            let dir = context_dir();
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let tool = dir.join("tool");
            std::fs::write(&tool, tool::tool_binary()?).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            std::fs::write(
                dir.join("Containerfile"),
                "FROM scratch\nCOPY tool /tool\nENTRYPOINT [\"/tool\"]\n",
            )
            .map_err(|e| e.to_string())?;
            Ok(dir)
        })
        .as_deref()
        .map_err(Clone::clone)
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docker")
        .join(name)
}

fn harness(context: &Path, run_id: &str, files: &[&str], extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qus-harness"));
    c.arg("run")
        .args(files.iter().map(|f| scenario(f)))
        .args([
            "--runtime",
            "docker",
            "--require-engine",
            "--run-id",
            run_id,
        ])
        .arg("--var")
        .arg(format!("TOOL_CONTEXT={}", context.display()))
        .args(extra)
        .env("CI", "true");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

fn expect_exit(out: &Output, code: i32) -> Result<(), Failed> {
    check(
        out.status.code() == Some(code),
        format!(
            "expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        ),
    )
}

/// Containers and images still carrying the run's label.
fn leftovers(run_id: &str) -> Result<Vec<String>, Failed> {
    let filter = format!("label=io.qus.run={run_id}");
    let mut left = Vec::new();
    for what in [
        &["ps", "-aq", "--filter"][..],
        &["images", "-q", "--filter"],
    ] {
        let out = Command::new("docker").args(what).arg(&filter).output()?;
        left.extend(text(&out.stdout).lines().map(str::to_owned));
    }
    Ok(left)
}

fn no_leftovers(run_id: &str) -> Result<(), Failed> {
    let left = leftovers(run_id)?;
    check(
        left.is_empty(),
        format!("left behind with run label `{run_id}`: {left:?}"),
    )
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("test-{name}-{}-{nanos}", std::process::id())
}

fn passing_run(context: &Path) -> Result<(), Failed> {
    let run_id = unique("pass");
    let junit = std::env::temp_dir().join(format!("{run_id}.xml"));
    let out = harness(
        context,
        &run_id,
        &["pass.yaml"],
        &["--junit", junit.to_str().unwrap()],
    )
    .output()?;
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains("1 passed, 0 failed, 0 skipped"),
        format!("stdout:\n{stdout}"),
    )?;
    let xml = std::fs::read_to_string(&junit)?;
    let _ = std::fs::remove_file(&junit);
    check(
        xml.contains(r#"tests="1""#) && xml.contains(r#"failures="0""#),
        format!("junit:\n{xml}"),
    )?;
    check(
        xml.contains("docker-pass"),
        "the JUnit report does not name the scenario",
    )?;
    no_leftovers(&run_id)
}

fn failing_run(context: &Path) -> Result<(), Failed> {
    let run_id = unique("fail");
    let out = harness(context, &run_id, &["fail.yaml", "pass.yaml"], &[]).output()?;
    expect_exit(&out, 1)?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains(r#"stdout: expected "aarch64\n", got "x86_64\n""#),
        format!("no readable diff in:\n{stdout}"),
    )?;
    check(
        stdout.contains("1 passed, 1 failed, 0 skipped"),
        format!("stdout:\n{stdout}"),
    )?;
    no_leftovers(&run_id)
}

fn step_timeout(context: &Path) -> Result<(), Failed> {
    let run_id = unique("timeout");
    let start = Instant::now();
    let out = harness(context, &run_id, &["timeout.yaml"], &[]).output()?;
    expect_exit(&out, 1)?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains("TIMEOUT") && stdout.contains("timed out after 2s"),
        format!("stdout:\n{stdout}"),
    )?;
    // Output written before the kill is kept.
    check(stdout.contains("started"), format!("stdout:\n{stdout}"))?;
    check(
        start.elapsed() < Duration::from_secs(50),
        format!("took {:?}", start.elapsed()),
    )?;
    no_leftovers(&run_id)
}

fn ctrl_c_mid_run(context: &Path) -> Result<(), Failed> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (the scenario writes binfmt_misc)".into());
    }
    let binfmt = Binfmt::default();
    let before = binfmt.snapshot()?;
    let run_id = unique("interrupt");
    let marker = context.join(format!("{run_id}.teardown"));
    let marker_var = format!("TEARDOWN_MARKER={}", marker.display());
    let mut child = harness(
        context,
        &run_id,
        &["interrupt.yaml"],
        &["--var", &marker_var],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?;
    // Wait until the long container runs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=io.qus.run={run_id}"),
            ])
            .output()?;
        if !text(&out.stdout).trim().is_empty() {
            break;
        }
        // A run that ended before its container started says why.
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            return Err(format!(
                "the run ended ({}) before its container started:\n{}{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            )
            .into());
        }
        if Instant::now() > deadline {
            return Err("the scenario's container never started".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("a child pid is positive"),
        rustix::process::Signal::INT,
    )?;
    let start = Instant::now();
    let out = child.wait_with_output()?;
    expect_exit(&out, 130)?;
    check(
        start.elapsed() < Duration::from_secs(60),
        format!("took {:?} to stop", start.elapsed()),
    )?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains("host binfmt state restored"),
        format!("stdout:\n{stdout}"),
    )?;
    check(
        marker.exists(),
        format!("the teardown did not run after Ctrl-C; stdout:\n{stdout}"),
    )?;
    no_leftovers(&run_id)?;
    let after = binfmt.snapshot()?;
    check(
        after.entries == before.entries,
        "binfmt_misc entries differ after the interrupted run",
    )
}

/// [`ctrl_c_mid_run`] on a host that already holds a `qemu-s390x` entry
/// unlike the scenario's (`OCF`, as Debian's binfmt.d registers it): the
/// run must neither refuse it nor lose it. The host's registry is put back
/// as it was found afterwards.
fn ctrl_c_mid_run_over_a_differing_entry(context: &Path) -> Result<(), Failed> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (the test registers `qemu-s390x`)".into());
    }
    let interpreter = Path::new("/usr/bin/qemu-s390x-static");
    if !interpreter.is_file() {
        return Err(format!("needs `{}`", interpreter.display()).into());
    }
    let binfmt = Binfmt::default();
    let found = binfmt.snapshot()?;
    let target = qus_registrar::targets::find("s390x").ok_or("s390x is a target")?;
    let flags = qus_registrar::entry::Flags::requested(true, true, false);
    let line = qus_registrar::entry::register_line(target, "/usr/bin/qemu-s390x-static", flags);
    if binfmt.read("qemu-s390x")?.is_some() {
        binfmt.remove("qemu-s390x")?;
    }
    let outcome = binfmt
        .register("qemu-s390x", &line)
        .map_err(Failed::from)
        .and_then(|()| {
            let entry = binfmt
                .read("qemu-s390x")?
                .ok_or("`qemu-s390x` registered")?;
            check(
                entry.flags.credential && entry.flags.fix_binary,
                format!("`qemu-s390x` is not OCF: {entry:?}"),
            )?;
            ctrl_c_mid_run(context)
        });
    let restored = binfmt.restore(&found);
    outcome?;
    restored?;
    Ok(())
}

fn two_runs_in_parallel(context: &Path) -> Result<(), Failed> {
    let ids = [unique("par-a"), unique("par-b")];
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            harness(context, id, &["pass.yaml"], &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        expect_exit(&child.wait_with_output()?, 0)?;
    }
    ids.iter().try_for_each(|id| no_leftovers(id))
}

/// Whether Docker has `image`.
fn image_exists(image: &str) -> Result<bool, Failed> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()?;
    Ok(out.status.success())
}

/// Removes tag `image` (the image stays while another tag names it).
fn untag(image: &str) -> Result<(), Failed> {
    if image_exists(image)? {
        let out = Command::new("docker").args(["rmi", image]).output()?;
        expect_exit(&out, 0)?;
    }
    check(!image_exists(image)?, format!("`{image}` is still there"))
}

/// With a registrar image and a probe fixture untagged, `--no-prepare`
/// fails on them, and a plain run builds them (`images build`, `images
/// fixtures`), says so, and passes. Other test binaries run before or
/// after this one, never during it, so untagging shared images is safe;
/// the run puts them back.
fn missing_images_are_built(context: &Path) -> Result<(), Failed> {
    let machine = qus_registrar::binfmt::HostFacts::read(None).machine;
    let registrar = "qus/qemu-user-static:register";
    let probe = format!("qus-fixtures/probe:{machine}");
    untag(registrar)?;
    untag(&probe)?;

    let run_id = unique("no-prepare");
    let out = harness(context, &run_id, &["prepare.yaml"], &["--no-prepare"]).output()?;
    expect_exit(&out, 1)?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains("not present locally") && !stdout.contains("prepare "),
        format!("stdout:\n{stdout}"),
    )?;
    check(
        !image_exists(registrar)?,
        "--no-prepare built the registrar image",
    )?;

    let run_id = unique("prepare");
    let out = harness(context, &run_id, &["prepare.yaml"], &[]).output()?;
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    let announced = stdout
        .lines()
        .find_map(|l| l.split_once("building what the run needs with docker: "))
        .map(|(_, list)| list.split(", ").collect::<Vec<_>>());
    check(
        announced.is_some_and(|l| l.len() == 2 && l.contains(&registrar) && l.contains(&&*probe)),
        format!("stdout:\n{stdout}"),
    )?;
    check(
        stdout.contains("1 passed, 0 failed, 0 skipped"),
        format!("stdout:\n{stdout}"),
    )?;
    check(
        image_exists(registrar)?,
        "the registrar image was not built",
    )?;
    check(image_exists(&probe)?, "the probe image was not built")?;

    // Now present: the next run builds nothing.
    let run_id = unique("prepared");
    let out = harness(context, &run_id, &["prepare.yaml"], &[]).output()?;
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    check(
        !stdout.contains("building what"),
        format!("stdout:\n{stdout}"),
    )?;
    no_leftovers(&run_id)
}

/// An absent image qus does not build is named on stderr before the run,
/// never pulled, and its step errors.
fn absent_images_are_named(context: &Path) -> Result<(), Failed> {
    let run_id = unique("absent");
    let out = harness(context, &run_id, &["absent.yaml"], &[]).output()?;
    expect_exit(&out, 1)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains(&format!(
            "warning: not found locally and not built by qus (the harness never pulls; \
             pull or load them first): qus-test/never-built:{run_id}"
        )),
        format!("stderr:\n{stderr}"),
    )?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains("not present locally") && stdout.contains("1 errored"),
        format!("stdout:\n{stdout}"),
    )?;
    no_leftovers(&run_id)
}

/// `run --qemu` with two image versions of one repository: each QEMU's
/// handlers are registered before its instances (which register nothing
/// themselves), JUnit has one suite per QEMU, the JSON report says which
/// QEMU ran each instance, `compare` finds no regression between the two,
/// and the host's entries are as before. The repository is the test's own:
/// two version tags of the suite's `latest` and `aarch64` images, removed
/// at the end whatever happened.
fn qemu_matrix(context: &Path) -> Result<(), Failed> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (each QEMU's baseline writes binfmt_misc)".into());
    }
    // The suite's images, built when absent (idempotent).
    if !image_exists("qus/qemu-user-static:latest")?
        || !image_exists("qus/qemu-user-static:aarch64")?
    {
        let out = Command::new(env!("CARGO_BIN_EXE_qus-harness"))
            .args(["images", "build"])
            .output()?;
        expect_exit(&out, 0)?;
    }
    let repo = format!("qus-test/qemu-matrix-{}", std::process::id());
    let tags: Vec<(String, String)> = ["7.2.0-1", "7.2.0-2"]
        .iter()
        .flat_map(|v| {
            [
                (
                    "qus/qemu-user-static:latest".to_owned(),
                    format!("{repo}:{v}"),
                ),
                (
                    "qus/qemu-user-static:aarch64".to_owned(),
                    format!("{repo}:aarch64-{v}"),
                ),
            ]
        })
        .collect();
    let result = tags
        .iter()
        .try_for_each(|(from, to)| {
            let out = Command::new("docker").args(["tag", from, to]).output()?;
            expect_exit(&out, 0)
        })
        .and_then(|()| qemu_matrix_in(context, &repo));
    for (_, tag) in &tags {
        untag(tag)?;
    }
    result
}

/// A workload of one probe run, natively (this host's probe) and on
/// aarch64, written for this host's architecture.
fn workload_scenario(path: &Path) -> Result<(), Failed> {
    let machine = qus_registrar::binfmt::HostFacts::read(None).machine;
    std::fs::write(
        path,
        format!(
            "apiVersion: qus/v1\nname: docker-workload\nruntimes: [docker]\n\
             vars: {{ TOOL_CONTEXT: /nonexistent }}\n\
             matrix:\n  arch:\n    - {{ name: native, target: {machine} }}\n    \
             - {{ name: aarch64, target: aarch64 }}\n\
             workload: {{ native: {{ arch: native }} }}\n\
             steps:\n  - run: {{ image: \"qus-fixtures/probe:${{arch.target}}\" }}\n"
        ),
    )?;
    Ok(())
}

fn qemu_matrix_in(context: &Path, repo: &str) -> Result<(), Failed> {
    let binfmt = Binfmt::default();
    let before = binfmt.snapshot()?;
    let run_id = unique("qemu-matrix");
    let junit = std::env::temp_dir().join(format!("{run_id}.xml"));
    let json = std::env::temp_dir().join(format!("{run_id}.json"));
    let workload = std::env::temp_dir().join(format!("{run_id}-workload.yaml"));
    workload_scenario(&workload)?;
    let out = harness(
        context,
        &run_id,
        &["qemu-matrix.yaml", workload.to_str().unwrap()],
        &[
            "--qemu",
            "7.2.0-1,7.2.0-2",
            "--var",
            &format!("QUS_REPO={repo}"),
            "--junit",
            junit.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    )
    .output()?;
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    let report = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = std::fs::remove_file(&junit);
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&workload);
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    for version in ["7.2.0-1", "7.2.0-2"] {
        check(
            stdout.contains(&format!(
                "qemu {version}: handlers registered (`docker run --privileged \
                 {repo}:{version} --reset -p yes`"
            )) && stdout.lines().any(|l| {
                l.starts_with("PASS")
                    && l.ends_with(&format!(
                        "docker-qemu-matrix[arch=aarch64] (qemu {version})"
                    ))
            }),
            format!("stdout:\n{stdout}"),
        )?;
        check(
            xml.contains(&format!(
                r#"<testsuite name="qus-docker (qemu {version})" tests="3""#
            )),
            format!("junit:\n{xml}"),
        )?;
        check(
            stdout.contains(&format!("workloads (qemu {version}):")),
            format!("no workload table in stdout:\n{stdout}"),
        )?;
    }
    check(
        stdout.contains("6 passed, 0 failed, 0 skipped"),
        format!("stdout:\n{stdout}"),
    )?;
    let value: serde_json::Value = serde_json::from_str(&report)?;
    let qemus = value["qemus"].as_array().cloned().unwrap_or_default();
    check(
        qemus.len() == 2 && qemus.iter().all(|q| q["debian_version"].is_string()),
        format!("qemus: {qemus:?}"),
    )?;
    let debian = qemus[0]["debian_version"].as_str().unwrap_or_default();
    let instances = value["instances"].as_array().cloned().unwrap_or_default();
    // Each QEMU's emulated run has a slowdown against its native run.
    let slowdowns = instances
        .iter()
        .filter(|i| i["id"] == "docker-workload[arch=aarch64]")
        .filter(|i| i["workload"]["slowdown"].as_f64().is_some_and(|s| s > 0.0))
        .count();
    check(slowdowns == 2, format!("instances: {instances:#?}"))?;
    for instance in instances {
        let ran = &instance["qemu_ran"];
        let line = ran["versions"][0].as_str().unwrap_or_default();
        check(
            line.starts_with("qemu-aarch64 version ")
                && line.ends_with(&format!("(Debian {debian})"))
                && ran["mismatch"].is_null(),
            format!("qemu_ran of {}: {ran}", instance["qemu"]),
        )?;
    }
    // The two QEMUs of one report, compared: nothing regressed.
    let report_path = std::env::temp_dir().join(format!("{run_id}-compare.json"));
    std::fs::write(&report_path, &report)?;
    let out = Command::new(env!("CARGO_BIN_EXE_qus-harness"))
        .arg("compare")
        .args([&report_path, &report_path])
        .args(["--base-qemu", "7.2.0-1", "--candidate-qemu", "7.2.0-2"])
        .output()?;
    let _ = std::fs::remove_file(&report_path);
    expect_exit(&out, 0)?;
    no_leftovers(&run_id)?;
    let after = binfmt.snapshot()?;
    check(
        after.entries == before.entries,
        "binfmt_misc entries differ after the QEMU matrix run",
    )
}

/// Whether Podman answers (its CLI; the run itself talks to its socket).
#[cfg(feature = "podman")]
fn podman_available() -> Result<(), String> {
    match Command::new("podman")
        .args(["info", "--format", "{{.Host.Arch}}"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("podman is unavailable: {}", text(&o.stderr).trim())),
        Err(e) => Err(format!("podman is unavailable: {e}")),
    }
}

/// The `repository:tag` of every Podman image in `repo` (Podman prefixes
/// names it builds with `localhost/`, and names tagged through its
/// Docker-compatible API with `docker.io/`).
#[cfg(feature = "podman")]
fn podman_images_of(repo: &str) -> Result<Vec<String>, Failed> {
    let out = Command::new("podman")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()?;
    expect_exit_ok(&out)?;
    Ok(text(&out.stdout)
        .lines()
        .filter(|l| {
            let name = ["localhost/", "docker.io/"]
                .iter()
                .find_map(|p| l.strip_prefix(p))
                .unwrap_or(l);
            name.split_once(':').is_some_and(|(r, _)| r == repo)
        })
        .map(str::to_owned)
        .collect())
}

/// Fails when `out` is not a success.
#[cfg(feature = "podman")]
fn expect_exit_ok(out: &Output) -> Result<(), Failed> {
    check(
        out.status.success(),
        format!("{:?}: {}", out.status, text(&out.stderr)),
    )
}

/// On a host where Docker does not answer (`DOCKER_HOST` at a dead
/// socket), a Podman run builds the qus images Podman lacks with Podman
/// itself, and passes. A repository of its own keeps the suite's images
/// out of it; its images are removed at the end, whatever happened.
#[cfg(feature = "podman")]
fn podman_builds_without_docker(context: &Path) -> Result<(), Failed> {
    let repo = format!("qus-test/podman-only-{}", std::process::id());
    let result = podman_builds_without_docker_in(context, &repo);
    let left = podman_images_of(&repo)?;
    if !left.is_empty() {
        let out = Command::new("podman")
            .arg("rmi")
            .arg("--force")
            .args(&left)
            .output()?;
        expect_exit_ok(&out)?;
    }
    result?;
    check(
        podman_images_of(&repo)?.is_empty(),
        format!("images of `{repo}` are left in podman"),
    )
}

#[cfg(feature = "podman")]
fn podman_builds_without_docker_in(context: &Path, repo: &str) -> Result<(), Failed> {
    let run_id = unique("podman-only");
    let out = Command::new(env!("CARGO_BIN_EXE_qus-harness"))
        .arg("run")
        .arg(scenario("prepare.yaml"))
        .args([
            "--runtime",
            "podman",
            "--require-engine",
            "--run-id",
            &run_id,
        ])
        .arg("--var")
        .arg(format!("TOOL_CONTEXT={}", context.display()))
        .arg("--var")
        .arg(format!("QUS_REPO={repo}"))
        .env("CI", "true")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()?;
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    let register = format!("{repo}:register");
    let announced = stdout
        .lines()
        .find_map(|l| l.split_once("building what the run needs with podman: "))
        .is_some_and(|(_, list)| list.split(", ").any(|i| i == register));
    check(announced, format!("stdout:\n{stdout}"))?;
    check(
        stdout.contains("1 passed, 0 failed, 0 skipped"),
        format!("stdout:\n{stdout}"),
    )?;
    let exists = Command::new("podman")
        .args(["image", "exists", &register])
        .status()?;
    check(exists.success(), format!("podman lacks `{register}`"))?;
    check(
        !image_exists(&register)?,
        format!("`{register}` was built in docker"),
    )
}
