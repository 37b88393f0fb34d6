//! The wildcard patterns of sampling rules.

use super::decision::SamplingRequest;

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

/// A request attribute a rule matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Field {
    // Declaration order breaks the remaining ties between matchers (see `Pattern::rank`).
    Method,
    UrlPath,
    Host,
    ServiceName,
    ServiceType,
}

/// The attributes of one request, each prepared once per decision (not once per rule).
#[derive(Debug)]
pub(crate) struct Fields<'a>([Option<Text<'a>>; 5]);

/// A request attribute, or `None` when the request lacks it: an empty one counts as absent
/// (and so matches any pattern), as in the Go, Python and Node SDKs.
#[inline]
fn present(text: Option<&str>) -> Option<Text<'_>> {
    text.filter(|t| !t.is_empty()).map(Text::new)
}

impl<'a> Fields<'a> {
    /// The method, URL path and host (what local rules match).
    #[inline]
    pub(crate) fn local(r: &SamplingRequest<'a>) -> Self {
        Fields([
            present(r.method),
            present(r.url_path),
            present(r.host),
            None,
            None,
        ])
    }

    /// All five attributes console rules match.
    #[inline]
    pub(crate) fn all(r: &SamplingRequest<'a>) -> Self {
        Fields([
            present(r.method),
            present(r.url_path),
            present(r.host),
            present(r.service_name),
            present(r.service_type),
        ])
    }
}

/// A rule's matchers, cheapest first, without the `*` ones (they match everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Matchers {
    /// The first matcher's word check, inline so most rules are rejected without following a
    /// pointer.
    first: Option<Quick>,
    all: Box<[(Field, Pattern)]>,
}

/// The one-word check of a literal or prefix pattern on ASCII text: length, then the first
/// eight bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quick {
    field: Field,
    exact: bool,
    len: usize,
    head: u64,
    mask: u64,
}

impl Quick {
    /// False when the text certainly does not match; true when the full match must decide.
    #[inline(always)]
    fn may_match(&self, fields: &Fields<'_>) -> bool {
        match &fields.0[self.field as usize] {
            Some(t) if t.ascii => {
                let n = t.text.len();
                (if self.exact {
                    n == self.len
                } else {
                    n >= self.len
                }) && t.head & self.mask == self.head
            }
            _ => true,
        }
    }
}

impl Matchers {
    pub(crate) fn new<'p>(
        patterns: impl IntoIterator<Item = (Field, Option<&'p Pattern>)>,
    ) -> Self {
        let mut m: Vec<(Field, Pattern)> = patterns
            .into_iter()
            .filter_map(|(f, p)| p.filter(|p| !p.is_any()).map(|p| (f, p.clone())))
            .collect();
        m.sort_by_key(|(f, p)| (p.rank(), *f));
        let first = m.first().and_then(|(field, p)| match &p.kind {
            Kind::Literal(l) => Some(Quick {
                field: *field,
                exact: l.exact,
                len: l.lower.len(),
                head: l.head,
                mask: l.mask,
            }),
            _ => None,
        });
        Matchers {
            first,
            all: m.into_boxed_slice(),
        }
    }

    /// True when every matcher matches; an attribute the request lacks matches implicitly.
    #[inline(always)]
    pub(crate) fn matches(&self, fields: &Fields<'_>) -> bool {
        self.first.as_ref().is_none_or(|q| q.may_match(fields)) && self.matches_all(fields)
    }

    #[inline(never)]
    fn matches_all(&self, fields: &Fields<'_>) -> bool {
        for (field, pattern) in &*self.all {
            if let Some(text) = &fields.0[*field as usize]
                && !pattern.matches_text(text)
            {
                return false;
            }
        }
        true
    }
}

/// A request attribute prepared once per decision: the text, whether it is all ASCII, and
/// its first eight bytes in ASCII lower case (zero-padded), so most patterns accept or reject
/// it with one word comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a> {
    text: &'a str,
    ascii: bool,
    head: u64,
}

