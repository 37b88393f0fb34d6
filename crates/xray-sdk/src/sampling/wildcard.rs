//! The wildcard patterns of sampling rules.

/// Matches `text` against a sampling-rule `pattern`, ignoring case.
///
/// `*` stands for any run of characters (possibly none) and `?` for exactly one character;
/// every other character stands for itself. An empty pattern matches only the empty text, and
/// `*` matches everything. Case is folded per character (ASCII fast path, Unicode lower case
/// otherwise). The matcher is greedy with single-point backtracking: linear in practice,
/// `O(pattern × text)` in the worst case, and it never allocates.
///
/// ```
/// use xray_sdk::sampling::wildcard_match;
///
/// assert!(wildcard_match("/api/*", "/API/orders/42"));
/// assert!(wildcard_match("GET", "get"));
/// assert!(wildcard_match("*.example.com", "shop.example.com"));
/// assert!(!wildcard_match("/health?", "/health"));
/// assert!(!wildcard_match("", "x"));
/// ```
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if !pattern.contains(['*', '?']) {
        return eq_ignore_case(pattern, text);
    }
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was seen in the pattern, and where its match in the text ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (tc, tlen) = char_at(text, ti);
        if pi < p.len() {
            let (pc, plen) = char_at(pattern, pi);
            if pc == '*' {
                pi += plen;
                star = Some((pi, ti));
                continue;
            }
            if pc == '?' || chars_eq(pc, tc) {
                pi += plen;
                ti += tlen;
                continue;
            }
        }
        match star {
            // Let the last `*` swallow one more character and retry from there.
            Some((sp, st)) => {
                let (_, slen) = char_at(text, st);
                pi = sp;
                ti = st + slen;
                star = Some((sp, ti));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// A pattern classified once, so matching skips the work the general matcher would redo on
/// every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: String,
    ascii: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `*`
    Any,
    /// No wildcard.
    Literal,
    /// ASCII text then one trailing `*`; holds the prefix length.
    Prefix(usize),
    /// Anything else.
    Glob,
}

impl Pattern {
    pub(crate) fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let wild = |c: char| c == '*' || c == '?';
        let kind = if source == "*" {
            Kind::Any
        } else if !source.contains(wild) {
            Kind::Literal
        } else if let Some(prefix) = source.strip_suffix('*') {
            if prefix.is_ascii() && !prefix.contains(wild) {
                Kind::Prefix(prefix.len())
            } else {
                Kind::Glob
            }
        } else {
            Kind::Glob
        };
        Pattern {
            ascii: source.is_ascii(),
            source,
            kind,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self.kind {
            Kind::Any => true,
            Kind::Literal => {
                let (p, t) = (self.source.as_bytes(), text.as_bytes());
                // Byte-wise ASCII folding decides unless non-ASCII text could fold differently.
                (p.len() == t.len() && p.eq_ignore_ascii_case(t))
                    || (!(self.ascii && text.is_ascii()) && eq_ignore_case(&self.source, text))
            }
            Kind::Prefix(n) => text
                .as_bytes()
                .get(..n)
                .is_some_and(|head| head.eq_ignore_ascii_case(&self.source.as_bytes()[..n])),
            Kind::Glob => wildcard_match(&self.source, text),
        }
    }
}

/// The character starting at byte `i` (a char boundary) and its length in bytes.
fn char_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b.is_ascii() {
        return (char::from(b), 1);
    }
    s.get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(('\u{fffd}', 1), |c| (c, c.len_utf8()))
}

fn chars_eq(a: char, b: char) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b || a.to_lowercase().eq(b.to_lowercase())
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let mut x = a.chars();
    let mut y = b.chars();
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(c), Some(d)) if chars_eq(c, d) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Pattern, wildcard_match};

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("a", "", false),
            ("?", "", false),
            ("?", "a", true),
            ("??", "a", false),
            ("*?", "", false),
            ("*?", "a", true),
            ("?*?", "ab", true),
            ("?*?", "a", false),
            ("**a**", "a", true),
            ("**a**", "bab", true),
            ("**a**", "bbb", false),
            ("a*na*ha", "anananahahanahana", false),
            ("a*na*ha", "anananahahanaha", true),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("/api/*", "/api/", true),
            ("/api/*", "/api", false),
            ("/api/*/items", "/api/1/2/items", true),
            ("HeLLo", "hello", true),
            ("GET", "post", false),
            ("*ÄBC", "xäbc", true),
            ("é?", "Éa", true),
            ("a?c", "aéc", true),
            ("*a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", false),
            ("*a*b*c*", "xaybzc", true),
            ("*a*b*c*", "xaybz", false),
            ("localhost:*", "localhost:8080", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                wildcard_match(pattern, text),
                want,
                "{pattern:?} vs {text:?}"
            );
            let compiled = Pattern::new(pattern);
            assert_eq!(
                compiled.matches(text),
                want,
                "compiled {pattern:?} vs {text:?}"
            );
        }
        assert!(Pattern::new("/api/*").matches("/API/x"));
        assert!(!Pattern::new("/api/*").matches("/ap"));
        assert!(Pattern::new("é*").matches("É"));
    }
}
