//! One module per subcommand family.

pub mod bench;
pub mod experiment;
pub mod merge;
pub mod report;
pub mod speedup;
pub mod theory;
