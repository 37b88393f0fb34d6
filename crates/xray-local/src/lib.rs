//! `xray-local`: a local, offline stand-in for AWS X-Ray.
//!
//! It accepts segment documents over UDP exactly like the daemon, answers
//! the daemon's sampling API, speaks the X-Ray API as the AWS CLI and SDKs
//! do (`--endpoint-url`), assembles traces in memory, flags documents the
//! X-Ray service would reject, and serves a web viewer.
//!
//! It is meant to be installed as a program (`cargo install xray-local`). The library is what
//! the binary, this repository's demo and its tests are built from: its API is not covered
//! by the 0.x compatibility rules of the `xray-sdk` crates and may change in any release.
//!
//! The modules are layered; each uses only the ones listed before it:
//!
//! 1. leaves: [`config`], [`document`], [`intake`], [`validate`], [`procfs`];
//! 2. [`state`]: the store, the sampling rules, the counters ([`App`]);
//! 3. [`views`]: summaries, timelines, the service map, filter expressions;
//! 4. [`ops`]: the X-Ray API operations, JSON in and out;
//! 5. [`surfaces`]: UDP intake, sampling API, X-Ray API, viewer;
//! 6. [`server`]: binds the listeners and runs the surfaces.
//!
//! ```no_run
//! # async fn demo() -> Result<(), xray_local::StartError> {
//! let server = xray_local::Server::start(xray_local::Config::ephemeral()).await?;
//! println!("UI on http://{}/", server.ui_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! None: the binary and the library have no optional parts.
//!
//! ## The crates
//!
//! - [`xray-sdk`](https://docs.rs/xray-sdk) — the core: recorder, segments, header, sampling, emitter
//! - [`xray-sdk-tower`](https://docs.rs/xray-sdk-tower) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - [`xray-sdk-reqwest`](https://docs.rs/xray-sdk-reqwest) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - [`xray-sdk-aws`](https://docs.rs/xray-sdk-aws) — the AWS SDK for Rust: a subsegment per AWS call
//! - [`xray-sdk-tracing`](https://docs.rs/xray-sdk-tracing) — `tracing` spans as subsegments, trace IDs in log lines
//! - [`xray-sdk-lambda`](https://docs.rs/xray-sdk-lambda) — AWS Lambda functions
//! - `xray-local` (this crate) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

pub mod config;
pub mod document;
pub mod intake;
pub mod ops;
pub mod otlp;
pub mod procfs;
pub mod server;
pub mod state;
pub mod surfaces;
pub mod validate;
pub mod views;

pub use config::Config;
pub use server::{Server, StartError};
pub use state::App;
