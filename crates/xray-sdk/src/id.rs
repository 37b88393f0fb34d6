//! Trace IDs and entity (segment, subsegment, exception) IDs.
//!
//! Trace and entity IDs must be unique, not unpredictable (they travel in clear headers). They
//! come from SplitMix64 run per thread: a 64-bit counter that advances by an odd constant,
//! and a mix of the counter that is a bijection, so a thread never repeats an ID before 2^64
//! of them. The counter starts at a value from `rand`'s cryptographic thread generator,
//! itself seeded from the operating system, so threads and processes start at unrelated
//! points. An ID costs an addition and three multiply-shift rounds on a plain thread-local
//! word: no system call, no cipher block, and no borrow flag to check. (`rand`'s `SmallRng`
//! behind a `RefCell`, used before, cost 39 instructions an entity ID; this costs 25.) The
//! sampling client ID, made once, comes from the cryptographic generator.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use rand::RngCore;

thread_local! {
    /// This thread's SplitMix64 counter; 0 until it is seeded.
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

/// SplitMix64's increment: odd (so the counter takes every value once in 2^64 steps), from
/// the golden ratio.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection of the counter.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A starting point for a counter, from the cryptographic generator (never 0, which means
/// "not seeded").
#[cold]
#[inline(never)]
fn seed() -> u64 {
    rand::random::<u64>() | 1
}

/// 64 random bits for an ID: the thread's counter, advanced and mixed. While the thread's
/// counter is being torn down, a fresh seed mixed.
#[inline]
fn random_u64() -> u64 {
    let counter = COUNTER
        .try_with(|c| {
            let mut n = c.get();
            if n == 0 {
                n = seed();
            }
            n = n.wrapping_add(GAMMA);
            c.set(n);
            n
        })
        .unwrap_or_else(|_| seed());
    mix(counter)
}

/// An X-Ray trace ID: `1-<8 hex digits of epoch seconds>-<24 hex random digits>`.
///
/// ```
/// use xray_sdk::TraceId;
/// let id: TraceId = "1-58406520-a006649127e371903a2de979".parse().unwrap();
/// assert_eq!(id.epoch_seconds(), 0x58406520);
/// assert_eq!(id.to_string(), "1-58406520-a006649127e371903a2de979");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId {
    epoch: u32,
    random: [u8; 12],
}

/// A 64-bit segment, subsegment or exception ID, written as 16 lowercase hex digits.
///
/// ```
/// use xray_sdk::EntityId;
/// let id: EntityId = "53995c3f42cd8ad8".parse().unwrap();
/// assert_eq!(id.to_string(), "53995c3f42cd8ad8");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(u64);

/// Why a string is not a valid trace or entity ID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The string does not have the expected length.
    Length {
        /// Expected length in bytes.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// The trace ID does not start with version `1-`.
    Version,
    /// A separator `-` is missing where the format requires one.
    Separator,
    /// A character is not a hexadecimal digit.
    NotHex,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Length { expected, found } => {
                write!(f, "expected {expected} characters, found {found}")
            }
            IdError::Version => f.write_str("trace ID must start with version \"1-\""),
            IdError::Separator => {
                f.write_str("trace ID must have the form 1-XXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX")
            }
            IdError::NotHex => {
                f.write_str("ID contains a character that is not a hexadecimal digit")
            }
        }
    }
}

impl std::error::Error for IdError {}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Every byte as two lower-case hex digits: one look-up per byte when formatting IDs.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut b = 0usize;
    while b < 256 {
        table[b] = [HEX[b >> 4], HEX[b & 0x0f]];
        b += 1;
    }
    table
};

