//! The `--debian` format: one update-binfmts(8) template per target.
//!
//! The file is what QEMU's `qemu_generate_debian` writes, line for line:
//!
//! ```text
//! package qemu-<cpu>
//! interpreter <path>
//! magic <magic>
//! mask <mask>
//! credentials yes|no
//! preserve yes|no
//! fix_binary yes|no
//! ```
//!
//! Magic and mask keep the table's `\xHH` spelling (update-binfmts decodes
//! it). There is no `offset` line: update-binfmts defaults it to 0, and the
//! script writes none. Debian's own packages differ on purpose (`package
//! qemu-user-static`, an `offset 0` line, another order); see
//! `tests/export.rs`.

use std::io::{self, Write};

use super::ExportOptions;
use crate::targets::Target;

/// Writes `target`'s update-binfmts template to `w`.
pub fn render(w: &mut impl Write, target: &Target, opts: &ExportOptions) -> io::Result<()> {
    writeln!(w, "package {}", target.entry_name())?;
    writeln!(w, "interpreter {}", opts.interpreter(target))?;
    writeln!(w, "magic {}", target.magic)?;
    writeln!(w, "mask {}", target.mask)?;
    writeln!(w, "credentials {}", yes_no(opts.credential))?;
    writeln!(w, "preserve {}", yes_no(opts.preserve_argv0))?;
    writeln!(w, "fix_binary {}", yes_no(opts.persistent))
}

/// The file name QEMU's script uses: `qemu-<cpu>`, no extension.
pub fn file_name(target: &Target) -> String {
    target.entry_name()
}

/// The script's spelling of a boolean option.
fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
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
    fn writes_the_template_lines_in_script_order() {
        let opts = ExportOptions {
            qemu_path: "/usr/bin".into(),
            suffix: "-static".into(),
            credential: false,
            persistent: true,
            preserve_argv0: false,
        };
        // Magic and mask copied from QEMU's script (arm_magic, arm_mask).
        assert_eq!(
            render_to_string("arm", &opts),
            "package qemu-arm\n\
             interpreter /usr/bin/qemu-arm-static\n\
             magic \\x7fELF\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x28\\x00\n\
             mask \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff\n\
             credentials no\n\
             preserve no\n\
             fix_binary yes\n"
        );
    }

    #[test]
    fn each_option_drives_its_own_line() {
        let base = ExportOptions {
            qemu_path: "/usr/bin".into(),
            suffix: String::new(),
            credential: false,
            persistent: false,
            preserve_argv0: false,
        };
        let tail = |o: &ExportOptions| {
            let text = render_to_string("i486", o);
            text.lines().skip(4).collect::<Vec<_>>().join(",")
        };
        assert_eq!(tail(&base), "credentials no,preserve no,fix_binary no");
        let c = ExportOptions {
            credential: true,
            ..base.clone()
        };
        assert_eq!(tail(&c), "credentials yes,preserve no,fix_binary no");
        let p = ExportOptions {
            preserve_argv0: true,
            ..base.clone()
        };
        assert_eq!(tail(&p), "credentials no,preserve yes,fix_binary no");
        let f = ExportOptions {
            persistent: true,
            ..base.clone()
        };
        assert_eq!(tail(&f), "credentials no,preserve no,fix_binary yes");
        assert!(render_to_string("i486", &base).contains("\ninterpreter /usr/bin/qemu-i386\n"));
    }

    #[test]
    fn file_name_is_the_entry_name() {
        assert_eq!(file_name(targets::find("x86_64").unwrap()), "qemu-x86_64");
    }
}
