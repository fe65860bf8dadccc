//! The runner's scheduling and execution rules, proven on a scripted engine.
//!
//! Every test builds its scenarios from YAML text (`scenario::load_str` and
//! `expand`), plans them against a [`FakeRuntime`] with made-up host facts
//! (root, binfmt_misc mounted, kernel 5.10) and runs them through
//! `runner::run` without a host guard: no engine, no root and no kernel
//! state is involved. The fake sits inside `Scripted` (`common/scripted.rs`),
//! and every event stream is checked by its `check_order`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use qus_harness::host::HostInfo;
use qus_harness::report::{Event, Phase, RunSummary, ScenarioResult, Status, StepResult};
use qus_harness::runner::{RunEnd, RunOptions, TEARDOWN_GRACE};
use qus_harness::runtime::{FakeRuntime, RUN_LABEL, RunOutcome, SCENARIO_LABEL, StepCapability};

#[path = "common/scripted.rs"]
#[expect(dead_code, reason = "the QEMU matrix helpers serve qemu_matrix.rs")]
mod scripted;

use scripted::{RUN_ID, Ran, Scripted, Span, engine, execute, options, planned, root_host};

fn status_of(result: &ScenarioResult, phase: Phase, index: usize) -> &StepResult {
    &result
        .steps
        .iter()
        .find(|(p, i, _, _)| (*p, *i) == (phase, index))
        .unwrap_or_else(|| panic!("no step {phase} {index} in {result:#?}"))
        .3
}

/// The largest number of instances running at once, from the event order.
fn max_concurrency(intervals: &BTreeMap<String, (usize, usize)>) -> usize {
    let mut edges: Vec<(usize, i32)> = intervals
        .values()
        .flat_map(|&(s, f)| [(s, 1), (f, -1)])
        .collect();
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    usize::try_from(max).expect("never negative")
}

const READERS: &str = r#"
apiVersion: qus/v1
name: a-reader
requires: { binfmt: read }
matrix: { n: [1, 2, 3, 4] }
steps:
  - run: { image: img, command: [work, "a${n}"] }
"#;

const WRITERS: &str = r#"
apiVersion: qus/v1
name: b-writer
requires: { root: true, binfmt: write }
matrix: { n: [1, 2] }
steps:
  - run: { image: img, command: [work, "b${n}"] }
  - run: { image: img, command: [work, "b${n}-again"] }
"#;

const PLAIN: &str = r#"
apiVersion: qus/v1
name: c-plain
matrix: { n: [1, 2, 3] }
steps:
  - run: { image: img, command: [work, "c${n}"] }
"#;

