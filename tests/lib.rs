//! End-to-end tests of the reference architecture (`examples/reference`). The test itself is
//! `e2e.rs`; run it with moto:
//!
//! ```text
//! scripts/with-moto.sh cargo test -p xray-e2e
//! ```

/// The README's Rust examples, compiled (not run) as this crate's doctests, so that what a
/// new user copies builds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
