//! The `sql` block.

use serde::Serialize;

/// The `sql` block of a subsegment for a database query.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sql {
    /// Connection string, without a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Database URL, without a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The query, with user values replaced by placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<String>,
    /// Database engine, e.g. `PostgreSQL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    /// Database engine version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_version: Option<String>,
    /// Client driver name and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// Database user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `call` or `statement`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preparation: Option<String>,
}
