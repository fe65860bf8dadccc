//! Workload timings: each emulated run of a workload next to its native run.
//!
//! A scenario with `workload: { native: { arch: native } }` names a matrix
//! key and the label of its native value. Every instance of it records the
//! wall time of its `steps` phase ([`ScenarioResult::workload_time`]);
//! [`fill`] pairs each instance with the native instance of the same
//! scenario, the same QEMU and the same values of every other matrix key,
//! and gives it a [`WorkloadResult`]. Slowdowns exist only where both passed:
//! the time of a failed run says nothing about speed. Pure; no I/O.
//!
//! [`ScenarioResult::workload_time`]: super::ScenarioResult::workload_time

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{InstanceResult, Status};

/// The timing of one workload instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadResult {
    /// Wall time of its `steps` phase.
    pub time: Duration,
    /// Wall time of the native run's `steps` phase, when both passed; `None`
    /// for the native run itself.
    pub native_time: Option<Duration>,
    /// Whether this is the native run.
    pub is_native: bool,
}

impl WorkloadResult {
    /// Emulated time over native time (`4.2` for a run 4.2 times slower),
    /// when both passed and the native time is not zero.
    pub fn slowdown(&self) -> Option<f64> {
        let native = self.native_time?.as_secs_f64();
        (native > 0.0).then(|| self.time.as_secs_f64() / native)
    }
}

/// What pairs an instance with its native run: the scenario, the QEMU and
/// the values of every matrix key but the workload's.
type Pairing = (String, Option<String>, Vec<(String, String)>);

/// The pairing of `instance`, and whether it is the native run; `None` when
/// it is not an instance of a workload scenario.
fn pairing(instance: &InstanceResult) -> Option<(Pairing, bool)> {
    let id = &instance.instance;
    let axis = id.workload.as_ref()?;
    let mut is_native = false;
    let others = id
        .matrix
        .iter()
        .filter(|(key, value)| {
            let on_axis = *key == axis.key;
            is_native |= on_axis && *value == axis.native;
            !on_axis
        })
        .cloned()
        .collect();
    Some(((id.scenario.clone(), id.qemu.clone(), others), is_native))
}

/// Gives every timed workload instance its [`WorkloadResult`].
pub(crate) fn fill(instances: &mut [InstanceResult]) {
    let mut natives: BTreeMap<Pairing, Duration> = BTreeMap::new();
    for instance in instances.iter() {
        if let (Some((pairing, true)), Status::Passed, Some(time)) = (
            pairing(instance),
            instance.result.status,
            instance.result.workload_time,
        ) {
            natives.insert(pairing, time);
        }
    }
    for instance in instances.iter_mut() {
        let (Some((pairing, is_native)), Some(time)) =
            (pairing(instance), instance.result.workload_time)
        else {
            continue;
        };
        let native_time = (!is_native && instance.result.status == Status::Passed)
            .then(|| natives.get(&pairing).copied())
            .flatten();
        instance.workload = Some(WorkloadResult {
            time,
            native_time,
            is_native,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{InstanceId, ScenarioResult, WorkloadAxis};

    fn timed(
        scenario: &str,
        matrix: &[(&str, &str)],
        qemu: &str,
        secs: u64,
        status: Status,
    ) -> InstanceResult {
        let id = InstanceId::new(
            scenario,
            matrix
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            vec![],
            "w.yaml",
        )
        .with_qemu(qemu)
        .with_workload(WorkloadAxis {
            key: "arch".into(),
            native: "native".into(),
        });
        let mut result = ScenarioResult::new(status, Duration::from_secs(secs), vec![], None);
        result.workload_time = Some(Duration::from_secs(secs));
        InstanceResult {
            instance: id,
            result,
            skip_reason: None,
            workload: None,
        }
    }

    #[test]
    fn emulated_runs_are_paired_with_the_native_run_of_their_qemu_and_values() {
        let passed = Status::Passed;
        let mut all = vec![
            timed(
                "gcc",
                &[("arch", "native"), ("opt", "O2")],
                "7.2.0-1",
                2,
                passed,
            ),
            timed(
                "gcc",
                &[("arch", "aarch64"), ("opt", "O2")],
                "7.2.0-1",
                8,
                passed,
            ),
            timed(
                "gcc",
                &[("arch", "native"), ("opt", "O0")],
                "7.2.0-1",
                1,
                passed,
            ),
            timed(
                "gcc",
                &[("arch", "aarch64"), ("opt", "O0")],
                "7.2.0-1",
                5,
                passed,
            ),
            // Another QEMU's native run is its own.
            timed(
                "gcc",
                &[("arch", "native"), ("opt", "O2")],
                "10.0.2-1",
                4,
                passed,
            ),
            timed(
                "gcc",
                &[("arch", "s390x"), ("opt", "O2")],
                "10.0.2-1",
                6,
                passed,
            ),
            // A failed run has no slowdown, and a failed native run none to give.
            timed(
                "gcc",
                &[("arch", "s390x"), ("opt", "O0")],
                "7.2.0-1",
                9,
                Status::Failed,
            ),
            timed("node", &[("arch", "native")], "7.2.0-1", 3, Status::Failed),
            timed("node", &[("arch", "aarch64")], "7.2.0-1", 30, passed),
        ];
        fill(&mut all);
        let slowdowns: Vec<Option<f64>> = all
            .iter()
            .map(|i| i.workload.as_ref().unwrap().slowdown())
            .collect();
        assert_eq!(
            slowdowns,
            [
                None,
                Some(4.0),
                None,
                Some(5.0),
                None,
                Some(1.5),
                None,
                None,
                None
            ]
        );
        assert!(all[0].workload.unwrap().is_native);
        assert!(!all[1].workload.unwrap().is_native);
        assert_eq!(
            all[1].workload.unwrap().native_time,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn instances_of_other_scenarios_get_no_workload() {
        let mut plain = timed("gcc", &[("arch", "aarch64")], "7.2.0-1", 1, Status::Passed);
        plain.instance.workload = None;
        let mut untimed = timed("gcc", &[("arch", "aarch64")], "7.2.0-1", 1, Status::Passed);
        untimed.result.workload_time = None;
        let mut all = vec![plain, untimed];
        fill(&mut all);
        assert!(all.iter().all(|i| i.workload.is_none()));
    }
}
