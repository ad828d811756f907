//! `psim bench`: engine throughput (run-steps per second on one core) of
//! the scalar and the batched injected engine, the wall time of the whole
//! E1 sweep on both, and a NumPy baseline of the same step — medians over
//! repeats, measured side by side (interleaved) in one process.

use anyhow::Result;
use clap::Args;
use psim_common::{AnyObjective, Delay, Experiment, RunConfig};
use psim_engine::batched::{self, Simd};
use psim_engine::run_injected;
use psim_scenarios::catalogue::Scenario;
use psim_scenarios::experiments::tradeoff::Tradeoff;
use psim_scenarios::sweep::{run_sweep, SweepOptions};
use std::path::Path;
use std::process::Command;
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
    /// Runs per repeat in the single-core batched measurement (batches of 8).
    #[arg(long, default_value_t = 64)]
    batched_runs: u64,
    /// Skip the full E1 sweeps.
    #[arg(long)]
    no_sweep: bool,
    /// Skip the scalar E1 sweep (the batched one still runs).
    #[arg(long)]
    no_scalar_sweep: bool,
    /// Skip the NumPy baseline.
    #[arg(long)]
    no_numpy: bool,
    /// Time `psim reproduce phase-diagram` at its defaults instead (its
    /// constant-delay panel, 20 μ × 40 delays × 32 runs × 2·10⁴ steps, and
    /// the whole three-panel plan); target ≤ 30 s on 2 cores. The E1
    /// measurements' flags do not apply to it and are refused with it.
    #[arg(long, conflicts_with_all = ["runs", "batched_runs", "no_sweep", "no_scalar_sweep", "no_numpy"])]
    phase_diagram: bool,
}

