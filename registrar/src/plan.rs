//! Planning: options + host + current entries → actions. Pure.
//!
//! The main function is [`plan`]: it takes a [`Request`] (what the user
//! asked), the [`HostFacts`], the entries registered now and what is known
//! about each interpreter file ([`InterpreterFacts`], gathered by the caller),
//! and returns a [`Plan`]: the removals and registrations to perform, the
//! targets left alone and why, and the refusals. A plan with a refusal is
//! never applied, not even in part: that is how "no kernel change when
//! refused" is kept. Applying a plan is the caller's job (`cli.rs`), through
//! `binfmt.rs`; this module does no I/O.

use std::collections::BTreeMap;
use std::fmt;

use crate::binfmt::HostFacts;
use crate::entry::{self, Entry, FieldDiff, Flags};
pub use crate::interpreter::InterpreterFacts;
use crate::interpreter::{self, Choice, ChoiceReason};
use crate::targets::{self, Target};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Targets named with `--targets`; `None` means every target outside
    /// the host's family.
    pub targets: Option<Vec<&'static Target>>,
    /// Directory of the interpreters (`--qemu-path`).
    pub qemu_path: String,
    /// Interpreter name suffix (`--qemu-suffix`); `None` chooses per target
    /// between `qemu-<cpu>-static` and a static `qemu-<cpu>`
    /// ([`interpreter::choose`]).
    pub suffix: Option<String>,
    /// Flags to register with.
    pub flags: Flags,
    /// `--ignore-family yes`: also register the host family's other members.
    pub ignore_family: bool,
    /// `--reset`: remove every `qemu-*` entry first.
    pub reset: bool,
    /// `--replace`: replace an entry that differs from the wanted one.
    pub replace: bool,
    /// `--force`: allow what is refused by default (an explicit target of
    /// the host's family, a user namespace that is not the host's).
    pub force: bool,
    /// `--private`: the registry is the private one `--private` mounted in
    /// its own user namespace, so that namespace is expected.
    pub private: bool,
}

/// Why a target is left alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// An identical entry is registered: nothing to do.
    AlreadyRegistered,
    /// The target belongs to the host's family and was not asked for.
    HostFamily,
}

