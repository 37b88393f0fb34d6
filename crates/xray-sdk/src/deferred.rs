//! Entity fields worked out when the document is written, off the request path.
//!
//! An adapter knows, when a call ends, everything its subsegment's `aws` block will hold,
//! but turning it into JSON (picking whitelisted parameters out of a serialized request and
//! response, formatting the operation and region) takes time the caller would wait for.
//! [`Record::add_deferred_fields`] hands that work over in one value instead, usually
//! holding cheap clones (reference-counted bodies, `'static` names); the emitter's thread
//! calls it when it writes the document.
//!
//! [`Record::add_deferred_fields`]: crate::Record::add_deferred_fields

use std::fmt;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::json::{write_str, write_u64};

/// Fields of an entity produced when its document is written, on the emitter's thread.
///
/// [`aws`](DeferredFields::aws) can run more than once for one entity (a document over the
/// size limit is written again in parts) and must give the same fields each time. Fields
/// set directly with [`Record::set_aws_field`] win over deferred ones with the same key,
/// and the first deferred value of a key wins over later ones. More kinds of fields may be
/// added as provided methods.
///
/// [`Record::set_aws_field`]: crate::Record::set_aws_field
///
/// ```
/// use std::sync::Arc;
/// use xray_sdk::Record;
/// use xray_sdk::deferred::{AwsFieldWriter, DeferredFields};
///
/// /// The table name, read from a request body only if the subsegment is ever written.
/// #[derive(Debug)]
/// struct TableFromBody(Arc<[u8]>);
///
/// impl DeferredFields for TableFromBody {
///     fn aws(&self, out: &mut AwsFieldWriter<'_>) {
///         if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&self.0) {
///             if let Some(table) = body.get("TableName").and_then(|t| t.as_str()) {
///                 out.str("table_name", table);
///             }
///         }
///     }
/// }
///
/// # let recorder = xray_sdk::Recorder::disabled();
/// # let segment = recorder.segment("svc").begin();
/// let body: Arc<[u8]> = Arc::from(&br#"{"TableName":"orders"}"#[..]);
/// segment.begin_subsegment("DynamoDB").end_with(|e| {
///     e.set_aws_field("operation", "GetItem");
///     e.add_deferred_fields(Box::new(TableFromBody(body)));
/// });
/// ```
pub trait DeferredFields: fmt::Debug + Send + 'static {
    /// Writes fields of the `aws` block (subsegments).
    fn aws(&self, out: &mut AwsFieldWriter<'_>) {
        let _ = out;
    }
}

/// Where [`DeferredFields::aws`] puts its fields: straight into the document being
/// written.
pub struct AwsFieldWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Keys written so far (fields set directly come first, and win over deferred ones).
    written: Vec<&'a str>,
    /// Whether `"aws":{` has been written.
    opened: bool,
    /// Keys the block already has (a segment's `xray`, `ecs`, ...), which fields cannot
    /// replace.
    taken: &'a [&'a str],
    error: Option<serde_json::Error>,
}

