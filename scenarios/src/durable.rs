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

use crate::executor::{fnv1a, Fnv1a, Plan, PlannedPoint, PointStore};
use crate::output::{OutputDir, OutputError};
use crate::sweep::{PointResult, PointSummary, RunRow, SweepError, TraceRow};
use psim_common::Experiment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Version of the point-file layout (2: fingerprint and rows checksum;
/// 3: a `cancelled` column in the rows).
pub const FORMAT: u32 = 3;

/// `points/P.json`: one finished point.
#[derive(Debug, Serialize, Deserialize)]
pub struct PointFile {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The experiment's name.
    pub experiment: String,
    /// Points of the experiment's plan in all.
    pub points: usize,
    /// [`Plan::fingerprint`] of the point as it was run.
    pub fingerprint: String,
    /// FNV-1a of `P.runs.csv` as written.
    pub runs_checksum: String,
    /// FNV-1a of the compact JSON of `summary`, `trace` and `staleness`
    /// below ([`content_checksum`]): an edit to any figure of the point is
    /// refused by resume, merge and report.
    pub content_checksum: String,
    /// The point's aggregates (as in `summary.json`).
    pub summary: PointSummary,
    /// Mean error trace (as in `traces.csv`).
    pub trace: Vec<TraceRow>,
    /// Merged staleness histogram: `[value, count]` pairs, ascending (as
    /// in `staleness.csv`).
    pub staleness: Vec<(u64, u64)>,
}

/// A deterministic share of a sweep's points: point P belongs to shard
/// `P mod count`, or, for a point whose runs start where another point's
/// ended, its chain's first point's (`Plan::share`).
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
    /// Points of this shard ([`crate::executor::Plan::share`]).
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

/// Finished points kept in an output directory: `points/P.runs.csv` and
/// `points/P.json` per point, each written atomically, the JSON last (it
/// is the marker that the point is done). Every point file carries the
/// fingerprint of its planned point ([`Plan::fingerprint`]) and a checksum
/// of its rows file; reading a point back checks both, so an edited
/// config.toml, a rewritten trace file or a tampered rows file is refused
/// by name instead of being mixed into the results.
pub struct DiskStore<'a> {
    out: &'a OutputDir,
    name: String,
    done: BTreeSet<usize>,
    logs: PushLogs,
    synced: std::time::Instant,
}

/// The longest a finished point waits to be flushed to disk: point files
/// are renamed into place at once (a killed process loses none) and
/// flushed together at most this long after (a power loss may lose the
/// last second's points, which their checksums then name).
pub const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Push logs of this attempt's points, by point (`--record-pushes`).
pub type PushLogs =
    std::collections::BTreeMap<usize, Vec<(u64, Vec<psim_common::pushes::PushRecord>)>>;

impl<'a> DiskStore<'a> {
    /// The store of `out`, for experiment `name`.
    pub fn new(out: &'a OutputDir, name: &str) -> Self {
        Self {
            out,
            name: name.to_string(),
            done: done_points(out.path()),
            logs: PushLogs::new(),
            synced: std::time::Instant::now(),
        }
    }

    /// Flushes the points written so far to disk.
    pub fn sync(&mut self) -> Result<(), SweepError> {
        self.out.sync()?;
        self.synced = std::time::Instant::now();
        Ok(())
    }

    /// The push logs of the points this store was handed.
    pub fn take_logs(&mut self) -> PushLogs {
        std::mem::take(&mut self.logs)
    }
}

