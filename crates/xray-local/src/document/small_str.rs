//! Short strings kept inline: ids, names, namespaces and annotation keys
//! cost no allocation in the typed form.

use std::fmt;

/// Strings up to this many bytes are stored without a heap allocation.
const INLINE: usize = 22;

/// An immutable string kept inline when short (ids, names, namespaces,
/// annotation keys), so that most fields cost no allocation.
#[derive(Clone)]
pub enum SmallStr {
    /// Short text (up to 22 bytes of UTF-8).
    Inline {
        /// Bytes used in `buf`.
        len: u8,
        /// The text, then zeros.
        buf: [u8; INLINE],
    },
    /// Anything longer.
    Heap(Box<str>),
}

impl SmallStr {
    /// Copies `s`.
    pub fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut buf = [0; INLINE];
                buf[..s.len()].copy_from_slice(s.as_bytes());
                SmallStr::Inline { len, buf }
            }
            _ => SmallStr::Heap(s.into()),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            // Always valid: the bytes were copied from a `str`.
            SmallStr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            SmallStr::Heap(s) => s,
        }
    }

    /// Heap bytes used beyond the value itself.
    pub fn heap_bytes(&self) -> usize {
        match self {
            SmallStr::Inline { .. } => 0,
            SmallStr::Heap(s) => s.len() + super::ALLOC_OVERHEAD,
        }
    }
}

impl std::ops::Deref for SmallStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for SmallStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SmallStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SmallStr {}

impl PartialOrd for SmallStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for SmallStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Same as `str`, so maps keyed by SmallStr can be queried with &str.
        self.as_str().hash(state);
    }
}

impl fmt::Debug for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for SmallStr {
    fn from(s: &str) -> Self {
        SmallStr::new(s)
    }
}

impl serde::Serialize for SmallStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