/// Why a target (or the whole request) is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Refusal {
    /// An entry of that name exists and differs; `--replace` replaces it.
    Differs {
        /// The differing fields.
        fields: Vec<FieldDiff>,
    },
    /// `F` with an interpreter that does not exist.
    InterpreterMissing {
        /// The path looked at.
        path: String,
    },
    /// `F` with an interpreter that is not executable.
    InterpreterNotExecutable {
        /// The path looked at.
        path: String,
    },
    /// `F` with a dynamically linked interpreter.
    InterpreterDynamic {
        /// The path looked at.
        path: String,
        /// Its PT_INTERP.
        loader: String,
    },
    /// `F` with an interpreter that is not a readable ELF file.
    InterpreterUnreadable {
        /// The path looked at.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// `F` on a kernel older than 4.8.
    KernelTooOld {
        /// The kernel release.
        release: String,
    },
    /// An explicit target of the host's own family, without `--force`.
    HostFamily {
        /// The host machine.
        machine: String,
        /// Its family.
        family: String,
    },
    /// Not in the initial user namespace, without `--force`.
    PrivateUserNamespace,
    /// The registrar runs under QEMU emulation and the target is of the
    /// real host's family, without `--force`.
    UnderEmulation {
        /// The CPU this registrar was built for (and `uname` reports).
        emulated: String,
        /// The real host's CPU.
        real: String,
        /// The real host's family.
        family: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Differs { fields } => {
                write!(f, "a different entry is registered (")?;
                for (i, d) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{d}")?;
                }
                write!(f, "); use `--replace` or `--reset` to replace it")
            }
            Self::InterpreterMissing { path } => write!(
                f,
                "interpreter `{path}` does not exist; `-p yes` needs the QEMU binaries \
                 next to the registrar (an image without them, such as `register`, \
                 cannot use `-p yes`: use the `latest` image or register without `-p`)"
            ),
            Self::InterpreterNotExecutable { path } => {
                write!(f, "interpreter `{path}` is not executable")
            }
            Self::InterpreterDynamic { path, loader } => write!(
                f,
                "interpreter `{path}` is dynamically linked (loader `{loader}`); with `-p yes` \
                 it would fail inside containers that lack its libraries: use a static build \
                 (`qemu-*-static`)"
            ),
            Self::InterpreterUnreadable { path, detail } => {
                write!(f, "interpreter `{path}` cannot be checked: {detail}")
            }
            Self::KernelTooOld { release } => write!(
                f,
                "kernel `{release}` is older than 4.8 and does not know the `F` flag \
                 (`-p yes`); register without it"
            ),
            Self::HostFamily { machine, family } => write!(
                f,
                "it is in the host's own family (`{machine}` is family `{family}`), whose \
                 binaries run natively; use `--force` to register it anyway"
            ),
            Self::UnderEmulation {
                emulated,
                real,
                family,
            } => write!(
                f,
                "this registrar runs under QEMU user-mode emulation (an `{emulated}` build on \
                 a `{real}` host): the target is of the real host's family `{family}`, and \
                 registering it would hand the host's own binaries to QEMU; run the \
                 registrar built for `{real}`, or use `--force`"
            ),
            Self::PrivateUserNamespace => write!(
                f,
                "this process is not in the host's initial user namespace: a binfmt_misc \
                 mounted here may be a private registry (Linux 6.7+) that the host never \
                 sees; run as real root (a rootful, `--privileged` container) or use `--force`"
            ),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Remove an entry (`--reset`, `--uninstall`, or before a replacement).
    Remove {
        /// Entry name.
        name: String,
        /// The entry as it is now, to put it back if a later step fails.
        #[serde(skip)]
        previous: Option<Entry>,
    },
    /// Register a target.
    Register {
        /// Target name.
        target: &'static str,
        /// The exact record written to `register`.
        line: String,
        /// What the kernel should report afterwards.
        #[serde(skip)]
        expected: Entry,
        /// Whether an existing, different entry was removed for it.
        replaces: bool,
    },
    /// Leave a target alone.
    Skip {
        /// Target name.
        target: &'static str,
        /// Why.
        reason: SkipReason,
    },
    /// Refuse a target; its presence stops the whole plan.
    Refuse {
        /// Target name, or `*` for a refusal of the whole request.
        target: &'static str,
        /// Why.
        #[serde(flatten)]
        refusal: Refusal,
    },
}

/// An ordered list of actions.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Plan {
    /// The actions, in the order they are applied.
    pub actions: Vec<Action>,
    /// The interpreter chosen for each selected target, in table order,
    /// when no `--qemu-suffix` was given (empty otherwise).
    pub choices: Vec<(&'static str, Choice)>,
}

impl Plan {
    /// The refusals; a plan with any is not applied.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, &Refusal)> {
        self.actions.iter().filter_map(|a| match a {
            Action::Refuse { target, refusal } => Some((*target, refusal)),
            _ => None,
        })
    }

    /// Whether the plan may be applied.
    pub fn is_applicable(&self) -> bool {
        self.refusals().next().is_none()
    }

    /// The targets the plan registers or finds registered, in plan order:
    /// what `--verify` checks after it.
    pub fn wanted_targets(&self) -> Vec<&'static str> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Register { target, .. } => Some(*target),
                Action::Skip {
                    target,
                    reason: SkipReason::AlreadyRegistered,
                } => Some(*target),
                _ => None,
            })
            .collect()
    }

    /// Whether applying the plan writes anything.
    pub fn changes_anything(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Remove { .. } | Action::Register { .. }))
    }
}