/// Eight hex digits (either case), most significant first, parsed all at once in a `u64`
/// (incoming trace headers are parsed on every request, and an ID is 16 or 32 digits).
///
/// Each byte's value is computed as if it were a digit or a letter (its low nibble, plus 9
/// when its bit 6 says letter), then the byte is checked against the character that value
/// is written as: equal (letters compared in lower case) and the value under 16 exactly
/// when the byte is a hex digit. No step carries from one byte into the next: a value is
/// at most 24 and the character computed from it at most 111.
#[inline(always)]
fn parse_hex8(digits: [u8; 8]) -> Result<u32, IdError> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = u64::from_be_bytes(digits);
    let letter = (x >> 6) & ONES;
    let v = (x & (ONES * 0x0f)) + letter * 9;
    // 1 in the bytes whose value is over 9, which are written as letters.
    let over_nine = ((v + ONES * 0x76) >> 7) & ONES;
    let written = v + ONES * u64::from(b'0') + over_nine * u64::from(b'a' - b'0' - 10);
    // Setting bit 5 of the bytes with bit 6 set maps `A`-`F` onto `a`-`f`.
    let folded = x | (letter << 5);
    if (folded ^ written) | (v & (ONES * 0xf0)) != 0 {
        return Err(IdError::NotHex);
    }
    // Gather the nibbles pairwise.
    let mut v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    u32::try_from(v).map_err(|_| IdError::NotHex)
}

/// The eight bytes of `b` from `at` (the callers have checked the length).
#[inline(always)]
fn eight(b: &[u8], at: usize) -> Result<[u8; 8], IdError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or(IdError::NotHex)
}

/// Sixteen hex digits from `at`.
#[inline(always)]
fn parse_hex16(b: &[u8], at: usize) -> Result<u64, IdError> {
    let hi = parse_hex8(eight(b, at)?)?;
    let lo = parse_hex8(eight(b, at + 8)?)?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

#[inline]
pub(crate) fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

#[cfg(test)]
fn epoch_seconds_now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl TraceId {
    /// Length of the textual form.
    pub const LEN: usize = 35;

    /// A new trace ID for the current time, with 96 random bits.
    ///
    /// The time is the second of the SDK's clock (the CPU's time-stamp counter, anchored to
    /// the wall clock; see [`clock`](crate::clock)), so no system call is paid per trace.
    ///
    /// There is deliberately no `Default`: a default value that is random each time would
    /// surprise a `#[derive(Default)]` struct holding one.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let secs = crate::clock::epoch_seconds();
        Self::with_epoch(u32::try_from(secs).unwrap_or(u32::MAX))
    }

    /// A new trace ID with the given epoch seconds and 96 random bits.
    pub fn with_epoch(epoch: u32) -> Self {
        let (first, second) = (random_u64(), random_u64());
        let mut random = [0u8; 12];
        random[..8].copy_from_slice(&first.to_ne_bytes());
        random[8..].copy_from_slice(&second.to_ne_bytes()[..4]);
        TraceId { epoch, random }
    }

    /// Builds a trace ID from its parts.
    pub const fn from_parts(epoch: u32, random: [u8; 12]) -> Self {
        TraceId { epoch, random }
    }

    /// The epoch seconds encoded in the ID (the time the trace started).
    pub fn epoch_seconds(&self) -> u32 {
        self.epoch
    }

    /// The 96 random bits.
    pub fn random_bytes(&self) -> [u8; 12] {
        self.random
    }

    /// Writes the 35-byte textual form into a stack buffer.
    #[inline]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = b'1';
        out[1] = b'-';
        write_hex(&mut out[2..10], &self.epoch.to_be_bytes());
        out[10] = b'-';
        write_hex(&mut out[11..35], &self.random);
        out
    }

    /// Parses the textual form strictly: `1-` + 8 hex + `-` + 24 hex (either case accepted,
    /// always written back in lower case).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_bytes(s.as_bytes())
    }

    #[inline]
    pub(crate) fn parse_bytes(b: &[u8]) -> Result<Self, IdError> {
        if b.len() != Self::LEN {
            return Err(IdError::Length {
                expected: Self::LEN,
                found: b.len(),
            });
        }
        if b[0] != b'1' {
            return Err(IdError::Version);
        }
        if b[1] != b'-' || b[10] != b'-' {
            return Err(IdError::Separator);
        }
        let epoch = parse_hex8(eight(b, 2)?)?;
        let hi = parse_hex8(eight(b, 11)?)?;
        let lo = parse_hex16(b, 19)?;
        let mut random = [0u8; 12];
        random[..4].copy_from_slice(&hi.to_be_bytes());
        random[4..].copy_from_slice(&lo.to_be_bytes());
        Ok(TraceId { epoch, random })
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // The buffer only ever holds ASCII hex digits and dashes.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl FromStr for TraceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceId::parse(s)
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes();
        s.serialize_str(std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?)
    }
}

impl EntityId {
    /// Length of the textual form.
    pub const LEN: usize = 16;

