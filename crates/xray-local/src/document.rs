//! The compact, typed form of a segment document.
//!
//! Intake parses each document once, straight from the datagram bytes, into
//! a [`Node`] tree that holds only the fields the store, validation,
//! summaries and the service map read. Everything else is skipped (but still
//! syntax-checked) and stays available in the document's raw text, which is
//! kept for `BatchGetTraces` and re-parsed on demand for the timeline.
//!
//! Parsing goes through `serde_json`'s own deserializer with the same depth
//! accounting as a `serde_json::Value`, so a body is accepted, or rejected
//! with the same reason, exactly when parsing it into a `Value` would.
//! Fields of an unexpected JSON type are kept as a `Value` ([`Field::Other`])
//! so that validation can quote them; duplicate keys behave like a
//! `serde_json::Map` (the last one wins).

use std::fmt;
use std::mem::size_of;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Approximate bookkeeping cost of one heap allocation (header and rounding).
const ALLOC_OVERHEAD: usize = 16;

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
            SmallStr::Heap(s) => s.len() + ALLOC_OVERHEAD,
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

/// A field as found in the document.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// The key is not present.
    #[default]
    Absent,
    /// Present with the expected JSON type.
    Ok(T),
    /// Present with another JSON type (kept for messages).
    Other(Box<Value>),
}

impl<T> Field<T> {
    /// `true` unless the key is absent.
    pub fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }

    /// The value when it has the expected type.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Field::Ok(v) => Some(v),
            _ => None,
        }
    }
}

impl<S: std::ops::Deref<Target = str>> Field<S> {
    /// The string, when the field is a string.
    pub fn as_str(&self) -> Option<&str> {
        self.ok().map(|s| &**s)
    }

    /// The field as a JSON value (`Null` when absent).
    pub fn to_value(&self) -> Value {
        match self {
            Field::Absent => Value::Null,
            Field::Ok(s) => Value::String(s.to_string()),
            Field::Other(v) => (**v).clone(),
        }
    }
}

impl Field<Arc<str>> {
    fn heap_bytes(&self) -> usize {
        match self {
            Field::Absent => 0,
            // The counts, the text, and the allocation.
            Field::Ok(s) => 16 + s.len() + ALLOC_OVERHEAD,
            Field::Other(v) => value_bytes(v),
        }
    }
}

impl Field<SmallStr> {
    fn heap_bytes(&self) -> usize {
        match self {
            Field::Absent => 0,
            Field::Ok(s) => s.heap_bytes(),
            Field::Other(v) => value_bytes(v),
        }
    }
}

impl Field<f64> {
    /// The number, when the field is a number.
    pub fn as_f64(&self) -> Option<f64> {
        self.ok().copied()
    }
}

/// An annotation value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(SmallStr),
    /// A number, as written (integer or float).
    Num(Number),
    /// A boolean.
    Bool(bool),
    /// Anything else (null, array, object): not a valid annotation.
    Other(Box<Value>),
}

impl Scalar {
    /// The value as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Scalar::Str(s) => Value::String(s.to_string()),
            Scalar::Num(n) => Value::Number(n.clone()),
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Other(v) => (**v).clone(),
        }
    }
}

/// One element of a `subsegments` array.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "almost every element is a node: boxing it would cost an allocation each"
)]
pub enum Sub {
    /// An embedded subsegment.
    Node(Node),
    /// Something that is not an object.
    Other(Box<Value>),
}

/// One segment or subsegment: the fields this crate reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// `name`.
    pub name: Field<SmallStr>,
    /// `id`.
    pub id: Field<SmallStr>,
    /// `trace_id` (read on top-level documents only; shared with the store,
    /// which keys the trace by it).
    pub trace_id: Field<Arc<str>>,
    /// `parent_id`.
    pub parent_id: Field<SmallStr>,
    /// `type` (read on top-level documents only).
    pub kind: Field<SmallStr>,
    /// `namespace`.
    pub namespace: Field<SmallStr>,
    /// `origin`.
    pub origin: Field<SmallStr>,
    /// `start_time`.
    pub start_time: Field<f64>,
    /// `end_time`.
    pub end_time: Field<f64>,
    /// `in_progress` is `true`.
    pub in_progress: bool,
    /// `error` is `true`.
    pub error: bool,
    /// `fault` is `true`.
    pub fault: bool,
    /// `throttle` is `true`.
    pub throttle: bool,
    /// `annotations`, sorted by key, one entry per key (the last one).
    pub annotations: Field<Vec<(SmallStr, Scalar)>>,
    /// `subsegments`.
    pub subsegments: Field<Vec<Sub>>,
}