/// The targets a request covers, in table order: the explicit list, or every
/// target outside the host family (and, with `--ignore-family`, the family's
/// other members, never the host's own architecture).
pub fn selected_targets(request: &Request, host: &HostFacts) -> Vec<(&'static Target, bool)> {
    let family = targets::host_family(&host.machine);
    let native = targets::find(&host.machine).map(|t| t.name);
    match &request.targets {
        Some(list) => list.iter().map(|t| (*t, true)).collect(),
        None => targets::TARGETS
            .iter()
            .filter(|t| t.family != family || (request.ignore_family && Some(t.name) != native))
            .map(|t| (t, false))
            .collect(),
    }
}

/// Plans a registration. `current` is every entry registered now;
/// `interpreter` answers for each interpreter path.
pub fn plan(
    request: &Request,
    host: &HostFacts,
    current: &[Entry],
    interpreter: &dyn Fn(&str) -> InterpreterFacts,
) -> Plan {
    let mut actions = Vec::new();
    if !host.initial_user_namespace && !request.force && !request.private {
        actions.push(Action::Refuse {
            target: "*",
            refusal: Refusal::PrivateUserNamespace,
        });
    }
    if request.flags.fix_binary && host.kernel_older_than(4, 8) {
        actions.push(Action::Refuse {
            target: "*",
            refusal: Refusal::KernelTooOld {
                release: host.kernel_release.clone(),
            },
        });
    }
    let mut existing: BTreeMap<&str, &Entry> = current
        .iter()
        .filter(|e| e.is_owned())
        .map(|e| (e.name.as_str(), e))
        .collect();
    if request.reset {
        for entry in existing.values() {
            actions.push(Action::Remove {
                name: entry.name.clone(),
                previous: Some((*entry).clone()),
            });
        }
        existing.clear();
    }
    let family = targets::host_family(&host.machine);
    let selected = selected_targets(request, host);
    let mut choices = Vec::new();
    for &(target, explicit) in &selected {
        if explicit && target.family == family && !request.force {
            actions.push(Action::Refuse {
                target: target.name,
                refusal: Refusal::HostFamily {
                    machine: host.machine.clone(),
                    family: family.clone(),
                },
            });
            continue;
        }
        if let Some(em) = &host.emulation
            && !request.force
            && target.family == targets::host_family(&em.real)
        {
            actions.push(Action::Refuse {
                target: target.name,
                refusal: Refusal::UnderEmulation {
                    emulated: em.emulated.clone(),
                    real: em.real.clone(),
                    family: targets::host_family(&em.real),
                },
            });
            continue;
        }
        let choice = interpreter::choose(
            &request.qemu_path,
            target,
            request.suffix.as_deref(),
            interpreter,
        );
        let path = choice.path.clone();
        let facts = choice.facts.clone();
        if choice.reason != ChoiceReason::Explicit {
            choices.push((target.name, choice));
        }
        if request.flags.fix_binary
            && let Some(refusal) =
                check_interpreter(&path, facts.unwrap_or_else(|| interpreter(&path)))
        {
            actions.push(Action::Refuse {
                target: target.name,
                refusal,
            });
            continue;
        }
        let expected = Entry::expected(target, &path, request.flags);
        let line = entry::register_line(target, &path, request.flags);
        match existing.get(expected.name.as_str()) {
            Some(now) => {
                let fields = now.diff(&expected);
                if fields.is_empty() {
                    actions.push(Action::Skip {
                        target: target.name,
                        reason: SkipReason::AlreadyRegistered,
                    });
                } else if request.replace {
                    actions.push(Action::Remove {
                        name: expected.name.clone(),
                        previous: Some((*now).clone()),
                    });
                    actions.push(Action::Register {
                        target: target.name,
                        line,
                        expected,
                        replaces: true,
                    });
                } else {
                    actions.push(Action::Refuse {
                        target: target.name,
                        refusal: Refusal::Differs { fields },
                    });
                }
            }
            None => actions.push(Action::Register {
                target: target.name,
                line,
                expected,
                replaces: false,
            }),
        }
    }
    if request.targets.is_none() {
        // Say which targets the host family keeps out, so `--dry-run` and
        // the report show the whole table.
        for t in targets::TARGETS {
            if !selected.iter().any(|(s, _)| s.name == t.name) {
                actions.push(Action::Skip {
                    target: t.name,
                    reason: SkipReason::HostFamily,
                });
            }
        }
    }
    Plan { actions, choices }
}

