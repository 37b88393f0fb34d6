//! Names of segments and subsegments, and annotation keys: the characters X-Ray accepts.

use std::borrow::Cow;

use super::annotation::AnnotationError;

/// Longest segment or subsegment name the X-Ray service accepts, in characters.
pub const MAX_NAME_LEN: usize = 200;

/// Longest annotation key, in characters.
pub const MAX_ANNOTATION_KEY_LEN: usize = 500;

/// Longest annotation string value, in characters (longer values are truncated).
pub const MAX_ANNOTATION_VALUE_LEN: usize = 1000;

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric()
        || c.is_whitespace()
        || matches!(
            c,
            '_' | '.' | ':' | '/' | '%' | '&' | '#' | '=' | '+' | '\\' | '-' | '@'
        )
}

/// [`is_name_char`] for every byte that is a whole (ASCII) character; `false` for the bytes
/// of multi-byte characters, which the ASCII fast path of [`is_valid_name`] leaves to the
/// character-by-character check. 256 entries, so a byte indexes it without a bounds check.
const ASCII_NAME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = matches!(
            b as u8,
            b'a'..=b'z'
                | b'A'..=b'Z'
                | b'0'..=b'9'
                // The ASCII characters `char::is_whitespace` accepts (with vertical tab).
                | b' '
                | b'\t'
                | b'\n'
                | 0x0b
                | 0x0c
                | b'\r'
                | b'_'
                | b'.'
                | b':'
                | b'/'
                | b'%'
                | b'&'
                | b'#'
                | b'='
                | b'+'
                | b'\\'
                | b'-'
                | b'@'
        );
        b += 1;
    }
    table
};

/// Whether `name` is a non-empty name of at most [`MAX_NAME_LEN`] name characters.
#[inline]
pub(crate) fn is_valid_name(name: &str) -> bool {
    // The usual name is short and ASCII: one table look-up per byte, no branch per byte (a
    // bad byte is noticed at the end). A name with any other byte is checked character by
    // character.
    if !name.is_empty() && name.len() <= MAX_NAME_LEN {
        let mut all = true;
        for &b in name.as_bytes() {
            all &= ASCII_NAME_CHARS[usize::from(b)];
        }
        if all {
            return true;
        }
    }
    is_valid_name_by_char(name)
}

/// [`is_valid_name`] character by character, out of line: the fast path above then saves no
/// registers.
#[cold]
#[inline(never)]
fn is_valid_name_by_char(name: &str) -> bool {
    let mut count = 0usize;
    for c in name.chars() {
        count += 1;
        if count > MAX_NAME_LEN || !is_name_char(c) {
            return false;
        }
    }
    count > 0
}

/// Makes a name acceptable to X-Ray: characters outside Unicode letters, digits, whitespace and
/// `_ . : / % & # = + \ - @` are removed and the result is cut to 200 characters. An empty result
/// becomes `"unnamed"`. Valid names are returned as they are, without allocating.
///
/// ```
/// use xray_sdk::model::sanitize_name;
/// assert_eq!(sanitize_name("api.example.com:8080"), "api.example.com:8080");
/// assert_eq!(sanitize_name("GET /users?id=1"), "GET /usersid=1");
/// assert_eq!(sanitize_name("***"), "unnamed");
/// ```
pub fn sanitize_name<'a>(name: impl Into<Cow<'a, str>>) -> Cow<'a, str> {
    let name = name.into();
    if is_valid_name(&name) {
        return name;
    }
    let cleaned: String = name
        .chars()
        .filter(|c| is_name_char(*c))
        .take(MAX_NAME_LEN)
        .collect();
    if cleaned.is_empty() {
        Cow::Borrowed("unnamed")
    } else {
        Cow::Owned(cleaned)
    }
}

/// Checks an annotation key: 1 to 500 ASCII letters, digits or underscores, the characters
/// that work with X-Ray's filter expressions.
pub fn validate_annotation_key(key: &str) -> Result<(), AnnotationError> {
    if key.is_empty()
        || key.len() > MAX_ANNOTATION_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Err(AnnotationError::InvalidKey(key.to_owned()))
    } else {
        Ok(())
    }
}

