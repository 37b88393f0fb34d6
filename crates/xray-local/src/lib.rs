//! `xray-local`: a local, offline stand-in for AWS X-Ray.
//!
//! It accepts segment documents over UDP exactly like the daemon, answers
//! the daemon's sampling API, speaks the X-Ray API as the AWS CLI and SDKs
//! do (`--endpoint-url`), assembles traces in memory, flags documents the
//! X-Ray service would reject, and serves a web viewer.
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
