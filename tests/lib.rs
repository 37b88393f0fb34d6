//! End-to-end tests of the reference architecture (`examples/reference`). The test itself is
//! `e2e.rs`; run it with moto:
//!
//! ```text
//! scripts/with-moto.sh cargo test -p xray-e2e
//! ```
//!
//! `quick_start.rs` is the README's quick start as a binary, and `quick_start_test.rs` runs it.

// What a new user copies must build without a warning (a deprecation included).
#![doc(test(attr(deny(warnings))))]

/// The README's Rust examples, compiled (not run) as this crate's doctests, so that what a
/// new user copies builds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
