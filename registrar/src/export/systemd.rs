//! The `--systemd` format: one binfmt.d(5) file per target.
//!
//! The file holds the register line, exactly as QEMU's
//! `qemu_generate_systemd` writes it (`qemu_generate_register >
//! "$EXPORTDIR/qemu-$cpu.conf"`): `:qemu-<cpu>:M::<magic>:<mask>:<path>:<flags>`
//! and a newline. systemd-binfmt writes each line to `register` at boot. The
//! line itself comes from [`entry::register_line`]; this module only adds the
//! file name and the newline.

use std::io::{self, Write};

use super::ExportOptions;
use crate::entry;
use crate::targets::Target;

/// Writes `target`'s binfmt.d file (its register line and `\n`) to `w`.
pub fn render(w: &mut impl Write, target: &Target, opts: &ExportOptions) -> io::Result<()> {
    let line = entry::register_line(target, &opts.interpreter(target), opts.flags());
    writeln!(w, "{line}")
}

/// The file name QEMU's script uses: `qemu-<cpu>.conf`.
pub fn file_name(target: &Target) -> String {
    format!("{}.conf", target.entry_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets;

    fn render_to_string(name: &str, opts: &ExportOptions) -> String {
        let mut out = Vec::new();
        render(&mut out, targets::find(name).unwrap(), opts).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_the_register_line_and_a_newline() {
        let opts = ExportOptions {
            qemu_path: "/usr/bin".into(),
            suffix: "-static".into(),
            credential: false,
            persistent: false,
            preserve_argv0: false,
        };
        // Copied from QEMU's script (aarch64_magic, aarch64_mask).
        assert_eq!(
            render_to_string("aarch64", &opts),
            ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:\n"
        );
    }

    #[test]
    fn flags_follow_the_options_in_script_order() {
        let opts = ExportOptions {
            qemu_path: "/usr/local/bin".into(),
            suffix: String::new(),
            credential: true,
            persistent: true,
            preserve_argv0: true,
        };
        let text = render_to_string("i486", &opts);
        assert!(text.ends_with(":/usr/local/bin/qemu-i386:OCFP\n"), "{text}");
        assert_eq!(text.matches('\n').count(), 1);
    }

    #[test]
    fn file_name_is_qemu_cpu_conf() {
        assert_eq!(file_name(targets::find("i486").unwrap()), "qemu-i486.conf");
        assert_eq!(
            file_name(targets::find("arm64").unwrap()),
            "qemu-aarch64.conf"
        );
    }
}