/// Containers that overlapped the most, in wall-clock time.
fn containers_at_once(spans: &[Span]) -> usize {
    spans
        .iter()
        .map(|s| {
            spans
                .iter()
                .filter(|o| o.start <= s.start && o.end > s.start)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn instances_run_concurrently_up_to_jobs() {
    // Six instances that share the host: with `jobs` slots, exactly
    // `min(jobs, 6)` run at once, in the event stream and in the engine.
    let six = r#"
apiVersion: qus/v1
name: sharing
requires: { binfmt: read }
matrix: { n: [1, 2, 3, 4, 5, 6] }
steps:
  - run: { image: img, command: [work, "${n}"] }
"#;
    for (jobs, expected) in [(1, 1), (3, 3), (8, 6)] {
        let runtime = Scripted::new(engine(), |_| Duration::from_millis(80));
        let plan = planned(&[six], &runtime, Ok(()), &root_host());
        let ran = execute(runtime.clone(), plan, options(jobs));
        assert_eq!(ran.end.summary.passed, 6, "jobs {jobs}");
        assert_eq!(max_concurrency(&ran.intervals()), expected, "jobs {jobs}");
        assert_eq!(
            containers_at_once(&runtime.spans()),
            expected,
            "jobs {jobs}: containers at once"
        );
    }
}

#[test]
fn binfmt_writers_run_alone() {
    for jobs in [1, 3, 8] {
        let runtime = Scripted::new(engine(), |_| Duration::from_millis(40));
        let plan = planned(&[READERS, WRITERS, PLAIN], &runtime, Ok(()), &root_host());
        assert_eq!(plan.iter().filter(|p| p.is_disruptive()).count(), 2);
        assert!(plan.iter().all(|p| p.skip.is_none()));
        let ran = execute(runtime.clone(), plan, options(jobs));
        assert_eq!(ran.end.summary.passed, 9, "jobs {jobs}");

        // In event order: a writer's [started, finished] overlaps no other
        // instance's, and at most `jobs` instances are open at once.
        let intervals = ran.intervals();
        for (writer, &(ws, wf)) in intervals.iter().filter(|(id, _)| id.starts_with("b-")) {
            for (other, &(s, f)) in &intervals {
                assert!(
                    other == writer || f < ws || s > wf,
                    "jobs {jobs}: `{other}` {s}..{f} overlaps writer `{writer}` {ws}..{wf}"
                );
            }
        }
        assert!(max_concurrency(&intervals) <= jobs, "jobs {jobs}");

        // In time: the engine never ran a writer's container next to
        // another instance's.
        let spans = runtime.spans();
        assert_eq!(spans.len(), 4 + 2 * 2 + 3);
        for w in spans.iter().filter(|s| s.scenario == "b-writer") {
            for o in spans.iter().filter(|s| s.scenario != "b-writer") {
                assert!(
                    o.end <= w.start || o.start >= w.end,
                    "jobs {jobs}: {:?} ran during writer run {:?}",
                    o.command,
                    w.command
                );
            }
        }
        assert!(containers_at_once(&spans) <= jobs, "jobs {jobs}");
    }
}

#[test]
fn instances_start_in_plan_order() {
    // The plan is sorted by id; one job at a time must follow it. With
    // more jobs the writers, queued between the two groups of sharers,
    // hold back the second group but not the first: all four readers run
    // together when there are slots for them. (Instances started in the
    // same instant may report their start in any order.)
    for (jobs, expected) in [(1, 1), (3, 3), (8, 4)] {
        let runtime = Scripted::new(engine(), |_| Duration::from_millis(40));
        let plan = planned(&[PLAIN, WRITERS, READERS], &runtime, Ok(()), &root_host());
        let order: Vec<String> = plan.iter().map(|p| p.instance.id.clone()).collect();
        let ran = execute(runtime.clone(), plan, options(jobs));
        let started: Vec<String> = ran
            .events
            .iter()
            .filter_map(|e| match e {
                Event::ScenarioStarted { instance } => Some(instance.id.clone()),
                _ => None,
            })
            .collect();
        if jobs == 1 {
            assert_eq!(started, order, "one job: start order");
        }
        assert_eq!(max_concurrency(&ran.intervals()), expected, "jobs {jobs}");
    }

    // So `--fail-fast` with one job skips exactly the instances after the
    // first failure: `ff[n=1]` fails (exit 1, expected 2).
    let runtime = Scripted::instant(engine());
    let plan = planned(&[THREE], &runtime, Ok(()), &root_host());
    let ran = execute(
        runtime.clone(),
        plan,
        RunOptions {
            fail_fast: true,
            ..options(1)
        },
    );
    assert_eq!(runtime.commands(), ["exit 1"]);
    assert_eq!(
        ran.skips().keys().collect::<Vec<_>>(),
        ["ff[n=2]", "ff[n=3]"]
    );
}

#[test]
fn teardown_runs_after_a_failing_step_and_after_a_failing_setup() {
    let failing_step = r#"
apiVersion: qus/v1
name: failing-step
setup:
  - run: { image: img, command: [prepare] }
steps:
  - run: { image: img, command: [exit, "1", oops] }
  - run: { image: img, command: [never, reached] }
teardown:
  - run: { image: img, command: [exit, "2", cleanup-one-fails] }
  - run: { image: img, command: [cleanup, two] }
"#;
    let failing_setup = r#"
apiVersion: qus/v1
name: failing-setup
setup:
  - run: { image: img, command: [exit, "1", setup-fails] }
steps:
  - run: { image: img, command: [never, main] }
teardown:
  - run: { image: img, command: [cleanup, after-setup] }
"#;
    let runtime = Scripted::instant(engine());
    let plan = planned(
        &[failing_step, failing_setup],
        &runtime,
        Ok(()),
        &root_host(),
    );
    let ran = execute(runtime.clone(), plan, options(1));

    let commands = |scenario: &str| -> Vec<String> {
        runtime
            .fake
            .runs()
            .iter()
            .filter(|s| s.labels[SCENARIO_LABEL] == scenario)
            .map(|s| s.command.join(" "))
            .collect()
    };
    assert_eq!(
        commands("failing-step"),
        [
            "prepare",
            "exit 1 oops",
            "exit 2 cleanup-one-fails",
            "cleanup two",
        ]
    );
    assert_eq!(
        commands("failing-setup"),
        ["exit 1 setup-fails", "cleanup after-setup"]
    );
    let step = ran.result("failing-step");
    assert_eq!(step.status, Status::Failed);
    let phases: Vec<(Phase, usize, Status)> = step
        .steps
        .iter()
        .map(|(p, i, _, r)| (*p, *i, r.status))
        .collect();
    assert_eq!(
        phases,
        [
            (Phase::Setup, 0, Status::Passed),
            (Phase::Main, 0, Status::Failed),
            (Phase::Teardown, 0, Status::Failed),
            (Phase::Teardown, 1, Status::Passed),
        ]
    );
    // The failure reported is the main step's, not the teardown's.
    assert_eq!(step.failure_message(), Some("exit code: expected 0, got 1"));
    let setup = ran.result("failing-setup");
    assert_eq!(setup.status, Status::Failed);
    assert_eq!(
        setup.steps.last().map(|(p, _, _, r)| (*p, r.status)),
        Some((Phase::Teardown, Status::Passed))
    );
}

#[test]
fn teardown_runs_after_a_step_timeout() {
    let text = r#"
apiVersion: qus/v1
name: step-timeout
steps:
  - run: { image: img, command: [hang], timeout: 100ms }
  - run: { image: img, command: [never, reached] }
teardown:
  - run: { image: img, command: [cleanup] }
"#;
    let runtime = Scripted::hanging(engine(), &["hang"]);
    let plan = planned(&[text], &runtime, Ok(()), &root_host());
    let ran = execute(runtime.clone(), plan, options(2));

    assert_eq!(runtime.commands(), ["hang", "cleanup"]);
    let result = ran.result("step-timeout");
    assert_eq!(result.status, Status::TimedOut);
    let hang = status_of(&result, Phase::Main, 0);
    assert_eq!(hang.status, Status::TimedOut);
    assert_eq!(hang.exit_code, Some(137));
    assert_eq!(hang.message.as_deref(), Some("timed out after 100ms"));
    assert_eq!(
        status_of(&result, Phase::Teardown, 0).status,
        Status::Passed
    );
    assert_eq!(ran.end.summary.timed_out, 1);
    // The engine was given the step's own limit, and the run did not wait
    // for the hanging container.
    assert_eq!(runtime.fake.runs()[0].timeout, Duration::from_millis(100));
    assert!(ran.elapsed < Duration::from_secs(10), "{:?}", ran.elapsed);
}

#[test]
fn teardown_runs_after_an_instance_timeout() {
    let text = r#"
apiVersion: qus/v1
name: instance-timeout
timeout: 300ms
setup:
  - run: { image: img, command: [quick] }
steps:
  - run: { image: img, command: [slow] }
  - run: { image: img, command: [never, reached] }
teardown:
  - run: { image: img, command: [cleanup] }
"#;
    let runtime = Scripted::hanging(engine(), &["slow"]);
    let plan = planned(&[text], &runtime, Ok(()), &root_host());
    let ran = execute(runtime.clone(), plan, options(2));

    assert_eq!(runtime.commands(), ["quick", "slow", "cleanup"]);
    let result = ran.result("instance-timeout");
    assert_eq!(result.status, Status::TimedOut);
    assert_eq!(
        result.failure_message(),
        Some("the scenario timed out after 300ms")
    );
    // The step the limit cut short is closed and reported as timed out
    // (`check_order` has already checked it has its `StepFinished`).
    let cut = status_of(&result, Phase::Main, 0);
    assert_eq!(cut.status, Status::TimedOut);
    assert_eq!(status_of(&result, Phase::Setup, 0).status, Status::Passed);
    assert_eq!(
        status_of(&result, Phase::Teardown, 0).status,
        Status::Passed
    );
    assert_eq!(ran.end.summary.timed_out, 1);
    assert!(ran.elapsed < Duration::from_secs(10), "{:?}", ran.elapsed);
}

#[test]
fn retries_rerun_a_failing_step_and_report_attempts() {
    // `flaky N KEY` fails until its N-th attempt.
    let counts: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let seen = counts.clone();
    let fake = FakeRuntime::new().with_run_handler(move |spec| {
        let key = spec.command.join(" ");
        let mut counts = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key).or_default();
        *n += 1;
        let needed: u32 = spec.command[1].parse().expect("a count");
        Ok(if *n >= needed {
            RunOutcome::exited(0, format!("attempt {n}\n"), "")
        } else {
            RunOutcome::exited(1, "", format!("attempt {n} failed\n"))
        })
    });
    let text = r#"
apiVersion: qus/v1
name: retries
steps:
  - run: { image: img, command: [flaky, "2", second-try], retries: 2 }
  - run: { image: img, command: [flaky, "1", first-try], retries: 3 }
  - run: { image: img, command: [flaky, "9", never], retries: 2 }
"#;
    let no_retries = r#"
apiVersion: qus/v1
name: no-retries
steps:
  - run: { image: img, command: [flaky, "2", once] }
"#;
    let runtime = Scripted::instant(fake);
    let plan = planned(&[text, no_retries], &runtime, Ok(()), &root_host());
    let ran = execute(runtime.clone(), plan, options(1));

    let result = ran.result("retries");
    let second = status_of(&result, Phase::Main, 0);
    assert_eq!((second.status, second.attempts), (Status::Passed, 2));
    assert_eq!(second.stdout, "attempt 2\n", "the last attempt's output");
    let first = status_of(&result, Phase::Main, 1);
    assert_eq!((first.status, first.attempts), (Status::Passed, 1));
    let never = status_of(&result, Phase::Main, 2);
    assert_eq!((never.status, never.attempts), (Status::Failed, 3));
    assert_eq!(never.stderr, "attempt 3 failed\n");
    assert_eq!(result.status, Status::Failed);
    let once = ran.result("no-retries");
    let once = status_of(&once, Phase::Main, 0);
    assert_eq!((once.status, once.attempts), (Status::Failed, 1));

    let counts = counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("flaky 2 second-try".to_owned(), 2),
            ("flaky 1 first-try".to_owned(), 1),
            ("flaky 9 never".to_owned(), 3),
            ("flaky 2 once".to_owned(), 1),
        ])
    );
}

