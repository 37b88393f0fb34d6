//! Span fields as annotations and metadata, and error events as `cause` exceptions.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use xray_sdk::Record;
use xray_sdk::model::{StackFrame, sanitize_annotation_key};
use xray_sdk::{AnnotationValue, Cause, Context, Exception};

/// Default prefixes that turn a span field into an annotation.
pub const DEFAULT_ANNOTATION_PREFIXES: &[&str] = &["xray.annotation.", "annotation."];

/// Default metadata namespace for the other span fields.
pub const DEFAULT_METADATA_NAMESPACE: &str = "tracing";

/// How span fields are mapped.
pub(crate) struct FieldRules {
    pub(crate) annotation_prefixes: Vec<Cow<'static, str>>,
    pub(crate) annotation_fields: Vec<Cow<'static, str>>,
    /// `None`: fields that are not annotations are dropped.
    pub(crate) metadata_namespace: Option<Cow<'static, str>>,
}

impl Default for FieldRules {
    fn default() -> Self {
        FieldRules {
            annotation_prefixes: DEFAULT_ANNOTATION_PREFIXES
                .iter()
                .map(|p| Cow::Borrowed(*p))
                .collect(),
            annotation_fields: Vec::new(),
            metadata_namespace: Some(Cow::Borrowed(DEFAULT_METADATA_NAMESPACE)),
        }
    }
}

impl FieldRules {
    /// The annotation key for a field, if the field is an annotation.
    fn annotation_key(&self, name: &'static str) -> Option<Cow<'static, str>> {
        for prefix in &self.annotation_prefixes {
            if let Some(rest) = name.strip_prefix(prefix.as_ref()) {
                return Some(sanitize_annotation_key(rest));
            }
        }
        if self.annotation_fields.iter().any(|f| f == name) {
            return Some(sanitize_annotation_key(name));
        }
        None
    }
}

/// Field values collected from a span's attributes or a `record` call.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    annotations: Vec<(Cow<'static, str>, AnnotationValue<'static>)>,
    metadata: Vec<(&'static str, Value)>,
}

impl Fields {
    pub(crate) fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.metadata.is_empty()
    }

    /// Adds `other`'s values after this one's (later values win when applied).
    pub(crate) fn append(&mut self, mut other: Fields) {
        self.annotations.append(&mut other.annotations);
        self.metadata.append(&mut other.metadata);
    }

    /// Records the values into `ctx`. Never fails: an annotation X-Ray would refuse (a
    /// non-finite number) goes to metadata instead.
    pub(crate) fn apply(self, ctx: &Context, namespace: Option<&str>) {
        // All of them under one lock.
        ctx.update(|p| {
            for (key, value) in self.annotations {
                if let AnnotationValue::Float(f) = value
                    && !f.is_finite()
                {
                    if let Some(ns) = namespace {
                        p.put_metadata_in(ns, key, f.to_string());
                    }
                    continue;
                }
                // The key is sanitized and the value finite, so this cannot be refused.
                let _ = p.try_annotate(key, value);
            }
            if let Some(ns) = namespace {
                for (key, value) in self.metadata {
                    p.put_metadata_in(ns, key, value);
                }
            }
        });
    }
}

/// Collects span fields according to the rules.
pub(crate) struct FieldVisitor<'a> {
    pub(crate) rules: &'a FieldRules,
    pub(crate) out: &'a mut Fields,
}

impl FieldVisitor<'_> {
    fn push(
        &mut self,
        field: &Field,
        annotation: AnnotationValue<'static>,
        json: impl FnOnce() -> Value,
    ) {
        if let Some(key) = self.rules.annotation_key(field.name()) {
            self.out.annotations.push((key, annotation));
        } else if self.rules.metadata_namespace.is_some() {
            self.out.metadata.push((field.name(), json()));
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into(), || Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into(), || Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into(), || Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        // Numbers stay numbers while they fit in 64 bits; beyond that, text.
        if let Ok(v) = i64::try_from(value) {
            self.record_i64(field, v);
        } else if let Ok(v) = u64::try_from(value) {
            self.record_u64(field, v);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into(), || Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let text = value.to_owned();
        let json = text.clone();
        self.push(field, text.into(), || Value::String(json));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        // `%value` fields arrive here too, with `Debug` forwarding to `Display`.
        let _ = write!(text, "{value:?}");
        let json = text.clone();
        self.push(field, text.into(), || Value::String(json));
    }
}

/// What an error-level event says: its message and its `error` field.
#[derive(Default)]
pub(crate) struct EventVisitor {
    message: Option<String>,
    error_text: Option<String>,
    error_cause: Option<Cause>,
}

impl EventVisitor {
    /// The exception describing the event: the message and the error's text, the error's
    /// type when it was recorded as `&dyn Error` (the target otherwise), and the event's
    /// source location as the first stack frame.
    pub(crate) fn into_cause(self, meta: &tracing::Metadata<'_>) -> Cause {
        let message = match (self.message, self.error_text) {
            (Some(m), Some(e)) if !m.is_empty() => format!("{m}: {e}"),
            (_, Some(e)) => e,
            (Some(m), None) => m,
            (None, None) => meta.name().to_owned(),
        };
        let frame = StackFrame {
            path: meta.file().map(str::to_owned),
            line: meta.line(),
            label: Some(meta.target().to_owned()),
        };
        match self.error_cause {
            Some(mut cause) if !cause.exceptions.is_empty() => {
                if let Some(first) = cause.exceptions.first_mut() {
                    first.message = Some(message);
                    first.stack.insert(0, frame);
                }
                cause
            }
            _ => {
                let mut exception = Exception::new(message, meta.target());
                exception.stack.push(frame);
                Cause::from_exception(exception)
            }
        }
    }
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_owned()),
            "error" => self.error_text = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() == "error" {
            self.error_text = Some(value.to_string());
            self.error_cause = Some(Cause::from_dyn_error(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let slot = match field.name() {
            "message" => &mut self.message,
            "error" => &mut self.error_text,
            _ => return,
        };
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        *slot = Some(text);
    }
}