impl PointStore for DiskStore<'_> {
    fn done(&self) -> BTreeSet<usize> {
        self.done.clone()
    }

    fn put(&mut self, plan: &Plan, mut p: PointResult) -> Result<(), SweepError> {
        let index = p.summary.index;
        if !p.pushes.is_empty() {
            self.logs.insert(index, std::mem::take(&mut p.pushes));
        }
        let mut rows = Vec::new();
        {
            let mut w = csv::Writer::from_writer(&mut rows);
            for r in crate::output::runs_rows_of(&p) {
                w.write_record(&r).map_err(|e| bad(e.to_string()))?;
            }
            w.flush().map_err(|e| bad(e.to_string()))?;
        }
        let staleness: Vec<(u64, u64)> = p.staleness.iter().collect();
        let file = PointFile {
            format: FORMAT,
            experiment: self.name.clone(),
            points: plan.points.len(),
            fingerprint: plan.fingerprint(index),
            runs_checksum: format!("{:016x}", fnv1a(&rows)),
            content_checksum: content_checksum(&p.summary, &p.trace, &staleness)?,
            summary: p.summary,
            trace: p.trace,
            staleness,
        };
        let json = serde_json::to_string_pretty(&file).map_err(|err| OutputError::Encode {
            path: self.out.path().join("points"),
            message: err.to_string(),
        })? + "\n";
        self.out.write_point_bytes(index, &json, &rows)?;
        self.done.insert(index);
        if self.synced.elapsed() >= GROUP_COMMIT {
            self.sync()?;
        }
        Ok(())
    }

    fn load(&self, plan: &Plan, index: usize, rows: bool) -> Result<PointResult, SweepError> {
        load_point(self.out.path(), &self.name, plan, index, rows)
    }
}

/// FNV-1a (hex) of the compact JSON of a point's figures: serde_json
/// writes each float in its shortest round-trip form, so a point read back
/// and written again gives the same bytes, and any changed figure others.
pub fn content_checksum(
    summary: &PointSummary,
    trace: &[TraceRow],
    staleness: &[(u64, u64)],
) -> Result<String, SweepError> {
    // Hashed as the serializer writes (the same bytes as `to_vec`).
    let mut h = Fnv1a::default();
    serde_json::to_writer(&mut h, &(summary, trace, staleness))
        .map_err(|e| bad(format!("cannot encode a point: {e}")))?;
    Ok(format!("{:016x}", h.0))
}

/// Reads point `index` of `plan` back from `dir` (its rows too when
/// `rows`), checking that it was written for this experiment, this planned
/// point and these rows.
pub fn load_point(
    dir: &Path,
    name: &str,
    plan: &Plan,
    index: usize,
    rows: bool,
) -> Result<PointResult, SweepError> {
    let path = dir.join("points").join(format!("{index}.json"));
    let hint = format!(
        "delete `{}` and its `{index}.runs.csv` and resume to recompute that point",
        path.display()
    );
    let text = crate::output::read_regular(&path)
        .map_err(|err| bad(format!("cannot read `{}`: {err}", path.display())))?;
    let f: PointFile = serde_json::from_str(&text).map_err(|err| {
        bad(format!(
            "`{}` is not a psim point file of this version (format {FORMAT}): {err}; {hint}",
            path.display()
        ))
    })?;
    let point = plan.points.get(index);
    let config = &point.config;
    if f.format != FORMAT {
        return Err(bad(format!(
            "`{}` has point-file format {}, written by another version of psim; this psim reads format {FORMAT}, so it neither resumes nor merges it: rerun the point with this version ({hint})",
            path.display(),
            f.format
        )));
    }
    if f.experiment != name
        || f.points != plan.points.len()
        || f.summary.index != index
        || f.summary.runs != config.runs as usize
    {
        return Err(bad(format!(
            "`{}` does not belong to this experiment ({name} point {index} of {}, {} runs); it was written for {} point {} of {}, {} runs",
            path.display(),
            plan.points.len(),
            config.runs,
            f.experiment,
            f.summary.index,
            f.points,
            f.summary.runs
        )));
    }
    let expected = plan.fingerprint(index);
    if f.fingerprint != expected {
        return Err(bad(format!(
            "`{}` was computed for another configuration of point {index} than the one config.toml now describes (fingerprint {} ≠ {expected}): config.toml or an input file it reads (a trace) changed since; {hint}, or start afresh with --out",
            path.display(),
            f.fingerprint
        )));
    }
    let rows_path = dir.join("points").join(format!("{index}.runs.csv"));
    let bytes = crate::output::read_regular(&rows_path)
        .map_err(|err| bad(format!("cannot read `{}`: {err}", rows_path.display())))?;
    let sum = format!("{:016x}", fnv1a(bytes.as_bytes()));
    if sum != f.runs_checksum {
        return Err(bad(format!(
            "`{}` does not match the checksum recorded in `{}` ({sum} ≠ {}): it was changed or truncated after it was written; {hint}",
            rows_path.display(),
            path.display(),
            f.runs_checksum
        )));
    }
    let content = content_checksum(&f.summary, &f.trace, &f.staleness)?;
    if content != f.content_checksum {
        return Err(bad(format!(
            "`{}`: its summary, trace or staleness do not match the checksum it was written with ({content} ≠ {}): the file was edited after it was written; {hint}",
            path.display(),
            f.content_checksum
        )));
    }
    let staleness = psim_common::result::StalenessCounts(f.staleness);
    let rows = if rows {
        parse_rows(&bytes, &point, plan.columns.len())
            .map_err(|err| bad(format!("`{}`: {err}; {hint}", rows_path.display())))?
    } else {
        Vec::new()
    };
    if rows.len() != f.summary.runs && !rows.is_empty() {
        return Err(bad(format!(
            "`{}` has {} rows for {} runs; {hint}",
            rows_path.display(),
            rows.len(),
            f.summary.runs
        )));
    }
    Ok(PointResult {
        config: config.clone(),
        summary: f.summary,
        rows,
        trace: f.trace,
        staleness,
        pushes: Vec::new(),
    })
}

