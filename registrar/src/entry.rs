//! One binfmt_misc entry: the register line we write and the readback the
//! kernel gives.
//!
//! The main type is [`Entry`], what an entry file under the binfmt_misc mount
//! says (`enabled`, `interpreter …`, `flags: …`, `offset …`, `magic …`,
//! `mask …`). [`register_line`] builds the line QEMU's
//! `qemu-binfmt-conf.sh` would write for a target, byte for byte, and
//! [`Entry::expected`] says what the kernel will report once that line is
//! accepted, so that an existing entry can be compared with a wanted one
//! field by field ([`Entry::diff`]). This module does no I/O: reading and
//! writing the mount is `binfmt.rs`.
//!
//! Kernel reference: `Documentation/admin-guide/binfmt-misc.rst` and
//! `fs/binfmt_misc.c` (`entry_status`, `create_entry`).

use std::fmt::{self, Write as _};

use crate::targets::Target;

/// The flags of an entry. The kernel knows exactly these four.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Flags {
    /// `P`: pass the original argv\[0\] to the interpreter.
    pub preserve_argv0: bool,
    /// `O`: pass the binary as an open file descriptor.
    pub open_binary: bool,
    /// `C`: compute credentials from the binary (setuid works); implies `O`.
    pub credential: bool,
    /// `F`: open the interpreter at registration time ("fix binary").
    pub fix_binary: bool,
}

impl Flags {
    /// The flags QEMU's script sets for its three yes/no options. As in the
    /// kernel, `C` implies `O`, and the script writes both.
    pub fn requested(credential: bool, persistent: bool, preserve_argv0: bool) -> Self {
        Self {
            preserve_argv0,
            open_binary: credential,
            credential,
            fix_binary: persistent,
        }
    }

    /// The letters in the order QEMU's script writes them: `O`, `C`, `F`, `P`
    /// (`qemu_generate_register`: `OC` for credentials, then `F`, then `P`).
    pub fn register_letters(self) -> String {
        let mut s = String::new();
        for (set, letter) in [
            (self.open_binary || self.credential, 'O'),
            (self.credential, 'C'),
            (self.fix_binary, 'F'),
            (self.preserve_argv0, 'P'),
        ] {
            if set {
                s.push(letter);
            }
        }
        s
    }

    /// The letters in the order the kernel prints them on readback: `POCF`.
    pub fn readback_letters(self) -> String {
        let mut s = String::new();
        for (set, letter) in [
            (self.preserve_argv0, 'P'),
            (self.open_binary || self.credential, 'O'),
            (self.credential, 'C'),
            (self.fix_binary, 'F'),
        ] {
            if set {
                s.push(letter);
            }
        }
        s
    }

    /// Parses flag letters in any order. Whitespace is ignored; any letter
    /// other than `P`, `O`, `C`, `F` is an error, as it is for the kernel.
    pub fn parse(letters: &str) -> Result<Self, ParseEntryError> {
        let mut flags = Self::default();
        for c in letters.chars().filter(|c| !c.is_whitespace()) {
            match c {
                'P' => flags.preserve_argv0 = true,
                'O' => flags.open_binary = true,
                'C' => {
                    flags.credential = true;
                    flags.open_binary = true;
                }
                'F' => flags.fix_binary = true,
                other => return Err(ParseEntryError::UnknownFlag(other)),
            }
        }
        Ok(flags)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.readback_letters())
    }
}

/// How an entry recognises its binaries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Matcher {
    /// `M`: bytes at an offset, under an optional mask.
    Magic {
        /// Offset of the magic in the file.
        offset: u32,
        /// Magic bytes, decoded.
        #[serde(serialize_with = "ser_hex")]
        magic: Vec<u8>,
        /// Mask bytes, decoded; `None` when the entry has no mask.
        #[serde(serialize_with = "ser_opt_hex")]
        mask: Option<Vec<u8>>,
    },
    /// `E`: a file name extension (without the dot).
    Extension {
        /// The extension.
        extension: String,
    },
}

/// One binfmt_misc entry, as the kernel reports it or as we want it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The entry's file name under the mount (`qemu-aarch64`).
    pub name: String,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// Absolute path of the interpreter.
    pub interpreter: String,
    /// Flags, normalised (`C` implies `O`).
    #[serde(serialize_with = "ser_flags")]
    pub flags: Flags,
    /// How binaries are recognised.
    #[serde(flatten)]
    pub matcher: Matcher,
}

