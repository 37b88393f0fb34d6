//! `xray-local`: a local, offline stand-in for the AWS X-Ray daemon.
//!
//! It accepts segment documents over UDP exactly like the daemon, answers
//! the sampling API from a local rules file, assembles traces in memory,
//! flags documents the X-Ray service would reject, and serves a web UI and
//! a JSON API (trace list, timeline, service map, counters).
//!
//! ```no_run
//! # async fn demo() -> Result<(), xray_local::StartError> {
//! let server = xray_local::Server::start(xray_local::Config::ephemeral()).await?;
//! println!("UI on http://{}/", server.ui_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod config;
pub mod document;
pub mod graph;
pub mod intake;
pub mod query;
pub mod sampling;
pub mod server;
pub mod store;
pub mod summary;
pub mod timeline;
mod ui;
pub mod validate;

pub use config::Config;
pub use server::{App, Server, StartError};
