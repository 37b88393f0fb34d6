//! Writing JSON by hand: documents have constant keys, IDs and times come from integers, and
//! only user strings need escaping (and only when they contain a byte that needs it). Strings
//! and times come out byte for byte as `serde_json` writes them (the unit tests compare).

/// What writing a value can fail with (a user value `serde_json` cannot represent).
pub(crate) type WriteResult = Result<(), serde_json::Error>;

/// Appends `s` as a JSON string: copied as it is when nothing needs escaping (the usual
/// case), else escaped by `serde_json`.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> WriteResult {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

/// Appends the decimal digits of `n`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a signed integer.
pub(crate) fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Epoch microseconds as seconds with up to six decimals (`1732290000.1234`): the same
/// number a float formatter prints for `us / 1e6`, without going through a float.
pub(crate) fn write_seconds(out: &mut Vec<u8>, us: u64) {
    write_u64(out, us / 1_000_000);
    let mut frac = us % 1_000_000;
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [0u8; 6];
    for d in digits.iter_mut().rev() {
        // frac % 10 < 10, so the cast cannot truncate.
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let len = digits.iter().rposition(|&d| d != b'0').map_or(1, |p| p + 1);
    out.extend_from_slice(&digits[..len]);
}

/// `,"key":` (keys are constants without anything to escape).
pub(crate) fn key(out: &mut Vec<u8>, k: &str) {
    out.reserve(k.len() + 4);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A string of hex digits (an ID), which needs no escaping.
pub(crate) fn write_hex_str(out: &mut Vec<u8>, hex: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(hex);
    out.push(b'"');
}

/// Whether `text` is one JSON string literal that needs no unescaping, and its content.
pub(crate) fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_the_same_numbers_as_the_float_form() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut cases = vec![
            0,
            1,
            10,
            999_999,
            1_000_000,
            1_732_290_000_000_000,
            1_732_290_000_100_000,
        ];
        for _ in 0..10_000 {
            // xorshift: spread over plausible epoch microseconds.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(1_600_000_000_000_000 + x % 400_000_000_000_000);
        }
        for us in cases {
            let mut out = Vec::new();
            write_seconds(&mut out, us);
            let text = std::str::from_utf8(&out).unwrap();
            let parsed: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, us as f64 / 1_000_000.0, "{us} written as {text}");
            assert!(!text.ends_with("0") || text.ends_with(".0"), "{text}");
        }
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote\"",
            "back\\slash",
            "ctl\u{1}\n\t",
            "é 日本",
            "\u{7f}",
            "a\"b\\c\u{0}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn integers() {
        for n in [0, 7, 10, 429, 65_535, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        for n in [0, -1, 42, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            write_i64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn plain_strings_are_recognised() {
        assert_eq!(plain_string(r#""GetItem""#), Some("GetItem"));
        assert_eq!(plain_string(r#""a\"b""#), None);
        assert_eq!(plain_string("42"), None);
        assert_eq!(plain_string("\""), None);
    }
}
