//! The ways in: each surface uses the state (`crate::state`), the views and
//! the operations, and no other surface.
//!
//! - [`udp`]: the daemon's segment intake (UDP);
//! - [`sampling_api`]: the daemon's sampling API (TCP);
//! - [`xray_api`]: the X-Ray API as AWS clients speak it (UI port);
//! - [`viewer`]: the web UI and its `/api/*` (UI port).

pub mod aws_json;
pub mod peers;
pub mod sampling_api;
pub mod udp;
pub mod viewer;
pub mod xray_api;