const THREE: &str = r#"
apiVersion: qus/v1
name: ff
matrix: { n: [1, 2, 3] }
steps:
  - run: { image: img, command: [exit, "${n}"], expect: { exit: 2 } }
"#;

#[test]
fn fail_fast_skips_instances_not_yet_started() {
    // Every instance fails; with one job, the first to run stops the rest.
    let all_fail = r#"
apiVersion: qus/v1
name: ff-all
matrix: { n: [1, 2, 3] }
steps:
  - run: { image: img, command: [exit, "1", "${n}"] }
"#;
    let runtime = Scripted::instant(engine());
    let plan = planned(&[all_fail], &runtime, Ok(()), &root_host());
    let ran = execute(
        runtime.clone(),
        plan,
        RunOptions {
            fail_fast: true,
            ..options(1)
        },
    );
    assert_eq!(runtime.fake.runs().len(), 1, "{:?}", runtime.commands());
    let results = ran.results();
    assert_eq!(results.len(), 1);
    assert!(results.values().all(|r| r.status == Status::Failed));
    let skips = ran.skips();
    assert_eq!(skips.len(), 2);
    for (id, reason) in &skips {
        assert!(!results.contains_key(id));
        assert_eq!(reason, "not run: --fail-fast after an earlier failure");
    }
    assert_eq!((ran.end.summary.failed, ran.end.summary.skipped), (1, 2));

    // Without it, everything runs.
    let runtime = Scripted::instant(engine());
    let plan = planned(&[THREE], &runtime, Ok(()), &root_host());
    let ran = execute(runtime.clone(), plan, options(1));
    let mut commands = runtime.commands();
    commands.sort();
    assert_eq!(commands, ["exit 1", "exit 2", "exit 3"]);
    assert!(ran.skips().is_empty());
    assert_eq!((ran.end.summary.passed, ran.end.summary.failed), (1, 2));
}

