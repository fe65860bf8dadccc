//! Capability sets: the `CapBnd` line of `/proc/<pid>/status` decoded to
//! names (`CAP_SYS_RESOURCE`). Shared by the engines (which capabilities a
//! privileged container cannot get here) and `doctor`.

/// Capability names by number (`include/uapi/linux/capability.h`).
// Each entry carries its `CAP_` prefix, as `--drop-caps` and `doctor` spell them.
pub(crate) const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `CAP_SYS_ADMIN`: mounting binfmt_misc and writing `register` need it.
pub(crate) const CAP_SYS_ADMIN: &str = "CAP_SYS_ADMIN";

/// The `CapBnd` mask of a `/proc/<pid>/status` text.
pub(crate) fn bounding_set(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The name of capability `bit` (`cap_41` for one newer than this table).
pub(crate) fn name(bit: u32) -> String {
    usize::try_from(bit)
        .ok()
        .and_then(|i| CAPABILITY_NAMES.get(i))
        .map_or_else(|| format!("cap_{bit}"), |n| (*n).to_owned())
}

/// Names of the capabilities `0..=last_cap` missing from `mask`, by number.
/// Without `last_cap`, the kernel's highest is taken as this table's.
pub(crate) fn missing(mask: u64, last_cap: Option<u32>) -> Vec<String> {
    let last = last_cap
        .unwrap_or(CAPABILITY_NAMES.len() as u32 - 1)
        .min(63);
    (0..=last)
        .filter(|bit| mask & (1u64 << bit) == 0)
        .map(name)
        .collect()
}

/// The capabilities missing from this process's bounding set, as
/// `docker --cap-drop` names them (without `CAP_`); empty when
/// `/proc/self/status` cannot be read.
pub fn missing_here() -> Vec<String> {
    let Some(mask) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(bounding_set)
    else {
        return Vec::new();
    };
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    missing(mask, last_cap)
        .into_iter()
        .map(|n| n.strip_prefix("CAP_").map_or(n.clone(), str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_vm_bounding_set_lacks_only_sys_resource() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n";
        let mask = bounding_set(status).unwrap();
        assert_eq!(missing(mask, Some(40)), ["CAP_SYS_RESOURCE"]);
    }

    #[test]
    fn docker_default_set_lacks_sys_admin() {
        // `docker run` without flags: the 14 default capabilities.
        let missing = missing(0x0000_0000_a804_25fb, Some(40));
        assert!(missing.iter().any(|c| c == CAP_SYS_ADMIN));
        assert!(!missing.iter().any(|c| c == "CAP_CHOWN"));
    }

    #[test]
    fn bits_beyond_the_table_are_numbered() {
        assert_eq!(name(41), "cap_41");
        assert_eq!(missing(u64::MAX >> 22, Some(42)), ["cap_42"]);
        assert_eq!(bounding_set("CapEff:\t0\n"), None);
    }
}