/// One field that differs between two entries, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldDiff {
    /// Field name as the kernel prints it (`interpreter`, `flags`, ...).
    pub field: &'static str,
    /// The current value.
    pub current: String,
    /// The wanted value.
    pub wanted: String,
}

impl fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}` -> `{}`", self.field, self.current, self.wanted)
    }
}

/// Failure to parse an entry readback or an escaped byte string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseEntryError {
    /// A flag letter the kernel does not know.
    #[error("unknown flag letter `{0}`")]
    UnknownFlag(char),
    /// A line that is none of the known readback lines.
    #[error("unexpected line `{0}`")]
    UnexpectedLine(String),
    /// A required line is absent.
    #[error("missing `{0}` line")]
    Missing(&'static str),
    /// A value that does not parse.
    #[error("invalid {field} `{value}`")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A `\x` escape without two hex digits.
    #[error("invalid escape at byte {0}: `\\x` must be followed by two hex digits")]
    BadEscape(usize),
}

/// Decodes a binfmt_misc magic or mask string: `\xHH` escapes become the
/// byte and every other byte stands for itself, as
/// `string_unescape_inplace(…, UNESCAPE_HEX)` does in the kernel (which
/// leaves `\\` as two bytes).
pub fn unescape(s: &str) -> Result<Vec<u8>, ParseEntryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = bytes
                .get(i + 2..i + 4)
                // `from_str_radix` would take a leading `+`; the kernel does not.
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(ParseEntryError::BadEscape(i))?;
            out.push(hex);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Encodes bytes as `\xHH` escapes, every byte, lowercase: always safe in a
/// register line whatever the delimiter.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        write!(s, "\\x{b:02x}").expect("writing to a String cannot fail");
    }
    s
}

/// The register line QEMU's script writes for `target` with the interpreter
/// at `interpreter` (`:qemu-<cpu>:M::<magic>:<mask>:<interpreter>:<flags>`),
/// without the trailing newline.
pub fn register_line(target: &Target, interpreter: &str, flags: Flags) -> String {
    format!(
        ":qemu-{}:M::{}:{}:{}:{}",
        target.name,
        target.magic,
        target.mask,
        interpreter,
        flags.register_letters()
    )
}

/// The interpreter path QEMU's script uses for `target`: `<dir>/<interpreter><suffix>`
/// (`/usr/bin/qemu-aarch64-static`). A trailing `/` on `dir` is ignored.
pub fn interpreter_path(dir: &str, target: &Target, suffix: &str) -> String {
    format!(
        "{}/{}{}",
        dir.trim_end_matches('/'),
        target.interpreter,
        suffix
    )
}

impl Entry {
    /// What the kernel reports after [`register_line`] for these arguments
    /// is accepted.
    pub fn expected(target: &Target, interpreter: &str, flags: Flags) -> Self {
        Self {
            name: target.entry_name(),
            enabled: true,
            interpreter: interpreter.to_owned(),
            flags: Flags::parse(&flags.register_letters())
                .expect("register_letters only emits POCF letters"),
            matcher: Matcher::Magic {
                offset: 0,
                magic: unescape(target.magic).expect("target table magic is well formed"),
                mask: Some(unescape(target.mask).expect("target table mask is well formed")),
            },
        }
    }

    /// Parses the text of an entry file. `name` is the file's name.
    pub fn parse(name: &str, text: &str) -> Result<Self, ParseEntryError> {
        let mut enabled = None;
        let mut interpreter = None;
        let mut flags = Flags::default();
        let mut offset = None;
        let mut magic = None;
        let mut mask = None;
        let mut extension = None;
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            if line == "enabled" || line == "disabled" {
                enabled = Some(line == "enabled");
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                interpreter = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("flags:") {
                flags = Flags::parse(v)?;
            } else if let Some(v) = line.strip_prefix("offset ") {
                offset = Some(v.trim().parse().map_err(|_| ParseEntryError::Invalid {
                    field: "offset",
                    value: v.to_owned(),
                })?);
            } else if let Some(v) = line.strip_prefix("magic ") {
                magic = Some(from_hex("magic", v)?);
            } else if let Some(v) = line.strip_prefix("mask ") {
                mask = Some(from_hex("mask", v)?);
            } else if let Some(v) = line.strip_prefix("extension .") {
                extension = Some(v.to_owned());
            } else {
                return Err(ParseEntryError::UnexpectedLine(line.to_owned()));
            }
        }
        let matcher = match (extension, magic) {
            (Some(extension), _) => Matcher::Extension { extension },
            (None, Some(magic)) => Matcher::Magic {
                offset: offset.unwrap_or(0),
                magic,
                mask,
            },
            (None, None) => return Err(ParseEntryError::Missing("magic")),
        };
        Ok(Self {
            name: name.to_owned(),
            enabled: enabled.ok_or(ParseEntryError::Missing("enabled"))?,
            interpreter: interpreter.ok_or(ParseEntryError::Missing("interpreter"))?,
            flags,
            matcher,
        })
    }

    /// A register line that recreates this entry (used to restore a
    /// snapshot). Magic and mask are written as `\xHH` escapes.
    pub fn to_register_line(&self) -> String {
        let flags = self.flags.register_letters();
        match &self.matcher {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => format!(
                ":{}:M:{}:{}:{}:{}:{}",
                self.name,
                offset,
                escape(magic),
                mask.as_deref().map(escape).unwrap_or_default(),
                self.interpreter,
                flags
            ),
            Matcher::Extension { extension } => format!(
                ":{}:E::{}::{}:{}",
                self.name, extension, self.interpreter, flags
            ),
        }
    }

    /// Fields in which `self` (current) differs from `wanted`, in readback
    /// order. Empty when the two are identical.
    pub fn diff(&self, wanted: &Entry) -> Vec<FieldDiff> {
        let mut out = Vec::new();
        let mut push = |field, current: String, want: String| {
            if current != want {
                out.push(FieldDiff {
                    field,
                    current,
                    wanted: want,
                });
            }
        };
        push(
            "enabled",
            self.enabled.to_string(),
            wanted.enabled.to_string(),
        );
        push(
            "interpreter",
            self.interpreter.clone(),
            wanted.interpreter.clone(),
        );
        push("flags", self.flags.to_string(), wanted.flags.to_string());
        let parts = |m: &Matcher| match m {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => (
                offset.to_string(),
                hex(magic),
                mask.as_deref().map(hex).unwrap_or_default(),
            ),
            Matcher::Extension { extension } => {
                (String::new(), format!(".{extension}"), String::new())
            }
        };
        let (co, cm, ck) = parts(&self.matcher);
        let (wo, wm, wk) = parts(&wanted.matcher);
        push("offset", co, wo);
        push("magic", cm, wm);
        push("mask", ck, wk);
        out
    }

    /// Whether this entry is one qus may touch: its name starts with `qemu-`.
    pub fn is_owned(&self) -> bool {
        is_owned_name(&self.name)
    }
}

/// Whether an entry name is one qus may touch (`qemu-*`). Entries of other
/// software (`WSLInterop`, `python3.11`, `jar`, `status`, `register`) never are.
pub fn is_owned_name(name: &str) -> bool {
    name.starts_with("qemu-") && name.len() > "qemu-".len() && !name.contains('/')
}

/// Lowercase hex without separators, as the kernel prints magic and mask.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String cannot fail");
    }
    s
}

fn from_hex(field: &'static str, v: &str) -> Result<Vec<u8>, ParseEntryError> {
    let v = v.trim();
    let invalid = || ParseEntryError::Invalid {
        field,
        value: v.to_owned(),
    };
    if !v.len().is_multiple_of(2) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    (0..v.len())
        .step_by(2)
        .map(|i| {
            v.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(invalid)
        })
        .collect()
}

fn ser_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(bytes))
}

fn ser_opt_hex<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&hex(b)),
        None => s.serialize_none(),
    }
}

fn ser_flags<S: serde::Serializer>(flags: &Flags, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&flags.readback_letters())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_follows_the_kernel_not_rust() {
        // The kernel unescapes only `\xHH`: a double backslash stays two bytes.
        assert_eq!(unescape(r"a\\b").unwrap(), br"a\\b");
        assert_eq!(unescape(r"\x7fELF").unwrap(), b"\x7fELF");
        assert_eq!(unescape(r"\x+f"), Err(ParseEntryError::BadEscape(0)));
        assert_eq!(unescape(r"ab\x4"), Err(ParseEntryError::BadEscape(2)));
    }

    #[test]
    fn readback_hex_rejects_signs() {
        let err = Entry::parse(
            "qemu-x",
            "enabled\ninterpreter /x\nflags: \noffset 0\nmagic +f\n",
        );
        assert_eq!(
            err,
            Err(ParseEntryError::Invalid {
                field: "magic",
                value: "+f".into()
            })
        );
    }
}
