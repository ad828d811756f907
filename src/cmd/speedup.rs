//! `psim speedup`: time-to-ε and speedup per worker count and momentum on
//! the real parameter server (threads or tasks), with a table, CSV/JSON and
//! a plot.

use anyhow::Result;
use clap::Args;
use psim_common::{Backend, Consistency, Delay, EngineKind, RunConfig};
use psim_scenarios::experiments::speedup::{report, run_speedup, write};
use psim_scenarios::output::OutputDir;
use std::path::PathBuf;

/// `psim speedup` options.
#[derive(Args, Debug)]
pub struct SpeedupArgs {
    /// Worker counts; speedups are relative to the first.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    workers: Vec<usize>,
    /// Momentum values μ.
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.9")]
    momentum: Vec<f64>,
    /// Target error ε.
    #[arg(long = "target-error", default_value_t = 0.1)]
    target_error: f64,
    /// Step size η (E1's 5e-4 shows E1's optimal delays beside the table).
    #[arg(long = "step-size", default_value_t = 5e-4)]
    step_size: f64,
    /// Compute time per gradient in seconds, as a delay model.
    #[arg(long = "compute-time", default_value = "0.001")]
    compute_time: String,
    /// Network delay per push in seconds, as a delay model.
    #[arg(long = "network-delay", default_value = "0")]
    network_delay: String,
    /// Consistency model: asp, ssp:S, bsp.
    #[arg(long, default_value = "asp")]
    consistency: String,
    /// Engine: threads or tasks.
    #[arg(long, default_value = "threads")]
    engine: String,
    /// Back-end of the threads engine: lock or channel.
    #[arg(long, default_value = "lock")]
    backend: String,
    /// Runs per point (the median time-to-ε is reported).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Most updates per run (a run that has not reached ε by then counts as not reached).
    #[arg(long = "max-steps", default_value_t = 100_000)]
    max_steps: u64,
    /// Master seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (default psim-out/speedup, suffixed when taken).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Allow writing into a non-empty --out directory.
    #[arg(long)]
    force: bool,
}

/// Runs the measurement, prints the table and writes the outputs.
pub fn speedup(a: SpeedupArgs) -> Result<()> {
    let mut base = RunConfig {
        step_size: a.step_size,
        steps: a.max_steps,
        runs: a.runs,
        seed: a.seed,
        record_every: 10,
        target_error: Some(a.target_error),
        engine: a.engine.parse::<EngineKind>()?,
        ..RunConfig::default()
    };
    if !matches!(base.engine, EngineKind::Threads | EngineKind::Tasks) {
        anyhow::bail!(
            "invalid `engine` = {}: must be `threads` or `tasks` for a wall-clock speedup",
            a.engine
        );
    }
    base.cluster.compute_time = a.compute_time.parse::<Delay>()?;
    base.cluster.network_delay = a.network_delay.parse::<Delay>()?;
    base.cluster.consistency = a.consistency.parse::<Consistency>()?;
    base.cluster.backend = a.backend.parse::<Backend>()?;
    base.validate()?;
    for &m in &a.momentum {
        RunConfig {
            momentum: m,
            ..base.clone()
        }
        .validate()?;
    }
    for &w in &a.workers {
        let mut cfg = base.clone();
        cfg.cluster.workers = w;
        cfg.validate()?;
        let o = psim_common::AnyObjective::build(&cfg.objective)?;
        psim_engine::check(&cfg, psim_common::Objective::dim(&o))?;
    }
    let out = OutputDir::create(a.out.as_deref(), "speedup", a.force)?;
    let progress = |mu: f64, m: usize| eprintln!("μ = {mu}, {m} workers …");
    let rows = run_speedup(&base, &a.momentum, &a.workers, Some(&progress))?;
    write(&out, &base, &rows)?;
    print!("{}", report(&base, &rows));
    println!("\nresults in {}", out.path().display());
    Ok(())
}
