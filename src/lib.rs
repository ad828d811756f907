//! The `psim` command line as a library: the flag → experiment logic the
//! CLI and the Python package (`python/`) share, so both validate and
//! word their errors the same way.

pub mod cli;
pub mod cmd;
