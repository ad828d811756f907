//! Durable sweeps: every finished point goes to disk atomically the moment
//! it is done, so an interrupted sweep resumes where it stopped, and a
//! sweep splits into shards (one per cluster task) that `psim merge`
//! combines.
//!
//! Layout of an output directory (documented field by field in the README):
//!
//! - `config.toml`: the resolved experiment; written first.
//! - `points/P.runs.csv`: the `runs.csv` rows of point P (no header), then
//!   `points/P.json`: [`PointFile`], the marker that point P is done. Both
//!   are written aside, flushed to disk and renamed.
//! - `shard.json` ([`ShardFile`]) in a shard's directory.
//! - once every point is done: `summary.json`, `runs.csv`, `traces.csv`,
//!   `staleness.csv`, the plots and `report.txt`, built from the point files.
//!
//! A point depends only on (seed, configuration, run index), so which
//! process ran it, and when, changes nothing in the outputs but timings.

use crate::output::{OutputDir, OutputError};
use crate::sweep::{
    run_points, PointResult, PointSummary, SweepError, SweepOptions, SweepResult, TraceRow,
};
use psim_common::{Experiment, StalenessHistogram};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Version of the point-file layout.
pub const FORMAT: u32 = 1;

/// `points/P.json`: one finished point.
#[derive(Debug, Serialize, Deserialize)]
pub struct PointFile {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The experiment's name.
    pub experiment: String,
    /// Points of the experiment in all.
    pub points: usize,
    /// The point's aggregates (as in `summary.json`).
    pub summary: PointSummary,
    /// Mean error trace (as in `traces.csv`).
    pub trace: Vec<TraceRow>,
    /// Merged staleness histogram: `[value, count]` pairs, ascending (as
    /// in `staleness.csv`).
    pub staleness: Vec<(u64, u64)>,
}

/// A deterministic share of a sweep's points: point P belongs to shard
/// `P mod count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, in 0..count.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether point `p` belongs to this shard.
    pub fn owns(&self, p: usize) -> bool {
        p % self.count == self.index
    }

    /// Parses `I/N` (0 ≤ I < N).
    pub fn parse(text: &str) -> Result<Self, String> {
        // A sweep has at most 10⁸ runs, so at most 10⁸ points; more shards
        // than that could only be empty (the merge bounds N by the points).
        const MAX_COUNT: usize = 100_000_000;
        let err = || {
            format!(
                "`--shard {text}`: expected I/N with 0 ≤ I < N and 1 ≤ N ≤ {MAX_COUNT}, e.g. 0/3"
            )
        };
        let (i, n) = text.split_once('/').ok_or_else(err)?;
        let index: usize = i.trim().parse().map_err(|_| err())?;
        let count: usize = n.trim().parse().map_err(|_| err())?;
        if count == 0 || count > MAX_COUNT || index >= count {
            return Err(err());
        }
        Ok(Self { index, count })
    }

    /// The shard of the scheduler's environment (`--shard auto`): a Slurm
    /// job array (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, of
    /// `SLURM_ARRAY_TASK_COUNT`), a Kubernetes Indexed Job
    /// (`JOB_COMPLETION_INDEX`) or a HyperQueue task array (`HQ_TASK_ID`).
    /// The last two do not export the task count: it is `count` (the flag
    /// `--shard-count`) or `PSIM_SHARD_COUNT`.
    pub fn from_env(
        count: Option<usize>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let num = |name: &str| -> Result<Option<usize>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v} is not a non-negative integer")),
            }
        };
        let given = match count {
            Some(c) => Some(c),
            None => num("PSIM_SHARD_COUNT")?,
        };
        let (index, count, from) = if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let n = match given {
                Some(c) => c,
                None => num("SLURM_ARRAY_TASK_COUNT")?.ok_or(
                    "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT; give --shard-count",
                )?,
            };
            (
                id.checked_sub(min)
                    .ok_or("SLURM_ARRAY_TASK_ID < SLURM_ARRAY_TASK_MIN")?,
                n,
                "SLURM_ARRAY_TASK_ID",
            )
        } else if let Some(id) = num("JOB_COMPLETION_INDEX")? {
            let n = given.ok_or("JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set but the shard count is not: give --shard-count N or PSIM_SHARD_COUNT=N (the Job's completions)")?;
            (id, n, "JOB_COMPLETION_INDEX")
        } else if let Some(id) = num("HQ_TASK_ID")? {
            let n = given.ok_or("HQ_TASK_ID (a HyperQueue task array) is set but the shard count is not: give --shard-count N or PSIM_SHARD_COUNT=N (the array's size, ids 0..N-1)")?;
            (id, n, "HQ_TASK_ID")
        } else {
            return Err("`--shard auto` reads the shard from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or HQ_TASK_ID, and none is set; give --shard I/N".into());
        };
        const MAX_COUNT: usize = 100_000_000;
        if count == 0 || count > MAX_COUNT {
            return Err(format!(
                "{from} gives a shard count of {count}: the count (--shard-count, PSIM_SHARD_COUNT or the array's task count) must be in [1, {MAX_COUNT}]"
            ));
        }
        if index >= count {
            return Err(format!(
                "{from} gives shard {index} of {count}: the index must be below the count"
            ));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `shard.json`: which share of the points a shard directory holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    /// The shard, `index` of `count`.
    #[serde(flatten)]
    pub shard: Shard,
    /// Points of the experiment in all.
    pub points: usize,
    /// Points of this shard (those P with P mod count = index).
    pub share: Vec<usize>,
    /// Wall-clock seconds this shard's runs took, over all its attempts.
    pub wall_seconds: f64,
    /// Threads of its last attempt.
    pub threads: usize,
}

