//! `psim run`, `psim sweep`, `psim reproduce`: build an experiment from
//! defaults, a config file and flags, run it with a progress bar, write
//! its outputs, print its report.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use psim_common::{
    ClusterConfig, ConfigError, Consistency, DataDistribution, Delay, EngineConfig, EngineKind,
    Experiment, HistoryPolicy, InitialPoint, ObjectiveConfig, Setting, Tolerance,
};
use psim_scenarios::catalogue::{self, Scenario, ScenarioError};
use psim_scenarios::durable::{self, Progress, Shard, ShardFile};
use psim_scenarios::executor::{self, BuiltIn, ObjectiveSource};
use psim_scenarios::output::OutputDir;
use psim_scenarios::sweep::{SweepError, SweepOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use psim_scenarios::experiments::plain::points_report;

/// The one table of flags: each line declares a flag of `psim run`, `sweep`,
/// `reproduce` and `speedup` once (the setting it gives, its clap options,
/// its help text) and generates the clap field of [`Overrides`], its entry
/// in [`FLAGS`] and its part of [`Overrides::given`]. What a setting means
/// (its config key, its engines, how it applies) is the `Setting`'s
/// (`psim_common::config::setting`) and [`Overrides::apply`]'s; the Python
/// keywords are read from these clap arguments by the extension, and the
/// configuration reference (docs/configuration.md) is generated from them
/// (`tests/settings_table.rs` fails when any face lacks a setting).
macro_rules! flag_table {
    ($( $(#[doc = $doc:expr])* [$setting:ident, $flag:literal $(, $attr:meta)*] $field:ident : $ty:ty, )*) => {
        /// Flags that set a value of an experiment (the first stage: raw values,
        /// checked and applied by [`Overrides::apply`] against what the command,
        /// scenario and engine accept).
        #[derive(Args, Debug, Default, Clone)]
        pub struct Overrides {
            $( $(#[doc = $doc])* #[arg(long = $flag $(, $attr)*)] $field: $ty, )*
        }

        /// Every flag of [`Overrides`] with the setting it gives, in table order.
        pub const FLAGS: &[(&str, Setting)] = &[ $( (concat!("--", $flag), Setting::$setting), )* ];

        impl Overrides {
            /// The settings given on the command line, each with the flag that gave it.
            fn given(&self) -> Vec<(&'static str, Setting)> {
                let mut v = Vec::new();
                $( if Given::given(&self.$field) { v.push((concat!("--", $flag), Setting::$setting)); } )*
                v
            }
        }
    };
}

/// Whether a flag's raw value was given.
trait Given {
    fn given(&self) -> bool;
}
impl<T> Given for Option<T> {
    fn given(&self) -> bool {
        self.is_some()
    }
}
impl<T> Given for Vec<T> {
    fn given(&self) -> bool {
        !self.is_empty()
    }
}

flag_table! {
    /// Momentum μ in (−1, 1) (negative for every rule but sgd); a comma list makes a grid (sweep, and scenarios that sweep μ).
    [Momentum, "momentum", value_delimiter = ',', allow_hyphen_values = true] momentum: Vec<f64>,
    /// Step size η > 0; a comma list makes a grid (sweep, and scenarios that sweep η).
    [StepSize, "step-size", value_delimiter = ',', allow_hyphen_values = true] step_size: Vec<f64>,
    /// Injected engine: delay model (repeat the flag for a grid): N, const:N, uniform:A..B, geometric:P,
    /// poisson:L, exp:MEAN, pareto:SCALE,SHAPE, lognormal:MU,SIGMA, trace:FILE, W*MODEL+W*MODEL.
    [Delay, "delay"] delay: Vec<String>,
    /// Injected engine: constant delays FROM:TO:STEP (inclusive, at most 10,001 delays), e.g. 0:160:10.
    [Delay, "taus"] taus: Option<String>,
    /// Gradients drawn per run (server updates on the cluster engines).
    [Steps, "steps", alias = "max-steps"] steps: Option<u64>,
    /// Independent runs per point.
    [Runs, "runs"] runs: Option<u32>,
    /// Master seed.
    [Seed, "seed"] seed: Option<u64>,
    /// Streaming PCA: eigenvalues of a diagonal Σ, largest first, e.g. 4,3,2,1.
    [Objective, "spectrum", value_delimiter = ','] spectrum: Vec<f64>,
    /// Streaming PCA: full covariance, rows separated by `;`, e.g. "2,1;1,2".
    [Objective, "covariance"] covariance: Option<String>,
    /// Streaming PCA: data distribution, gaussian or uniform (bounded, Assumption 2 of 001).
    [Objective, "data"] data: Option<String>,
    /// Streaming PCA: start, saddle, random, eigenvector:K, vector:X1,X2,…
    [Objective, "init"] init: Option<String>,
    /// Injected engine: versions the server keeps for injected staleness.
    [History, "history"] history: Option<usize>,
    /// Injected engine: beyond the history, clamp (serve the oldest kept) or drop.
    [HistoryPolicy, "history-policy"] history_policy: Option<String>,
    /// Record the error every N steps.
    [RecordEvery, "record-every"] record_every: Option<u64>,
    /// Report the mean error over this last fraction of steps, in (0, 1].
    [TailFraction, "tail-fraction"] tail_fraction: Option<f64>,
    /// A run whose ‖v‖ exceeds this has diverged.
    [DivergenceNorm, "divergence-norm"] divergence_norm: Option<f64>,
    /// Stop a run once its error reaches this.
    [TargetError, "target-error"] target_error: Option<f64>,
    /// Keep every run's final parameters: columns param_0… of runs.csv
    /// (Python: `Result.params`), e.g. `--record-params`.
    [RecordParams, "record-params", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"] record_params: Option<bool>,
    /// Engine: injected, virtual-time, threads, tasks.
    [Engine, "engine"] engine: Option<String>,
    /// Update rule: sgd, heavy-ball (default), nesterov, staleness-aware, dc-asgd:LAMBDA, delay-adaptive[:C].
    [Rule, "rule"] rule: Option<String>,
    /// Step-size schedule: constant (default) or anneal:STEP:FACTOR[,STEP:FACTOR…].
    [Schedule, "schedule"] schedule: Option<String>,
    /// Cluster engines: workers M; a comma list makes a grid (sweep, tradeoff).
    [Workers, "workers", value_delimiter = ','] workers: Vec<usize>,
    /// Cluster engines: compute time per gradient (seconds; virtual on virtual-time) as a
    /// delay model; repeat the flag for a grid.
    [ComputeTime, "compute-time"] compute_time: Vec<String>,
    /// Cluster engines: each worker's own compute time. `models:M0;M1;…` (one
    /// delay model per worker), `linear:A,B` (worker i: compute time × (A + B·i)),
    /// `draw:MODEL` (worker i: compute time × f_i, f_i drawn once per run from
    /// MODEL), `replay:DIR/pushes.csv` (virtual-time: the recorded compute times
    /// per worker), `profile:A+B*i^P;noise=…;period=…;power=…;up=…;down=…;upload=…;download=…`
    /// (the papers' profile, i = worker + 1: compute time × (A + B·i^P + noise),
    /// time-varying power, outages, upload and download times; docs/engines.md).
    /// Example: `--engine virtual-time --workers 8 --compute-time 1
    /// --worker-compute linear:1,1` makes worker i take i+1 time units.
    [WorkerCompute, "worker-compute"] worker_compute: Option<String>,
    /// Cluster engines: write every applied push (worker, versions, staleness,
    /// compute and wait seconds) to pushes.csv, at most 10^6 rows per run;
    /// replay it with `--delay trace:DIR/pushes.csv` on the injected engine.
    [RecordPushes, "record-pushes", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"] record_pushes: Option<bool>,
    /// Cluster engines: network delay per push in seconds, as a delay model (the
    /// upload time every worker shares; `profile:…;upload=…` adds per-worker ones).
    [NetworkDelay, "network-delay"] network_delay: Option<String>,
    /// Cluster engines: consistency model or server policy, asp, ssp:S, bsp, rennala:B[,discard], ringmaster:R[,stop], ksync:K, buffered:K; a comma list makes a grid.
    [Consistency, "consistency", value_delimiter = ','] consistency: Vec<String>,
    /// Threads engine: server back-end, lock or channel.
    [Backend, "backend"] backend: Option<String>,
    /// Threads and tasks engines: when a worker panics, stop or continue.
    [OnWorkerFailure, "on-worker-failure"] on_worker_failure: Option<String>,
    /// Cluster engines: slow workers, FRACTION:SLOWDOWN (that fraction of the
    /// workers, chosen deterministically, computes SLOWDOWN times longer), e.g. 0.25:4.
    [Stragglers, "stragglers"] stragglers: Option<String>,
    /// Tradeoff analysis: a grid value is tolerated when its mean error ≤ FACTOR × the error at the
    /// smallest one (sweep --optimal-delay, reproduce tradeoff).
    [Tolerance, "factor"] factor: Option<f64>,
}

/// The command-line flags of a setting (from [`FLAGS`]).
pub fn flags(setting: Setting) -> Vec<&'static str> {
    FLAGS
        .iter()
        .filter(|(_, s)| *s == setting)
        .map(|(f, _)| *f)
        .collect()
}

fn flag_list(settings: &[Setting]) -> String {
    settings
        .iter()
        .flat_map(|s| flags(*s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the experiment being built accepts.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// `psim run`: one value of every setting.
    Run,
    /// `psim sweep`: grids; `--factor` only with the tradeoff analysis.
    Sweep,
    /// A named scenario: what it declares.
    Scenario(&'a dyn Scenario),
}

/// Sets a grid axis from a flag's values: the base takes the first value;
/// the grid takes the list when it has several values or the experiment
/// already sweeps that axis.
/// The `--consistency` list split at commas, with each policy's option
/// (`rennala:B,discard`, `ringmaster:R,stop`) joined back to its policy:
/// `asp,ringmaster:8,stop` is the two values `asp` and `ringmaster:8,stop`.
/// Any piece that is no policy of its own (no `:`, not `asp` or `bsp`)
/// after a policy with a parameter is taken as its option, so a wrong
/// option (`rennala:2,foo`) is refused as that value, naming it.
fn rejoin_policy_options(pieces: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(pieces.len());
    for p in pieces {
        let option = {
            let p = p.trim();
            !p.contains(':') && !matches!(p, "asp" | "bsp")
        };
        match (option, out.last_mut()) {
            (true, Some(last)) if last.contains(':') => {
                last.push(',');
                last.push_str(p.trim());
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

fn set_axis<T: Clone>(base: &mut T, grid: &mut Vec<T>, values: Vec<T>) {
    if let Some(first) = values.first() {
        *base = first.clone();
    }
    if values.len() > 1 || !grid.is_empty() {
        *grid = values;
    } else {
        grid.clear();
    }
}

fn engine_refusal(flag: &str, setting: Setting, engine: EngineKind) -> anyhow::Error {
    let on: Vec<String> = setting.engines().iter().map(|k| k.to_string()).collect();
    anyhow::anyhow!(
        "`{flag}` applies to the {} engine{}, and this experiment runs on the {engine} engine, so it is refused rather than ignored (add `--engine {}` to use it)",
        on.join(", "),
        if on.len() > 1 { "s" } else { "" },
        on[0]
    )
}

/// Where and how to run.
#[derive(Args, Debug, Default, Clone)]
pub struct Execution {
    /// Output directory (default psim-out/NAME, suffixed when taken); must be new or empty.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Allow writing into a non-empty --out directory.
    #[arg(long)]
    pub force: bool,
    /// Worker threads for the runs (default: one per core; at most 4 × the
    /// cores, and never more than 1024).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run the injected engine run by run on the scalar reference instead of
    /// in SIMD batches of 8 runs (other random numbers, same law), e.g.
    /// `psim reproduce tradeoff --scalar-engine`.
    #[arg(long)]
    pub scalar_engine: bool,
    /// Continue the interrupted output directory DIR: its config.toml is the
    /// experiment (flags may only repeat its values), finished points are kept,
    /// the missing ones run, then the outputs are written, e.g.
    /// `psim reproduce tradeoff --resume psim-out/tradeoff`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "force"])]
    pub resume: Option<PathBuf>,
    /// Run a share of the points, I/N (point P belongs to shard P mod N; a
    /// point that starts where another ended goes with it), or
    /// `auto`: from SLURM_ARRAY_TASK_ID/COUNT, JOB_COMPLETION_INDEX or HQ_TASK_ID;
    /// combine the shards' directories with `psim merge`, e.g. `--shard 0/3 --out s0`.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Also write runs.parquet and traces.parquet (the same rows, one fixed
    /// type per column) beside runs.csv and traces.csv, for large sweeps
    /// read by pandas, polars or Arrow (the Python package writes them
    /// unless parquet=False), e.g. `psim sweep --runs 100000 --parquet`.
    #[arg(long)]
    pub parquet: bool,
    /// A scratch output directory, deleted with its caller (the Python
    /// package's temporary one): written without flushing to disk
    /// ([`OutputDir::scratch`]). Not a flag.
    #[arg(skip)]
    pub scratch: bool,
    /// Shards in all, for `--shard auto` under Kubernetes or HyperQueue (whose
    /// environment has the index only); default $PSIM_SHARD_COUNT.
    #[arg(long = "shard-count", value_name = "N")]
    pub shard_count: Option<usize>,
}

impl Execution {
    /// The shard asked for, if any.
    fn shard(&self) -> Result<Option<Shard>> {
        if self.parquet && self.shard.is_some() {
            // A shard's tables are partial; the merged ones are whole.
            bail!("`--parquet` is refused with `--shard`: a shard holds part of the points; pass --parquet to `psim merge`, which writes the whole tables");
        }
        match self.shard.as_deref() {
            None if self.shard_count.is_some() => {
                bail!("`--shard-count` is the shard count of `--shard auto`; give --shard auto")
            }
            None => Ok(None),
            Some("auto") => Shard::from_env(self.shard_count, |v| std::env::var(v).ok())
                .map(Some)
                .map_err(anyhow::Error::msg),
            Some(text) => {
                if self.shard_count.is_some() {
                    bail!("`--shard-count` goes with `--shard auto`; `--shard {text}` names the count already");
                }
                Shard::parse(text).map(Some).map_err(anyhow::Error::msg)
            }
        }
    }

    /// Refuses `--resume` and `--shard` where there is no durable sweep.
    fn refuse_durable(&self, why: &str) -> Result<()> {
        for (given, flag) in [
            (self.resume.is_some(), "--resume"),
            (self.shard.is_some(), "--shard"),
            (self.shard_count.is_some(), "--shard-count"),
        ] {
            if given {
                bail!("`{flag}` is refused here: {why}");
            }
        }
        Ok(())
    }
}

/// `psim run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Replay a config.toml written by an earlier command (flags still override).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(flatten)]
    exec: Execution,
}

/// `psim sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Start from a config.toml (flags override).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read the optimal delay per (μ, η) off the grid (E1's analysis).
    #[arg(long = "optimal-delay")]
    optimal_delay: bool,
    #[command(flatten)]
    overrides: Overrides,
    #[command(flatten)]
    exec: Execution,
}

/// `psim reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Scenario name (see --list).
    name: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Rerun the scenario at each master seed A..B (inclusive) or S1,S2,…, print each
    /// seed's verdict and how many hold; fails unless at least 9 in 10 do
    /// (outputs in OUT/seed-S). Example: --check-seeds 1..10
    #[arg(long = "check-seeds", value_name = "SEEDS")]
    check_seeds: Option<String>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(flatten)]
    exec: Execution,
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(text.parse::<T>()?)
}

/// Most delays `--taus` may produce.
pub const MAX_TAUS: u64 = 10_001;

/// Most sweep threads per core (`--threads`), and the hard cap: more
/// threads than cores only add switching (10,000 threads took 38 s to start
/// for a 0.01 s job).
pub const THREADS_PER_CORE: usize = 4;
/// Hard cap of `--threads`.
pub const MAX_THREADS: usize = 1024;

/// The largest `--threads` this machine accepts: 4 × the cores, at most 1024.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (THREADS_PER_CORE * cores).min(MAX_THREADS)
}

/// Checks `--threads` (0 = one per core).
pub fn check_threads(threads: usize) -> Result<(), ConfigError> {
    let max = max_threads();
    if threads > max {
        return Err(ConfigError::new(
            "--threads",
            threads,
            format!("in 0..={max} (0 = one per core; at most {THREADS_PER_CORE} × the cores and at most {MAX_THREADS})"),
        ));
    }
    Ok(())
}

/// Parses `FROM:TO:STEP` into constant delays.
pub fn parse_taus(text: &str) -> Result<Vec<Delay>, ConfigError> {
    let bad = || {
        ConfigError::new(
            "taus",
            text,
            "FROM:TO:STEP with integers 0 ≤ FROM ≤ TO and STEP ≥ 1, e.g. 0:160:10",
        )
    };
    let parts: Vec<u64> = text
        .split(':')
        .map(|p| p.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [from, to, step] = parts[..] else {
        return Err(bad());
    };
    if step == 0 || from > to {
        return Err(bad());
    }
    let n = ((to - from) / step).saturating_add(1);
    if n > MAX_TAUS {
        return Err(ConfigError::new(
            "taus",
            text,
            format!("at most {MAX_TAUS} delays (FROM:TO:STEP gives {n}); use a larger STEP"),
        ));
    }
    Ok((from..=to)
        .step_by(step as usize)
        .map(Delay::constant)
        .collect())
}

/// Parses `--stragglers FRACTION:SLOWDOWN` (ranges checked by validation).
fn parse_stragglers(text: &str) -> Result<psim_common::Stragglers, ConfigError> {
    let bad = || {
        ConfigError::new(
            "stragglers",
            text,
            "FRACTION:SLOWDOWN, a fraction of the workers in [0, 1] and a slowdown ≥ 1, e.g. 0.25:4",
        )
    };
    let (f, k) = text.split_once(':').ok_or_else(bad)?;
    Ok(psim_common::Stragglers {
        fraction: f.trim().parse().map_err(|_| bad())?,
        slowdown: k.trim().parse().map_err(|_| bad())?,
    })
}

fn parse_covariance(text: &str) -> Result<Vec<Vec<f64>>, ConfigError> {
    text.split(';')
        .map(|row| {
            row.split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<Vec<f64>, _>>()
        })
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ConfigError::new(
                "covariance",
                text,
                "rows of numbers separated by `;`, entries by `,`, e.g. \"2,1;1,2\"",
            )
        })
}

/// Refuses `--history`/`--history-policy` when no delay of the experiment
/// reaches them (the flag would change nothing): the experiment's own check
/// ([`Experiment::check_history_has_effect`], which a config file meets
/// too), its error naming the flag.
fn check_history_reached(e: &Experiment) -> Result<()> {
    e.check_history_has_effect().map_err(|err| {
        let flag = if err.field == "engine.history.policy" {
            "--history-policy"
        } else {
            "--history"
        };
        anyhow::anyhow!("`{flag}` would change nothing: {err}")
    })
}

impl Overrides {
    /// The second stage: checks every given flag against `scope` and the
    /// engine, then applies it to `e`. `from_file` says whether `e` was read
    /// from a config file (whose engine a flag may not switch).
    fn apply(&self, e: &mut Experiment, scope: Scope<'_>, from_file: bool) -> Result<()> {
        let given = self.given();
        for &(flag, setting) in &given {
            match scope {
                Scope::Scenario(s) if !s.accepts().contains(&setting) => bail!(
                    "`{flag}` is not used by scenario `{}`, so it is refused rather than ignored; it accepts: {}",
                    s.name(),
                    flag_list(s.accepts())
                ),
                Scope::Run if setting == Setting::Tolerance => bail!(
                    "`--factor` sets the tradeoff analysis of `psim sweep --optimal-delay` and `psim reproduce tradeoff`; `psim run` has none, so it is refused rather than ignored"
                ),
                Scope::Sweep if setting == Setting::Tolerance && e.tradeoff.is_none() => bail!(
                    "`--factor` sets the tradeoff analysis: add `--optimal-delay` (without it the flag would be ignored)"
                ),
                _ => {}
            }
            if let Scope::Run = scope {
                let many = match setting {
                    Setting::Momentum => self.momentum.len() > 1,
                    Setting::StepSize => self.step_size.len() > 1,
                    Setting::Delay if flag == "--taus" => true,
                    Setting::Delay => self.delay.len() > 1,
                    Setting::Workers => self.workers.len() > 1,
                    Setting::ComputeTime => self.compute_time.len() > 1,
                    Setting::Consistency => rejoin_policy_options(&self.consistency).len() > 1,
                    _ => false,
                };
                if many && !from_file {
                    bail!("`psim run` takes one value of `{flag}`; use `psim sweep` for a grid");
                }
            }
        }
        // The engine first: the other flags are checked against it.
        if let Some(x) = &self.engine {
            let kind = parse::<EngineKind>(x)?;
            if kind != e.base.engine_kind() {
                if from_file {
                    bail!(
                        "`--engine {kind}` would switch the engine of a loaded config (base.engine.kind = {}), dropping its engine settings; edit the file instead",
                        e.base.engine_kind()
                    );
                }
                match scope {
                    Scope::Scenario(s) => *e = s.experiment_on(kind)?,
                    _ => e.base.engine = EngineConfig::new(kind, ClusterConfig::default()),
                }
            }
        }
        let kind = e.base.engine_kind();
        for &(flag, setting) in &given {
            if !setting.engines().contains(&kind) {
                return Err(engine_refusal(flag, setting, kind));
            }
        }
        let b = &mut e.base;
        let g = &mut e.grid;
        if !self.momentum.is_empty() {
            set_axis(&mut b.momentum, &mut g.momentum, self.momentum.clone());
        }
        if !self.step_size.is_empty() {
            set_axis(&mut b.step_size, &mut g.step_size, self.step_size.clone());
        }
        let delays = match (&self.taus, self.delay.is_empty()) {
            (Some(t), _) if !self.delay.is_empty() => {
                bail!("give `--taus` or `--delay`, not both (got --taus {t})")
            }
            (Some(t), _) => Some(parse_taus(t)?),
            (None, false) => Some(
                self.delay
                    .iter()
                    .map(|d| parse::<Delay>(d))
                    .collect::<Result<Vec<_>>>()?,
            ),
            (None, true) => None,
        };
        if let (Some(d), Some(inj)) = (delays, b.engine.injected_mut()) {
            set_axis(&mut inj.delay, &mut g.delay, d);
        }
        if let Some(inj) = b.engine.injected_mut() {
            if let Some(h) = self.history {
                inj.history.capacity = h;
            }
            if let Some(p) = &self.history_policy {
                inj.history.policy = parse::<HistoryPolicy>(p)?;
            }
        }
        if let Some(c) = b.engine.cluster_mut() {
            if !self.workers.is_empty() {
                set_axis(&mut c.workers, &mut g.workers, self.workers.clone());
            }
            if !self.compute_time.is_empty() {
                let v = self
                    .compute_time
                    .iter()
                    .map(|d| parse::<Delay>(d))
                    .collect::<Result<Vec<_>>>()?;
                set_axis(&mut c.compute_time, &mut g.compute_time, v);
            }
            if let Some(x) = &self.network_delay {
                c.network_delay = parse::<Delay>(x)?;
            }
            if let Some(x) = &self.worker_compute {
                c.worker_compute = Some(parse::<psim_common::WorkerCompute>(x)?);
            }
            if let Some(r) = self.record_pushes {
                c.record_pushes = r;
            }
            if let Some(x) = &self.stragglers {
                c.stragglers = Some(parse_stragglers(x)?);
            }
            if !self.consistency.is_empty() {
                let v = rejoin_policy_options(&self.consistency)
                    .iter()
                    .map(|d| parse::<Consistency>(d))
                    .collect::<Result<Vec<_>>>()?;
                set_axis(&mut c.consistency, &mut g.consistency, v);
            }
        }
        match &mut b.engine {
            EngineConfig::Threads(t) => {
                if let Some(x) = &self.backend {
                    t.backend = parse::<psim_common::Backend>(x)?;
                }
                if let Some(x) = &self.on_worker_failure {
                    t.on_worker_failure = parse::<psim_common::FailurePolicy>(x)?;
                }
            }
            EngineConfig::Tasks(t) => {
                if let Some(x) = &self.on_worker_failure {
                    t.on_worker_failure = parse::<psim_common::FailurePolicy>(x)?;
                }
            }
            _ => {}
        }
        macro_rules! set {
            ($($flag:ident => $field:expr),*) => { $( if let Some(v) = self.$flag { $field = v; } )* };
        }
        set!(steps => b.steps, runs => b.runs, seed => b.seed, record_every => b.record_every, tail_fraction => b.tail_fraction, divergence_norm => b.divergence_norm);
        if let Some(t) = self.target_error {
            b.target_error = Some(t);
        }
        if let Some(r) = self.record_params {
            b.record_params = r;
        }
        if let Some(x) = &self.rule {
            b.rule = parse::<psim_common::RuleKind>(x)?;
        }
        if let Some(x) = &self.schedule {
            b.schedule = parse::<psim_common::Schedule>(x)?;
        }
        let touches_pca = !self.spectrum.is_empty()
            || self.covariance.is_some()
            || self.data.is_some()
            || self.init.is_some();
        if touches_pca {
            let ObjectiveConfig::Pca(p) = &mut b.objective else {
                bail!("--spectrum, --covariance, --data and --init apply to the streaming-PCA objective only; this experiment's objective is another, so they are refused rather than ignored");
            };
            if !self.spectrum.is_empty() && self.covariance.is_some() {
                bail!("`--spectrum` and `--covariance` both set Σ: give one (a diagonal Σ by its eigenvalues, or the full matrix)");
            }
            if !self.spectrum.is_empty() {
                p.spectrum = self.spectrum.clone();
                p.covariance = None;
            }
            if let Some(c) = &self.covariance {
                p.covariance = Some(parse_covariance(c)?);
                p.spectrum.clear();
            }
            if let Some(d) = &self.data {
                p.data = match d.as_str() {
                    "gaussian" => DataDistribution::Gaussian,
                    "uniform" => DataDistribution::Uniform,
                    _ => return Err(ConfigError::new("data", d, "`gaussian` or `uniform`").into()),
                };
            }
            if let Some(i) = &self.init {
                p.init = parse::<InitialPoint>(i)?;
            }
        }
        if let Some(f) = self.factor {
            e.tradeoff = Some(Tolerance { factor: f });
        }
        if self.history.is_some() || self.history_policy.is_some() {
            check_history_reached(e)?;
        }
        if let Scope::Scenario(s) = scope {
            catalogue::check(s, e)?;
        }
        Ok(())
    }
}

thread_local! {
    static PYTHON_OBJECTIVES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (the Python package's `prepare`) with config files that record
/// a Python objective readable: their `[base.objective]` is set aside (the
/// package re-imports the objective from it and hands it in) and the rest
/// read as usual. Everywhere else such a file is refused: the command line
/// cannot run Python, and must not run another objective in its place.
pub fn with_python_objectives<T>(f: impl FnOnce() -> T) -> T {
    let before = PYTHON_OBJECTIVES.with(|c| c.replace(true));
    let out = f();
    PYTHON_OBJECTIVES.with(|c| c.set(before));
    out
}

pub use psim_scenarios::durable::split_python_objective;

/// Whether `e` records every push (the push logs live in memory, not in
/// point files: no shard, resume or merge can keep them).
pub fn records_pushes(e: &Experiment) -> bool {
    e.base.cluster().is_some_and(|c| c.record_pushes)
}

fn load(path: &Path) -> Result<Experiment> {
    let mut text = psim_common::fs::read_regular(path, psim_common::fs::Links::Follow)
        .with_context(|| format!("cannot read config `{}`", path.display()))?;
    if let Ok(Some((spec, rest))) = split_python_objective(&text) {
        if !PYTHON_OBJECTIVES.with(|c| c.get()) {
            let reference = spec
                .get("reference")
                .and_then(|r| r.as_str())
                .unwrap_or("?");
            bail!(
                "`{}` records a Python objective (`objective`: {reference}); the command line cannot run it, and will not run another objective in its place: replay it with psim.run(config=...) or resume it with resume=... from Python",
                path.display()
            );
        }
        text = rest;
    }
    toml::from_str(&text).with_context(|| {
        // A config.toml of psim before engine settings moved into
        // `[base.engine]`: say how to convert it rather than only what failed.
        let old = text.contains("[base.cluster]")
            || text.contains("[base.history]")
            || text.lines().any(|l| l.trim_start().starts_with("engine = \""));
        let hint = if old {
            "; it was written by an older psim: the engine's settings now live in `[base.engine]` (kind = \"injected\" with `delay` and `[base.engine.history]`, or kind = \"virtual-time\"/\"threads\"/\"tasks\" with `[base.engine.cluster]`), see the README's Configuration section"
        } else {
            ""
        };
        format!("invalid config `{}`{hint}", path.display())
    })
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} runs ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// A progress event of [`execute_with`]: the runs this call will make
/// (once, before the first run), then one per finished run.
#[derive(Debug, Clone, Copy)]
pub enum Tick {
    /// Runs to make in this call (finished points excluded).
    Total(u64),
    /// One run finished.
    Run,
}

/// What running an experiment into its directory came to.
pub enum Executed {
    /// Every point is on disk and the analysis ran.
    Complete {
        /// The report (also `report.txt`).
        report: String,
        /// The output directory.
        out: OutputDir,
    },
    /// This shard's points are on disk; other shards' are missing.
    Partial {
        /// The shard that ran.
        shard: Shard,
        /// Its points.
        share: usize,
        /// Points of the experiment on disk here.
        done: usize,
        /// Points of the experiment.
        total: usize,
        /// The output directory.
        out: OutputDir,
    },
}

/// Runs an experiment and prints its report: the command line's face of
/// [`execute_with`]. Ctrl-C stops it within a second, keeping every
/// finished point, and says how to resume.
pub fn execute(e: Experiment, exec: &Execution, _scenario: Option<&dyn Scenario>) -> Result<()> {
    let bar = std::sync::Mutex::new(None::<ProgressBar>);
    let quiet = exec.quiet;
    let tick = |t: Tick| match t {
        Tick::Total(n) => {
            *bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress_bar(n, quiet));
        }
        Tick::Run => {
            if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                b.inc(1);
            }
        }
    };
    let cancel = interrupt::flag();
    let result = execute_with(e, exec, &BuiltIn, &tick, Some(&cancel));
    if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
        b.finish_and_clear();
    }
    match result? {
        Executed::Complete { report, out } => {
            super::print(format_args!(
                "{report}\nresults in {}\n",
                out.path().display()
            ))?;
        }
        Executed::Partial {
            shard,
            share,
            done,
            total,
            out,
        } => super::print(format_args!(
            "shard {shard}: its {share} points are done ({done} of the experiment's {total} in {}); once every shard is done, combine them with `psim merge DIR... --out OUT`\n",
            out.path().display()
        ))?,
    }
    Ok(())
}

/// Ctrl-C on the command line: the first SIGINT raises the cancel flag of
/// the runs under way (they stop within one poll, finished points stay on
/// disk); a second one ends the process at once.
mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    #[cfg(unix)]
    extern "C" fn on_sigint(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
        // Async-signal-safe: the next Ctrl-C takes the default action.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }

    /// A cancel flag raised by the first Ctrl-C (a watcher thread copies
    /// the signal handler's static flag into it every 20 ms).
    pub fn flag() -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        unsafe {
            libc::signal(
                libc::SIGINT,
                on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        let watched = Arc::downgrade(&flag);
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let Some(f) = watched.upgrade() else { return };
            if INTERRUPTED.load(Ordering::SeqCst) {
                f.store(true, Ordering::SeqCst);
                return;
            }
        });
        flag
    }
}

/// The one way an experiment runs, for every face (the CLI's commands and
/// the Python package): checks everything that can be refused before the
/// output directory exists, creates or continues the directory (`--out`,
/// `--force`, `--resume`, a shard's or a retried shard's), then hands the
/// study of `e` (its named scenario, the tradeoff, or a plain sweep) to the
/// executor, which writes each point as it finishes and runs the analysis
/// once all are there. `source` builds the objectives (the configuration's
/// built-in one, or a user's from Python); `progress` hears of the runs;
/// `cancel`, when raised, stops the runs under way within one poll.
pub fn execute_with<S: ObjectiveSource>(
    mut e: Experiment,
    exec: &Execution,
    source: &S,
    progress: &(dyn Fn(Tick) + Sync),
    cancel: Option<&Arc<AtomicBool>>,
) -> Result<Executed> {
    // Everything that can be refused is refused before the directory exists.
    check_threads(exec.threads)?;
    let study = catalogue::study_of(&e);
    if exec.scalar_engine {
        apply_scalar_engine(&mut e, exec.resume.is_some())?;
    }
    e.validate()?;
    let objective = source.build(&e.base)?;
    psim_engine::check(&e.base, psim_common::Objective::dim(&objective))?;
    let plan = study.plan(&e)?;
    check_memory(&e)?;
    let mut shard = exec.shard()?;
    if shard.is_some() && records_pushes(&e) {
        bail!("`--record-pushes` is refused with `--shard`: push logs are kept in memory for the whole run, not in the point files a merge reads, so the merged directory would lack pushes.csv; record pushes in an unsharded run");
    }
    let out = match (&exec.resume, &exec.out) {
        // run/sweep/reproduce checked that the recorded experiment is `e`.
        (Some(dir), _) => OutputDir::existing(dir)?,
        // A retried shard continues its own directory.
        (None, Some(dir)) if shard.is_some() && recorded(dir).is_some_and(|r| r == e) => {
            OutputDir::existing(dir)?
        }
        _ => {
            let name = match shard {
                Some(s) => format!("{}-shard-{}-of-{}", e.name, s.index, s.count),
                None => e.name.clone(),
            };
            let out = OutputDir::create(exec.out.as_deref(), &name, exec.force)?;
            match source.recorded_config(&e) {
                Some(text) => {
                    out.write("config.toml", text.map_err(anyhow::Error::msg)?)?;
                }
                None => {
                    out.write_config(&e)?;
                }
            }
            out
        }
    };
    let out = if exec.scratch { out.scratch() } else { out };
    let total = plan.points.len();
    // The directory's own shard, if it is one: a resume keeps it.
    let recorded_shard: Option<ShardFile> =
        psim_scenarios::output::read_regular(&out.path().join("shard.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
    match (&recorded_shard, shard) {
        (Some(r), Some(s)) if r.shard != s => bail!(
            "`{}` is shard {} of this experiment, not {s}; give its own --out to each shard",
            out.path().display(),
            r.shard
        ),
        (Some(r), None) => shard = Some(r.shard),
        (None, Some(_)) if !durable::done_points(out.path()).is_empty() => bail!(
            "`{}` holds points of an unsharded run; resume it without --shard, or give the shard a new --out",
            out.path().display()
        ),
        _ => {}
    }
    let shard = shard.unwrap_or(Shard::ALL);
    let chains = plan.chains();
    if shard.count > chains {
        let what = if chains == total {
            format!("{total} points")
        } else {
            format!("{chains} independent chains of points")
        };
        bail!(
            "`--shard {shard}`: the experiment has {what}, fewer than {} shards, so some shards would have none and the merge could never complete; use at most {chains} shards (splitting the runs of one point across shards is not supported)",
            shard.count
        );
    }
    let share = plan.share(shard);
    let mut shard_file = recorded_shard.unwrap_or(ShardFile {
        shard,
        points: total,
        share: share.clone(),
        wall_seconds: 0.0,
        threads: 0,
    });
    if shard.count > 1 {
        out.write_json("shard.json", &shard_file)?;
    }
    let done = durable::done_points(out.path());
    let todo: Vec<usize> = share
        .iter()
        .copied()
        .filter(|p| !done.contains(p))
        .collect();
    progress(Tick::Total(plan.runs_of(&todo)));
    let tick = || progress(Tick::Run);
    // Wall-clock engines measure time: their runs must not share the cores.
    let opts = SweepOptions {
        threads: if e.base.engine.is_wall_clock() && exec.threads == 0 {
            1
        } else {
            exec.threads
        },
        progress: Some(&tick),
        cancel,
    };
    match executor::run_in_dir(study, &e, source, &out, shard, &opts) {
        Ok(Progress::Complete(report)) => {
            if exec.parquet {
                psim_scenarios::parquet::write_tables(&out)?;
            }
            Ok(Executed::Complete { report, out })
        }
        Ok(Progress::Partial {
            done,
            total,
            wall_seconds,
            threads,
        }) => {
            shard_file.wall_seconds += wall_seconds;
            shard_file.threads = threads;
            out.write_json("shard.json", &shard_file)?;
            Ok(Executed::Partial {
                shard,
                share: share.len(),
                done,
                total,
                out,
            })
        }
        Err(ScenarioError::Sweep(SweepError::Cancelled)) => {
            let done = durable::done_points(out.path()).len();
            bail!(
                "interrupted: {done} of the {total} points are on disk in `{dir}`; continue with `psim run --resume {dir}` (from Python: resume=\"{dir}\")",
                dir = out.path().display()
            )
        }
        Err(err) => Err(err.into()),
    }
}

/// `--scalar-engine`: records in the experiment that its injected points
/// run on the scalar engine (so a replay or a resume runs the same one);
/// refused where no batched path would run.
fn apply_scalar_engine(e: &mut Experiment, resuming: bool) -> Result<()> {
    let Some(inj) = e.base.engine.injected_mut() else {
        bail!(
            "`--scalar-engine` turns off the batched injected engine; this experiment runs on the {} engine, so it is refused rather than ignored",
            e.base.engine_kind()
        );
    };
    if inj.scalar {
        return Ok(());
    }
    if resuming {
        bail!("`--scalar-engine` would change the experiment being resumed (its config.toml runs the batched engine); drop it, or start afresh with --out");
    }
    let batched = catalogue::plan_of(e).ok().is_some_and(|p| {
        p.batch
            && p.points
                .iter()
                .any(|x| psim_engine::batched::unsupported(&x.config).is_none())
    });
    if !batched {
        bail!(
            "`--scalar-engine` turns off the batched injected engine, which does not run this experiment (its scenario runs the scalar engine already, or an objective or delay the batched engine does not cover), so it is refused rather than ignored"
        );
    }
    if let Some(inj) = e.base.engine.injected_mut() {
        inj.scalar = true;
    }
    Ok(())
}

/// Refuses a sweep whose peak memory ([`psim_scenarios::sweep::memory_bytes`])
/// exceeds the memory available: `PSIM_MEMORY_LIMIT` (bytes, or with a
/// K/M/G suffix) when set, otherwise MemAvailable of /proc/meminfo.
fn check_memory(e: &Experiment) -> Result<()> {
    let need = psim_scenarios::sweep::memory_bytes(e);
    let (limit, source) = match std::env::var("PSIM_MEMORY_LIMIT") {
        Ok(v) => (
            crate::cmd::limits::parse_memory_limit(&v)?,
            "PSIM_MEMORY_LIMIT",
        ),
        Err(_) => match std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        }) {
            Some(kb) => (kb << 10, "MemAvailable in /proc/meminfo"),
            None => return Ok(()),
        },
    };
    if need > limit {
        let gb = |b: u64| b as f64 / (1u64 << 30) as f64;
        bail!(
            "this sweep needs about {:.2} GiB at its peak, more than the {:.2} GiB available ({source}): per point it keeps {} runs (`runs`, --runs) × (256 B + 16 B × {} trace points, `steps` / `record_every` + 2; --steps, --record-every); lower --runs (shards split points, not runs), or raise --record-every",
            gb(need),
            gb(limit),
            e.base.runs,
            e.base.steps / e.base.record_every.max(1) + 2
        );
    }
    Ok(())
}

/// The experiment recorded in `dir/config.toml`, if it reads.
fn recorded(dir: &Path) -> Option<Experiment> {
    load(&dir.join("config.toml")).ok()
}

/// The experiment of `--resume DIR`: the one recorded there, with `apply`
/// allowed only to repeat its values.
fn resume_experiment(
    dir: &Path,
    command: &str,
    apply: impl FnOnce(&mut Experiment, Option<&'static dyn Scenario>) -> Result<()>,
) -> Result<(Experiment, Option<&'static dyn Scenario>)> {
    let path = dir.join("config.toml");
    if !path.is_file() {
        bail!(
            "`--resume {}`: no config.toml there, so it is not a psim output directory to continue",
            dir.display()
        );
    }
    let recorded = load(&path)?;
    let scenario = catalogue::find(&recorded.name);
    let mut e = recorded.clone();
    apply(&mut e, scenario)?;
    if e != recorded {
        bail!(
            "`{command} --resume {}` continues the experiment recorded in its config.toml; the other flags given change it, so they are refused: drop them, or start afresh with --out",
            dir.display()
        );
    }
    Ok((e, scenario))
}

/// The experiment of `--config PATH`, or `default`; with the scenario the
/// experiment's name refers to, if any.
fn start(
    config: Option<&PathBuf>,
    default: &str,
) -> Result<(Experiment, Option<&'static dyn Scenario>)> {
    let e = match config {
        Some(p) => load(p)?,
        None => Experiment {
            name: default.into(),
            base: Default::default(),
            grid: Default::default(),
            tradeoff: None,
        },
    };
    let scenario = catalogue::find(&e.name);
    if let Some(s) = scenario {
        // A scenario's config file may change only what the scenario accepts.
        catalogue::check(s, &e)?;
    }
    Ok((e, scenario))
}

/// `psim run`.
pub fn run(a: RunArgs) -> Result<()> {
    let p = prepare_run(a)?;
    execute(p.experiment, &p.exec, p.scenario)
}

/// `psim sweep`.
pub fn sweep(a: SweepArgs) -> Result<()> {
    let p = prepare_sweep(a)?;
    execute(p.experiment, &p.exec, p.scenario)
}

/// `psim reproduce`.
pub fn reproduce(a: ReproduceArgs) -> Result<()> {
    if a.list || a.name.is_none() {
        println!("Scenarios (psim reproduce NAME):");
        for s in catalogue::catalogue() {
            println!("  {:<22} {}", s.name(), s.title());
        }
        if a.name.is_none() && !a.list {
            bail!("name a scenario to reproduce (list above)");
        }
        return Ok(());
    }
    let name = a.name.as_deref().unwrap_or_default();
    let Some(scenario) = catalogue::find(name) else {
        let names: Vec<&str> = catalogue::catalogue().iter().map(|s| s.name()).collect();
        bail!("unknown scenario `{name}`; known: {}", names.join(", "));
    };
    if let Some(text) = &a.check_seeds {
        if a.overrides.seed.is_some() {
            bail!("`--seed` and `--check-seeds` both choose the seed; give one");
        }
        let mut e = scenario.experiment();
        a.overrides
            .apply(&mut e, Scope::Scenario(scenario), false)?;
        return check_seeds(scenario, e, text, &a.exec);
    }
    reproduce_scenario(scenario, &a.overrides, &a.exec)
}

/// Runs `scenario` at its defaults with `overrides` applied.
pub fn reproduce_scenario(
    scenario: &'static dyn Scenario,
    overrides: &Overrides,
    exec: &Execution,
) -> Result<()> {
    if let Some(dir) = &exec.resume {
        let (e, _) = resume_experiment(dir, "psim reproduce", |e, recorded| {
            if recorded.map(|s| s.name()) != Some(scenario.name()) {
                bail!(
                    "`--resume {}` holds experiment `{}`, not scenario `{}`; resume it with `psim run --resume {0}`",
                    dir.display(),
                    e.name,
                    scenario.name()
                );
            }
            overrides.apply(e, Scope::Scenario(scenario), false)
        })?;
        return execute(e, exec, Some(scenario));
    }
    let mut e = scenario.experiment();
    overrides.apply(&mut e, Scope::Scenario(scenario), false)?;
    execute(e, exec, Some(scenario))
}

/// `psim reproduce NAME --check-seeds A..B`.
fn check_seeds(
    scenario: &dyn Scenario,
    e: Experiment,
    seeds: &str,
    exec: &Execution,
) -> Result<()> {
    use psim_scenarios::verdict;
    exec.refuse_durable("`--check-seeds` reruns the scenario once per seed into OUT/seed-S")?;
    let seeds = verdict::parse_seeds(seeds).map_err(anyhow::Error::msg)?;
    let mut e = e;
    if exec.scalar_engine {
        apply_scalar_engine(&mut e, false)?;
    }
    e.validate()?;
    let root = OutputDir::create(
        exec.out.as_deref(),
        &format!("{}-seeds", e.name),
        exec.force,
    )?;
    let bar = progress_bar(scenario.total_runs(&e) * seeds.len() as u64, exec.quiet);
    let tick = || bar.inc(1);
    let opts = SweepOptions {
        threads: exec.threads,
        progress: Some(&tick),
        cancel: None,
    };
    let check = verdict::check_seeds(scenario, &e, &seeds, root.path(), &opts)?;
    bar.finish_and_clear();
    let report = check.report();
    root.write("seeds.txt", &report)?;
    root.write_json("seeds.json", &check)?;
    super::print(format_args!(
        "{report}\nresults in {}\n",
        root.path().display()
    ))?;
    if !check.passes() {
        bail!(
            "`{}` held for {} of {} seeds, fewer than 9 in 10",
            check.scenario,
            check.held(),
            check.seeds.len()
        );
    }
    Ok(())
}

/// The runs an experiment makes (a progress bar's length).
pub fn total_runs(e: &Experiment) -> u64 {
    catalogue::plan_of(e).map_or(0, |p| p.total_runs())
}

/// An experiment built from a command's flags, ready to run.
pub struct Prepared {
    /// The experiment, every flag applied and checked.
    pub experiment: Experiment,
    /// The scenario it runs as, if any.
    pub scenario: Option<&'static dyn Scenario>,
    /// Where and how to run.
    pub exec: Execution,
}

/// `psim run` up to running: the experiment of `--config` or the defaults, the flags applied.
pub fn prepare_run(a: RunArgs) -> Result<Prepared> {
    if let Some(dir) = &a.exec.resume {
        if a.config.is_some() {
            bail!("`--resume DIR` continues DIR/config.toml; `--config` is refused with it");
        }
        let (experiment, scenario) = resume_experiment(dir, "psim run", |e, s| {
            a.overrides
                .apply(e, s.map_or(Scope::Run, Scope::Scenario), true)
        })?;
        return Ok(Prepared {
            experiment,
            scenario,
            exec: a.exec,
        });
    }
    let (mut e, scenario) = start(a.config.as_ref(), "run")?;
    let scope = scenario.map_or(Scope::Run, Scope::Scenario);
    a.overrides.apply(&mut e, scope, a.config.is_some())?;
    Ok(Prepared {
        experiment: e,
        scenario,
        exec: a.exec,
    })
}

/// `psim sweep` up to running.
pub fn prepare_sweep(a: SweepArgs) -> Result<Prepared> {
    if let Some(dir) = &a.exec.resume {
        if a.config.is_some() {
            bail!("`--resume DIR` continues DIR/config.toml; `--config` is refused with it");
        }
        let (experiment, scenario) = resume_experiment(dir, "psim sweep", |e, s| {
            if a.optimal_delay && e.tradeoff.is_none() {
                e.tradeoff = Some(Tolerance::default());
            }
            a.overrides
                .apply(e, s.map_or(Scope::Sweep, Scope::Scenario), true)
        })?;
        return Ok(Prepared {
            experiment,
            scenario,
            exec: a.exec,
        });
    }
    let (mut e, scenario) = start(a.config.as_ref(), "sweep")?;
    if a.optimal_delay {
        if let Some(s) = scenario {
            bail!(
                "`--optimal-delay` adds the tradeoff analysis to a plain sweep; the config is scenario `{}`, whose analysis is its own, so it is refused rather than ignored",
                s.name()
            );
        }
        if e.tradeoff.is_none() {
            e.tradeoff = Some(Tolerance::default());
        }
    }
    let scope = scenario.map_or(Scope::Sweep, Scope::Scenario);
    a.overrides.apply(&mut e, scope, a.config.is_some())?;
    Ok(Prepared {
        experiment: e,
        scenario,
        exec: a.exec,
    })
}

/// `psim reproduce NAME` (without `--list` and `--check-seeds`) up to running.
pub fn prepare_reproduce(a: ReproduceArgs) -> Result<Prepared> {
    let name = a.name.as_deref().unwrap_or_default();
    let scenario = catalogue::find(name).ok_or_else(|| {
        let names: Vec<&str> = catalogue::catalogue().iter().map(|s| s.name()).collect();
        anyhow::anyhow!("unknown scenario `{name}`; known: {}", names.join(", "))
    })?;
    if a.list || a.check_seeds.is_some() {
        bail!("`--list` and `--check-seeds` print instead of running an experiment");
    }
    if let Some(dir) = &a.exec.resume {
        let (experiment, _) = resume_experiment(dir, "psim reproduce", |e, recorded| {
            if recorded.map(|s| s.name()) != Some(scenario.name()) {
                bail!(
                    "`--resume {}` holds experiment `{}`, not scenario `{}`; resume it with `psim run --resume {0}`",
                    dir.display(),
                    e.name,
                    scenario.name()
                );
            }
            a.overrides.apply(e, Scope::Scenario(scenario), false)
        })?;
        return Ok(Prepared {
            experiment,
            scenario: Some(scenario),
            exec: a.exec,
        });
    }
    let mut e = scenario.experiment();
    a.overrides
        .apply(&mut e, Scope::Scenario(scenario), false)?;
    Ok(Prepared {
        experiment: e,
        scenario: Some(scenario),
        exec: a.exec,
    })
}

/// The commands a library caller (the Python package) can prepare.
#[derive(clap::Parser, Debug)]
#[command(name = "psim")]
pub enum LibraryCommand {
    /// `psim run`.
    #[command(allow_negative_numbers = true)]
    Run(RunArgs),
    /// `psim sweep`.
    #[command(allow_negative_numbers = true)]
    Sweep(SweepArgs),
    /// `psim reproduce`.
    #[command(allow_negative_numbers = true)]
    Reproduce(ReproduceArgs),
}

/// Parses `argv` (`["psim", "run", "--momentum", "0.9", …]`) exactly as the
/// CLI does and prepares the experiment: the same checks, the same messages.
pub fn prepare(argv: &[String]) -> Result<Prepared> {
    use clap::Parser;
    let command = LibraryCommand::try_parse_from(argv).map_err(|e| {
        // clap's message without its `error: ` prefix and `--help` hint.
        let text = e.render().to_string();
        let text = text.trim_start_matches("error: ");
        let text = text
            .split("\n\nFor more information")
            .next()
            .unwrap_or(text);
        anyhow::anyhow!("{}", text.trim_end())
    })?;
    let prepared = match command {
        LibraryCommand::Run(a) => prepare_run(a)?,
        LibraryCommand::Sweep(a) => prepare_sweep(a)?,
        LibraryCommand::Reproduce(a) => prepare_reproduce(a)?,
    };
    Ok(prepared)
}

/// One flag of a command as other faces see it (the Python keywords, the
/// configuration reference): read from the clap arguments, so nothing is
/// copied by hand.
#[derive(Debug, Clone)]
pub struct FlagSpec {
    /// The flag, `--step-size`.
    pub flag: String,
    /// The Python keyword, `step_size`.
    pub keyword: String,
    /// How a value is given: `one`, `comma` (a comma list is a grid),
    /// `repeat` (the flag repeats for a grid) or `flag` (a switch).
    pub kind: &'static str,
    /// The help text.
    pub help: String,
    /// The setting it gives, for the flags of [`FLAGS`].
    pub setting: Option<Setting>,
}

/// The flags of `command` (`run`, `sweep`, `reproduce`), `--help` aside.
pub fn command_flags(command: &str) -> Vec<FlagSpec> {
    use clap::CommandFactory;
    let root = LibraryCommand::command();
    let Some(sub) = root.find_subcommand(command) else {
        return Vec::new();
    };
    sub.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            if long == "help" {
                return None;
            }
            let flag = format!("--{long}");
            let kind = if matches!(a.get_action(), clap::ArgAction::SetTrue) {
                "flag"
            } else if a.get_value_delimiter() == Some(',') {
                "comma"
            } else if matches!(a.get_action(), clap::ArgAction::Append) {
                "repeat"
            } else {
                "one"
            };
            Some(FlagSpec {
                keyword: long.replace('-', "_"),
                kind,
                help: a
                    .get_long_help()
                    .or(a.get_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
                setting: FLAGS.iter().find(|(f, _)| *f == flag).map(|(_, s)| *s),
                flag,
            })
        })
        .collect()
}

/// The configuration reference (`docs/configuration.md`), generated from
/// the flag table, the settings' config keys and engines, and what each
/// scenario accepts: nothing in it is written by hand
/// (`tests/settings_table.rs` regenerates it and fails when it is stale).
pub fn configuration_reference() -> String {
    use std::fmt::Write as _;
    let one_line = |h: &str| {
        h.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    let engines = |s: Setting| {
        let e = s.engines();
        if e.len() == 4 {
            "all".to_string()
        } else {
            e.iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let grid = |kind: &str| match kind {
        "comma" => "comma list",
        "repeat" => "repeat the flag",
        _ => "",
    };
    let mut t = String::new();
    let _ = writeln!(t, "# Configuration reference\n");
    let _ = writeln!(t, "Generated from psim's flag table (`src/cmd/experiment.rs`, `flag_table!`), the settings' config keys and engines (`common/src/config/setting.rs`) and each scenario's declared settings; `cargo test --test settings_table` fails when this file is stale (`PSIM_BLESS=1` rewrites it). Every setting is a flag, a config key (base value; grids live under `grid.`) and a Python keyword; a setting the command, the scenario or the engine does not use is refused with its name, never ignored.\n");
    let _ = writeln!(t, "## Settings of an experiment\n");
    let _ = writeln!(
        t,
        "| flag | Python keyword | config key | engines | grid | meaning |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    let sweep = command_flags("sweep");
    for (flag, setting) in FLAGS {
        let Some(f) = sweep.iter().find(|f| f.flag == *flag) else {
            continue;
        };
        let _ = writeln!(
            t,
            "| `{flag}` | `{}` | `{}` | {} | {} | {} |",
            f.keyword,
            setting.key(),
            engines(*setting),
            grid(f.kind),
            one_line(&f.help)
        );
    }
    let _ = writeln!(t, "\n## Where and how to run\n");
    let _ = writeln!(t, "| flag | commands | Python | meaning |");
    let _ = writeln!(t, "|---|---|---|---|");
    let mut seen: Vec<String> = Vec::new();
    for command in ["run", "sweep", "reproduce"] {
        for f in command_flags(command) {
            if f.setting.is_some() || seen.contains(&f.flag) {
                continue;
            }
            seen.push(f.flag.clone());
            let on: Vec<&str> = ["run", "sweep", "reproduce"]
                .into_iter()
                .filter(|c| command_flags(c).iter().any(|g| g.flag == f.flag))
                .collect();
            let python = match f.keyword.as_str() {
                "quiet" => "`progress=False`".to_string(),
                "list" => "`psim.scenarios()`".to_string(),
                "check_seeds" => "CLI only (loop over seeds)".to_string(),
                k => format!("`{k}`"),
            };
            let _ = writeln!(
                t,
                "| `{}` | {} | {python} | {} |",
                f.flag,
                on.join(", "),
                one_line(&f.help)
            );
        }
    }
    let _ = writeln!(t, "\n## What each scenario accepts\n");
    let _ = writeln!(t, "`psim run` and `psim sweep` accept every setting (`--factor` with the tradeoff analysis only); a named scenario (`psim reproduce NAME`, or a config file naming it) accepts these, on these engines:\n");
    let _ = writeln!(t, "| scenario | engines | flags |");
    let _ = writeln!(t, "|---|---|---|");
    for s in catalogue::catalogue() {
        let _ = writeln!(
            t,
            "| `{}` | {} | {} |",
            s.name(),
            s.engines()
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            s.accepts()
                .iter()
                .flat_map(|x| flags(*x))
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    t
}
