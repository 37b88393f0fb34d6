//! The ways in: each surface uses the state (`crate::state`), the views and
//! the operations, and no other surface.
//!
//! - [`udp`]: the daemon's segment intake (UDP);
//! - [`sampling_api`]: the daemon's sampling API (TCP);
//! - [`xray_api`]: the X-Ray API as AWS clients speak it (UI port);
//! - [`otlp_http`]: OTLP/HTTP `POST /v1/traces` (UI port); OTLP datagrams
//!   (`T1S`) come in through [`udp`];
//! - [`viewer`]: the web UI and its `/api/*` (UI port).

pub mod aws_json;
pub mod otlp_http;
pub mod peers;
pub mod sampling_api;
pub mod udp;
pub mod viewer;
pub mod xray_api;