/// Turns any string into a valid annotation key: every other character becomes `_`, and the
/// result is cut to 500 characters. An empty key becomes `"_"`.
///
/// ```
/// use xray_sdk::model::sanitize_annotation_key;
/// assert_eq!(sanitize_annotation_key("http.route"), "http_route");
/// assert_eq!(sanitize_annotation_key("user_id"), "user_id");
/// ```
pub fn sanitize_annotation_key(key: &str) -> Cow<'_, str> {
    if validate_annotation_key(key).is_ok() {
        return Cow::Borrowed(key);
    }
    let s: String = key
        .chars()
        .take(MAX_ANNOTATION_KEY_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        Cow::Borrowed("_")
    } else {
        Cow::Owned(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_name_table_agrees_with_the_character_rule() {
        for b in 0u8..=255 {
            // Bytes from 0x80 are never whole characters: the table sends them to the
            // character-by-character check.
            let expected = b.is_ascii() && is_name_char(char::from(b));
            assert_eq!(ASCII_NAME_CHARS[usize::from(b)], expected, "byte {b:#04x}");
        }
        assert!(is_valid_name(&"a".repeat(MAX_NAME_LEN)));
        assert!(!is_valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
        assert!(is_valid_name(&"é".repeat(MAX_NAME_LEN)));
        assert!(!is_valid_name(&"é".repeat(MAX_NAME_LEN + 1)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\u{7f}"));
        assert!(!is_valid_name("a*b"));
        assert!(is_valid_name("café-1 日本"));
        assert!(!is_valid_name("café*"));
    }

    #[test]
    fn valid_name_fast_path_agrees_with_the_rule_on_random_names() {
        use rand::{Rng, SeedableRng};
        // The rule spelled out character by character, without the ASCII fast path.
        let rule = |s: &str| {
            let n = s.chars().count();
            n > 0 && n <= MAX_NAME_LEN && s.chars().all(is_name_char)
        };
        let pool: Vec<char> = "aZ09 _.:/%&#=+\\-@*?!\"'<>\t\u{7f}\u{0}éßΩ日本🙂\u{a0}\u{2003}"
            .chars()
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5_000 {
            let len = rng.random_range(0..=MAX_NAME_LEN + 10);
            // Mostly valid ASCII, with an occasional other character.
            let s: String = (0..len)
                .map(|_| {
                    if rng.random_bool(0.9) {
                        pool[rng.random_range(0..4)]
                    } else {
                        pool[rng.random_range(0..pool.len())]
                    }
                })
                .collect();
            assert_eq!(is_valid_name(&s), rule(&s), "{s:?}");
        }
    }

    #[test]
    fn names() {
        assert!(matches!(
            sanitize_name("ok name_1.2:3/4%&#=+\\-@"),
            Cow::Borrowed(_)
        ));
        assert_eq!(sanitize_name("a;b*c"), "abc");
        assert_eq!(sanitize_name("日本語 ok"), "日本語 ok");
        assert_eq!(sanitize_name("").as_ref(), "unnamed");
        let long = "x".repeat(300);
        assert_eq!(sanitize_name(long).chars().count(), MAX_NAME_LEN);
        let exact = "é".repeat(200);
        assert_eq!(sanitize_name(exact.clone()), exact);
    }

    #[test]
    fn annotation_keys() {
        assert!(validate_annotation_key("user_id_2").is_ok());
        for bad in ["", "a.b", "a b", "ü", &"k".repeat(501)] {
            assert!(validate_annotation_key(bad).is_err(), "{bad}");
        }
        assert_eq!(sanitize_annotation_key("a-b c"), "a_b_c");
        assert_eq!(sanitize_annotation_key(""), "_");
        let e = validate_annotation_key("a.b").unwrap_err();
        assert!(e.to_string().contains("\"a.b\""));
    }
}
