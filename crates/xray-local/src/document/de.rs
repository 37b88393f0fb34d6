//! The serde visitors that build a [`Node`] straight from JSON text: one
//! generic visitor ([`AnyVisitor`]) accepts every JSON type, and a [`Build`]
//! implementation per field type decides what to keep.

use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::{Details, Field, Node, Scalar, SmallStr, Sub};

pub(super) struct FieldPicker<'k>(pub(super) &'k str);

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
pub(super) struct Top(pub(super) Option<Node>);

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
    let mut http = Http::default();
    let mut user = None;
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
            "http" => http = map.next_value::<Http>()?,
            "user" => user = map.next_value::<StrField>()?.0.ok().cloned(),
            _ => {
                map.next_value::<Skip>()?;
            }
        }
    }
    let details = Details {
        url: http.request.url,
        method: http.request.method,
        user_agent: http.request.user_agent,
        client_ip: http.request.client_ip,
        status: http.status,
        user,
    };
    if details != Details::default() {
        n.details = Some(Box::new(details));
    }
    Ok(n)
}

/// An `http` block: the request's strings and the response's status (a
/// duplicate key replaces the earlier value, like a `serde_json::Map`).
#[derive(Default)]
struct Http {
    request: Request,
    status: Option<f64>,
}

#[derive(Default)]
struct Request {
    url: Option<SmallStr>,
    method: Option<SmallStr>,
    user_agent: Option<SmallStr>,
    client_ip: Option<SmallStr>,
}

/// A number, or `None` for any other JSON type.
struct OptNum(Option<f64>);

impl<'de> Deserialize<'de> for OptNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OptNum(NumField::deserialize(d)?.0.as_f64()))
    }
}

/// A string, or `None` for any other JSON type.
fn opt_str<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<SmallStr>, A::Error> {
    Ok(map.next_value::<StrField>()?.0.ok().cloned())
}

/// Skips values that are not objects.
macro_rules! objects_only {
    ($t:ty) => {
        fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<$t, A::Error> {
            Skip::array(seq).map(|_| <$t>::default())
        }
        fn string(_: &str) -> $t {
            <$t>::default()
        }
        fn number(_: Number) -> $t {
            <$t>::default()
        }
        fn boolean(_: bool) -> $t {
            <$t>::default()
        }
        fn null() -> $t {
            <$t>::default()
        }
    };
}

impl Build for Http {
    type Out = Http;
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Http, A::Error> {
        let mut h = Http::default();
        while let Some(k) = map.next_key::<KeyStr<'de>>()? {
            match &*k.0 {
                "request" => h.request = map.next_value::<Request>()?,
                "response" => h.status = map.next_value::<Response>()?.0,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(h)
    }
    objects_only!(Http);
}

impl<'de> Deserialize<'de> for Http {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Http>::new())
    }
}

impl Build for Request {
    type Out = Request;
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Request, A::Error> {
        let mut r = Request::default();
        while let Some(k) = map.next_key::<KeyStr<'de>>()? {
            match &*k.0 {
                "url" => r.url = opt_str(&mut map)?,
                "method" => r.method = opt_str(&mut map)?,
                "user_agent" => r.user_agent = opt_str(&mut map)?,
                "client_ip" => r.client_ip = opt_str(&mut map)?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(r)
    }
    objects_only!(Request);
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Request>::new())
    }
}

/// The `status` of a `response` object.
#[derive(Default)]
struct Response(Option<f64>);

impl Build for Response {
    type Out = Response;
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Response, A::Error> {
        let mut status = None;
        while let Some(k) = map.next_key::<KeyStr<'de>>()? {
            if &*k.0 == "status" {
                status = map.next_value::<OptNum>()?.0;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Response(status))
    }
    objects_only!(Response);
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor::<Response>::new())
    }
}
