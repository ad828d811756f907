//! `psim speedup`: time-to-ε and speedup per worker count and momentum on
//! the real parameter server (threads or tasks), with a table, CSV/JSON and
//! a plot. The same as `psim reproduce speedup`: its defaults are the
//! scenario's, its flags the scenario's declared settings, and its
//! `config.toml` (worker grid included) replays with `psim run --config`.

use crate::cmd::experiment::{reproduce_scenario, Execution, Overrides};
use anyhow::Result;
use clap::Args;
use psim_scenarios::experiments::speedup::Speedup;

/// `psim speedup` options.
#[derive(Args, Debug)]
pub struct SpeedupArgs {
    #[command(flatten)]
    overrides: Overrides,
    #[command(flatten)]
    exec: Execution,
}

/// Runs the measurement, prints the table and writes the outputs.
pub fn speedup(a: SpeedupArgs) -> Result<()> {
    reproduce_scenario(&Speedup, &a.overrides, &a.exec)
}
