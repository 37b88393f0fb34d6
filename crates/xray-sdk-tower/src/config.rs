//! The settings every clone of the service shares.

use xray_sdk::Recorder;

use crate::naming::SegmentNaming;

/// Settings shared (behind one `Arc`) by every clone of the service.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) recorder: Recorder,
    pub(crate) naming: SegmentNaming,
    pub(crate) response_header: bool,
}