    /// A new random entity ID (never zero, which the SDKs use as the "no-op" ID). Like
    /// [`TraceId`], deliberately not `Default`.
    #[allow(clippy::new_without_default)]
    #[inline]
    pub fn new() -> Self {
        loop {
            let v = random_u64();
            if v != 0 {
                return EntityId(v);
            }
        }
    }

    /// Builds an ID from its 64-bit value.
    pub const fn from_u64(v: u64) -> Self {
        EntityId(v)
    }

    /// The 64-bit value.
    pub const fn as_u64(&self) -> u64 {
        self.0
    }

    /// Writes the 16-byte textual form into a stack buffer.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        write_hex(&mut out, &self.0.to_be_bytes());
        out
    }

    /// Parses exactly 16 hexadecimal digits.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_bytes(s.as_bytes())
    }

    #[inline]
    pub(crate) fn parse_bytes(b: &[u8]) -> Result<Self, IdError> {
        if b.len() != Self::LEN {
            return Err(IdError::Length {
                expected: Self::LEN,
                found: b.len(),
            });
        }
        parse_hex16(b, 0).map(EntityId)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({self})")
    }
}

impl FromStr for EntityId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityId::parse(s)
    }
}

impl serde::Serialize for EntityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes();
        s.serialize_str(std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?)
    }
}