/// Parses the rows of a point's runs file (the layout of
/// [`crate::output::runs_rows`]): the point's columns, the run's, then the
/// measured columns and the kept parameters.
fn parse_rows(text: &str, point: &PlannedPoint, extras: usize) -> Result<Vec<RunRow>, String> {
    use psim_common::result::ServerCounters;
    use psim_common::Outcome;
    let cfg = &point.config;
    // The point's head (`output::point_head`): index, μ, η, then workers,
    // compute time, consistency and, when set, worker_compute on a
    // cluster; the delay otherwise.
    let head = match cfg.cluster() {
        Some(c) if c.worker_compute.is_some() => 7,
        Some(_) => 6,
        None => 4,
    };
    let wall_clock = cfg.engine.is_wall_clock();
    let simulated = cfg.engine_kind() == psim_common::EngineKind::VirtualTime;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", line + 1))?;
        let mut it = record.iter().skip(head);
        let mut next = |what: &str| -> Result<&str, String> {
            it.next()
                .ok_or_else(|| format!("row {}: no `{what}` column", line + 1))
        };
        let float = |s: &str| -> Result<f64, String> {
            if s.is_empty() {
                Ok(f64::NAN)
            } else {
                s.parse().map_err(|_| format!("`{s}` is not a number"))
            }
        };
        let int = |s: &str| -> Result<u64, String> {
            s.parse().map_err(|_| format!("`{s}` is not a count"))
        };
        let run = int(next("run")?)?;
        let outcome = next("outcome")?.to_string();
        let step = next("outcome_step")?.to_string();
        let outcome = match outcome.as_str() {
            "steps_reached" => Outcome::StepsReached,
            "target_error_reached" => Outcome::TargetErrorReached { step: int(&step)? },
            "diverged" => Outcome::Diverged { step: int(&step)? },
            "stopped" => Outcome::Stopped { step: int(&step)? },
            other => return Err(format!("row {}: unknown outcome `{other}`", line + 1)),
        };
        let final_error = float(next("final_error")?)?;
        let tail_error = float(next("tail_error")?)?;
        let mean_staleness = float(next("mean_staleness")?)?;
        let max_staleness = int(next("max_staleness")?)?;
        let counters = ServerCounters {
            received: int(next("received")?)?,
            applied: int(next("applied")?)?,
            dropped_too_stale: int(next("dropped_too_stale")?)?,
            dropped_after_stop: int(next("dropped_after_stop")?)?,
            clamped: int(next("clamped")?)?,
            cancelled: int(next("cancelled")?)?,
        };
        let capped_sleeps = if wall_clock {
            int(next("capped_sleeps")?)?
        } else {
            0
        };
        let wall_seconds = float(next("wall_seconds")?)?;
        let virtual_time = if simulated {
            let v = next("virtual_time")?;
            if v.is_empty() {
                None
            } else {
                Some(float(v)?)
            }
        } else {
            None
        };
        let rest: Vec<f64> = it.map(float).collect::<Result<_, _>>()?;
        if rest.len() < extras || (!point.keep_params && rest.len() != extras) {
            return Err(format!(
                "row {}: {} measured and parameter columns, expected {extras}{}",
                line + 1,
                rest.len(),
                if point.keep_params {
                    " and the parameters"
                } else {
                    ""
                }
            ));
        }
        out.push(RunRow {
            run,
            outcome,
            final_error,
            tail_error,
            mean_staleness,
            max_staleness,
            counters,
            capped_sleeps,
            wall_seconds,
            virtual_time,
            extras: rest[..extras].to_vec(),
            params: rest[extras..].to_vec(),
        });
    }
    Ok(out)
}

