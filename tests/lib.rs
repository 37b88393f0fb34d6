//! End-to-end tests of the reference architecture (`examples/reference`). The test itself is
//! `e2e.rs`; run it with moto:
//!
//! ```text
//! scripts/with-moto.sh cargo test -p xray-e2e
//! ```