impl Node {
    /// Approximate heap bytes held by this node and its subsegments,
    /// including the node itself.
    pub fn heap_bytes(&self) -> usize {
        let mut n = size_of::<Node>()
            + self.name.heap_bytes()
            + self.id.heap_bytes()
            + self.trace_id.heap_bytes()
            + self.parent_id.heap_bytes()
            + self.kind.heap_bytes()
            + self.namespace.heap_bytes()
            + self.origin.heap_bytes();
        for f in [&self.start_time, &self.end_time] {
            if let Field::Other(v) = f {
                n += value_bytes(v);
            }
        }
        match &self.annotations {
            Field::Absent => {}
            Field::Other(v) => n += value_bytes(v),
            Field::Ok(list) => {
                n += list.capacity() * size_of::<(SmallStr, Scalar)>() + ALLOC_OVERHEAD;
                for (k, v) in list {
                    n += k.heap_bytes();
                    n += match v {
                        Scalar::Str(s) => s.heap_bytes(),
                        Scalar::Other(v) => value_bytes(v),
                        Scalar::Num(_) | Scalar::Bool(_) => 0,
                    };
                }
            }
        }
        match &self.subsegments {
            Field::Absent => {}
            Field::Other(v) => n += value_bytes(v),
            Field::Ok(subs) => {
                // Each node's heap_bytes counts the node's own size.
                n += (subs.capacity() - subs.len()) * size_of::<Sub>() + ALLOC_OVERHEAD;
                for s in subs {
                    n += match s {
                        Sub::Node(node) => node.heap_bytes(),
                        Sub::Other(v) => size_of::<Sub>() + value_bytes(v),
                    };
                }
            }
        }
        n
    }
}

/// A rough estimate of a boxed `Value`'s heap bytes (rarely used: only for
/// fields of an unexpected type).
fn value_bytes(v: &Value) -> usize {
    size_of::<Value>()
        + ALLOC_OVERHEAD
        + match v {
            Value::String(s) => s.len() + ALLOC_OVERHEAD,
            Value::Array(a) => a.iter().map(value_bytes).sum::<usize>() + ALLOC_OVERHEAD,
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| k.len() + 2 * ALLOC_OVERHEAD + size_of::<String>() + value_bytes(v))
                .sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

/// Why a body could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The JSON ends too early.
    Truncated,
    /// Not JSON.
    Invalid,
    /// JSON, but not an object.
    NotAnObject,
}

/// Parses a document body into its typed form.
pub fn parse(body: &[u8]) -> Result<Node, ParseError> {
    match std::str::from_utf8(body) {
        Ok(text) => parse_str(text),
        // Rare: let serde_json find the first problem, so the verdict
        // (truncated or invalid) is the one a full parse gives.
        Err(_) => Err(verdict(serde_json::from_slice::<Value>(body).err())),
    }
}

/// Parses a document's text into its typed form. (Text that is already
/// known to be UTF-8 is parsed without checking each string again.)
pub fn parse_str(text: &str) -> Result<Node, ParseError> {
    match serde_json::from_str::<Top>(text) {
        Ok(Top(Some(node))) => Ok(node),
        Ok(Top(None)) => Err(ParseError::NotAnObject),
        Err(e) => Err(verdict(Some(e))),
    }
}

fn verdict(e: Option<serde_json::Error>) -> ParseError {
    match e {
        Some(e) if e.is_eof() => ParseError::Truncated,
        Some(_) => ParseError::Invalid,
        // Valid JSON, but not UTF-8 text: cannot happen (serde_json checks
        // strings, and everything else must be ASCII).
        None => ParseError::Invalid,
    }
}

/// The typed form of a JSON object already held as a `serde_json::Map`.
pub fn from_map(map: &Map<String, Value>) -> Node {
    // Through the text, so the result is exactly what intake would produce.
    let text = Value::Object(map.clone()).to_string();
    parse(text.as_bytes()).unwrap_or_default()
}

