//! Shared test helpers: a real subscriber with the layer, a real UDP capture.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use xray_sdk::Recorder;
use xray_sdk::testing::{UdpCapture, flatten};
use xray_sdk_tracing::XRayTracingLayer;

pub const WAIT: Duration = Duration::from_secs(5);

pub struct Harness {
    pub capture: UdpCapture,
    pub recorder: Recorder,
    pub dispatch: Dispatch,
}

pub fn harness(layer: XRayTracingLayer) -> Harness {
    let capture = UdpCapture::start().expect("bind capture");
    let recorder = capture.recorder("tracing-test");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    Harness {
        capture,
        recorder,
        dispatch,
    }
}

impl Harness {
    /// Runs `f` with this harness's subscriber as the thread's default.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    /// Runs `fut` on a current-thread runtime with the subscriber as default.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        self.run(|| rt.block_on(fut))
    }

    /// Flushes and returns every entity of the one segment sent (segment included), as
    /// (id, parent id, document).
    pub fn entities(&self) -> Vec<(String, Option<String>, Value)> {
        self.recorder.flush(WAIT).expect("flush");
        let mut docs: Vec<Value> = self.capture.drain_documents(Duration::from_millis(200));
        docs.retain(|d| !d.is_null());
        flatten(&docs)
    }
}

/// The entity named `name` (panics when absent or ambiguous).
pub fn named<'a>(
    entities: &'a [(String, Option<String>, Value)],
    name: &str,
) -> &'a (String, Option<String>, Value) {
    let found: Vec<_> = entities.iter().filter(|e| e.2["name"] == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one entity named {name:?} in {:#?}",
        entities.iter().map(|e| &e.2["name"]).collect::<Vec<_>>()
    );
    found[0]
}

/// Names of all entities, sorted.
pub fn names(entities: &[(String, Option<String>, Value)]) -> Vec<String> {
    let mut n: Vec<String> = entities
        .iter()
        .map(|e| e.2["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    n.sort();
    n
}

pub fn parent_of(entities: &[(String, Option<String>, Value)], name: &str) -> Option<String> {
    named(entities, name).1.clone()
}

pub fn id_of(entities: &[(String, Option<String>, Value)], name: &str) -> String {
    named(entities, name).0.clone()
}
