//! Planning a run: which instances, in which order, and which are skipped.
//!
//! The main function is [`plan`]: expanded [`Instance`]s + a [`Selection`]
//! (name regex, tag expression, CI partition) + what the host and the engine
//! offer → [`Planned`] instances, sorted by id, each with a skip reason or
//! none. Pure: the facts come in as values. Running is `runner/`.

use regex::Regex;

use crate::host::HostInfo;
use crate::runtime::{RunSpec, Runtime, RuntimeKind, StepCapability};
use crate::scenario::{Action, BinfmtAccess, Instance, TagExpr};

/// Which instances the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Keep instances whose id matches (`--filter`).
    pub filter: Option<Regex>,
    /// Keep instances whose tags satisfy it (`--tags`).
    pub tags: Option<TagExpr>,
    /// Keep the `k`-th of `n` shares, 1-based (`--partition k/n`).
    pub partition: Option<(usize, usize)>,
}

/// Parses `k/n` with `1 <= k <= n`.
pub fn parse_partition(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not of the form k/n"))?;
    let k: usize = k
        .trim()
        .parse()
        .map_err(|_| format!("`{k}` is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("`{s}` needs 1 <= k <= n"));
    }
    Ok((k, n))
}

/// One instance of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The instance.
    pub instance: Instance,
    /// Why it will not run, if it will not.
    pub skip: Option<String>,
}

impl Planned {
    /// Whether it changes the host's binfmt_misc (runs alone): it says so,
    /// or it has a `register` or `reset` step whatever it says.
    pub fn is_disruptive(&self) -> bool {
        self.instance.requires.binfmt == BinfmtAccess::Write || writes_binfmt(&self.instance)
    }
}

/// Keeps the selected instances, sorted by id; partitions deal instances
/// round-robin over the sorted list, so shares differ by at most one.
pub fn select(mut instances: Vec<Instance>, selection: &Selection) -> Vec<Instance> {
    instances.retain(|i| {
        selection
            .filter
            .as_ref()
            .is_none_or(|re| re.is_match(&i.id))
            && selection.tags.as_ref().is_none_or(|t| t.matches(&i.tags))
    });
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some((k, n)) = selection.partition {
        instances = instances
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == k - 1)
            .map(|(_, inst)| inst)
            .collect();
    }
    instances
}

/// Decides, for each instance, whether it can run on `runtime` here.
/// `engine` is the result of the runtime's preflight probe.
pub fn plan<R: Runtime>(
    instances: Vec<Instance>,
    runtime: &R,
    engine: Result<(), String>,
    host: &HostInfo,
) -> Vec<Planned> {
    instances
        .into_iter()
        .map(|instance| {
            let skip = skip_reason(&instance, runtime, engine.as_ref().err(), host);
            Planned { instance, skip }
        })
        .collect()
}

fn kind_name(kind: RuntimeKind) -> &'static str {
    kind.as_str()
}

fn skip_reason<R: Runtime>(
    instance: &Instance,
    runtime: &R,
    engine_error: Option<&String>,
    host: &HostInfo,
) -> Option<String> {
    let kind = kind_name(runtime.kind());
    if !instance.runtimes.iter().any(|r| r.as_str() == kind) {
        let names: Vec<&str> = instance.runtimes.iter().map(|r| r.as_str()).collect();
        return Some(format!(
            "applies to runtimes {}, not `{kind}`",
            names.join(", ")
        ));
    }
    let req = &instance.requires;
    if req.root && !host.is_root {
        return Some("requires root".into());
    }
    if writes_binfmt(instance) && !host.is_root {
        return Some("registers binfmt_misc handlers, which requires root".into());
    }
    if req.binfmt != BinfmtAccess::None {
        if !host.is_root && req.binfmt == BinfmtAccess::Write {
            return Some("requires binfmt write access (root)".into());
        }
        if host.binfmt == qus_registrar::binfmt::MountState::Missing {
            return Some("requires binfmt_misc, which this kernel lacks".into());
        }
    }
    if let Some(min) = &req.kernel {
        match &host.kernel {
            Some(k) if !k.at_least(min) => {
                return Some(format!("requires kernel {min}, this one is {k}"));
            }
            None => {
                return Some(format!(
                    "requires kernel {min}, this one's version is unknown"
                ));
            }
            Some(_) => {}
        }
    }
    let steps = || {
        instance
            .setup
            .iter()
            .chain(&instance.steps)
            .chain(&instance.teardown)
    };
    if !host.is_root && steps().any(|s| matches!(&s.action, Action::Probe(p) if p.setuid)) {
        return Some("a setuid probe needs root (a root-owned copy of the probe)".into());
    }
    let needs_engine = steps().any(|s| needs_engine(&s.action, runtime.kind()));
    if needs_engine && let Some(e) = engine_error {
        return Some(format!("engine `{kind}` unavailable: {e}"));
    }
    for step in steps() {
        if let Err(reason) = capability_check(&step.action, runtime, instance) {
            return Some(format!(
                "step `{}` cannot run on `{kind}`: {reason}",
                step.label()
            ));
        }
    }
    None
}