/// Reads one top-level field of a document's text (used for the few values
/// the typed form does not keep). `None` when absent or not an object.
pub fn top_level_field(raw: &str, key: &str) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_str(raw);
    de.deserialize_any(FieldPicker(key)).ok().flatten()
}

struct FieldPicker<'k>(&'k str);

impl<'de> Visitor<'de> for FieldPicker<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<KeyStr<'de>>()? {
            if k.0 == self.0 {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(found)
    }
}

/// A map key, borrowed when it has no escapes.
struct KeyStr<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyStr(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyStr(v.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeyStr(v.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// The whole body: `Some` for an object.
struct Top(Option<Node>);

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<TopKind>::new()).map(Top)
    }
}

/// What a visitor builds from each JSON type; lets the field types below
/// share one visitor (every JSON type is accepted, so type mismatches never
/// become parse errors).
trait Build: Sized {
    type Out;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Out, A::Error>;
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self::Out, A::Error>;
    fn string(s: &str) -> Self::Out;
    fn number(n: Number) -> Self::Out;
    fn boolean(b: bool) -> Self::Out;
    fn null() -> Self::Out;
}

struct AnyVisitor<B>(std::marker::PhantomData<B>);

impl<B> AnyVisitor<B> {
    fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'de, B: Build> Visitor<'de> for AnyVisitor<B> {
    type Value = B::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(B::boolean(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(B::number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(B::number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Like serde_json::Value: a non-finite float becomes null (JSON text
        // cannot produce one; the parser rejects out-of-range numbers).
        Ok(Number::from_f64(v).map_or_else(B::null, B::number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(B::string(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(B::null())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(B::null())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        B::array(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        B::object(map)
    }
}

fn other_object<'de, A: MapAccess<'de>>(map: A) -> Result<Box<Value>, A::Error> {
    Value::deserialize(MapAccessDeserializer::new(map)).map(Box::new)
}

fn other_array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Box<Value>, A::Error> {
    Value::deserialize(SeqAccessDeserializer::new(seq)).map(Box::new)
}

/// Builds values that do not fit `T` as [`Field::Other`].
macro_rules! other_for_field {
    () => {
        fn number(n: Number) -> Self::Out {
            Field::Other(Box::new(Value::Number(n)))
        }
        fn boolean(b: bool) -> Self::Out {
            Field::Other(Box::new(Value::Bool(b)))
        }
        fn null() -> Self::Out {
            Field::Other(Box::new(Value::Null))
        }
    };
}

/// Skips any value (keeping serde_json's syntax and depth checks).
struct Skip;

impl Build for Skip {
    type Out = Skip;
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn string(_: &str) -> Skip {
        Skip
    }
    fn number(_: Number) -> Skip {
        Skip
    }
    fn boolean(_: bool) -> Skip {
        Skip
    }
    fn null() -> Skip {
        Skip
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Skip>::new())
    }
}

/// `true` only for the JSON value `true`.
struct Flag(bool);

impl Build for Flag {
    type Out = Flag;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Flag, A::Error> {
        Skip::object(map).map(|_| Flag(false))
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Flag, A::Error> {
        Skip::array(seq).map(|_| Flag(false))
    }
    fn string(_: &str) -> Flag {
        Flag(false)
    }
    fn number(_: Number) -> Flag {
        Flag(false)
    }
    fn boolean(b: bool) -> Flag {
        Flag(b)
    }
    fn null() -> Flag {
        Flag(false)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Flag>::new())
    }
}

struct StrField(Field<SmallStr>);

impl Build for StrField {
    type Out = Field<SmallStr>;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Out, A::Error> {
        other_object(map).map(Field::Other)
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self::Out, A::Error> {
        other_array(seq).map(Field::Other)
    }
    fn string(s: &str) -> Self::Out {
        Field::Ok(SmallStr::new(s))
    }
    other_for_field!();
}

impl<'de> Deserialize<'de> for StrField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<StrField>::new())
            .map(StrField)
    }
}

struct ArcStrField(Field<Arc<str>>);

impl Build for ArcStrField {
    type Out = Field<Arc<str>>;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Out, A::Error> {
        other_object(map).map(Field::Other)
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self::Out, A::Error> {
        other_array(seq).map(Field::Other)
    }
    fn string(s: &str) -> Self::Out {
        Field::Ok(Arc::from(s))
    }
    other_for_field!();
}

impl<'de> Deserialize<'de> for ArcStrField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<ArcStrField>::new())
            .map(ArcStrField)
    }
}

struct NumField(Field<f64>);

impl Build for NumField {
    type Out = Field<f64>;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Out, A::Error> {
        other_object(map).map(Field::Other)
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self::Out, A::Error> {
        other_array(seq).map(Field::Other)
    }
    fn string(s: &str) -> Self::Out {
        Field::Other(Box::new(Value::String(s.to_owned())))
    }
    fn number(n: Number) -> Self::Out {
        // Without arbitrary precision every Number converts.
        n.as_f64()
            .map_or_else(|| Field::Other(Box::new(Value::Number(n))), Field::Ok)
    }
    fn boolean(b: bool) -> Self::Out {
        Field::Other(Box::new(Value::Bool(b)))
    }
    fn null() -> Self::Out {
        Field::Other(Box::new(Value::Null))
    }
}

impl<'de> Deserialize<'de> for NumField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<NumField>::new())
            .map(NumField)
    }
}

impl Build for Scalar {
    type Out = Scalar;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Scalar, A::Error> {
        other_object(map).map(Scalar::Other)
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Scalar, A::Error> {
        other_array(seq).map(Scalar::Other)
    }
    fn string(s: &str) -> Scalar {
        Scalar::Str(SmallStr::new(s))
    }
    fn number(n: Number) -> Scalar {
        Scalar::Num(n)
    }
    fn boolean(b: bool) -> Scalar {
        Scalar::Bool(b)
    }
    fn null() -> Scalar {
        Scalar::Other(Box::new(Value::Null))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Scalar>::new())
    }
}

struct Annotations(Field<Vec<(SmallStr, Scalar)>>);

impl Build for Annotations {
    type Out = Field<Vec<(SmallStr, Scalar)>>;
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self::Out, A::Error> {
        let mut list: Vec<(SmallStr, Scalar)> = Vec::new();
        while let Some(k) = map.next_key::<KeyStr<'de>>()? {
            let v = map.next_value::<Scalar>()?;
            list.push((SmallStr::new(&k.0), v));
        }
        // Same view as a serde_json::Map: sorted keys, the last duplicate wins.
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(SmallStr, Scalar)> = Vec::with_capacity(list.len());
        for entry in list {
            match out.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => out.push(entry),
            }
        }
        Ok(Field::Ok(out))
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self::Out, A::Error> {
        other_array(seq).map(Field::Other)
    }
    fn string(s: &str) -> Self::Out {
        Field::Other(Box::new(Value::String(s.to_owned())))
    }
    other_for_field!();
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Annotations>::new())
            .map(Annotations)
    }
}

