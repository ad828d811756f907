//! A plain run or sweep (`psim run`, `psim sweep` without an analysis):
//! every grid point, written as the standard sweep outputs, with the table
//! of [`points_report`] as its report.

use crate::catalogue::{Scenario, ScenarioError};
use crate::output::{write_sweep, OutputDir, SweepWriter};
use crate::sweep::{PointResult, SweepError, SweepResult};
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
    fn analyse_streamed(
        &self,
        e: &Experiment,
        points: &mut dyn Iterator<Item = Result<PointResult, SweepError>>,
        run: (f64, usize),
        out: &OutputDir,
    ) -> Option<Result<String, ScenarioError>> {
        let stream = || -> Result<String, ScenarioError> {
            let mut files = SweepWriter::new(out, e, run, None)?;
            let mut report = PointsReport::new(e, run.0, run.1);
            for p in points {
                let p = p?;
                files.add(&p)?;
                report.add(&p);
            }
            files.finish()?;
            Ok(report.finish())
        };
        Some(stream())
    }
}

/// The table printed by `psim run` and `psim sweep`.
pub fn points_report(s: &SweepResult) -> String {
    let mut r = PointsReport::new(&s.experiment, s.wall_seconds, s.threads);
    s.points.iter().for_each(|p| r.add(p));
    r.finish()
}

/// Points listed in the printed tables; a longer sweep's report says how
/// many more there are (every point is in `summary.json` and `runs.csv`),
/// so neither the report nor its memory grows past it.
pub const SHOWN_POINTS: usize = 2000;

/// Per-worker tables printed; the others are in `workers.csv`.
pub const SHOWN_WORKER_TABLES: usize = 64;

/// [`points_report`] built a point at a time (a streamed sweep's points
/// are read once and dropped).
pub struct PointsReport {
    points: usize,
    worker_tables: usize,
    table: String,
    capped: u64,
    wall_clock: bool,
    engine: String,
    measured: String,
    recorded: usize,
    per_worker: String,
}

impl PointsReport {
    /// The report's header for experiment `e`, run in `wall_seconds` on
    /// `threads` threads.
    pub fn new(e: &Experiment, wall_seconds: f64, threads: usize) -> Self {
        let mut t = String::new();
        let b = &e.base;
        let _ = writeln!(t, "{}: {} runs × {} steps per point, engine {:?}, rule {}, schedule {}, seed {}; error = mean over the last {}% of steps; ran in {:.2} s on {} threads\n", e.name, b.runs, b.steps, b.engine_kind(), b.rule, b.schedule, b.seed, b.tail_fraction * 100.0, wall_seconds, threads);
        let axis = if b.cluster().is_some() {
            "workers compute consistency"
        } else {
            "delay"
        };
        let _ = writeln!(t, "{:>6} {:>9} {:>24} | {:>9} {:>11} {:>10} {:>10} {:>10} | {:>8} {:>6} {:>6} {:>8} | {:>9} {:>9} {:>8}", "μ", "η", axis, "diverged", "mean error", "± sem", "p10", "p90", "τ mean", "p50", "p99", "max", "applied", "dropped", "clamped");
        Self {
            points: 0,
            worker_tables: 0,
            table: t,
            capped: 0,
            wall_clock: b.engine.is_wall_clock(),
            engine: format!("{:?}", b.engine_kind()),
            measured: String::new(),
            recorded: 0,
            per_worker: String::new(),
        }
    }

    /// Adds point `p`'s lines.
    pub fn add(&mut self, p: &PointResult) {
        let x = &p.summary;
        self.points += 1;
        self.capped += x.capped_sleeps.unwrap_or(0);
        self.recorded += p.pushes.iter().map(|(_, rows)| rows.len()).sum::<usize>();
        if !x.per_worker.is_empty() {
            self.worker_tables += 1;
            if self.worker_tables <= SHOWN_WORKER_TABLES {
                self.per_worker_table(x);
            }
        }
        if self.points > SHOWN_POINTS {
            return;
        }
        let _ = writeln!(
            self.table,
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
        if self.wall_clock {
            let q = &x.staleness;
            let _ = writeln!(
                self.measured,
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

    /// The whole report.
    pub fn finish(self) -> String {
        let more = self.points.saturating_sub(SHOWN_POINTS);
        let more = (more > 0).then(|| {
            format!("… and {more} more points (every point is in summary.json and runs.csv)\n")
        });
        let mut t = self.table;
        t.push_str(more.as_deref().unwrap_or(""));
        if self.capped > 0 {
            let capped = self.capped;
            let _ = writeln!(
                t,
                "\nnote: {capped} injected sleeps were cut to 1 s, the longest single sleep (draws of an unbounded compute-time or network-delay model; per run in runs.csv, column capped_sleeps)"
            );
        }
        if self.wall_clock {
            let _ = writeln!(t, "\nmeasured staleness ({} engine):", self.engine);
            let _ = writeln!(
                t,
                "{:>6} {:>9} {:>24} | {:>10} {:>8} {:>6} {:>6} {:>7} {:>8}",
                "μ",
                "η",
                "workers compute consistency",
                "pushes",
                "mean",
                "p50",
                "p99",
                "p99.9",
                "max"
            );
            t.push_str(&self.measured);
            t.push_str(more.as_deref().unwrap_or(""));
        }
        if self.recorded > 0 {
            let recorded = self.recorded;
            let _ = writeln!(
                t,
                "\nrecorded {recorded} applied pushes in pushes.csv (staleness over time: pushes.svg, per worker: pushes-workers.svg); replay with --delay trace:DIR/pushes.csv"
            );
        }
        t.push_str(&self.per_worker);
        if self.worker_tables > SHOWN_WORKER_TABLES {
            let _ = writeln!(
                t,
                "\n… and {} more per-worker tables (all in workers.csv)",
                self.worker_tables - SHOWN_WORKER_TABLES
            );
        }
        t
    }

    /// Who contributed what (cluster engines); long tables are cut to
    /// their first and last workers (all of them are in workers.csv).
    fn per_worker_table(&mut self, x: &crate::sweep::PointSummary) {
        let _ = writeln!(
            self.per_worker,
            "\nper worker, μ={} η={} {} (workers.csv):",
            show(x.momentum),
            show(x.step_size),
            x.setting()
        );
        let _ = writeln!(
            self.per_worker,
            "{:>7} {:>12} {:>12} {:>7} | {:>8} {:>5} {:>5} {:>5} {:>6}",
            "worker", "mean compute", "applied/run", "share", "τ mean", "p50", "p90", "p99", "max"
        );
        let m = x.per_worker.len();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        for w in &x.per_worker {
            if m > 16 && w.worker == 8 {
                let _ = writeln!(self.per_worker, "{:>7}", "…");
            }
            if m > 16 && (8..m - 8).contains(&w.worker) {
                continue;
            }
            let _ = writeln!(
                self.per_worker,
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
}