#[test]
fn engine_errors_are_errored_and_rejected_exits_are_failed() {
    let broken = r#"
apiVersion: qus/v1
name: engine-broken
steps:
  - run: { image: img, command: [broken] }
"#;
    let wrong_exit = r#"
apiVersion: qus/v1
name: wrong-exit
steps:
  - run: { image: img, command: [exit, "3"] }
"#;
    let wrong_stdout = r#"
apiVersion: qus/v1
name: wrong-stdout
steps:
  - run:
      image: img
      command: [exit, "0", "x86_64\n"]
      expect: { stdout: "aarch64\n" }
"#;
    let runtime = Scripted::instant(engine());
    let plan = planned(
        &[broken, wrong_exit, wrong_stdout],
        &runtime,
        Ok(()),
        &root_host(),
    );
    let ran = execute(runtime, plan, options(3));

    let errored = ran.result("engine-broken");
    assert_eq!(errored.status, Status::Errored);
    let step = status_of(&errored, Phase::Main, 0);
    assert_eq!(step.status, Status::Errored);
    assert_eq!(step.exit_code, None);
    assert_eq!(
        step.message.as_deref(),
        Some("failed to create a container from `img` (status 500): the daemon is broken")
    );

    let failed = ran.result("wrong-exit");
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        failed.failure_message(),
        Some("exit code: expected 0, got 3")
    );
    assert_eq!(status_of(&failed, Phase::Main, 0).exit_code, Some(3));

    let diff = ran.result("wrong-stdout");
    assert_eq!(diff.status, Status::Failed);
    assert_eq!(
        diff.failure_message(),
        Some(r#"stdout: expected "aarch64\n", got "x86_64\n""#)
    );
    let summary = &ran.end.summary;
    assert_eq!((summary.errored, summary.failed), (1, 2));
}

