//! Internally tagged sections (`kind = "..."` beside the variant's fields)
//! read so that an error names its key.
//!
//! serde's derived deserializer for an internally tagged enum buffers the
//! section's fields before it knows the variant, and an error inside them
//! (`consistency = ["asp", "bsp"]`) then loses its key: the message says
//! "invalid type: sequence, expected a string" at the section's header.
//! Reading the section as a table and deserializing the variant from it
//! with the key path tracked gives "`cluster.consistency`: invalid type:
//! sequence, expected a string" instead.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};

/// The section's `kind` and the rest of its fields.
pub(crate) fn split<'de, D: Deserializer<'de>>(
    d: D,
    kinds: &'static [&'static str],
) -> Result<(String, toml::Value), D::Error> {
    let mut table = toml::Table::deserialize(d)?;
    match table.remove("kind") {
        Some(toml::Value::String(kind)) => Ok((kind, toml::Value::Table(table))),
        Some(other) => Err(D::Error::custom(format!(
            "`kind`: expected a string, one of {}; found {}",
            kinds.join(", "),
            other.type_str()
        ))),
        None => Err(D::Error::missing_field("kind")),
    }
}

/// The variant's settings from the section's other fields, an error naming
/// the key path (relative to the section) where it went wrong.
pub(crate) fn part<T: DeserializeOwned, E: Error>(fields: toml::Value) -> Result<T, E> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message();
        if path == "." || path.is_empty() {
            E::custom(message)
        } else {
            E::custom(format!("`{path}` (under this table): {message}"))
        }
    })
}

/// The error for a `kind` that is none of `kinds`.
pub(crate) fn unknown<E: Error>(kind: &str, kinds: &'static [&'static str]) -> E {
    E::unknown_variant(kind, kinds)
}

#[cfg(test)]
mod tests {
    use crate::config::Experiment;

    /// A wrong value under every tagged section is named by its key, never
    /// reported as a bare type mismatch at the section's header.
    #[test]
    fn a_wrong_type_in_a_tagged_section_names_its_key() {
        let good = toml::to_string(&Experiment {
            base: crate::RunConfig {
                engine: crate::EngineConfig::new(
                    crate::EngineKind::VirtualTime,
                    crate::ClusterConfig::default(),
                ),
                ..Default::default()
            },
            name: "run".into(),
            grid: Default::default(),
            tradeoff: None,
        })
        .unwrap();
        assert!(toml::from_str::<Experiment>(&good).is_ok());
        for (line, key) in [
            ("consistency = ", "cluster.consistency"),
            ("workers = ", "cluster.workers"),
            ("compute_time = ", "cluster.compute_time"),
            ("spectrum = ", "spectrum"),
            ("data = ", "data"),
        ] {
            let bad: String = good
                .lines()
                .map(|l| {
                    if l.starts_with(line) {
                        format!("{line}[[1]]\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            assert_ne!(bad, good, "{line} is not in the config");
            let err = toml::from_str::<Experiment>(&bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}")), "{key}: {err}");
        }
    }
}
