//! One module per subcommand family.

pub mod bench;
pub mod experiment;
pub mod speedup;