#[test]
fn plan_skips_are_reported_and_never_run() {
    let files = [
        "apiVersion: qus/v1\nname: only-podman\nruntimes: [podman]\nsteps:\n  - run: { image: img, command: [x] }\n",
        "apiVersion: qus/v1\nname: needs-root\nrequires: { root: true }\nsteps:\n  - run: { image: img, command: [x] }\n",
        "apiVersion: qus/v1\nname: needs-kernel\nrequires: { kernel: \"99.1\" }\nsteps:\n  - run: { image: img, command: [x] }\n",
        "apiVersion: qus/v1\nname: needs-platform\nsteps:\n  - run: { name: foreign, image: img, platform: linux/arm64, command: [x] }\n",
        "apiVersion: qus/v1\nname: writes-binfmt\nrequires: { binfmt: write }\nsteps:\n  - run: { image: img, command: [x] }\n",
        "apiVersion: qus/v1\nname: builds-for-a-platform\nsteps:\n  - build: { name: cross, containerfile: \"FROM scratch\\n\", platform: linux/arm64 }\n",
        "apiVersion: qus/v1\nname: runs\nsteps:\n  - run: { image: img, command: [x] }\n",
    ];
    let host = HostInfo {
        is_root: false,
        ..root_host()
    };
    let fake = engine().with_unsupported(StepCapability::Platform, "no platform selection here");
    let runtime = Scripted::instant(fake);
    let plan = planned(&files, &runtime, Ok(()), &host);
    let planned_skips: BTreeMap<String, String> = plan
        .iter()
        .filter_map(|p| Some((p.instance.id.clone(), p.skip.clone()?)))
        .collect();
    let ran = execute(runtime.clone(), plan, options(4));

    let expected = BTreeMap::from([
        (
            "builds-for-a-platform".to_owned(),
            "step `cross` cannot run on `docker`: no platform selection here".to_owned(),
        ),
        (
            "needs-kernel".to_owned(),
            "requires kernel 99.1, this one is 5.10".to_owned(),
        ),
        (
            "needs-platform".to_owned(),
            "step `foreign` cannot run on `docker`: no platform selection here".to_owned(),
        ),
        ("needs-root".to_owned(), "requires root".to_owned()),
        (
            "only-podman".to_owned(),
            "applies to runtimes podman, not `docker`".to_owned(),
        ),
        (
            "writes-binfmt".to_owned(),
            "requires binfmt write access (root)".to_owned(),
        ),
    ]);
    assert_eq!(planned_skips, expected);
    assert_eq!(
        ran.skips(),
        expected,
        "each skip is reported with its reason"
    );
    let ran_scenarios: BTreeSet<String> = runtime
        .fake
        .runs()
        .iter()
        .map(|s| s.labels[SCENARIO_LABEL].clone())
        .collect();
    assert_eq!(ran_scenarios, BTreeSet::from(["runs".to_owned()]));
    assert_eq!(ran.results().keys().collect::<Vec<_>>(), ["runs"]);
    assert_eq!((ran.end.summary.skipped, ran.end.summary.passed), (6, 1));
    assert!(runtime.fake.builds().is_empty());
}

