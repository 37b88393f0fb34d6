//! [`SqsLink`]: the trace of the sender of an SQS message, from its `AWSTraceHeader`.

use xray_sdk::{EntityId, Record, SamplingFlag, TraceHeader, TraceId};

/// The annotation a link is recorded as: the sender's trace ID, indexed, so that
/// `annotation.linked_trace_id = "1-..."` finds the invocations that received a trace's
/// messages.
pub const LINK_ANNOTATION: &str = "linked_trace_id";

/// The metadata key (default namespace) a link is recorded under, in full.
pub const LINK_METADATA: &str = "sqs_link";

/// The trace a message was sent in: the value of its `AWSTraceHeader` system attribute
/// (`Root=...;Parent=...;Sampled=...`), which SQS sets when the sender was traced.
///
/// Lambda delivers a batch of messages to one invocation, whose own trace is Lambda's, so a
/// message's trace is a *link*, not a parent. The X-Ray segment format has no field for
/// links on subsegments (the documented fields, and the official SDKs, have none: their SQS
/// helpers only read the `Sampled` flag, [`SqsLink::is_sampled`]), so [`SqsLink::record`]
/// writes it as the annotation [`LINK_ANNOTATION`] (the sender's trace ID, searchable) and the
/// metadata [`LINK_METADATA`] (trace ID, parent ID, sampled, message ID). One entity holds
/// one link: record each message's on a subsegment of its own.
///
/// ```
/// use xray_sdk_lambda::SqsLink;
///
/// let link = SqsLink::parse(
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
/// )
/// .unwrap();
/// assert!(link.is_sampled());
/// assert_eq!(link.trace_id().to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// assert!(SqsLink::parse("Root=garbage").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsLink {
    header: TraceHeader,
    trace_id: TraceId,
    message_id: Option<String>,
}

/// The name of the system attribute that carries the sender's trace header.
pub const TRACE_ATTRIBUTE: &str = "AWSTraceHeader";

impl SqsLink {
    /// The link in an `AWSTraceHeader` value; `None` without a valid `Root`.
    pub fn parse(value: &str) -> Option<SqsLink> {
        let header = TraceHeader::parse(value);
        let trace_id = header.root()?;
        Some(SqsLink {
            header,
            trace_id,
            message_id: None,
        })
    }

    /// The link of a message of an SQS event, from its `AWSTraceHeader` attribute.
    #[cfg(feature = "sqs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
    pub fn from_message(message: &aws_lambda_events::sqs::SqsMessage) -> Option<SqsLink> {
        let mut link = SqsLink::parse(message.attributes.get(TRACE_ATTRIBUTE)?)?;
        link.message_id.clone_from(&message.message_id);
        Some(link)
    }

    /// The same link, naming the message it came with.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// The sender's trace ID.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The sender's entity (the subsegment that sent the message), when given.
    pub fn parent_id(&self) -> Option<EntityId> {
        self.header.parent()
    }

    /// True when the sender's trace is sampled (`Sampled=1`): what the official SDKs'
    /// `SQSMessageHelper.isSampled` answers.
    pub fn is_sampled(&self) -> bool {
        self.header.sampled() == SamplingFlag::Sampled
    }

    /// The message this link came with, when known.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The whole header, as the message carried it.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// Records the link on `entity`: the annotation [`LINK_ANNOTATION`] and the metadata
    /// [`LINK_METADATA`].
    pub fn record<'a>(&self, entity: &impl Record<'a>) {
        let trace_id = self.trace_id.to_string();
        let parent_id = self.parent_id().map(|p| p.to_string());
        entity.put_metadata(
            LINK_METADATA,
            xray_sdk::serde_json::json!({
                "trace_id": trace_id,
                "parent_id": parent_id,
                "sampled": self.is_sampled(),
                "message_id": self.message_id,
            }),
        );
        entity.annotate(LINK_ANNOTATION, trace_id);
    }
}
