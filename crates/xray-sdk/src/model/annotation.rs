//! Annotation values and why an annotation can be refused.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// Why an annotation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnnotationError {
    /// The key is empty, longer than 500 characters, or has characters other than ASCII
    /// letters, digits and `_`.
    InvalidKey(String),
    /// A number annotation was NaN or infinite.
    NonFiniteNumber(String),
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnotationError::InvalidKey(k) => write!(
                f,
                "invalid annotation key {k:?}: use 1 to 500 ASCII letters, digits or underscores"
            ),
            AnnotationError::NonFiniteNumber(k) => {
                write!(f, "annotation {k:?} is not a finite number")
            }
        }
    }
}

impl std::error::Error for AnnotationError {}

/// An annotation value: string, number or boolean (the only types X-Ray indexes).
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationValue<'a> {
    /// A string, up to 1000 characters.
    String(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A floating point number (must be finite).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Serialize for AnnotationValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AnnotationValue::String(v) => s.serialize_str(v),
            AnnotationValue::Int(v) => s.serialize_i64(*v),
            AnnotationValue::Float(v) => s.serialize_f64(*v),
            AnnotationValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl<'a> From<&'a str> for AnnotationValue<'a> {
    fn from(v: &'a str) -> Self {
        AnnotationValue::String(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a String> for AnnotationValue<'a> {
    fn from(v: &'a String) -> Self {
        AnnotationValue::String(Cow::Borrowed(v))
    }
}
impl From<String> for AnnotationValue<'_> {
    fn from(v: String) -> Self {
        AnnotationValue::String(Cow::Owned(v))
    }
}
impl<'a> From<Cow<'a, str>> for AnnotationValue<'a> {
    fn from(v: Cow<'a, str>) -> Self {
        AnnotationValue::String(v)
    }
}
impl From<bool> for AnnotationValue<'_> {
    fn from(v: bool) -> Self {
        AnnotationValue::Bool(v)
    }
}
impl From<f64> for AnnotationValue<'_> {
    fn from(v: f64) -> Self {
        AnnotationValue::Float(v)
    }
}
impl From<f32> for AnnotationValue<'_> {
    fn from(v: f32) -> Self {
        AnnotationValue::Float(f64::from(v))
    }
}
macro_rules! int_annotation {
    ($($t:ty),*) => {$(
        impl From<$t> for AnnotationValue<'_> {
            fn from(v: $t) -> Self { AnnotationValue::Int(i64::from(v)) }
        }
    )*};
}
int_annotation!(i8, i16, i32, i64, u8, u16, u32);
impl From<u64> for AnnotationValue<'_> {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(AnnotationValue::Float(v as f64), AnnotationValue::Int)
    }
}
impl From<usize> for AnnotationValue<'_> {
    fn from(v: usize) -> Self {
        i64::try_from(v).map_or(AnnotationValue::Float(v as f64), AnnotationValue::Int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_values_serialize() {
        let v = [
            AnnotationValue::from("s"),
            AnnotationValue::from(3u32),
            AnnotationValue::from(-2i64),
            AnnotationValue::from(1.5f64),
            AnnotationValue::from(true),
        ];
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["s",3,-2,1.5,true]"#);
    }
}