#[test]
fn build_steps_pass_their_platform_and_arguments_to_the_engine() {
    let file = "apiVersion: qus/v1\nname: cross\nsteps:\n  \
        - build: { containerfile: \"FROM scratch\\n\", tag: t1, platform: linux/arm64, build_args: { A: b } }\n  \
        - build: { containerfile: \"FROM scratch\\n\", tag: t2 }\n";
    let runtime = Scripted::instant(engine());
    let plan = planned(&[file], &runtime, Ok(()), &root_host());
    let ran = execute(runtime.clone(), plan, options(1));
    assert_eq!(ran.end.summary.passed, 1, "{:#?}", ran.events);
    let builds = runtime.fake.builds();
    let seen: Vec<(&str, Option<&str>, Option<&String>)> = builds
        .iter()
        .map(|b| (b.tag.as_str(), b.platform.as_deref(), b.build_args.get("A")))
        .collect();
    assert_eq!(
        seen,
        [
            ("t1", Some("linux/arm64"), Some(&"b".to_owned())),
            ("t2", None, None)
        ]
    );
    let result = ran.result("cross");
    assert_eq!(
        status_of(&result, Phase::Main, 0).command.as_deref(),
        Some("docker build -t t1 --platform linux/arm64")
    );
}

#[test]
fn an_unusable_engine_skips_only_the_instances_that_need_it() {
    let files = [
        "apiVersion: qus/v1\nname: container\nsteps:\n  - run: { image: img, command: [x] }\n",
        "apiVersion: qus/v1\nname: host-only\nsteps:\n  - exec: { command: [\"true\"] }\n",
    ];
    let runtime = Scripted::instant(engine());
    let plan = planned(
        &files,
        &runtime,
        Err("no socket at `/var/run/docker.sock`".to_owned()),
        &root_host(),
    );
    let ran = execute(runtime.clone(), plan, options(2));
    assert_eq!(
        ran.skips(),
        BTreeMap::from([(
            "container".to_owned(),
            "engine `docker` unavailable: no socket at `/var/run/docker.sock`".to_owned()
        )])
    );
    assert_eq!(ran.result("host-only").status, Status::Passed);
    assert!(runtime.fake.runs().is_empty());
}

