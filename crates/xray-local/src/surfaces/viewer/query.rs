//! Query-string parsing for the JSON API. Strict: unknown keys, repeated
//! keys, bad escapes and bad numbers are errors, reported as 400s.

use std::fmt;

/// Longest query string accepted.
pub const MAX_QUERY_LEN: usize = 8 * 1024;
/// Largest page size any endpoint returns.
pub const MAX_LIMIT: usize = 1000;

/// A query string that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

/// Decoded `key=value` pairs of a query string.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `raw` (without the `?`), allowing only `allowed` keys, each once.
    pub fn parse(raw: &str, allowed: &[&str]) -> Result<Self, QueryError> {
        if raw.len() > MAX_QUERY_LEN {
            return Err(QueryError(format!(
                "query string longer than {MAX_QUERY_LEN} bytes"
            )));
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if !allowed.contains(&k.as_str()) {
                return Err(QueryError(format!(
                    "unknown parameter {k:?}; allowed: {}",
                    allowed.join(", ")
                )));
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(QueryError(format!("parameter {k:?} given twice")));
            }
            out.push((k, v));
        }
        Ok(Self(out))
    }

    /// The value of `key`, if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A finite number, if present.
    pub fn number(&self, key: &str) -> Result<Option<f64>, QueryError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| QueryError(format!("{key} must be a number, got {v:?}"))),
        }
    }

    /// The page size: `default` when absent, 1..=[`MAX_LIMIT`] otherwise.
    pub fn limit(&self, default: usize) -> Result<usize, QueryError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    QueryError(format!(
                        "limit must be an integer from 1 to {MAX_LIMIT}, got {v:?}"
                    ))
                }),
        }
    }
}

/// Percent-decodes one component (`+` is a space).
pub fn decode(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| QueryError(format!("bad percent escape in {s:?}")))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError(format!("{s:?} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_rejects() {
        let p = Params::parse("a=x%3Dy&b=1+2", &["a", "b"]).expect("valid query");
        assert_eq!(p.get("a"), Some("x=y"));
        assert_eq!(p.get("b"), Some("1 2"));
        assert!(Params::parse("c=1", &["a"]).is_err());
        assert!(Params::parse("a=1&a=2", &["a"]).is_err());
        assert!(Params::parse("a=%zz", &["a"]).is_err());
        assert!(Params::parse("a=%ff", &["a"]).is_err());
        assert!(Params::parse("a=%4", &["a"]).is_err());
        let p = Params::parse("limit=0", &["limit"]).expect("valid query");
        assert!(p.limit(10).is_err());
    }
}
