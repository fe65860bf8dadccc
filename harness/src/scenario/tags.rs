//! Tag expressions for `--tags`: `smoke and not slow`, `(register or reset) and persistent`.
//!
//! The main type is [`TagExpr`], parsed by [`parse_tag_expr`]. The grammar, loosest first:
//! `or`, then `and`, then `not`, then a bare tag or a parenthesized expression. Operators
//! are lowercase words; a tag is any other run of letters, digits, `-`, `_`, `.` or `:`.
//! This module only parses and evaluates; choosing scenarios is the planner's job.

use std::fmt;

/// A parsed tag expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagExpr {
    /// Holds when the scenario has this tag.
    Tag(String),
    /// Holds when the inner expression does not.
    Not(Box<TagExpr>),
    /// Holds when both hold.
    And(Box<TagExpr>, Box<TagExpr>),
    /// Holds when either holds.
    Or(Box<TagExpr>, Box<TagExpr>),
}

impl TagExpr {
    /// Whether a scenario with `tags` satisfies the expression.
    pub fn matches<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        match self {
            TagExpr::Tag(tag) => tags.iter().any(|t| t.as_ref() == tag),
            TagExpr::Not(inner) => !inner.matches(tags),
            TagExpr::And(a, b) => a.matches(tags) && b.matches(tags),
            TagExpr::Or(a, b) => a.matches(tags) || b.matches(tags),
        }
    }
}

impl fmt::Display for TagExpr {
    /// Fully parenthesized, so the structure is visible: `(smoke and (not slow))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagExpr::Tag(tag) => f.write_str(tag),
            TagExpr::Not(inner) => write!(f, "(not {inner})"),
            TagExpr::And(a, b) => write!(f, "({a} and {b})"),
            TagExpr::Or(a, b) => write!(f, "({a} or {b})"),
        }
    }
}

/// A tag expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag expression `{expr}` at column {column}: {message}")]
pub struct TagExprError {
    /// The expression as given.
    pub expr: String,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// What was expected and found.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Tag(String),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::And => f.write_str("`and`"),
            Token::Or => f.write_str("`or`"),
            Token::Not => f.write_str("`not`"),
            Token::Tag(t) => write!(f, "tag `{t}`"),
        }
    }
}

/// Parses a tag expression such as `smoke and not slow`.
pub fn parse_tag_expr(s: &str) -> Result<TagExpr, TagExprError> {
    let tokens = tokenize(s)?;
    let mut parser = Parser {
        expr: s,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    match parser.tokens.get(parser.pos) {
        None => Ok(expr),
        Some((token, column)) => Err(parser.error(
            *column,
            format!("expected `and`, `or` or the end, found {token}"),
        )),
    }
}

fn tokenize(s: &str) -> Result<Vec<(Token, usize)>, TagExprError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push((Token::Open, column));
            i += 1;
        } else if c == ')' {
            tokens.push((Token::Close, column));
            i += 1;
        } else if is_tag_char(c) {
            let start = i;
            while i < chars.len() && is_tag_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let token = match word.as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Tag(word),
            };
            tokens.push((token, column));
        } else {
            return Err(TagExprError {
                expr: s.to_owned(),
                column,
                message: format!("unexpected `{c}`; use tags, `and`, `or`, `not` and parentheses"),
            });
        }
    }
    Ok(tokens)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Most nested parentheses or `not`s accepted, so deep input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    expr: &'a str,
    tokens: Vec<(Token, usize)>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, column: usize, message: String) -> TagExprError {
        TagExprError {
            expr: self.expr.to_owned(),
            column,
            message,
        }
    }

    fn end_column(&self) -> usize {
        self.expr.chars().count() + 1
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.tokens.get(self.pos).map(|(t, _)| t) == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<TagExpr, TagExprError> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            let right = self.and()?;
            left = TagExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<TagExpr, TagExprError> {
        let mut left = self.not()?;
        while self.eat(&Token::And) {
            let right = self.not()?;
            left = TagExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<TagExpr, TagExprError> {
        if self.eat(&Token::Not) {
            self.descend()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(TagExpr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn descend(&mut self) -> Result<(), TagExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let column = self
                .tokens
                .get(self.pos)
                .map_or(self.end_column(), |(_, c)| *c);
            return Err(self.error(column, format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<TagExpr, TagExprError> {
        let Some((token, column)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error(
                self.end_column(),
                "expected a tag or `(`, found the end".to_owned(),
            ));
        };
        match token {
            Token::Tag(tag) => {
                self.pos += 1;
                Ok(TagExpr::Tag(tag))
            }
            Token::Open => {
                self.pos += 1;
                self.descend()?;
                let inner = self.or()?;
                self.depth -= 1;
                if self.eat(&Token::Close) {
                    Ok(inner)
                } else {
                    let (found, at) = match self.tokens.get(self.pos) {
                        Some((t, c)) => (t.to_string(), *c),
                        None => ("the end".to_owned(), self.end_column()),
                    };
                    Err(self.error(
                        at,
                        format!("expected `)` to close the `(` at column {column}, found {found}"),
                    ))
                }
            }
            other => Err(self.error(column, format!("expected a tag or `(`, found {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> TagExpr {
        parse_tag_expr(s).unwrap()
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_eq!(
            parse("a or b and not c").to_string(),
            "(a or (b and (not c)))"
        );
        assert_eq!(parse("(a or b) and c").to_string(), "((a or b) and c)");
        assert_eq!(parse("not not a").to_string(), "(not (not a))");
        assert_eq!(parse("a and b and c").to_string(), "((a and b) and c)");
        assert_eq!(parse("  smoke  ").to_string(), "smoke");
    }

    #[test]
    fn matches_tags() {
        let tags = ["register", "smoke"];
        assert!(parse("smoke and not slow").matches(&tags));
        assert!(!parse("smoke and slow").matches(&tags));
        assert!(parse("slow or register").matches(&tags));
        assert!(parse("not (slow or persistent)").matches(&tags));
        assert!(!parse("not smoke").matches(&tags));
        assert!(parse("x-1.2_y:z or smoke").matches(&tags));
        assert!(!parse("smoke").matches::<String>(&[]));
    }

    #[test]
    fn errors_name_the_column() {
        let cases = [
            ("", 1, "expected a tag or `(`, found the end"),
            ("a and", 6, "expected a tag or `(`, found the end"),
            ("a b", 3, "expected `and`, `or` or the end, found tag `b`"),
            (
                "(a or b",
                8,
                "expected `)` to close the `(` at column 1, found the end",
            ),
            ("a )", 3, "expected `and`, `or` or the end, found `)`"),
            ("and a", 1, "expected a tag or `(`, found `and`"),
            (
                "a & b",
                3,
                "unexpected `&`; use tags, `and`, `or`, `not` and parentheses",
            ),
            ("()", 2, "expected a tag or `(`, found `)`"),
        ];
        for (input, column, message) in cases {
            let err = parse_tag_expr(input).unwrap_err();
            assert_eq!(
                (err.column, err.message.as_str()),
                (column, message),
                "{input:?}"
            );
        }
        assert_eq!(
            parse_tag_expr("a b").unwrap_err().to_string(),
            "invalid tag expression `a b` at column 3: expected `and`, `or` or the end, found tag `b`"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_tag_expr(&deep).is_err());
        let nots = format!("{}a", "not ".repeat(10_000));
        assert!(parse_tag_expr(&nots).is_err());
        let ok = format!("{}a{}", "(".repeat(60), ")".repeat(60));
        assert!(parse_tag_expr(&ok).is_ok());
    }
}