#[test]
fn the_summary_and_run_end_count_every_outcome() {
    let files = [
        "apiVersion: qus/v1\nname: s-passes\nsteps:\n  - run: { image: img, command: [ok] }\n",
        "apiVersion: qus/v1\nname: s-fails\nsteps:\n  - run: { image: img, command: [exit, \"1\"] }\n",
        "apiVersion: qus/v1\nname: s-errors\nsteps:\n  - run: { image: img, command: [broken] }\n",
        "apiVersion: qus/v1\nname: s-times-out\nsteps:\n  - run: { image: img, command: [hang], timeout: 50ms }\n",
        "apiVersion: qus/v1\nname: s-skipped\nruntimes: [singularity]\nsteps:\n  - run: { image: img, command: [ok] }\n",
    ];
    let runtime = Scripted::hanging(engine(), &["hang"]);
    let plan = planned(&files, &runtime, Ok(()), &root_host());
    let ran = execute(runtime.clone(), plan, options(2));

    let summary = RunSummary {
        passed: 1,
        failed: 1,
        skipped: 1,
        errored: 1,
        timed_out: 1,
        duration: ran.end.summary.duration,
        host_state_restored: None,
        host_state_checked: None,
    };
    assert_eq!(
        ran.end,
        RunEnd {
            summary,
            interrupted: None,
            restore_error: None,
        }
    );
    assert_eq!(ran.end.summary.exit_code(), 1);
    assert!(ran.end.summary.duration <= ran.elapsed);
    match &ran.events[0] {
        Event::RunStarted { jobs, .. } => assert_eq!(*jobs, 2),
        other => panic!("{other:?}"),
    }
    // Every container carried the run and scenario labels, and the run
    // ended with the label sweep.
    for spec in runtime.fake.runs() {
        assert_eq!(spec.labels[RUN_LABEL], RUN_ID);
        assert!(spec.labels[SCENARIO_LABEL].starts_with("s-"));
    }
    assert_eq!(
        runtime.fake.removals(),
        [(RUN_LABEL.to_owned(), RUN_ID.to_owned())]
    );

    // `--keep` leaves everything in place: no sweep.
    let runtime = Scripted::instant(engine());
    let plan = planned(&files[..1], &runtime, Ok(()), &root_host());
    let ran = execute(
        runtime.clone(),
        plan,
        RunOptions {
            keep: true,
            ..options(1)
        },
    );
    assert_eq!(ran.end.summary.exit_code(), 0);
    assert_eq!(ran.end.summary.passed, 1);
    assert!(runtime.fake.removals().is_empty());
}

/// Runs `text` one instance at a time with a run `timeout` and a teardown
/// `grace`; checks that the run did not wait for the hanging containers.
fn run_stopped_by_timeout(
    text: &str,
    runtime: &Scripted,
    timeout: Duration,
    grace: Duration,
) -> Ran {
    let plan = planned(&[text], runtime, Ok(()), &root_host());
    let ran = execute(
        runtime.clone(),
        plan,
        RunOptions {
            timeout: Some(timeout),
            teardown_grace: grace,
            ..options(1)
        },
    );
    assert!(ran.elapsed < Duration::from_secs(10), "{:?}", ran.elapsed);
    ran
}

