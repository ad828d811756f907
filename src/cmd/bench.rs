//! `psim bench`: engine throughput (run-steps per second on one core) and
//! the wall time of the whole E1 sweep, medians over repeats, measured side
//! by side in one process.

use anyhow::Result;
use clap::Args;
use psim_common::{AnyObjective, Delay, Experiment};
use psim_engine::run_injected;
use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::tradeoff::Tradeoff;
use psim_scenarios::sweep::{run_sweep, SweepOptions};
use std::time::Instant;

/// `psim bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Repeats of each measurement (the median is reported), ≥ 1.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Runs in the single-core throughput measurement, ≥ 1.
    #[arg(long, default_value_t = 20)]
    runs: u64,
    /// Skip the full E1 sweep.
    #[arg(long)]
    no_sweep: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark and prints its figures.
pub fn bench(a: BenchArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=1000).contains(&a.repeat),
        "invalid `--repeat` = {}: must be in [1, 1000]",
        a.repeat
    );
    anyhow::ensure!(
        (1..=1_000_000).contains(&a.runs),
        "invalid `--runs` = {}: must be in [1, 1000000]",
        a.runs
    );
    let repeat = a.repeat;
    let e1: Experiment = Tradeoff.experiment();
    println!(
        "psim bench: {} repeats, medians; {} threads available",
        repeat,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for tau in [0u64, 10, 100] {
        let cfg = psim_common::RunConfig {
            momentum: 0.7,
            ..e1.base.clone()
        }
        .with_delay(Delay::constant(tau));
        let objective = AnyObjective::build(&cfg.objective)?;
        let rates: Vec<f64> = (0..repeat)
            .map(|_| {
                let t = Instant::now();
                let mut steps = 0;
                for r in 0..a.runs {
                    steps += run_injected(&cfg, &objective, r).counters.applied;
                }
                steps as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        println!("engine, 1 core, d = 4, μ = 0.7, τ = {tau:>3}: {:>7.1} M run-steps/s (median; min {:.1}, max {:.1})", median(rates.clone()) / 1e6, rates.iter().cloned().fold(f64::INFINITY, f64::min) / 1e6, rates.iter().cloned().fold(0.0, f64::max) / 1e6);
    }
    if !a.no_sweep {
        let runs = e1.points().len() as u64 * e1.base.runs as u64;
        let mut walls = Vec::new();
        let mut applied = 0;
        for _ in 0..repeat {
            let s = run_sweep(&e1, &SweepOptions::default())?;
            walls.push(s.wall_seconds);
            applied = s
                .points
                .iter()
                .map(|p| p.summary.counters.applied)
                .sum::<u64>();
        }
        let w = median(walls);
        println!(
            "E1 sweep ({} points × {} runs × {} steps = {:.2e} run-steps budgeted, {:.2e} applied before divergence stops): {:.2} s median wall, {:.1} M applied steps/s over all threads",
            e1.points().len(),
            e1.base.runs,
            e1.base.steps,
            (runs * e1.base.steps) as f64,
            applied as f64,
            w,
            applied as f64 / w / 1e6
        );
    }
    Ok(())
}