impl Build for Sub {
    type Out = Sub;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Sub, A::Error> {
        node_from_map(map).map(Sub::Node)
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Sub, A::Error> {
        other_array(seq).map(Sub::Other)
    }
    fn string(s: &str) -> Sub {
        Sub::Other(Box::new(Value::String(s.to_owned())))
    }
    fn number(n: Number) -> Sub {
        Sub::Other(Box::new(Value::Number(n)))
    }
    fn boolean(b: bool) -> Sub {
        Sub::Other(Box::new(Value::Bool(b)))
    }
    fn null() -> Sub {
        Sub::Other(Box::new(Value::Null))
    }
}

impl<'de> Deserialize<'de> for Sub {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Sub>::new())
    }
}

struct Subsegments(Field<Vec<Sub>>);

impl Build for Subsegments {
    type Out = Field<Vec<Sub>>;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Out, A::Error> {
        other_object(map).map(Field::Other)
    }
    fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self::Out, A::Error> {
        let mut subs = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(s) = seq.next_element::<Sub>()? {
            subs.push(s);
        }
        subs.shrink_to_fit();
        Ok(Field::Ok(subs))
    }
    fn string(s: &str) -> Self::Out {
        Field::Other(Box::new(Value::String(s.to_owned())))
    }
    other_for_field!();
}

impl<'de> Deserialize<'de> for Subsegments {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Subsegments>::new())
            .map(Subsegments)
    }
}