fn bad(msg: String) -> SweepError {
    SweepError::Durable(msg)
}

/// The points whose `points/P.json` exists in `dir`.
pub fn done_points(dir: &Path) -> BTreeSet<usize> {
    let Ok(entries) = dir.join("points").read_dir() else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect()
}

/// Writes finished point `p` of `e` to `out` (rows, then the marker).
pub fn write_point(out: &OutputDir, e: &Experiment, p: &PointResult) -> Result<(), OutputError> {
    let file = PointFile {
        format: FORMAT,
        experiment: e.name.clone(),
        points: e.points().len(),
        summary: p.summary.clone(),
        trace: p.trace.clone(),
        staleness: p.staleness.iter().collect(),
    };
    let json = serde_json::to_string_pretty(&file).map_err(|err| OutputError::Encode {
        path: out.path().join("points"),
        message: err.to_string(),
    })? + "\n";
    out.write_point(p.summary.index, &json, crate::output::runs_rows(e, p))
}

/// Reads point `index` of `e` back from `dir` (without its rows, which
/// stay in `points/P.runs.csv`).
pub fn load_point(dir: &Path, e: &Experiment, index: usize) -> Result<PointResult, SweepError> {
    let path = dir.join("points").join(format!("{index}.json"));
    let text = std::fs::read_to_string(&path)
        .map_err(|err| bad(format!("cannot read `{}`: {err}", path.display())))?;
    let f: PointFile = serde_json::from_str(&text).map_err(|err| {
        bad(format!(
            "`{}` is not a psim point file: {err}",
            path.display()
        ))
    })?;
    let points = e.points();
    if f.format != FORMAT
        || f.experiment != e.name
        || f.points != points.len()
        || f.summary.index != index
        || f.summary.runs != e.base.runs as usize
    {
        return Err(bad(format!(
            "`{}` does not belong to this experiment ({} point {index} of {}, {} runs); it was written for {} point {} of {}, {} runs",
            path.display(),
            e.name,
            points.len(),
            e.base.runs,
            f.experiment,
            f.summary.index,
            f.points,
            f.summary.runs
        )));
    }
    if !dir
        .join("points")
        .join(format!("{index}.runs.csv"))
        .is_file()
    {
        return Err(bad(format!(
            "`{}` has no rows file `{index}.runs.csv` beside it",
            path.display()
        )));
    }
    let mut staleness = StalenessHistogram::new();
    for (v, c) in f.staleness {
        staleness.record_n(v, c);
    }
    Ok(PointResult {
        config: points[index].clone(),
        summary: f.summary,
        rows: Vec::new(),
        trace: f.trace,
        staleness,
        pushes: Vec::new(),
    })
}