/// `psim bench --phase-diagram`: median wall and CPU seconds (per thread)
/// of the phase diagram's constant-delay panel and of its whole plan.
fn phase_diagram(repeat: usize) -> Result<()> {
    use psim_scenarios::experiments::phase_diagram::{panels, plan, PhaseDiagramScenario};
    use psim_scenarios::sweep::run_plan;
    let e = PhaseDiagramScenario.experiment();
    let constant = panels(&e)?[0].clone();
    let whole = plan(&e)?;
    println!(
        "psim bench --phase-diagram: {repeat} repeats, medians (min–max); {} threads available; target ≤ 30 s on 2 cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (name, run) in [
        (
            format!(
                "constant panel ({} points × {} runs × {} steps)",
                constant.points().len(),
                constant.base.runs,
                constant.base.steps
            ),
            true,
        ),
        (
            format!(
                "whole default plan ({} points, 3 panels)",
                whole.points.len()
            ),
            false,
        ),
    ] {
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let c = cpu_seconds(false);
            let s = if run {
                run_sweep(&constant, &SweepOptions::default())?
            } else {
                run_plan(&e, &whole, None, &SweepOptions::default())?
            };
            cpus.push((cpu_seconds(false) - c) / s.threads as f64);
            walls.push(s.wall_seconds);
        }
        let w = median(walls.clone());
        let (w0, w1) = spread(&walls);
        let c = median(cpus);
        println!(
            "  {name}: {w:.2} s wall ({w0:.2}–{w1:.2}); CPU time / threads {c:.2} s | {}",
            if w <= 30.0 {
                "target met"
            } else if c <= 30.0 {
                "target met in CPU time, not in wall time (other jobs share the cores)"
            } else {
                "above target"
            }
        );
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> (f64, f64) {
    (
        v.iter().cloned().fold(f64::INFINITY, f64::min),
        v.iter().cloned().fold(0.0, f64::max),
    )
}

/// CPU seconds consumed so far by this thread (`thread`) or by the whole
/// process. On a machine shared with other jobs, wall time measures the
/// scheduler; CPU time measures the code. Falls back to wall time off unix.
fn cpu_seconds(thread: bool) -> f64 {
    #[cfg(unix)]
    {
        let clock = if thread {
            libc::CLOCK_THREAD_CPUTIME_ID
        } else {
            libc::CLOCK_PROCESS_CPUTIME_ID
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer for the duration of the call.
        if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    let _ = thread;
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Run-steps per CPU-second of this thread (one core) for the work `f`.
fn rate(f: impl FnOnce() -> u64) -> f64 {
    let t = cpu_seconds(true);
    let steps = f();
    steps as f64 / (cpu_seconds(true) - t)
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
    anyhow::ensure!(
        (1..=1_000_000).contains(&a.batched_runs),
        "invalid `--batched-runs` = {}: must be in [1, 1000000]",
        a.batched_runs
    );
    let repeat = a.repeat;
    if a.phase_diagram {
        return phase_diagram(repeat);
    }
    let e1: Experiment = Tradeoff.experiment();
    let simd = Simd::detect();
    println!(
        "psim bench: {} repeats, medians (min–max); {} threads available; batched path: {} lanes, {}",
        repeat,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        batched::L,
        simd.name()
    );
    println!("engine, 1 core, d = 4, μ = 0.7, heavy ball (run-steps per CPU-second of the thread; target ≥ 100 M at every τ):");
    for tau in [0u64, 10, 100] {
        let cfg = RunConfig {
            momentum: 0.7,
            ..e1.base.clone()
        }
        .with_delay(Delay::constant(tau));
        let objective = AnyObjective::build(&cfg.objective)?;
        let (mut scalar, mut lanes) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            scalar.push(rate(|| {
                (0..a.runs)
                    .map(|r| run_injected(&cfg, &objective, r).counters.applied)
                    .sum()
            }));
            lanes.push(rate(|| {
                batched::run_batched(&cfg, 0..a.batched_runs)
                    .expect("E1's configuration is batched")
                    .iter()
                    .map(|r| r.counters.applied)
                    .sum()
            }));
        }
        let (s, b) = (median(scalar.clone()), median(lanes.clone()));
        let (s0, s1) = spread(&scalar);
        let (b0, b1) = spread(&lanes);
        println!(
            "  τ = {tau:>3}: scalar {:>6.1} M ({:.1}–{:.1}) | batched {:>6.1} M ({:.1}–{:.1}) | ×{:.2} | {}",
            s / 1e6,
            s0 / 1e6,
            s1 / 1e6,
            b / 1e6,
            b0 / 1e6,
            b1 / 1e6,
            b / s,
            if b >= 100e6 { "target met" } else { "below target" }
        );
    }
    if !a.no_sweep {
        let budget = e1.points().len() as u64 * e1.base.runs as u64 * e1.base.steps;
        let (mut walls_b, mut walls_s) = (Vec::new(), Vec::new());
        let (mut cpus_b, mut cpus_s) = (Vec::new(), Vec::new());
        let (mut applied_b, mut applied_s) = (0, 0);
        let applied = |s: &psim_scenarios::sweep::SweepResult| {
            s.points
                .iter()
                .map(|p| p.summary.counters.applied)
                .sum::<u64>()
        };
        for _ in 0..repeat {
            let c = cpu_seconds(false);
            let s = run_sweep(&e1, &SweepOptions::default())?;
            cpus_b.push((cpu_seconds(false) - c) / s.threads as f64);
            walls_b.push(s.wall_seconds);
            applied_b = applied(&s);
            if !a.no_scalar_sweep {
                let c = cpu_seconds(false);
                // The scalar engine as `--scalar-engine` asks for it.
                let mut on_scalar = e1.clone();
                if let Some(inj) = on_scalar.base.engine.injected_mut() {
                    inj.scalar = true;
                }
                let s = run_sweep(&on_scalar, &SweepOptions::default())?;
                cpus_s.push((cpu_seconds(false) - c) / s.threads as f64);
                walls_s.push(s.wall_seconds);
                applied_s = applied(&s);
            }
        }
        println!(
            "E1 sweep ({} points × {} runs × {} steps = {:.2e} run-steps budgeted; target ≤ 1 s on 2 threads):",
            e1.points().len(),
            e1.base.runs,
            e1.base.steps,
            budget as f64,
        );
        let wb = median(walls_b.clone());
        let (b0, b1) = spread(&walls_b);
        let cb = median(cpus_b);
        println!(
            "  batched: {wb:.3} s wall ({b0:.3}–{b1:.3}); CPU time / threads {cb:.3} s; {:.2e} steps applied before divergence stops | {}",
            applied_b as f64,
            if wb <= 1.0 {
                "target met"
            } else if cb <= 1.0 {
                "target met in CPU time, not in wall time (other jobs share the cores)"
            } else {
                "above target"
            }
        );
        if !walls_s.is_empty() {
            let ws = median(walls_s.clone());
            let (s0, s1) = spread(&walls_s);
            let cs = median(cpus_s);
            println!(
                "  scalar:  {ws:.3} s wall ({s0:.3}–{s1:.3}); CPU time / threads {cs:.3} s; {:.2e} steps applied | batched ×{:.2} faster (wall), ×{:.2} (CPU)",
                applied_s as f64,
                ws / wb,
                cs / cb
            );
        }
    }
    if !a.no_numpy {
        numpy_baseline(repeat)?;
    }
    Ok(())
}

/// Runs `benches/numpy_baseline.py` (the E1 step vectorised across runs in
/// NumPy) when python3 and NumPy are present, beside the batched engine.
fn numpy_baseline(repeat: usize) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/numpy_baseline.py");
    if !script.exists() {
        println!("NumPy baseline: skipped ({} not found)", script.display());
        return Ok(());
    }
    // One core, like the engine figures: no BLAS or OpenMP threads.
    let out = Command::new("python3")
        .envs([
            ("OMP_NUM_THREADS", "1"),
            ("OPENBLAS_NUM_THREADS", "1"),
            ("MKL_NUM_THREADS", "1"),
        ])
        .arg(&script)
        .args(["--repeat", &repeat.to_string()])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            println!(
                "NumPy baseline: skipped ({})",
                err.lines().last().unwrap_or("python3 failed")
            );
            return Ok(());
        }
        Err(e) => {
            println!("NumPy baseline: skipped (python3: {e})");
            return Ok(());
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let numpy: Option<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("run_steps_per_second "))
        .and_then(|v| v.trim().parse().ok());
    let Some(numpy) = numpy else {
        println!("NumPy baseline: no figure in its output");
        return Ok(());
    };
    // The batched engine on the same configuration (τ = 10).
    let e1: Experiment = Tradeoff.experiment();
    let cfg = RunConfig {
        momentum: 0.7,
        ..e1.base.clone()
    }
    .with_delay(Delay::constant(10));
    let ours = median(
        (0..repeat)
            .map(|_| {
                rate(|| {
                    batched::run_batched(&cfg, 0..64)
                        .expect("batched")
                        .iter()
                        .map(|r| r.counters.applied)
                        .sum()
                })
            })
            .collect(),
    );
    for line in text.lines().filter(|l| l.starts_with("numpy ")) {
        println!("{line}");
    }
    println!(
        "NumPy baseline (E1 step, τ = 10, vectorised across runs, 1 core): {:.1} M run-steps per CPU second | batched engine {:.1} M | batched ×{:.1}",
        numpy / 1e6,
        ours / 1e6,
        ours / numpy
    );
    Ok(())
}