impl<'a> Text<'a> {
    #[inline]
    pub(crate) fn new(text: &'a str) -> Self {
        let ascii = text.is_ascii();
        Text {
            text,
            ascii,
            head: if ascii {
                lower8(head(text.as_bytes()))
            } else {
                0
            },
        }
    }
}

/// A pattern classified once, so matching skips the work the general matcher would redo on
/// every request.
///
/// Invariant: `Pattern::new(p).matches(t) == wildcard_match(p, t)` for every `p` and `t`. The
/// byte-wise kinds hold the pattern lower-cased at load time and apply only to ASCII text
/// (where per-character folding is ASCII folding); non-ASCII text, or a non-ASCII pattern,
/// goes to [`wildcard_match`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `*`
    Any,
    /// ASCII without wildcards (`exact`), or ASCII then one trailing `*`.
    Literal(Literal),
    /// One leading `*` then ASCII text.
    Suffix(Box<[u8]>),
    /// Anything else (more wildcards, `?`, non-ASCII).
    Glob,
}

/// The literal part of a pattern in ASCII lower case, and its first eight bytes as a word.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Literal {
    /// The whole text (not a prefix of it) must match.
    exact: bool,
    /// `lower`'s first eight bytes, zero-padded, and the mask of the bytes that count.
    head: u64,
    mask: u64,
    lower: Box<[u8]>,
}

impl Literal {
    fn new(literal: &str, exact: bool) -> Self {
        let lower = lower_box(literal);
        let n = lower.len().min(8);
        Literal {
            exact,
            head: head(&lower),
            mask: if n == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * n)) - 1
            },
            lower,
        }
    }

    /// `text` is ASCII.
    #[inline(always)]
    fn matches(&self, text: &Text<'_>) -> bool {
        let (t, n) = (text.text.as_bytes(), self.lower.len());
        let len_ok = if self.exact {
            t.len() == n
        } else {
            t.len() >= n
        };
        len_ok
            && text.head & self.mask == self.head
            && (n <= 8
                || t.get(8..n)
                    .zip(self.lower.get(8..))
                    .is_some_and(|(t, l)| eq_lower(t, l)))
    }
}

fn lower_box(s: &str) -> Box<[u8]> {
    s.to_ascii_lowercase().into_bytes().into_boxed_slice()
}

impl Kind {
    /// Rough cost of a match, cheapest first.
    fn cost(&self) -> u8 {
        match self {
            Kind::Any => 0,
            Kind::Literal(_) => 1,
            Kind::Suffix(_) => 2,
            Kind::Glob => 3,
        }
    }
}

impl Pattern {
    pub(crate) fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let wild = |c: char| c == '*' || c == '?';
        let plain = |s: &str| s.is_ascii() && !s.contains(wild);
        let kind = if source == "*" {
            Kind::Any
        } else if plain(&source) {
            Kind::Literal(Literal::new(&source, true))
        } else if let Some(prefix) = source.strip_suffix('*').filter(|p| plain(p)) {
            Kind::Literal(Literal::new(prefix, false))
        } else if let Some(suffix) = source.strip_prefix('*').filter(|s| plain(s)) {
            Kind::Suffix(lower_box(suffix))
        } else {
            Kind::Glob
        };
        Pattern { source, kind }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// True for `*`, which matches everything and need not be tried.
    pub(crate) fn is_any(&self) -> bool {
        self.kind == Kind::Any
    }

    /// The order a rule tries its matchers in: cheaper kinds first, then longer literals
    /// (a longer literal is likelier to tell rules apart, and costs the same: one word
    /// comparison decides unless the first eight bytes match).
    fn rank(&self) -> (u8, std::cmp::Reverse<usize>) {
        let len = match &self.kind {
            Kind::Literal(l) => l.lower.len(),
            Kind::Suffix(s) => s.len(),
            Kind::Any | Kind::Glob => 0,
        };
        (self.kind.cost(), std::cmp::Reverse(len))
    }

