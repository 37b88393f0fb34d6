//! Views computed from the store on each request: trace summaries, the
//! timeline of one trace, the service map and filter expressions. Nothing is
//! pre-aggregated, so late or replaced documents are always reflected.

pub mod documents;
pub mod filter;
pub mod graph;
pub mod histogram;
pub mod summary;
pub mod timeline;
