//! OCI platforms this host runs, computed the way buildkit computes them.
//!
//! docker/setup-qemu-action sets its `platforms` output, and docker buildx
//! shows, the `supported` list of tonistiigi/binfmt, which is buildkit's
//! `archutil.SupportedPlatforms` (moby/buildkit `util/archutil/detect.go`):
//! the native platform first, then, in a fixed order, every candidate
//! architecture whose tiny static test binary exits 0 when executed. So the
//! list says what the kernel really runs (natively or through any
//! registered handler), not what the registry claims.
//!
//! [`supported`] does the same with the embedded probes of `verify.rs`
//! (run by the caller's [`ProbeRunner`]); [`Native`] is the platform this
//! registrar was built for, with the x86-64 micro-architecture level
//! buildkit reads with CPUID (`tonistiigi/go-archvariant`). This module
//! never writes the registry.

use crate::verify::ProbeRunner;

/// buildkit's candidates in its order (`detect.go`): OCI architecture and
/// the QEMU target whose probe stands for its test binary. `amd64` comes
/// first and `arm` last, as there.
pub const CANDIDATES: &[(&str, &str)] = &[
    ("amd64", "x86_64"),
    ("arm64", "aarch64"),
    ("riscv64", "riscv64"),
    ("ppc64", "ppc64"),
    ("ppc64le", "ppc64le"),
    ("s390x", "s390x"),
    ("386", "i386"),
    ("mips64le", "mips64el"),
    ("mips64", "mips64"),
    ("loong64", "loongarch64"),
    ("arm", "arm"),
];

/// The platform this registrar runs natively, as buildkit's
/// `platforms.Normalize(platforms.DefaultSpec())` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Native {
    /// OCI architecture (`amd64`, `arm64`, `arm`...).
    pub arch: &'static str,
    /// OCI variant of the native platform itself (`v7` for 32-bit ARM).
    pub variant: Option<&'static str>,
    /// On amd64: the x86-64 micro-architecture level of this CPU (1 to 4),
    /// which adds `linux/amd64/v2`... as buildkit does.
    pub amd64_level: Option<u8>,
}

impl Native {
    /// The platform of this build, on this CPU.
    pub fn detect() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            "mips64" => ("mips64", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Self {
            arch,
            variant,
            amd64_level: amd64_level(),
        }
    }

    /// `linux/<arch>[/<variant>]`.
    pub fn platform(&self) -> String {
        match self.variant {
            Some(v) => format!("linux/{}/{v}", self.arch),
            None => format!("linux/{}", self.arch),
        }
    }
}

/// The x86-64 micro-architecture level of this CPU, with the features
/// `tonistiigi/go-archvariant` checks (`amd64variant.go`); `None` off
/// x86-64. `is_x86_feature_detected!` also checks that the kernel saves the
/// AVX and AVX-512 registers, as go-archvariant does with XGETBV.
#[cfg(target_arch = "x86_64")]
pub fn amd64_level() -> Option<u8> {
    use std::arch::is_x86_feature_detected as has;
    // LAHF/SAHF in 64-bit mode (CPUID 0x8000_0001, ECX bit 0) has no name
    // in `is_x86_feature_detected!`.
    let lahf = std::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0001
        && std::arch::x86_64::__cpuid(0x8000_0001).ecx & 1 == 1;
    let v2 = lahf
        && has!("sse3")
        && has!("ssse3")
        && has!("cmpxchg16b")
        && has!("sse4.1")
        && has!("sse4.2")
        && has!("popcnt");
    let v3 = v2
        && has!("fma")
        && has!("movbe")
        && has!("xsave")
        && has!("avx")
        && has!("f16c")
        && has!("bmi1")
        && has!("avx2")
        && has!("bmi2")
        && has!("lzcnt");
    let v4 = v3
        && has!("avx512f")
        && has!("avx512dq")
        && has!("avx512cd")
        && has!("avx512bw")
        && has!("avx512vl");
    Some(match (v2, v3, v4) {
        (_, _, true) => 4,
        (_, true, _) => 3,
        (true, _, _) => 2,
        _ => 1,
    })
}

/// Off x86-64 there is no level to read.
#[cfg(not(target_arch = "x86_64"))]
pub fn amd64_level() -> Option<u8> {
    None
}

