//! The qus GitHub Action (`action.yml` at the repository root, its step
//! `action/run.sh`), run as GitHub's runner runs it.
//!
//! Always: `action.yml` hands every input to the script under the name the
//! script reads, and the script writes every output `action.yml` declares.
//!
//! With `--features docker`: the script runs against the real engine and
//! the host's binfmt_misc, with the variables a runner sets (`INPUT_*` from
//! `action.yml`'s defaults and each trial's inputs, `GITHUB_OUTPUT`,
//! `RUNNER_TEMP`, `GITHUB_ACTION_PATH`), and the trials check the entries
//! the registrar image left (names, flags, interpreters), the `platforms`
//! output, and that bad inputs and failures fail the step without changing
//! the registry. The image is `${QUS_REPO:-qus/qemu-user-static}:latest`,
//! built beforehand by `qus-harness images build`. Every trial saves the
//! registry first and a guard puts it back, then checks that it is as
//! saved. Trials run one at a time (one registry); run the binary under
//! the machine's binfmt lock where others share the host. Without root,
//! Docker, `jq` or the image they are *ignored* with the reason, a failure
//! with `QUS_REQUIRE_ENGINES=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let mut args = Arguments::from_args();
    // The docker trials share the host's binfmt_misc registry.
    args.test_threads = Some(1);
    #[cfg_attr(not(feature = "docker"), allow(unused_mut))]
    let mut trials = vec![Trial::test(
        "action_yml_hands_every_input_to_the_script_and_declares_its_outputs",
        action_yml_matches_the_script,
    )];
    #[cfg(feature = "docker")]
    trials.extend(docker::trials());
    libtest_mimic::run(&args, trials).exit();
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness sits in the workspace")
        .to_owned()
}

/// `action.yml`, as far as the trials read it.
#[derive(serde::Deserialize)]
struct Action {
    inputs: BTreeMap<String, Input>,
    outputs: BTreeMap<String, Output>,
    runs: Runs,
}

#[derive(serde::Deserialize)]
struct Input {
    default: String,
}

#[derive(serde::Deserialize)]
struct Output {
    value: String,
}

#[derive(serde::Deserialize)]
struct Runs {
    using: String,
    steps: Vec<Step>,
}