#[test]
fn a_stopped_run_still_runs_the_teardown_of_what_it_cut_short() {
    let text = r#"
apiVersion: qus/v1
name: stopped
steps:
  - run: { image: img, command: [slow] }
  - run: { image: img, command: [never, reached] }
teardown:
  - run: { image: img, command: [cleanup] }
"#;
    let runtime = Scripted::hanging(engine(), &["slow"]);
    let ran = run_stopped_by_timeout(text, &runtime, Duration::from_millis(300), TEARDOWN_GRACE);
    assert_eq!(runtime.commands(), ["slow", "cleanup"]);
    let result = ran.result("stopped");
    assert_eq!(result.status, Status::Errored);
    let cut = status_of(&result, Phase::Main, 0);
    assert_eq!(cut.status, Status::Errored);
    assert_eq!(
        cut.message.as_deref(),
        Some("the run timed out after 300ms")
    );
    assert_eq!(
        status_of(&result, Phase::Teardown, 0).status,
        Status::Passed
    );
    assert_eq!(runtime.fake.removals().len(), 1, "the label sweep ran");
}

#[test]
fn teardowns_that_outlast_the_grace_are_abandoned() {
    let text = r#"
apiVersion: qus/v1
name: stuck
steps:
  - run: { image: img, command: [slow] }
teardown:
  - run: { image: img, command: [stuck, cleanup], timeout: 1h }
"#;
    let runtime = Scripted::hanging(engine(), &["slow", "stuck cleanup"]);
    let ran = run_stopped_by_timeout(
        text,
        &runtime,
        Duration::from_millis(200),
        Duration::from_millis(300),
    );
    assert_eq!(runtime.commands(), ["slow", "stuck cleanup"]);
    // The instance never finished: it is counted as errored, and the run
    // still swept its labels.
    assert!(ran.results().is_empty(), "{:?}", ran.results());
    assert_eq!(ran.end.summary.errored, 1);
    assert_eq!(
        ran.end.interrupted.as_deref(),
        Some("the run timed out after 200ms")
    );
    assert_eq!(runtime.fake.removals().len(), 1, "the label sweep ran");
}

#[test]
fn a_run_timeout_stops_the_run_and_skips_what_had_not_started() {
    let text = r#"
apiVersion: qus/v1
name: slow
matrix: { n: [1, 2, 3] }
steps:
  - run: { image: img, command: [work, "${n}"] }
"#;
    let runtime = Scripted::new(engine(), |_| Duration::from_secs(60));
    let ran = run_stopped_by_timeout(text, &runtime, Duration::from_millis(300), TEARDOWN_GRACE);
    assert_eq!(
        ran.end.interrupted.as_deref(),
        Some("the run timed out after 300ms")
    );
    // One instance started and was cut short; the two others never started.
    assert_eq!(runtime.fake.runs().len(), 1);
    let results = ran.results();
    assert_eq!(results.len(), 1, "{results:?}");
    let cut = results.values().next().unwrap();
    assert_eq!(cut.status, Status::Errored);
    assert_eq!(cut.failure_message(), Some("the run timed out after 300ms"));
    assert_eq!(status_of(cut, Phase::Main, 0).status, Status::Errored);
    let skips = ran.skips();
    assert_eq!(skips.len(), 2);
    assert!(
        skips
            .values()
            .all(|r| r == "not run: the run timed out after 300ms"),
        "{skips:?}"
    );
    // The instance cut short counts as errored; every instance is counted.
    let s = &ran.end.summary;
    assert_eq!((s.passed, s.errored, s.skipped), (0, 1, 2));
    assert_eq!(
        runtime.fake.removals().len(),
        1,
        "the label sweep still ran"
    );
}
