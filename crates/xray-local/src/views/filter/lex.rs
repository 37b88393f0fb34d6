//! Tokens of a filter expression, each with the character position it
//! starts at (1-based, as error messages count).

use super::FilterError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A keyword, a function name or an operator word (`AND`, `CONTAINS`).
    Word(String),
    /// A double-quoted string, unescaped.
    Str(String),
    /// A number.
    Num(f64),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Bang,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(&'static str),
    /// The end of the expression.
    End,
}

impl Tok {
    /// How the token reads in a message.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(n) => format!("the number {n}"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Bang => "`!`".into(),
            Tok::Cmp(op) => format!("`{op}`"),
            Tok::End => "the end of the expression".into(),
        }
    }
}

/// Characters a keyword or annotation key may hold.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Splits `text` into tokens, ending with [`Tok::End`].
pub(super) fn tokens(text: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            ':' => (Tok::Colon, 1),
            '=' => (Tok::Cmp("="), 1),
            '!' if chars.get(i + 1) == Some(&'=') => (Tok::Cmp("!="), 2),
            '!' => (Tok::Bang, 1),
            '<' if chars.get(i + 1) == Some(&'=') => (Tok::Cmp("<="), 2),
            '<' => (Tok::Cmp("<"), 1),
            '>' if chars.get(i + 1) == Some(&'=') => (Tok::Cmp(">="), 2),
            '>' => (Tok::Cmp(">"), 1),
            '"' => string(&chars, i)?,
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                number(&chars, i)?
            }
            c if is_word_char(c) => {
                let len = chars[i..].iter().take_while(|c| is_word_char(**c)).count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
            '&' | '|' => {
                return Err(FilterError::at(
                    pos,
                    format!("unexpected `{c}`: combine conditions with AND and OR"),
                ));
            }
            '\'' => {
                return Err(FilterError::at(
                    pos,
                    "strings are written in double quotes (\"...\")",
                ));
            }
            c => return Err(FilterError::at(pos, format!("unexpected character {c:?}"))),
        };
        out.push((tok, pos));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// A double-quoted string starting at `start`; `\"` and `\\` are escapes.
fn string(chars: &[char], start: usize) -> Result<(Tok, usize), FilterError> {
    let mut s = String::new();
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        match c {
            '"' => return Ok((Tok::Str(s), i + 1 - start)),
            '\\' => match chars.get(i + 1) {
                Some(&e @ ('"' | '\\')) => {
                    s.push(e);
                    i += 2;
                }
                _ => {
                    return Err(FilterError::at(
                        i + 1,
                        "only \\\" and \\\\ can be escaped in a string",
                    ));
                }
            },
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err(FilterError::at(
        start + 1,
        "this string is not closed with a double quote",
    ))
}

/// A decimal number (optionally signed, fraction, exponent) at `start`.
fn number(chars: &[char], start: usize) -> Result<(Tok, usize), FilterError> {
    let len = chars[start..]
        .iter()
        .enumerate()
        .take_while(|(k, c)| {
            c.is_ascii_digit()
                || **c == '.'
                || (*k == 0 && **c == '-')
                || matches!(c, 'e' | 'E')
                || (matches!(c, '+' | '-')
                    && *k > 0
                    && matches!(chars.get(start + k - 1), Some('e' | 'E')))
        })
        .count();
    let text: String = chars[start..start + len].iter().collect();
    // A number runs into a word (`5s`): say so rather than split it.
    if chars
        .get(start + len)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
    {
        return Err(FilterError::at(
            start + 1,
            format!("`{text}` must be followed by a space or an operator"),
        ));
    }
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok((Tok::Num(n), len)),
        _ => Err(FilterError::at(
            start + 1,
            format!("`{text}` is not a number"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        tokens(s)
            .expect("tokens")
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn splits_operators_numbers_and_strings() {
        assert_eq!(
            kinds("http.status!=500 AND !fault"),
            [
                Tok::Word("http.status".into()),
                Tok::Cmp("!="),
                Tok::Num(500.0),
                Tok::Word("AND".into()),
                Tok::Bang,
                Tok::Word("fault".into()),
                Tok::End
            ]
        );
        assert_eq!(
            kinds(r#"responsetime>=-1.5e-1 "a\"b\\c""#),
            [
                Tok::Word("responsetime".into()),
                Tok::Cmp(">="),
                Tok::Num(-0.15),
                Tok::Str("a\"b\\c".into()),
                Tok::End
            ]
        );
        let positions: Vec<usize> = tokens("a = \"é\" b")
            .expect("tokens")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(positions, [1, 3, 5, 9, 10]);
    }

    #[test]
    fn errors_name_their_position() {
        for (text, pos) in [
            ("a = \"open", 5),
            ("a = 'x'", 5),
            ("a && b", 3),
            ("a = 5s", 5),
            ("a = 1.2.3", 5),
            ("a = \"\\n\"", 6),
            ("a # b", 3),
        ] {
            let e = tokens(text).expect_err(text);
            assert_eq!(e.position, pos, "{text}: {e}");
        }
    }
}