/// Where a durable sweep stands after [`run_durable`].
pub enum Progress {
    /// Every point is on disk: the sweep, read back from the point files.
    Complete(Box<SweepResult>),
    /// Some points are missing (another shard's, or an error's).
    Partial {
        /// Points on disk.
        done: usize,
        /// Points of the experiment.
        total: usize,
        /// Wall-clock seconds of this call's runs.
        wall_seconds: f64,
        /// Threads they used.
        threads: usize,
    },
}

/// Runs the points of `shard` that `out` does not hold yet, writing each
/// the moment it finishes; then, if every point of the experiment is on
/// disk, reads them all back.
pub fn run_durable(
    e: &Experiment,
    out: &OutputDir,
    opts: &SweepOptions<'_>,
    shard: Shard,
) -> Result<Progress, SweepError> {
    let total = e.points().len();
    let done = done_points(out.path());
    // A point file of another experiment (or from a longer grid) is an error.
    if let Some(p) = done.iter().find(|&&p| p >= total) {
        return Err(bad(format!(
            "`{}` holds point {p}, but the experiment has {total} points",
            out.path().display()
        )));
    }
    // Temporaries of a killed attempt: never a finished point, remove them.
    if let Ok(entries) = out.path().join("points").read_dir() {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let todo: Vec<usize> = (0..total)
        .filter(|p| shard.owns(*p) && !done.contains(p))
        .collect();
    // Push logs (`--record-pushes`) are not part of the point files: they
    // are kept from this attempt's points and written with the outputs, so
    // a resume, which would lose the finished points' logs, is refused.
    let records = e
        .points()
        .iter()
        .any(|p| p.cluster().is_some_and(|c| c.record_pushes));
    if records && !done.is_empty() {
        return Err(bad(format!(
            "`{}` was run with --record-pushes (engine.cluster.record_pushes); its finished points' push logs are not kept on disk, so it cannot be resumed: rerun it whole",
            out.path().display()
        )));
    }
    let mut logs = std::collections::BTreeMap::new();
    let (wall_seconds, threads) = run_points(e, opts, &todo, |mut p| {
        if !p.pushes.is_empty() {
            logs.insert(p.summary.index, std::mem::take(&mut p.pushes));
        }
        write_point(out, e, &p).map_err(SweepError::from)
    })?;
    let mut progress = finish(e, out.path(), wall_seconds, threads)?;
    if let Progress::Complete(sweep) = &mut progress {
        for point in &mut sweep.points {
            if let Some(log) = logs.remove(&point.summary.index) {
                point.pushes = log;
            }
        }
    }
    Ok(progress)
}

/// Reads every point of `e` from `dir` when all are there.
pub fn finish(
    e: &Experiment,
    dir: &Path,
    wall_seconds: f64,
    threads: usize,
) -> Result<Progress, SweepError> {
    let total = e.points().len();
    let done = done_points(dir);
    if (0..total).any(|p| !done.contains(&p)) {
        return Ok(Progress::Partial {
            done: done.len(),
            total,
            wall_seconds,
            threads,
        });
    }
    let points = (0..total)
        .map(|p| load_point(dir, e, p))
        .collect::<Result<_, _>>()?;
    Ok(Progress::Complete(Box::new(SweepResult {
        experiment: e.clone(),
        points,
        wall_seconds,
        threads,
    })))
}

/// How complete a psim output directory is: `(done, total)` points when it
/// is a durable sweep's directory (it has `config.toml` and a `points/`
/// folder or a `shard.json`), `None` otherwise.
pub fn completeness(dir: &Path) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(dir.join("config.toml")).ok()?;
    let e: Experiment = toml::from_str(&text).ok()?;
    if !dir.join("points").is_dir() && !dir.join("shard.json").is_file() {
        return None;
    }
    let total = e.points().len();
    let done = done_points(dir).into_iter().filter(|p| *p < total).count();
    Some((done, total))
}
