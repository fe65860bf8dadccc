//! Assertions: an outcome against an expectation, as a readable message.
//!
//! Each function returns `None` when the expectation holds, or the message a
//! reader needs (`stdout: expected "aarch64\n", got "x86_64\n"`). Pure.

use qus_registrar::entry::{Entry, Matcher as EntryMatcher, hex};

use crate::runtime::{BuildOutcome, RunOutcome};
use crate::scenario::{BinfmtCheck, BuildExpect, Expect, Matcher};

/// Checks a process outcome (container or host command).
pub fn process(expect: &Expect, outcome: &RunOutcome) -> Option<String> {
    let mut problems = Vec::new();
    if outcome.timed_out {
        problems.push("timed out".to_owned());
    }
    if !expect.exit.matches(outcome.exit_code) {
        problems.push(format!(
            "exit code: expected {}, got {}",
            expect.exit, outcome.exit_code
        ));
    }
    text(
        &mut problems,
        "stdout",
        expect.stdout.as_ref(),
        &outcome.stdout,
    );
    text(
        &mut problems,
        "stderr",
        expect.stderr.as_ref(),
        &outcome.stderr,
    );
    join(problems)
}

/// Checks a build outcome.
pub fn build(expect: &BuildExpect, outcome: &BuildOutcome) -> Option<String> {
    let mut problems = Vec::new();
    if outcome.success != expect.success {
        problems.push(if expect.success {
            "build failed, expected success".to_owned()
        } else {
            "build succeeded, expected failure".to_owned()
        });
    }
    text(
        &mut problems,
        "output",
        expect.output.as_ref(),
        &outcome.output,
    );
    join(problems)
}

/// Checks one binfmt_misc entry (`None`: absent).
pub fn binfmt(check: &BinfmtCheck, entry: Option<&Entry>) -> Option<String> {
    let Some(entry) = entry else {
        return check
            .present
            .then(|| format!("binfmt: entry `{}` is not registered", check.entry));
    };
    if !check.present {
        return Some(format!(
            "binfmt: entry `{}` is registered (interpreter `{}`, flags `{}`), expected absent",
            check.entry, entry.interpreter, entry.flags
        ));
    }
    let mut problems = Vec::new();
    let mut field = |name: &str, want: Option<String>, got: String| {
        if let Some(want) = want
            && want != got
        {
            problems.push(format!(
                "binfmt `{}` {name}: expected {want:?}, got {got:?}",
                check.entry
            ));
        }
    };
    field(
        "enabled",
        check.enabled.map(|e| e.to_string()),
        entry.enabled.to_string(),
    );
    // Flags compare as sets: `F` and `OCF` are what the kernel prints in
    // `POCF` order; a scenario may write them in any order.
    let normalise = |s: &str| {
        qus_registrar::entry::Flags::parse(s)
            .map(|f| f.readback_letters())
            .unwrap_or_else(|_| s.to_owned())
    };
    field(
        "flags",
        check.flags.as_deref().map(normalise),
        entry.flags.readback_letters(),
    );
    field(
        "interpreter",
        check.interpreter.clone(),
        entry.interpreter.clone(),
    );
    let (magic, mask) = match &entry.matcher {
        EntryMatcher::Magic { magic, mask, .. } => {
            (hex(magic), mask.as_deref().map(hex).unwrap_or_default())
        }
        EntryMatcher::Extension { extension } => (format!(".{extension}"), String::new()),
    };
    field(
        "magic",
        check.magic.as_ref().map(|m| m.to_lowercase()),
        magic,
    );
    field("mask", check.mask.as_ref().map(|m| m.to_lowercase()), mask);
    join(problems)
}

fn text(problems: &mut Vec<String>, stream: &str, matcher: Option<&Matcher>, got: &str) {
    let Some(matcher) = matcher else { return };
    if let Some(want) = &matcher.equals
        && want != got
    {
        problems.push(format!("{stream}: expected {want:?}, got {got:?}"));
    }
    // `equals` is reported above with both texts; the rest name their
    // condition and quote the text once.
    let rest = Matcher {
        equals: None,
        ..matcher.clone()
    };
    let mismatches = rest.mismatches(got);
    if !mismatches.is_empty() {
        problems.push(format!("{stream} {} (got {got:?})", mismatches.join(", ")));
    }
}

fn join(problems: Vec<String>) -> Option<String> {
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ExitExpectation;

    fn outcome(code: i64, stdout: &str) -> RunOutcome {
        RunOutcome::exited(code, stdout, "")
    }

    #[test]
    fn equals_shows_both_texts() {
        let expect = Expect {
            stdout: Some(Matcher {
                equals: Some("aarch64\n".into()),
                ..Matcher::default()
            }),
            ..Expect::default()
        };
        assert_eq!(process(&expect, &outcome(0, "aarch64\n")), None);
        assert_eq!(
            process(&expect, &outcome(0, "x86_64\n")).unwrap(),
            r#"stdout: expected "aarch64\n", got "x86_64\n""#
        );
    }

    #[test]
    fn exit_code_and_contains_are_reported_together() {
        let expect = Expect {
            exit: ExitExpectation::NonZero,
            stderr: Some(Matcher {
                contains: vec!["exec format error".into()],
                ..Matcher::default()
            }),
            ..Expect::default()
        };
        let msg = process(&expect, &outcome(0, "")).unwrap();
        assert!(msg.contains("exit code: expected nonzero, got 0"), "{msg}");
        assert!(
            msg.contains(r#"stderr does not contain "exec format error""#),
            "{msg}"
        );
    }

    #[test]
    fn timeouts_always_fail() {
        let mut o = outcome(0, "");
        o.timed_out = true;
        assert_eq!(process(&Expect::default(), &o).unwrap(), "timed out");
    }

    #[test]
    fn build_expectations() {
        let ok = BuildOutcome {
            success: true,
            output: "Successfully built".into(),
            duration: Default::default(),
            timed_out: false,
        };
        let want_fail = BuildExpect {
            success: false,
            output: None,
        };
        assert_eq!(
            build(&want_fail, &ok).unwrap(),
            "build succeeded, expected failure"
        );
    }

    #[test]
    fn binfmt_fields_are_compared_as_the_kernel_prints_them() {
        let t = qus_registrar::targets::find("aarch64").unwrap();
        let entry = Entry::expected(
            t,
            "/usr/bin/qemu-aarch64-static",
            qus_registrar::entry::Flags::parse("CF").unwrap(),
        );
        let check = |flags: &str| BinfmtCheck {
            entry: "qemu-aarch64".into(),
            present: true,
            enabled: Some(true),
            flags: Some(flags.into()),
            interpreter: Some("/usr/bin/qemu-aarch64-static".into()),
            magic: Some("7F454C460201010000000000000000000200B700".into()),
            mask: None,
        };
        assert_eq!(binfmt(&check("FOC"), Some(&entry)), None);
        let msg = binfmt(&check(""), Some(&entry)).unwrap();
        assert_eq!(
            msg,
            r#"binfmt `qemu-aarch64` flags: expected "", got "OCF""#
        );
        let absent = BinfmtCheck {
            present: false,
            ..check("")
        };
        assert!(
            binfmt(&absent, Some(&entry))
                .unwrap()
                .contains("expected absent")
        );
        assert_eq!(binfmt(&absent, None), None);
        assert!(
            binfmt(&check("F"), None)
                .unwrap()
                .contains("not registered")
        );
    }
}