impl fmt::Debug for AwsFieldWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsFieldWriter")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<'a> AwsFieldWriter<'a> {
    /// A writer that opens `,"aws":{` with its first field.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self::start(out, false, &[])
    }

    /// A writer inside a block already opened (`{"xray":...` written, without its closing
    /// brace), whose `taken` keys the fields cannot replace.
    pub(crate) fn continuing(out: &'a mut Vec<u8>, taken: &'a [&'a str]) -> Self {
        Self::start(out, true, taken)
    }

    fn start(out: &'a mut Vec<u8>, opened: bool, taken: &'a [&'a str]) -> Self {
        AwsFieldWriter {
            out,
            written: Vec::new(),
            opened,
            taken,
            error: None,
        }
    }

    /// Writes a field whose value is JSON text, unless its key was written already.
    pub(crate) fn raw(&mut self, key: &'a str, json: &str) {
        if self.claim(key) {
            self.out.extend_from_slice(json.as_bytes());
        }
    }

    /// Runs `fields` on this writer. A panic in it (deferred fields can be user code, run
    /// on the emitter's thread) is caught and logged, and whatever it had written is taken
    /// back, so the document stays valid and the emitter goes on.
    pub(crate) fn write_guarded(&mut self, fields: &dyn DeferredFields) {
        let (len, opened, keys) = (self.out.len(), self.opened, self.written.len());
        let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fields.aws(self)));
        if wrote.is_err() {
            tracing::warn!("deferred aws fields panicked while the document was written; left out");
            self.out.truncate(len);
            self.opened = opened;
            self.written.truncate(keys);
        }
    }

    /// Closes the block (if anything was written) and reports the first error.
    pub(crate) fn finish(self) -> Result<(), serde_json::Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.opened {
            self.out.push(b'}');
        }
        Ok(())
    }

    /// Writes a field's value, built.
    pub fn value(&mut self, key: &'static str, value: &Value) {
        if self.claim(key) {
            let result = serde_json::to_writer(&mut *self.out, value);
            self.note(result);
        }
    }

    /// Writes a field whose value is already JSON text (copied as it is).
    pub fn json(&mut self, key: &'static str, value: &RawValue) {
        if self.claim(key) {
            self.out.extend_from_slice(value.get().as_bytes());
        }
    }

    /// Writes a string field.
    pub fn str(&mut self, key: &'static str, value: &str) {
        if self.claim(key) {
            let result = write_str(self.out, value);
            self.note(result);
        }
    }

    /// Writes an integer field.
    pub fn u64(&mut self, key: &'static str, value: u64) {
        if self.claim(key) {
            write_u64(self.out, value);
        }
    }

    /// True (and the key written) if `key` is not taken yet.
    fn claim(&mut self, key: &'a str) -> bool {
        if self.error.is_some() || self.written.contains(&key) || self.taken.contains(&key) {
            return false;
        }
        self.written.push(key);
        self.open_field(key);
        // Keys are written by `open_field`; an escaping error is noted there.
        self.error.is_none()
    }

    fn open_field(&mut self, key: &str) {
        self.out
            .extend_from_slice(if self.opened { b"," } else { b",\"aws\":{" });
        self.opened = true;
        let result = write_str(self.out, key);
        self.note(result);
        self.out.push(b':');
    }

    fn note(&mut self, result: Result<(), serde_json::Error>) {
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::record::Record;
    use crate::testing::{UdpCapture, flatten};

    #[derive(Debug)]
    struct Fields {
        calls: Arc<AtomicUsize>,
    }

    impl DeferredFields for Fields {
        fn aws(&self, out: &mut AwsFieldWriter<'_>) {
            self.calls.fetch_add(1, Ordering::Relaxed);
            out.str("operation", "Deferred");
            out.str("table_name", "quote\"d");
            out.u64("retries", 2);
            out.u64("retries", 3);
            out.json(
                "consumed_capacity",
                &RawValue::from_string(r#"{"CapacityUnits":0.5}"#.to_owned()).unwrap(),
            );
            out.value("table_names", &json!(["a", "b"]));
        }
    }

    #[derive(Debug)]
    struct Nothing;

    /// A second source: its `retries` loses to the first source's, its own key is kept.
    #[derive(Debug)]
    struct More;

    impl DeferredFields for More {
        fn aws(&self, out: &mut AwsFieldWriter<'_>) {
            out.u64("retries", 9);
            out.str("queue_url", "https://sqs.example/q");
        }
    }

    impl DeferredFields for Nothing {}

    fn subsegments(capture: &UdpCapture) -> Vec<serde_json::Value> {
        let docs = capture.documents(1, Duration::from_secs(5));
        flatten(&docs)
            .into_iter()
            .map(|(_, _, d)| d)
            .filter(|d| d["name"] != "svc")
            .collect()
    }

    #[test]
    fn deferred_fields_are_written_on_the_emitter_thread_after_direct_ones() {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("svc");
        let calls = Arc::new(AtomicUsize::new(0));
        let segment = recorder.segment("svc").begin();
        segment.begin_subsegment("DynamoDB").end_with(|e| {
            e.set_aws_field("operation", "GetItem");
            e.add_deferred_fields(Box::new(Fields {
                calls: Arc::clone(&calls),
            }));
            e.add_deferred_fields(Box::new(Nothing));
            e.add_deferred_fields(Box::new(More));
        });
        assert_eq!(calls.load(Ordering::Relaxed), 0, "not on the request path");
        segment.end();
        let subs = subsegments(&capture);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(
            subs[0]["aws"],
            json!({
                "operation": "GetItem",
                "table_name": "quote\"d",
                "retries": 2,
                "consumed_capacity": {"CapacityUnits": 0.5},
                "table_names": ["a", "b"],
                "queue_url": "https://sqs.example/q",
            })
        );
    }

    /// Writes a field, then panics half-way through the next one.
    #[derive(Debug)]
    struct Panics;

    impl DeferredFields for Panics {
        fn aws(&self, out: &mut AwsFieldWriter<'_>) {
            out.str("before_panic", "x");
            out.u64("half_written", 1);
            panic!("deferred fields failed");
        }
    }

    #[test]
    fn a_panicking_source_is_left_out_and_the_emitter_goes_on() {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("svc");
        for round in 0..2 {
            let segment = recorder.segment("svc").begin();
            segment.begin_subsegment("call").end_with(|e| {
                e.set_aws_field("operation", "Op");
                e.add_deferred_fields(Box::new(Panics));
                e.add_deferred_fields(Box::new(More));
            });
            segment.end();
            let subs = subsegments(&capture);
            assert_eq!(subs.len(), 1, "round {round}");
            assert_eq!(
                subs[0]["aws"],
                json!({"operation": "Op", "retries": 9, "queue_url": "https://sqs.example/q"}),
                "round {round}"
            );
        }
    }

    #[test]
    fn no_fields_no_block() {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("svc");
        let segment = recorder.segment("svc").begin();
        segment
            .begin_subsegment("empty")
            .end_with(|e| e.add_deferred_fields(Box::new(Nothing)));
        segment.end();
        let subs = subsegments(&capture);
        assert_eq!(subs.len(), 1);
        assert!(subs[0].get("aws").is_none(), "{}", subs[0]);
    }
}
