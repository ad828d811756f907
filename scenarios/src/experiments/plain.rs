//! A plain run or sweep (`psim run`, `psim sweep` without an analysis):
//! every grid point, written as the standard sweep outputs, with the table
//! of [`points_report`] as its report.

use crate::catalogue::{Scenario, ScenarioError};
use crate::output::{write_sweep, OutputDir};
use crate::sweep::SweepResult;
use psim_common::num::show;
use psim_common::{Experiment, Setting};
use std::fmt::Write as _;

/// The study of an experiment that names no scenario and no analysis.
pub struct PlainSweep;

impl Scenario for PlainSweep {
    fn name(&self) -> &'static str {
        "sweep"
    }
    fn title(&self) -> &'static str {
        "a plain run or sweep: every grid point, no analysis"
    }
    fn experiment(&self) -> Experiment {
        Experiment {
            name: "sweep".into(),
            base: Default::default(),
            grid: Default::default(),
            tradeoff: None,
        }
    }
    fn accepts(&self) -> &'static [Setting] {
        &Setting::ALL
    }
    fn analyse(
        &self,
        _experiment: &Experiment,
        done: &SweepResult,
        out: &OutputDir,
    ) -> Result<String, ScenarioError> {
        write_sweep(out, done, None)?;
        Ok(points_report(done))
    }
}

/// The table printed by `psim run` and `psim sweep`.
pub fn points_report(s: &SweepResult) -> String {
    let mut t = String::new();
    let b = &s.experiment.base;
    let _ = writeln!(t, "{}: {} runs × {} steps per point, engine {:?}, seed {}; error = mean over the last {}% of steps; ran in {:.2} s on {} threads\n", s.experiment.name, b.runs, b.steps, b.engine_kind(), b.seed, b.tail_fraction * 100.0, s.wall_seconds, s.threads);
    let axis = if b.cluster().is_some() {
        "workers compute consistency"
    } else {
        "delay"
    };
    let _ = writeln!(t, "{:>6} {:>9} {:>24} | {:>9} {:>11} {:>10} {:>10} {:>10} | {:>8} {:>6} {:>6} {:>8} | {:>9} {:>9} {:>8}", "μ", "η", axis, "diverged", "mean error", "± sem", "p10", "p90", "τ mean", "p50", "p99", "max", "applied", "dropped", "clamped");
    for p in &s.points {
        let x = &p.summary;
        let _ = writeln!(
            t,
            "{:>6} {:>9} {:>24} | {:>9} {:>11.5} {:>10.5} {:>10.5} {:>10.5} | {:>8.2} {:>6} {:>6} {:>8} | {:>9} {:>9} {:>8}",
            show(x.momentum),
            show(x.step_size),
            x.setting(),
            format!("{}/{}", x.diverged, x.runs),
            x.error.mean,
            x.error.sem,
            x.error.p10,
            x.error.p90,
            x.staleness.mean,
            x.staleness.p50,
            x.staleness.p99,
            x.staleness.max,
            x.counters.applied,
            x.counters.dropped(),
            x.counters.clamped
        );
    }
    let capped: u64 = s
        .points
        .iter()
        .filter_map(|p| p.summary.capped_sleeps)
        .sum();
    if capped > 0 {
        let _ = writeln!(
            t,
            "\nnote: {capped} injected sleeps were cut to 1 s, the longest single sleep (draws of an unbounded compute-time or network-delay model; per run in runs.csv, column capped_sleeps)"
        );
    }
    if b.engine.is_wall_clock() {
        let _ = writeln!(t, "\nmeasured staleness ({:?} engine):", b.engine_kind());
        let _ = writeln!(
            t,
            "{:>6} {:>9} {:>24} | {:>10} {:>8} {:>6} {:>6} {:>7} {:>8}",
            "μ", "η", "workers compute consistency", "pushes", "mean", "p50", "p99", "p99.9", "max"
        );
        for p in &s.points {
            let x = &p.summary;
            let q = &x.staleness;
            let _ = writeln!(
                t,
                "{:>6} {:>9} {:>24} | {:>10} {:>8.2} {:>6} {:>6} {:>7} {:>8}",
                show(x.momentum),
                show(x.step_size),
                x.setting(),
                q.count,
                q.mean,
                q.p50,
                q.p99,
                q.p999,
                q.max
            );
        }
    }
    let recorded: usize = s
        .points
        .iter()
        .flat_map(|p| p.pushes.iter().map(|(_, rows)| rows.len()))
        .sum();
    if recorded > 0 {
        let _ = writeln!(
            t,
            "\nrecorded {recorded} applied pushes in pushes.csv (staleness over time: pushes.svg, per worker: pushes-workers.svg); replay with --delay trace:DIR/pushes.csv"
        );
    }
    // Who contributed what (cluster engines); long tables are cut to their
    // first and last workers (all of them are in workers.csv).
    for p in s.points.iter().filter(|p| !p.summary.per_worker.is_empty()) {
        let x = &p.summary;
        let _ = writeln!(
            t,
            "\nper worker, μ={} η={} {} (workers.csv):",
            show(x.momentum),
            show(x.step_size),
            x.setting()
        );
        let _ = writeln!(
            t,
            "{:>7} {:>12} {:>12} {:>7} | {:>8} {:>5} {:>5} {:>5} {:>6}",
            "worker", "mean compute", "applied/run", "share", "τ mean", "p50", "p90", "p99", "max"
        );
        let m = x.per_worker.len();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        for w in &x.per_worker {
            if m > 16 && w.worker == 8 {
                let _ = writeln!(t, "{:>7}", "…");
            }
            if m > 16 && (8..m - 8).contains(&w.worker) {
                continue;
            }
            let _ = writeln!(
                t,
                "{:>7} {:>12} {:>12.1} {:>6.2}% | {:>8.2} {:>5} {:>5} {:>5} {:>6}",
                w.worker,
                w.mean_compute.map_or("∞".into(), |c| format!("{c:.4}")),
                w.applied_per_run,
                100.0 * w.share,
                w.mean_staleness,
                opt(w.p50),
                opt(w.p90),
                opt(w.p99),
                w.max
            );
        }
    }
    t
}