#[derive(serde::Deserialize)]
struct Step {
    id: Option<String>,
    run: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn action() -> Result<Action, Failed> {
    let path = workspace_root().join("action.yml");
    let text = std::fs::read_to_string(&path)?;
    Ok(serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// The variable an input reaches the script in: `INPUT_` and its name in
/// capitals, with `-` spelled `_` (bash cannot name `INPUT_PRESERVE-ARGV0`).
fn input_variable(name: &str) -> String {
    format!("INPUT_{}", name.to_uppercase().replace('-', "_"))
}

/// Inputs the script does not read: they configure the upload step.
const UPLOAD_INPUTS: [&str; 1] = ["artifact-name"];

fn action_yml_matches_the_script() -> Result<(), Failed> {
    let action = action()?;
    let script = std::fs::read_to_string(workspace_root().join("action/run.sh"))?;
    if action.runs.using != "composite" {
        return Err(format!("runs.using is `{}`", action.runs.using).into());
    }
    let step = action
        .runs
        .steps
        .iter()
        .find(|s| s.id.as_deref() == Some("qus"))
        .ok_or("no step with id `qus`")?;
    let run = step.run.as_deref().unwrap_or_default();
    if run != "bash \"$GITHUB_ACTION_PATH/action/run.sh\"" {
        return Err(format!("the step runs `{run}`").into());
    }
    let mut expected = BTreeMap::new();
    for name in action.inputs.keys() {
        if UPLOAD_INPUTS.contains(&name.as_str()) {
            continue;
        }
        let variable = input_variable(name);
        if !script.contains(&format!("${{{variable}:-")) {
            return Err(format!("run.sh does not read `{variable}` (input `{name}`)").into());
        }
        expected.insert(variable, format!("${{{{ inputs.{name} }}}}"));
    }
    if step.env != expected {
        return Err(format!("step env {:?}, expected {expected:?}", step.env).into());
    }
    // Every `INPUT_*` the script reads is an input.
    for read in script.split("${").skip(1) {
        let variable: String = read
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if variable.starts_with("INPUT_") && !expected.contains_key(&variable) {
            return Err(format!("run.sh reads `{variable}`, which no input sets").into());
        }
    }
    for (name, output) in &action.outputs {
        if output.value != format!("${{{{ steps.qus.outputs.{name} }}}}") {
            return Err(format!("output `{name}` is `{}`", output.value).into());
        }
        if !script.contains(&format!("echo \"{name}=")) {
            return Err(format!("run.sh never writes output `{name}`").into());
        }
    }
    // The defaults the script falls back on are the action's.
    for (name, input) in &action.inputs {
        if UPLOAD_INPUTS.contains(&name.as_str()) {
            continue;
        }
        let variable = input_variable(name);
        let plain = format!("${{{variable}:-{}}}", input.default);
        let boolean = format!("\"${{{variable}:-}}\" {}", input.default);
        if !script.contains(&plain) && !script.contains(&boolean) {
            return Err(format!(
                "run.sh's default for `{name}` is not action.yml's `{}`",
                input.default
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(feature = "docker")]
mod docker {
    //! The trials on the real engine and registry.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::Instant;

    use libtest_mimic::{Completion, Failed, Trial};
    use qus_registrar::binfmt::{Binfmt, HostFacts, MountState, Snapshot};
    use qus_registrar::entry::{self, Entry, Flags};
    use qus_registrar::status::build_status;
    use qus_registrar::targets;

    use super::{action, input_variable, workspace_root};

    type Body = fn(&str) -> Result<(), Failed>;

    /// A trial's inputs, by name.
    type Inputs<'a> = &'a [(&'a str, &'a str)];

    pub(super) fn trials() -> Vec<Trial> {
        let tests: &[(&str, Body)] = &[
            (
                "registers_the_platforms_asked_for_with_the_flags_asked_for",
                registers_the_platforms_asked_for,
            ),
            (
                "preserve_argv0_without_persistent_registers_p_alone",
                preserve_argv0_without_persistent,
            ),
            (
                "reset_removes_other_qemu_entries_and_keeps_foreign_ones",
                reset_keeps_foreign_entries,
            ),
            (
                "all_registers_every_target_outside_the_host_family",
                all_registers_every_foreign_target,
            ),
            (
                "invalid_inputs_and_failures_fail_the_step_and_change_nothing",
                failures_fail_the_step,
            ),
            (
                "run_suite_runs_the_harness_and_names_its_junit_report",
                run_suite_runs_the_harness,
            ),
        ];
        tests
            .iter()
            .map(|&(name, body)| {
                Trial::ignorable_test(name, move || match prerequisites() {
                    Ok(image) => body(image).map(|()| Completion::Completed),
                    Err(reason) if require_engines() => {
                        Err(format!("QUS_REQUIRE_ENGINES=1 but {reason}").into())
                    }
                    Err(reason) => Ok(Completion::ignored_with(reason)),
                })
                .with_kind("docker")
            })
            .collect()
    }

    fn require_engines() -> bool {
        std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1")
    }

    /// The repository of the registrar images under test.
    fn repo() -> String {
        std::env::var("QUS_REPO")
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "qus/qemu-user-static".to_owned())
    }

    /// The registrar image, when the trials can run here; else why not.
    fn prerequisites() -> Result<&'static str, String> {
        static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
        CHECKED
            .get_or_init(|| {
                if !rustix::process::geteuid().is_root() {
                    return Err("needs root (binfmt_misc)".into());
                }
                for tool in ["docker", "jq", "bash"] {
                    which::which(tool).map_err(|_| format!("`{tool}` is not installed"))?;
                }
                let binfmt = Binfmt::default();
                match binfmt.state() {
                    MountState::Missing => return Err("the kernel has no binfmt_misc".into()),
                    MountState::NotMounted => binfmt
                        .mount()
                        .map_err(|e| format!("cannot mount binfmt_misc: {e}"))?,
                    MountState::Mounted => {}
                }
                let image = format!("{}:latest", repo());
                let inspect = Command::new("docker")
                    .args(["image", "inspect", "--format", "{{.Id}}", &image])
                    .output()
                    .map_err(|e| format!("docker is unavailable: {e}"))?;
                if !inspect.status.success() {
                    return Err(format!(
                        "the registrar image `{image}` is not in Docker (build it with \
                         `qus-harness images build`): {}",
                        String::from_utf8_lossy(&inspect.stderr).trim()
                    ));
                }
                Ok(image)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// Puts the registry back as it was when taken, and says whether that
    /// worked; dropping it without [`RegistryGuard::restore`] restores too.
    struct RegistryGuard {
        binfmt: Binfmt,
        before: Snapshot,
        restored: bool,
    }

    impl RegistryGuard {
        fn take() -> Result<Self, Failed> {
            let binfmt = Binfmt::default();
            let before = binfmt.snapshot().map_err(|e| e.to_string())?;
            Ok(Self {
                binfmt,
                before,
                restored: false,
            })
        }

        /// Restores and checks against the snapshot taken before.
        fn restore(mut self) -> Result<(), Failed> {
            self.restored = true;
            self.binfmt
                .restore(&self.before)
                .map_err(|e| format!("restore failed: {e}"))?;
            let after = self.binfmt.snapshot().map_err(|e| e.to_string())?;
            if after != self.before {
                return Err("the registry differs from before the trial after the restore".into());
            }
            Ok(())
        }
    }

    impl Drop for RegistryGuard {
        fn drop(&mut self) {
            if !self.restored
                && let Err(e) = self.binfmt.restore(&self.before)
            {
                eprintln!("error: failed to restore the host's binfmt_misc entries: {e}");
            }
        }
    }

    /// Runs `body` between a snapshot of the registry and its restore.
    fn guarded(body: impl FnOnce(&Binfmt) -> Result<(), Failed>) -> Result<(), Failed> {
        let guard = RegistryGuard::take()?;
        let result = body(&guard.binfmt);
        let restored = guard.restore();
        result.and(restored)
    }

    /// One run of the action's step.
    struct Run {
        status: Option<i32>,
        stdout: String,
        stderr: String,
        /// `GITHUB_OUTPUT`, parsed.
        outputs: BTreeMap<String, String>,
        /// `RUNNER_TEMP`, kept for the trial's checks.
        _temp: tempfile::TempDir,
    }

    impl Run {
        fn describe(&self) -> String {
            format!(
                "exit {:?}\nstdout:\n{}\nstderr:\n{}\noutputs: {:?}",
                self.status, self.stdout, self.stderr, self.outputs
            )
        }

        fn expect_success(&self) -> Result<(), Failed> {
            check(self.status == Some(0), self.describe())
        }
    }

    /// Runs `action/run.sh` as the runner runs the step: a clean
    /// environment with `action.yml`'s defaults for the inputs (the image
    /// under test for `image`), `inputs` on top, and `extra` variables.
    fn run_action(
        image: &str,
        inputs: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Result<Run, Failed> {
        let action = action()?;
        let temp = tempfile::tempdir()?;
        let output_file = temp.path().join("github_output");
        std::fs::write(&output_file, "")?;
        let mut command = Command::new("bash");
        command
            .arg(workspace_root().join("action/run.sh"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_ACTION_PATH", workspace_root())
            .env("GITHUB_OUTPUT", &output_file)
            .env("RUNNER_TEMP", temp.path())
            .current_dir(temp.path());
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        for (name, input) in &action.inputs {
            let value = if name == "image" {
                image
            } else {
                &input.default
            };
            command.env(input_variable(name), value);
        }
        for (name, value) in inputs {
            command.env(input_variable(name), value);
        }
        for (name, value) in extra {
            command.env(name, value);
        }
        let started = Instant::now();
        let out = command.output()?;
        eprintln!(
            "    action run {inputs:?}: {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let outputs = std::fs::read_to_string(&output_file)?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Run {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs,
            _temp: temp,
        })
    }

    fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
        if cond {
            Ok(())
        } else {
            Err(what.into().into())
        }
    }

    fn list(binfmt: &Binfmt) -> Result<Vec<Entry>, Failed> {
        Ok(binfmt.list().map_err(|e| e.to_string())?)
    }

    /// Removes the entries of `names` that exist: the trial's starting point.
    fn remove(binfmt: &Binfmt, names: &[&str]) -> Result<(), Failed> {
        for name in names {
            if binfmt.read(name).map_err(|e| e.to_string())?.is_some() {
                binfmt.remove(name).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Registers `qemu-<target>` without flags, from the host's interpreter
    /// path (it need not exist without `F`).
    fn register_plain(binfmt: &Binfmt, target: &str) -> Result<(), Failed> {
        let target = targets::find(target).ok_or("no such target")?;
        let name = target.entry_name();
        remove(binfmt, &[&name])?;
        let line = entry::register_line(
            target,
            &entry::interpreter_path("/usr/bin", target, "-static"),
            Flags::requested(false, false, false),
        );
        Ok(binfmt.register(&name, &line).map_err(|e| e.to_string())?)
    }

    /// The `supported` list the registrar's library computes for the
    /// registry as it is now: what the `platforms` output must say.
    fn supported_now(binfmt: &Binfmt) -> Result<String, Failed> {
        let host = HostFacts::read(None);
        let status = build_status(
            &binfmt.root().to_string_lossy(),
            binfmt.state(),
            &host,
            list(binfmt)?,
            Vec::new(),
        );
        Ok(status.supported.join(","))
    }

    /// The entry `name`, which must exist.
    fn entry(binfmt: &Binfmt, name: &str) -> Result<Entry, Failed> {
        binfmt
            .read(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("`{name}` is not registered").into())
    }

    /// Checks that `name` is enabled, has `flags` (as read back) and the
    /// image's interpreter.
    fn expect_entry(binfmt: &Binfmt, target: &str, flags: &str) -> Result<(), Failed> {
        let name = format!("qemu-{target}");
        let found = entry(binfmt, &name)?;
        let interpreter = format!("/usr/bin/{}-static", found_interpreter(target)?);
        check(
            found.enabled && found.flags.to_string() == flags && found.interpreter == interpreter,
            format!("`{name}`: expected enabled, flags `{flags}`, `{interpreter}`; got {found:?}"),
        )
    }

    fn found_interpreter(target: &str) -> Result<&'static str, Failed> {
        Ok(targets::find(target).ok_or("no such target")?.interpreter)
    }

    /// Entries other than `names`, by name.
    fn others(entries: Vec<Entry>, names: &[&str]) -> BTreeMap<String, Entry> {
        entries
            .into_iter()
            .filter(|e| !names.contains(&e.name.as_str()))
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    fn registers_the_platforms_asked_for(image: &str) -> Result<(), Failed> {
        let changed = ["qemu-aarch64", "qemu-riscv64"];
        guarded(|binfmt| {
            remove(binfmt, &changed)?;
            let before = list(binfmt)?;
            let run = run_action(
                image,
                &[
                    ("platforms", "linux/arm64, riscv64"),
                    ("credential", "true"),
                ],
                &[],
            )?;
            run.expect_success()?;
            check(
                run.stdout.contains(&format!(
                    "{image} --targets linux/arm64,riscv64 -p yes -c yes -g no --replace"
                )),
                format!("registrar arguments:\n{}", run.describe()),
            )?;
            // `C` implies `O`; the kernel reads back `OCF`.
            expect_entry(binfmt, "aarch64", "OCF")?;
            expect_entry(binfmt, "riscv64", "OCF")?;
            check(
                others(list(binfmt)?, &changed) == others(before, &changed),
                "other entries changed",
            )?;
            let platforms = run
                .outputs
                .get("platforms")
                .ok_or("no `platforms` output")?;
            check(
                *platforms == supported_now(binfmt)?,
                format!(
                    "platforms `{platforms}`, expected `{}`",
                    supported_now(binfmt)?
                ),
            )?;
            let listed: BTreeSet<&str> = platforms.split(',').collect();
            check(
                listed.contains("linux/arm64") && listed.contains("linux/riscv64"),
                format!("platforms `{platforms}`"),
            )
        })
    }

    fn preserve_argv0_without_persistent(image: &str) -> Result<(), Failed> {
        guarded(|binfmt| {
            remove(binfmt, &["qemu-aarch64"])?;
            let run = run_action(
                image,
                &[
                    ("platforms", "arm64"),
                    ("persistent", "false"),
                    ("preserve-argv0", "true"),
                ],
                &[],
            )?;
            run.expect_success()?;
            expect_entry(binfmt, "aarch64", "P")
        })
    }

    fn reset_keeps_foreign_entries(image: &str) -> Result<(), Failed> {
        guarded(|binfmt| {
            // Another program's entry (by extension), and a qemu one the
            // reset must remove.
            let foreign = "qus-action-test";
            remove(binfmt, &[foreign])?;
            binfmt
                .register(foreign, ":qus-action-test:E::qusactiontest::/bin/true:")
                .map_err(|e| e.to_string())?;
            register_plain(binfmt, "riscv64")?;
            let foreign_before = entry(binfmt, foreign)?;
            let run = run_action(image, &[("platforms", "arm64"), ("reset", "true")], &[])?;
            run.expect_success()?;
            let qemu: Vec<String> = list(binfmt)?
                .into_iter()
                .map(|e| e.name)
                .filter(|n| n.starts_with("qemu-"))
                .collect();
            check(qemu == ["qemu-aarch64"], format!("qemu entries {qemu:?}"))?;
            expect_entry(binfmt, "aarch64", "F")?;
            check(
                entry(binfmt, foreign)? == foreign_before,
                "the foreign entry changed",
            )?;
            let platforms = run
                .outputs
                .get("platforms")
                .ok_or("no `platforms` output")?;
            check(
                *platforms == supported_now(binfmt)? && !platforms.contains("linux/riscv64"),
                format!("platforms `{platforms}`"),
            )
        })
    }

    fn all_registers_every_foreign_target(image: &str) -> Result<(), Failed> {
        guarded(|binfmt| {
            let qemu: Vec<String> = list(binfmt)?
                .into_iter()
                .map(|e| e.name)
                .filter(|n| n.starts_with("qemu-"))
                .collect();
            remove(binfmt, &qemu.iter().map(String::as_str).collect::<Vec<_>>())?;
            let before = list(binfmt)?;
            // Every input at action.yml's default.
            let run = run_action(image, &[], &[])?;
            run.expect_success()?;
            let family = targets::host_family(&HostFacts::read(None).machine);
            let expected: BTreeSet<String> = targets::foreign_to(&family)
                .map(|t| t.entry_name())
                .collect();
            let now = list(binfmt)?;
            let registered: BTreeSet<String> = now
                .iter()
                .map(|e| e.name.clone())
                .filter(|n| n.starts_with("qemu-"))
                .collect();
            check(
                registered == expected,
                format!(
                    "registered differs from the foreign targets: {:?}",
                    registered
                        .symmetric_difference(&expected)
                        .collect::<Vec<_>>()
                ),
            )?;
            check(
                now.iter()
                    .filter(|e| e.name.starts_with("qemu-"))
                    .all(|e| e.flags.to_string() == "F"),
                "not every entry has `F` alone",
            )?;
            let names: Vec<&str> = expected.iter().map(String::as_str).collect();
            check(
                others(now, &names) == others(before, &names),
                "other entries changed",
            )
        })
    }

    fn failures_fail_the_step(image: &str) -> Result<(), Failed> {
        guarded(|binfmt| {
            let before = binfmt.snapshot().map_err(|e| e.to_string())?;
            let cases: [(Inputs, i32, &str); 4] = [
                (
                    &[("persistent", "maybe")],
                    2,
                    "::error title=qus::input `persistent` must be `true` or `false`, got `maybe`",
                ),
                (
                    &[("platforms", "linux/nope")],
                    1,
                    "::error title=qus::the registrar image",
                ),
                (
                    &[("image", "qus-test/absent:none")],
                    1,
                    "::error title=qus::the registrar image `qus-test/absent:none` failed",
                ),
                (
                    // The host's own platform: refused, not registered.
                    &[("platforms", host_platform())],
                    1,
                    "::error title=qus::the registrar image",
                ),
            ];
            for (inputs, status, message) in cases {
                let run = run_action(image, inputs, &[])?;
                check(
                    run.status == Some(status) && run.stdout.contains(message),
                    format!(
                        "{inputs:?}: expected exit {status} and {message:?}:\n{}",
                        run.describe()
                    ),
                )?;
                check(
                    run.outputs.is_empty(),
                    format!("{inputs:?} wrote outputs: {:?}", run.outputs),
                )?;
                check(
                    binfmt.snapshot().map_err(|e| e.to_string())? == before,
                    format!("{inputs:?} changed the registry"),
                )?;
            }
            Ok(())
        })
    }

    /// The host's own OCI platform (`linux/amd64` on x86_64).
    fn host_platform() -> &'static str {
        let machine = HostFacts::read(None).machine;
        targets::find(&machine)
            .and_then(|t| targets::platforms(t).first().copied())
            .unwrap_or("linux/amd64")
    }

    fn run_suite_runs_the_harness(image: &str) -> Result<(), Failed> {
        let harness = env!("CARGO_BIN_EXE_qus-harness");
        let repo = repo();
        let extra = [("QUS_HARNESS", harness), ("QUS_REPO", repo.as_str())];
        guarded(|binfmt| {
            remove(binfmt, &["qemu-aarch64"])?;
            let run = run_action(
                image,
                &[
                    ("platforms", "arm64"),
                    ("run-suite", "true"),
                    ("suite-tags", "status"),
                ],
                &extra,
            )?;
            run.expect_success()?;
            let junit = PathBuf::from(run.outputs.get("junit").ok_or("no `junit` output")?);
            let report = std::fs::read_to_string(&junit)
                .map_err(|e| format!("`{}`: {e}", junit.display()))?;
            check(
                report.contains("<testcase") && report.contains("status-json"),
                format!("JUnit report:\n{report}"),
            )?;
            // The suite put back what the action registered.
            expect_entry(binfmt, "aarch64", "F")?;
            // A selection that matches nothing fails the step.
            let run = run_action(
                image,
                &[
                    ("platforms", "arm64"),
                    ("run-suite", "true"),
                    ("suite-tags", "no-such-tag"),
                ],
                &extra,
            )?;
            check(
                run.status == Some(1)
                    && run
                        .stdout
                        .contains("::error title=qus::the conformance suite failed"),
                run.describe(),
            )
        })
    }
}
