//! One module per subcommand family.

pub mod advise;
pub mod bench;
pub mod experiment;
pub mod limits;
pub mod merge;
pub mod report;
pub mod speedup;
pub mod theory;

/// Writes to standard output, returning an error (exit 2 with a message)
/// instead of panicking when it cannot be written (a full disk,
/// `> /dev/full`). A closed pipe ends the process quietly (SIGPIPE is
/// restored in `main`).
pub fn print(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // No number in hundreds of digits, whatever formatted it.
    let text = psim_common::num::shorten(&args.to_string());
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))
}