/// The top-level body: `Some(node)` for an object, `None` for anything else.
struct TopKind;

impl Build for TopKind {
    type Out = Option<Node>;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Out, A::Error> {
        node_from_map(map).map(Some)
    }
    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self::Out, A::Error> {
        Skip::array(seq).map(|_| None)
    }
    fn string(_: &str) -> Self::Out {
        None
    }
    fn number(_: Number) -> Self::Out {
        None
    }
    fn boolean(_: bool) -> Self::Out {
        None
    }
    fn null() -> Self::Out {
        None
    }
}

fn node_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Node, A::Error> {
    let mut n = Node::default();
    while let Some(key) = map.next_key::<KeyStr<'de>>()? {
        match &*key.0 {
            "name" => n.name = map.next_value::<StrField>()?.0,
            "id" => n.id = map.next_value::<StrField>()?.0,
            "trace_id" => n.trace_id = map.next_value::<ArcStrField>()?.0,
            "parent_id" => n.parent_id = map.next_value::<StrField>()?.0,
            "type" => n.kind = map.next_value::<StrField>()?.0,
            "namespace" => n.namespace = map.next_value::<StrField>()?.0,
            "origin" => n.origin = map.next_value::<StrField>()?.0,
            "start_time" => n.start_time = map.next_value::<NumField>()?.0,
            "end_time" => n.end_time = map.next_value::<NumField>()?.0,
            "in_progress" => n.in_progress = map.next_value::<Flag>()?.0,
            "error" => n.error = map.next_value::<Flag>()?.0,
            "fault" => n.fault = map.next_value::<Flag>()?.0,
            "throttle" => n.throttle = map.next_value::<Flag>()?.0,
            "annotations" => n.annotations = map.next_value::<Annotations>()?.0,
            "subsegments" => n.subsegments = map.next_value::<Subsegments>()?.0,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_keeps_odd_types() {
        let n = parse(
            br#"{"name":"a","id":"x","id":"y","start_time":1,"end_time":"2","in_progress":1,
                 "error":true,"annotations":{"b":1,"a":"s","b":2.5,"c":null},
                 "subsegments":[{"name":"s"},3],"http":{"x":[1,2,{"y":null}]}}"#,
        )
        .expect("object");
        assert_eq!(n.name.as_str(), Some("a"));
        assert_eq!(n.id.as_str(), Some("y"));
        assert_eq!(n.start_time.as_f64(), Some(1.0));
        assert_eq!(n.end_time, Field::Other(Box::new(Value::from("2"))));
        assert!(!n.in_progress && n.error);
        let Field::Ok(a) = &n.annotations else {
            panic!("annotations")
        };
        let keys: Vec<&str> = a.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(a[1].1, Scalar::Num(Number::from_f64(2.5).expect("finite")));
        let Field::Ok(subs) = &n.subsegments else {
            panic!("subsegments")
        };
        assert!(matches!(&subs[0], Sub::Node(s) if s.name.as_str() == Some("s")));
        assert!(matches!(&subs[1], Sub::Other(_)));
        assert!(n.heap_bytes() > size_of::<Node>());
    }

    #[test]
    fn same_verdict_as_value() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let cases: [&[u8]; 12] = [
            b"{\"a\":",
            b"nope",
            b"[1]",
            b"[1",
            b"\"s\"",
            b"{} x",
            b"{\"a\":1e999}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\xc3",
            b"{\"a\":\"\\x\"}",
            deep.as_bytes(),
            b"{\"a\":{\"b\":[1,{\"c\":\"\\u00e9\"}]}}",
        ];
        for body in cases {
            let want = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(_)) => None,
                Ok(_) => Some(ParseError::NotAnObject),
                Err(e) if e.is_eof() => Some(ParseError::Truncated),
                Err(_) => Some(ParseError::Invalid),
            };
            assert_eq!(
                parse(body).err(),
                want,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn picks_one_top_level_field() {
        let raw = r#"{"http":1,"a":{"http":2},"http":{"request":{"url":"u"}}}"#;
        assert_eq!(
            top_level_field(raw, "http"),
            Some(serde_json::json!({"request":{"url":"u"}}))
        );
        assert_eq!(top_level_field(raw, "nope"), None);
    }
}
