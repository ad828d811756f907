//! `psim report DIR`: write DIR/report.html, one self-contained page.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// `psim report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// An output directory written by `psim run`, `sweep` or `reproduce`.
    dir: PathBuf,
}

/// Writes the page and prints its path. An incomplete directory (an
/// interrupted sweep, or one shard) is refused with a non-zero exit: the
/// page would show a part of the experiment as if it were the whole.
pub fn report(a: ReportArgs) -> Result<()> {
    // Nothing is read through a link or from a FIFO (which would block).
    psim_scenarios::output::check_regular_files(&a.dir)?;
    if let Some((done, total)) = psim_scenarios::durable::completeness(&a.dir) {
        let dir = a.dir.display();
        if done < total {
            let shard = a.dir.join("shard.json").is_file();
            bail!(
                "`{dir}` is INCOMPLETE: {} of its {total} points are missing ({done} done); {}",
                total - done,
                if shard {
                    "it is one shard: run the other shards, then `psim merge DIR... --out OUT` and report OUT".to_string()
                } else {
                    format!("finish it with `psim run --resume {dir}` (or the sweep/reproduce command that started it, with --resume {dir})")
                }
            );
        }
        if !a.dir.join("summary.json").is_file() {
            bail!("`{dir}` has all {total} points but not its outputs (interrupted while writing them); `psim run --resume {dir}` writes them");
        }
        // Every point file must still be what the experiment computed: its
        // fingerprint against config.toml, its rows against their checksum.
        psim_scenarios::durable::verify_points(&a.dir)?;
    }
    let path = psim_scenarios::report::write(&a.dir)
        .with_context(|| format!("building the report of `{}`", a.dir.display()))?;
    crate::cmd::print(format_args!("{}\n", path.display()))
}