/// Plans `--uninstall`: remove the named targets' entries, or with `None`
/// every `qemu-*` entry. Entries of other software are never touched.
pub fn plan_uninstall(
    targets: Option<&[&'static Target]>,
    host: &HostFacts,
    force: bool,
    current: &[Entry],
) -> Plan {
    let mut actions = Vec::new();
    if !host.initial_user_namespace && !force {
        actions.push(Action::Refuse {
            target: "*",
            refusal: Refusal::PrivateUserNamespace,
        });
    }
    for entry in current.iter().filter(|e| e.is_owned()) {
        let wanted = match targets {
            None => true,
            Some(list) => list.iter().any(|t| t.entry_name() == entry.name),
        };
        if wanted {
            actions.push(Action::Remove {
                name: entry.name.clone(),
                previous: Some(entry.clone()),
            });
        }
    }
    Plan {
        actions,
        choices: Vec::new(),
    }
}

fn check_interpreter(path: &str, facts: InterpreterFacts) -> Option<Refusal> {
    let path = path.to_owned();
    match facts {
        InterpreterFacts::Missing => Some(Refusal::InterpreterMissing { path }),
        InterpreterFacts::NotExecutable => Some(Refusal::InterpreterNotExecutable { path }),
        InterpreterFacts::Elf {
            interp: Some(loader),
        } => Some(Refusal::InterpreterDynamic { path, loader }),
        InterpreterFacts::Elf { interp: None } => None,
        InterpreterFacts::Unreadable(detail) => {
            Some(Refusal::InterpreterUnreadable { path, detail })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(machine: &str) -> HostFacts {
        HostFacts {
            machine: machine.into(),
            kernel_release: "6.1.0".into(),
            kernel: Some((6, 1)),
            initial_user_namespace: true,
            emulation: None,
        }
    }

    fn request(persistent: bool) -> Request {
        Request {
            targets: None,
            qemu_path: "/usr/bin".into(),
            suffix: Some("-static".into()),
            flags: Flags::requested(false, persistent, false),
            ignore_family: false,
            reset: false,
            replace: false,
            force: false,
            private: false,
        }
    }

    fn static_elf(_: &str) -> InterpreterFacts {
        InterpreterFacts::Elf { interp: None }
    }

    fn registered(p: &Plan) -> Vec<&'static str> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Register { target, .. } => Some(*target),
                _ => None,
            })
            .collect()
    }

    fn aarch64_entry(flags: &str) -> Entry {
        let t = targets::find("aarch64").unwrap();
        Entry::expected(
            t,
            "/usr/bin/qemu-aarch64-static",
            Flags::parse(flags).unwrap(),
        )
    }

    #[test]
    fn x86_64_host_registers_31_targets_and_skips_its_family() {
        let p = plan(&request(true), &host("x86_64"), &[], &static_elf);
        assert!(p.is_applicable());
        let reg = registered(&p);
        assert_eq!(reg.len(), 31);
        for own in ["i386", "i486", "x86_64"] {
            assert!(!reg.contains(&own));
            assert!(p.actions.contains(&Action::Skip {
                target: own,
                reason: SkipReason::HostFamily
            }));
        }
    }

    #[test]
    fn aarch64_host_keeps_arm32_out_unless_ignore_family_but_never_itself() {
        let h = host("aarch64");
        let reg = registered(&plan(&request(false), &h, &[], &static_elf));
        assert!(!reg.contains(&"arm") && !reg.contains(&"aarch64"));
        let mut r = request(false);
        r.ignore_family = true;
        let reg = registered(&plan(&r, &h, &[], &static_elf));
        assert!(
            reg.contains(&"arm"),
            "ignore-family registers arm on aarch64"
        );
        assert!(
            !reg.contains(&"aarch64"),
            "the host's own architecture is never registered"
        );
    }

    #[test]
    fn register_line_is_qemus() {
        let mut r = request(true);
        r.targets = Some(vec![targets::find("aarch64").unwrap()]);
        let p = plan(&r, &host("x86_64"), &[], &static_elf);
        match &p.actions[0] {
            Action::Register { line, .. } => assert_eq!(
                line,
                r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identical_entry_is_a_no_op_and_different_needs_replace() {
        let mut r = request(true);
        r.targets = Some(vec![targets::find("arm64").unwrap()]);
        let same = plan(&r, &host("x86_64"), &[aarch64_entry("F")], &static_elf);
        assert_eq!(
            same.actions,
            [Action::Skip {
                target: "aarch64",
                reason: SkipReason::AlreadyRegistered
            }]
        );
        assert!(!same.changes_anything());

        let differs = plan(&r, &host("x86_64"), &[aarch64_entry("")], &static_elf);
        let refusals: Vec<_> = differs.refusals().collect();
        assert_eq!(refusals.len(), 1);
        let text = refusals[0].1.to_string();
        assert!(text.contains("flags: `` -> `F`"), "{text}");
        assert!(text.contains("--replace"), "{text}");

        r.replace = true;
        let replaced = plan(&r, &host("x86_64"), &[aarch64_entry("")], &static_elf);
        assert!(replaced.is_applicable());
        assert!(
            matches!(&replaced.actions[0], Action::Remove { name, .. } if name == "qemu-aarch64")
        );
        assert!(matches!(
            &replaced.actions[1],
            Action::Register { replaces: true, .. }
        ));
    }

    #[test]
    fn reset_removes_every_qemu_entry_and_nothing_else() {
        let foreign = Entry::parse(
            "python3.11",
            "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic 6f0d0d0a\n",
        )
        .unwrap();
        let stray = Entry {
            name: "qemu-vax".into(),
            ..aarch64_entry("")
        };
        let mut r = request(false);
        r.reset = true;
        let p = plan(
            &r,
            &host("x86_64"),
            &[foreign, aarch64_entry(""), stray],
            &static_elf,
        );
        let removed: Vec<_> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Remove { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(removed, ["qemu-aarch64", "qemu-vax"]);
        // After a reset the identical entry is registered again, not skipped.
        assert!(registered(&p).contains(&"aarch64"));
    }

    #[rstest::rstest]
    #[case(InterpreterFacts::Missing, "does not exist")]
    #[case(InterpreterFacts::NotExecutable, "not executable")]
    #[case(InterpreterFacts::Elf { interp: Some("/lib64/ld-linux-x86-64.so.2".into()) }, "dynamically linked")]
    #[case(InterpreterFacts::Unreadable("not an ELF file".into()), "cannot be checked")]
    fn persistent_refuses_interpreters_that_cannot_work(
        #[case] facts: InterpreterFacts,
        #[case] says: &str,
    ) {
        let p = plan(&request(true), &host("x86_64"), &[], &|_| facts.clone());
        assert!(!p.is_applicable());
        assert_eq!(p.refusals().count(), 31);
        let text = p.refusals().next().unwrap().1.to_string();
        assert!(text.contains(says), "{text}");
        assert!(text.contains("/usr/bin/qemu-"), "names the path: {text}");
        // Without `F` the interpreter is only needed at exec time, inside the
        // container (the integration pattern of the original README).
        let p = plan(&request(false), &host("x86_64"), &[], &|_| facts.clone());
        assert!(p.is_applicable());
    }

    #[test]
    fn without_a_suffix_each_target_gets_the_file_that_is_there() {
        // The new Debian layout for aarch64 only: a static `qemu-aarch64`.
        let facts = |p: &str| match p {
            "/usr/bin/qemu-aarch64" => InterpreterFacts::Elf { interp: None },
            _ => InterpreterFacts::Missing,
        };
        let mut r = request(true);
        r.suffix = None;
        r.targets = Some(vec![
            targets::find("aarch64").unwrap(),
            targets::find("s390x").unwrap(),
        ]);
        let p = plan(&r, &host("x86_64"), &[], &facts);
        let lines: Vec<_> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Register { line, .. } => Some(line.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with(":/usr/bin/qemu-aarch64:F"),
            "{}",
            lines[0]
        );
        // s390x has neither file: refused, naming the `-static` path.
        let refused: Vec<_> = p.refusals().map(|(t, r)| (t, r.to_string())).collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, "s390x");
        assert!(refused[0].1.contains("`/usr/bin/qemu-s390x-static`"));
        let choices: Vec<_> = p
            .choices
            .iter()
            .map(|(t, c)| (*t, c.path.as_str()))
            .collect();
        assert_eq!(
            choices,
            [
                ("aarch64", "/usr/bin/qemu-aarch64"),
                ("s390x", "/usr/bin/qemu-s390x-static")
            ]
        );
        // With an explicit suffix there is no choice to report.
        r.suffix = Some("-static".into());
        assert!(plan(&r, &host("x86_64"), &[], &facts).choices.is_empty());
    }

    #[test]
    fn old_kernels_refuse_persistent_only() {
        let mut h = host("x86_64");
        h.kernel_release = "4.4.0".into();
        h.kernel = Some((4, 4));
        let p = plan(&request(true), &h, &[], &static_elf);
        assert!(
            p.refusals()
                .any(|(t, r)| t == "*" && matches!(r, Refusal::KernelTooOld { .. }))
        );
        assert!(plan(&request(false), &h, &[], &static_elf).is_applicable());
    }

    #[test]
    fn explicit_host_family_target_needs_force() {
        let mut r = request(false);
        r.targets = Some(vec![targets::find("i386").unwrap()]);
        let p = plan(&r, &host("x86_64"), &[], &static_elf);
        let text = p.refusals().next().unwrap().1.to_string();
        assert!(text.contains("host's own family"), "{text}");
        r.force = true;
        assert_eq!(
            registered(&plan(&r, &host("x86_64"), &[], &static_elf)),
            ["i386"]
        );
    }

    #[test]
    fn private_user_namespace_is_refused_unless_forced() {
        let mut h = host("x86_64");
        h.initial_user_namespace = false;
        let p = plan(&request(false), &h, &[], &static_elf);
        assert!(
            p.refusals()
                .any(|(_, r)| *r == Refusal::PrivateUserNamespace)
        );
        let mut r = request(false);
        r.force = true;
        assert!(plan(&r, &h, &[], &static_elf).is_applicable());
        assert!(!plan_uninstall(None, &h, false, &[]).is_applicable());
        // `--private` made this namespace and its registry on purpose; it
        // forces nothing else (the host family stays refused).
        let mut r = request(false);
        r.private = true;
        assert!(plan(&r, &h, &[], &static_elf).is_applicable());
        r.targets = Some(vec![targets::find("i386").unwrap()]);
        assert!(
            plan(&r, &h, &[], &static_elf)
                .refusals()
                .all(|(_, r)| matches!(r, Refusal::HostFamily { .. }))
        );
    }

    #[test]
    fn uninstall_touches_only_named_qemu_entries() {
        let foreign = Entry::parse(
            "jar",
            "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
        )
        .unwrap();
        let arm = Entry {
            name: "qemu-arm".into(),
            ..aarch64_entry("")
        };
        let current = [foreign, aarch64_entry("F"), arm];
        let all = plan_uninstall(None, &host("x86_64"), false, &current);
        assert_eq!(all.actions.len(), 2);
        let one = plan_uninstall(
            Some(&[targets::find("arm64").unwrap()]),
            &host("x86_64"),
            false,
            &current,
        );
        assert!(
            matches!(&one.actions[..], [Action::Remove { name, .. }] if name == "qemu-aarch64")
        );
    }
}