/// Where a run into a directory stands.
pub enum Progress {
    /// Every point is on disk, and the analysis ran: its report.
    Complete(String),
    /// Some points are missing (another shard's).
    Partial {
        /// Points on disk.
        done: usize,
        /// Points of the plan.
        total: usize,
        /// Wall-clock seconds of this call's runs.
        wall_seconds: f64,
        /// Threads they used.
        threads: usize,
    },
}

/// Removes temporaries a killed attempt left in `dir/points`: never a
/// finished point.
pub fn remove_temporaries(dir: &Path) {
    if let Ok(entries) = dir.join("points").read_dir() {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The objective table of a config.toml text: `Some((spec, the text with
/// the default objective in its place))` when it records a Python
/// objective (`kind = "python"`, written by the Python package), else
/// `None`. What reads a directory without running it (merge, report,
/// completeness) reads the rest; what runs it needs the objective back.
pub fn split_python_objective(
    text: &str,
) -> Result<Option<(toml::Value, String)>, toml::de::Error> {
    let mut value: toml::Value = toml::from_str(text)?;
    let Some(base) = value.get_mut("base").and_then(|b| b.as_table_mut()) else {
        return Ok(None);
    };
    let is_python = base
        .get("objective")
        .and_then(|o| o.get("kind"))
        .and_then(|k| k.as_str())
        == Some("python");
    if !is_python {
        return Ok(None);
    }
    let spec = base.remove("objective").expect("checked above");
    let default = toml::Value::try_from(psim_common::RunConfig::default().objective)
        .expect("the default objective serialises");
    base.insert("objective".into(), default);
    Ok(Some((
        spec,
        toml::to_string(&value).expect("a TOML value serialises"),
    )))
}

/// The experiment of a config.toml text, a recorded Python objective
/// replaced by the default (for readers that do not run it).
pub fn read_experiment(text: &str) -> Result<Experiment, toml::de::Error> {
    match split_python_objective(text)? {
        Some((_, rest)) => toml::from_str(&rest),
        None => toml::from_str(text),
    }
}

/// Checks every point file of the durable directory `dir` against its
/// experiment's plan (fingerprint) and its rows file (checksum): the same
/// check a resume and a merge make, for readers of a finished directory
/// (`psim report`). Names the first file that does not match.
pub fn verify_points(dir: &Path) -> Result<(), SweepError> {
    let text = crate::output::read_regular(&dir.join("config.toml")).map_err(|e| {
        bad(format!(
            "cannot read `{}`: {e}",
            dir.join("config.toml").display()
        ))
    })?;
    let e = read_experiment(&text).map_err(|err| {
        bad(format!(
            "invalid `{}`: {err}",
            dir.join("config.toml").display()
        ))
    })?;
    let plan = crate::catalogue::plan_of(&e).map_err(|err| bad(err.to_string()))?;
    for p in done_points(dir) {
        if p >= plan.points.len() {
            return Err(bad(format!(
                "`{}` holds point {p}, but the experiment has {} points",
                dir.display(),
                plan.points.len()
            )));
        }
        load_point(dir, &e.name, &plan, p, false)?;
    }
    Ok(())
}

/// How complete a psim output directory is: `(done, total)` points when it
/// is a durable directory (it has `config.toml` and a `points/` folder or a
/// `shard.json`), `None` otherwise.
pub fn completeness(dir: &Path) -> Option<(usize, usize)> {
    let text = crate::output::read_regular(&dir.join("config.toml")).ok()?;
    let e: Experiment = read_experiment(&text).ok()?;
    if !dir.join("points").is_dir() && !dir.join("shard.json").is_file() {
        return None;
    }
    let total = crate::catalogue::plan_of(&e).ok()?.points.len();
    let done = done_points(dir).into_iter().filter(|p| *p < total).count();
    Some((done, total))
}