/// Whether an instance has a step that changes binfmt_misc.
fn writes_binfmt(instance: &Instance) -> bool {
    instance
        .setup
        .iter()
        .chain(&instance.steps)
        .chain(&instance.teardown)
        .any(|s| matches!(s.action, Action::Register(_) | Action::Reset(_)))
}

/// Whether a step needs the container engine, on a runtime of `kind`.
///
/// The host runtime has no engine: it runs registrar images as the host's
/// registrar in a view of the image (`sandbox`), and probes directly.
pub fn needs_engine(action: &Action, kind: RuntimeKind) -> bool {
    let host = kind == RuntimeKind::Host;
    match action {
        Action::Register(r) => !host && matches!(r.registrar, crate::scenario::Registrar::Image(_)),
        Action::Reset(r) => !host && r.image.is_some(),
        Action::Probe(_) => !host,
        Action::Run(_) | Action::Build(_) => true,
        Action::Binfmt(_) | Action::Exec(_) => false,
    }
}

/// Whether the host runtime stands in for registrar image `image` of
/// `instance` (its repository's `latest`, `register` or `<version>`).
fn host_registrar_image(image: &str, instance: &Instance) -> Result<(), String> {
    let repo = crate::sandbox::instance_repo(instance);
    match crate::sandbox::RegistrarImage::parse(image, repo) {
        Some(_) => Ok(()),
        None => Err(format!(
            "the host runtime runs the registrar images of `{repo}` (`:latest`, `:register`, \
             `:<version>`) with the host's `qus-register`, not `{image}`"
        )),
    }
}

fn capability_check<R: Runtime>(
    action: &Action,
    runtime: &R,
    instance: &Instance,
) -> Result<(), String> {
    let host = runtime.kind() == RuntimeKind::Host;
    match action {
        Action::Register(r) => match &r.registrar {
            crate::scenario::Registrar::Image(image) if host => {
                host_registrar_image(image, instance)
            }
            crate::scenario::Registrar::Image(image) => runtime
                .supports_spec(&RunSpec::new(image.clone(), r.args.clone()).with_privileged(true)),
            crate::scenario::Registrar::Host { .. } => Ok(()),
        },
        Action::Reset(r) => match &r.image {
            Some(image) if host => host_registrar_image(image, instance),
            Some(image) => runtime.supports_spec(
                &RunSpec::new(image.clone(), Vec::<String>::new()).with_privileged(true),
            ),
            None => Ok(()),
        },
        Action::Probe(_) if host => Ok(()),
        Action::Probe(probe) => runtime.supports_spec(&crate::runner::probe_spec(probe, None)),
        Action::Run(run) => runtime.supports_spec(&crate::runner::run_spec(run, "", "")),
        Action::Build(build) => {
            runtime.supports(StepCapability::Build)?;
            if build.platform.is_some() {
                runtime.supports(StepCapability::Platform)?;
            }
            Ok(())
        }
        Action::Binfmt(_) | Action::Exec(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_and_reject_nonsense() {
        assert_eq!(parse_partition("1/3"), Ok((1, 3)));
        assert_eq!(parse_partition(" 3 / 3 "), Ok((3, 3)));
        for bad in ["0/3", "4/3", "1/0", "a/b", "13"] {
            assert!(parse_partition(bad).is_err(), "{bad}");
        }
    }
}