    #[cfg(test)]
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.matches_text(&Text::new(text))
    }

    #[inline(always)]
    pub(crate) fn matches_text(&self, text: &Text<'_>) -> bool {
        match &self.kind {
            Kind::Literal(l) if text.ascii => l.matches(text),
            Kind::Any => true,
            Kind::Suffix(s) if text.ascii => {
                let t = text.text.as_bytes();
                t.len()
                    .checked_sub(s.len())
                    .and_then(|start| t.get(start..))
                    .is_some_and(|tail| eq_lower(tail, s))
            }
            _ => general(&self.source, text.text),
        }
    }
}

/// [`wildcard_match`], kept out of line so the fast paths stay small.
#[inline(never)]
fn general(pattern: &str, text: &str) -> bool {
    wildcard_match(pattern, text)
}

/// The first eight bytes of `b` as a little-endian word, zero-padded.
#[inline]
fn head(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        return word(b, 0);
    }
    let byte = |i: usize| u64::from(b[i]) << (8 * i);
    if n >= 4 {
        // Two overlapping four-byte reads; the bytes they share are the same.
        let quad = |i: usize| {
            b.get(i..)
                .and_then(<[u8]>::first_chunk::<4>)
                .map_or(0, |w| u64::from(u32::from_le_bytes(*w)))
                << (8 * i)
        };
        quad(0) | quad(n - 4)
    } else if n > 0 {
        byte(0) | byte(n / 2) | byte(n - 1)
    } else {
        0
    }
}

/// `text` (ASCII) equals `lower` (ASCII, lower case) ignoring ASCII case.
#[inline]
fn eq_lower(text: &[u8], lower: &[u8]) -> bool {
    let n = text.len();
    if n != lower.len() {
        return false;
    }
    if n < 8 {
        return lower8(head(text)) == head(lower);
    }
    // Eight bytes at a time; the last word overlaps the one before it when `n % 8 != 0`.
    let mut i = 0;
    while i + 8 < n {
        if lower8(word(text, i)) != word(lower, i) {
            return false;
        }
        i += 8;
    }
    lower8(word(text, n - 8)) == word(lower, n - 8)
}

/// The eight bytes of `b` at `at` (zero when out of range, which callers rule out).
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    b.get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// ASCII lower case of eight bytes at once: `0x20` is added to each byte in `A..=Z`. Exact
/// for bytes below `0x80` (the only ones it is given).
#[inline(always)]
fn lower8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A byte b < 0x80 plus 0x3f has its top bit set when b >= b'A'; plus 0x25, when b > b'Z'.
    // Neither sum carries into the next byte.
    let upper = x.wrapping_add(0x3f * ONES) & !x.wrapping_add(0x25 * ONES) & (0x80 * ONES);
    x | (upper >> 2)
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

    /// The classified kinds agree with the general matcher on every pair, including text
    /// whose Unicode lower case is ASCII (the Kelvin sign folds to `k`).
    #[test]
    fn compiled_agrees_with_general_matcher() {
        let patterns = [
            "",
            "*",
            "**",
            "?",
            "k",
            "K",
            "get",
            "GET",
            "k*",
            "*k",
            "*K",
            "/api/*",
            "*/API",
            "*.example.com",
            "svc9.example.com",
            "a*b",
            "*a*",
            "é",
            "É*",
            "*é",
            "x?y",
            "\u{212a}",
            "\u{212a}*",
            "*\u{212a}",
            "ab*",
            "*ab",
        ];
        let texts = [
            "",
            "k",
            "K",
            "\u{212a}",
            "\u{212a}k",
            "k\u{212a}",
            "get",
            "Get",
            "GETS",
            "/api/",
            "/API/x",
            "/ap",
            "x/api",
            "X/Api",
            "a.example.com",
            "SVC9.Example.COM",
            "ab",
            "AB",
            "aXb",
            "é",
            "É",
            "éa",
            "aé",
            "xzy",
            "xéy",
            "abab",
        ];
        for pattern in patterns {
            let compiled = Pattern::new(pattern);
            for text in texts {
                assert_eq!(
                    compiled.matches(text),
                    wildcard_match(pattern, text),
                    "{pattern:?} vs {text:?}"
                );
            }
        }
    }
}