/// `linux/amd64/v2`... for a CPU of `level`: buildkit's `amd64vector`
/// (every level from 2 up to this one, sorted).
fn amd64_variants(level: u8) -> impl Iterator<Item = String> {
    (2..=level.min(4)).map(|v| format!("linux/amd64/v{v}"))
}

/// Whether a target's probe ran: it exited 0, which is all buildkit asks of
/// its test binaries (an i386 binary run natively by an x86-64 kernel
/// reports `x86_64`, not what QEMU would print).
pub fn probe_runs(run: &ProbeRunner<'_>, target: &str) -> bool {
    run(target).is_ok_and(|out| out.code == Some(0))
}

/// The `supported` list: `native` first, then every candidate whose probe
/// `runs`, in buildkit's order and with its names. Without a CPU level on a
/// non-amd64 host, amd64 gets no variants (buildkit reads them from its
/// test binary's exit code; the probes only print `uname -m`).
pub fn supported(native: &Native, runs: &mut dyn FnMut(&str) -> bool) -> Vec<String> {
    let mut list = vec![native.platform()];
    let mut push = |p: String| {
        if !list.contains(&p) {
            list.push(p);
        }
    };
    for &(arch, target) in CANDIDATES {
        match arch {
            "amd64" if native.arch == "amd64" => {
                amd64_variants(native.amd64_level.unwrap_or(1)).for_each(&mut push);
            }
            "arm" if native.arch == "arm" => {
                // detect.go adds v6 to a native ARM without a variant only.
                if native.variant.is_none() {
                    push("linux/arm/v6".into());
                }
            }
            "arm" => {
                if runs(target) {
                    push("linux/arm/v7".into());
                    push("linux/arm/v6".into());
                }
            }
            _ if arch == native.arch => {}
            _ => {
                if runs(target) {
                    push(format!("linux/{arch}"));
                }
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets;
    use crate::verify;

    fn amd64(level: u8) -> Native {
        Native {
            arch: "amd64",
            variant: None,
            amd64_level: Some(level),
        }
    }

    #[test]
    fn every_candidate_has_a_target_with_an_embedded_probe() {
        for (arch, target) in CANDIDATES {
            let t = targets::find(target).unwrap_or_else(|| panic!("{target}"));
            assert!(verify::probe(t.name).is_some(), "{arch}: no probe");
            // The target answers to buildkit's name too (tonistiigi's
            // `--install` takes it).
            assert_eq!(targets::find(arch).map(|t| t.name), Some(t.name), "{arch}");
        }
    }

    #[test]
    fn the_order_and_names_are_buildkits() {
        // Everything runs: detect.go's full list on a v3 amd64 host.
        let all = supported(&amd64(3), &mut |_| true);
        assert_eq!(
            all,
            [
                "linux/amd64",
                "linux/amd64/v2",
                "linux/amd64/v3",
                "linux/arm64",
                "linux/riscv64",
                "linux/ppc64",
                "linux/ppc64le",
                "linux/s390x",
                "linux/386",
                "linux/mips64le",
                "linux/mips64",
                "linux/loong64",
                "linux/arm/v7",
                "linux/arm/v6",
            ]
        );
        // Nothing runs: the native platform and its levels only.
        assert_eq!(supported(&amd64(1), &mut |_| false), ["linux/amd64"]);
        assert_eq!(
            supported(&amd64(4), &mut |_| false),
            [
                "linux/amd64",
                "linux/amd64/v2",
                "linux/amd64/v3",
                "linux/amd64/v4"
            ]
        );
    }

    #[test]
    fn only_what_runs_is_listed_and_the_native_probe_is_not_run() {
        let mut asked = Vec::new();
        let list = supported(&amd64(2), &mut |t| {
            asked.push(t.to_owned());
            t == "aarch64" || t == "i386"
        });
        assert_eq!(
            list,
            ["linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/386"]
        );
        assert!(!asked.contains(&"x86_64".to_owned()), "{asked:?}");
        // An arm64 host: its own platform first, amd64 from the probe.
        let arm64 = Native {
            arch: "arm64",
            variant: None,
            amd64_level: None,
        };
        let list = supported(&arm64, &mut |t| t == "x86_64" || t == "arm");
        assert_eq!(
            list,
            ["linux/arm64", "linux/amd64", "linux/arm/v7", "linux/arm/v6"]
        );
    }

    #[test]
    fn this_host_is_detected() {
        let n = Native::detect();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(n.platform(), "linux/amd64");
            assert!(matches!(n.amd64_level, Some(1..=4)));
        }
    }
}
