//! Error types of the common crate: every variant names the offending field,
//! the value that was given and what would have been accepted.

use thiserror::Error;

/// A configuration value outside its allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid `{field}` = {value}: must be {allowed}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `momentum` or `objective.spectrum[2]`.
    pub field: String,
    /// The rejected value, as the user wrote it (or as it was computed).
    pub value: String,
    /// The allowed range in words, e.g. `in [0, 1)`.
    pub allowed: String,
}

impl ConfigError {
    /// Builds an error for `field` holding `value` that must be `allowed`.
    pub fn new(field: impl Into<String>, value: impl ToString, allowed: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// A delay-model specification that could not be parsed.
#[derive(Debug, Clone, PartialEq, Error)]
#[error(
    "invalid delay model `{spec}`: {reason}\n  syntax: {}",
    crate::delay::SYNTAX_HELP
)]
pub struct DelayParseError {
    /// The text that was given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl DelayParseError {
    pub(crate) fn new(spec: &str, reason: impl Into<String>) -> Self {
        Self {
            spec: spec.to_string(),
            reason: reason.into(),
        }
    }
}
