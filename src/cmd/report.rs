//! `psim report DIR`: write DIR/report.html, one self-contained page.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// `psim report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// An output directory written by `psim run`, `sweep` or `reproduce`.
    dir: PathBuf,
}

/// Writes the page and prints its path.
pub fn report(a: ReportArgs) -> Result<()> {
    let path = psim_scenarios::report::write(&a.dir)
        .with_context(|| format!("building the report of `{}`", a.dir.display()))?;
    println!("{}", path.display());
    Ok(())
}
