//! Source positions for scenario values.
//!
//! The main type is [`Sp`], a value paired with the place in the YAML file it came from. It
//! wraps `serde_saphyr::Spanned` so that the raw model can also derive a JSON schema (the
//! schema of `Sp<T>` is the schema of `T`). This module does not render errors; see
//! `error.rs` for that.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};

/// A 1-based line and column (counted in characters) in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
}

/// Where a value sits in the source text: its position plus the byte range of its text.
///
/// The byte range is used to underline the value in error excerpts and to recover the
/// original spelling of plain scalars that YAML reads as numbers (`5.10` stays `5.10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    /// Line and column, or `None` when the parser did not know them.
    pub position: Option<Position>,
    /// Byte offset of the value's text, when known.
    pub byte_offset: Option<usize>,
    /// Byte length of the value's text (0 for collections and empty values).
    pub byte_len: usize,
}

impl Mark {
    /// Converts a serde-saphyr location; line 0 means "unknown".
    pub(crate) fn from_location(location: &serde_saphyr::Location) -> Self {
        let line = usize::try_from(location.line()).unwrap_or(usize::MAX);
        let column = usize::try_from(location.column()).unwrap_or(usize::MAX);
        let span = location.span();
        let position = (line > 0).then_some(Position {
            line,
            column: column.max(1),
        });
        Mark {
            position,
            byte_offset: span
                .byte_offset()
                .and_then(|offset| usize::try_from(offset).ok()),
            byte_len: span
                .byte_len()
                .and_then(|len| usize::try_from(len).ok())
                .unwrap_or(0),
        }
    }

    /// The source text this mark covers, if it is known and in range.
    pub(crate) fn text<'s>(&self, source: &'s str) -> Option<&'s str> {
        let start = self.byte_offset?;
        let end = start.checked_add(self.byte_len)?;
        source.get(start..end)
    }
}

/// A deserialized value together with where it came from.
///
/// `mark` is where the value is used (for an alias, the alias itself); `defined` is where its
/// text is (for an alias, the anchored node). Errors point at `mark`; the original spelling
/// of a scalar is read at `defined`.
#[derive(Debug, Clone)]
pub(crate) struct Sp<T> {
    pub value: T,
    pub mark: Mark,
    pub defined: Mark,
}

impl<T> Sp<T> {
    /// The value's position, if known.
    pub(crate) fn position(&self) -> Option<Position> {
        self.mark.position
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Sp {
            value: spanned.value,
            mark: Mark::from_location(&spanned.referenced),
            defined: Mark::from_location(&spanned.defined),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A string value with its position: every string that may contain `${...}` references.
pub(crate) type Text = Sp<String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        a: Text,
        b: Sp<Vec<Text>>,
    }

    #[test]
    fn marks_point_at_values() {
        let doc: Doc = serde_saphyr::from_str("a: héllo\nb:\n  - x\n").unwrap();
        assert_eq!(doc.a.position(), Some(Position { line: 1, column: 4 }));
        assert_eq!(doc.a.mark.text("a: héllo\n"), Some("héllo"));
        assert_eq!(
            doc.b.value[0].position(),
            Some(Position { line: 3, column: 5 })
        );
    }

    #[test]
    fn mark_text_out_of_range_is_none() {
        let mark = Mark {
            position: None,
            byte_offset: Some(10),
            byte_len: 5,
        };
        assert_eq!(mark.text("short"), None);
    }
}