/// A random 24-hex-digit client ID, as the sampling API expects (12 random bytes).
pub(crate) fn new_client_id() -> String {
    let mut raw = [0u8; 12];
    rand::rng().fill_bytes(&mut raw);
    let mut out = [0u8; 24];
    write_hex(&mut out, &raw);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: one digit at a time, as `char::to_digit` reads it.
    fn hex8_one_by_one(digits: [u8; 8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, &b| {
            char::from(b).to_digit(16).map(|d| (acc << 4) | d)
        })
    }

    #[test]
    fn hex_digits_every_byte_at_every_position() {
        for b in 0..=u8::MAX {
            let want = char::from(b).to_digit(16);
            for at in 0..8 {
                let mut digits = *b"0f9aF5c7";
                digits[at] = b;
                let got = parse_hex8(digits).ok();
                assert_eq!(got, hex8_one_by_one(digits), "byte {b:#04x} at {at}");
                assert_eq!(got.is_some(), want.is_some(), "byte {b:#04x} at {at}");
            }
        }
        assert_eq!(parse_hex8(*b"ffffffff"), Ok(u32::MAX));
        assert_eq!(parse_hex8(*b"FFFFFFFF"), Ok(u32::MAX));
        assert_eq!(parse_hex8(*b"00000000"), Ok(0));
        assert_eq!(parse_hex8(*b"0123abcd"), Ok(0x0123_abcd));
        assert_eq!(parse_hex8(*b"89ABCDEF"), Ok(0x89ab_cdef));
        assert_eq!(
            parse_hex16(b"0123456789abcdef", 0),
            Ok(0x0123_4567_89ab_cdef)
        );
        assert_eq!(parse_hex16(b"0123456789abcde", 0), Err(IdError::NotHex));
    }

    /// Bytes next to the edges of the ranges the parser tells apart, two at a time at every
    /// pair of positions: no byte's check or value leaks into its neighbour's.
    #[test]
    fn hex_digits_edge_bytes_in_pairs() {
        const EDGES: &[u8] = b"/09:@AFG`afgOo\x00\x10\x1f\x7f\x80\xb0\xc1\xe6\xff";
        for i in 0..8 {
            for j in (i + 1)..8 {
                for &a in EDGES {
                    for &b in EDGES {
                        let mut digits = *b"7d3E9b0c";
                        digits[i] = a;
                        digits[j] = b;
                        assert_eq!(
                            parse_hex8(digits).ok(),
                            hex8_one_by_one(digits),
                            "{a:#04x} at {i}, {b:#04x} at {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn hex_digits_agree_with_one_by_one_on_random_input() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1d5);
        // Mostly digits and letters of both cases, with bytes next to the ranges' edges
        // (`/`, `:`, `@`, `G`, `` ` ``, `g`), other ASCII and high bytes mixed in.
        const NEAR: &[u8] = b"0123456789abcdefABCDEF/:@G`g \x7f\x80\xb0\xc6\xff";
        for _ in 0..200_000 {
            let mut digits = [0u8; 8];
            for d in &mut digits {
                *d = if rng.random_ratio(7, 8) {
                    NEAR[rng.random_range(0..NEAR.len())]
                } else {
                    rng.random()
                };
            }
            assert_eq!(
                parse_hex8(digits).ok(),
                hex8_one_by_one(digits),
                "{digits:?}"
            );
        }
    }

    #[test]
    fn trace_id_round_trips() {
        let s = "1-5759e988-bd862e3fe1be46a994272793";
        let id = TraceId::parse(s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(id.epoch_seconds(), 0x5759e988);
    }

    #[test]
    fn trace_id_normalises_upper_case() {
        let id = TraceId::parse("1-5759E988-BD862E3FE1BE46A994272793").unwrap();
        assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    }

    #[test]
    fn trace_id_rejects_bad_input() {
        assert_eq!(
            TraceId::parse("1-5759e988-bd862e3fe1be46a99427279"),
            Err(IdError::Length {
                expected: 35,
                found: 34
            })
        );
        assert_eq!(
            TraceId::parse("2-5759e988-bd862e3fe1be46a994272793"),
            Err(IdError::Version)
        );
        assert_eq!(
            TraceId::parse("1_5759e988-bd862e3fe1be46a994272793"),
            Err(IdError::Separator)
        );
        assert_eq!(
            TraceId::parse("1-5759e98g-bd862e3fe1be46a994272793"),
            Err(IdError::NotHex)
        );
        assert_eq!(
            TraceId::parse("1-5759e988-bd862e3fe1be46a99427279+"),
            Err(IdError::NotHex)
        );
        // Multi-byte characters must not cause a slicing panic.
        assert!(TraceId::parse("1-5759e988-bd862e3fe1be46a9942727é").is_err());
        assert!(TraceId::parse("").is_err());
    }

    #[test]
    fn new_trace_id_has_current_epoch_and_valid_form() {
        let before = epoch_seconds_now();
        let id = TraceId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 35);
        // The coarse clock may still show the previous second just after a boundary.
        assert!(id.epoch_seconds() + 1 >= before && id.epoch_seconds() <= before + 1);
        assert_eq!(TraceId::parse(&s).unwrap(), id);
        assert_ne!(TraceId::new(), TraceId::new());
    }

    #[test]
    fn entity_ids() {
        let id = EntityId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 16);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(EntityId::parse(&s).unwrap(), id);
        assert_eq!(EntityId::from_u64(1).to_string(), "0000000000000001");
        assert!(EntityId::parse("53995c3f42cd8ad").is_err());
        assert!(EntityId::parse("53995c3f42cd8adz").is_err());
    }

    /// Four threads' entity and trace IDs are all different, and their bits are balanced.
    #[test]
    fn ids_do_not_repeat_within_or_across_threads() {
        const EACH: usize = 50_000;
        let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut ids: Vec<u64> =
                            (0..EACH).map(|_| EntityId::new().as_u64()).collect();
                        // Trace IDs draw from the same counter: their random words count too.
                        for _ in 0..EACH / 10 {
                            let r = TraceId::with_epoch(1).random_bytes();
                            ids.push(u64::from_ne_bytes(r[..8].try_into().unwrap()));
                        }
                        ids
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let all: Vec<u64> = per_thread.into_iter().flatten().collect();
        let distinct: std::collections::HashSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(!distinct.contains(&0));
        // Each bit is set in about half of the IDs (220 000 draws: within 1 %).
        for bit in 0..64 {
            let ones = all.iter().filter(|v| *v >> bit & 1 == 1).count();
            let share = ones as f64 / all.len() as f64;
            assert!((share - 0.5).abs() < 0.01, "bit {bit}: {share}");
        }
    }

    /// The output function is SplitMix64's, a bijection: the published first outputs for
    /// the seed 0 (counter GAMMA, 2·GAMMA, ...) come out.
    #[test]
    fn the_mix_is_splitmix64() {
        let mut n = 0u64;
        let first: Vec<u64> = (0..3)
            .map(|_| {
                n = n.wrapping_add(GAMMA);
                mix(n)
            })
            .collect();
        assert_eq!(
            first,
            [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f
            ]
        );
    }

    #[test]
    fn client_id_is_24_hex() {
        let id = new_client_id();
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
