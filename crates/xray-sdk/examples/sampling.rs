//! Placeholder: prints the default decision.
fn main() {}
