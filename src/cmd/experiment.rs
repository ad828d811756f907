//! `psim run`, `psim sweep`, `psim reproduce`: build an experiment from
//! defaults, a config file and flags, run it with a progress bar, write
//! its outputs, print its report.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use psim_common::{
    ConfigError, Consistency, DataDistribution, Delay, EngineKind, Experiment, HistoryPolicy,
    InitialPoint, ObjectiveConfig, Tolerance,
};
use psim_scenarios::catalogue::{self, Scenario};
use psim_scenarios::experiments::tradeoff::analyse;
use psim_scenarios::output::{write_sweep, OutputDir};
use psim_scenarios::sweep::{run_sweep, SweepOptions, SweepResult};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Flags that override any value of an experiment.
#[derive(Args, Debug, Default, Clone)]
pub struct Overrides {
    /// Momentum μ in [0, 1); a comma list makes a grid (sweep).
    #[arg(long, value_delimiter = ',')]
    momentum: Vec<f64>,
    /// Step size η > 0; a comma list makes a grid (sweep).
    #[arg(long = "step-size", value_delimiter = ',')]
    step_size: Vec<f64>,
    /// Delay model (repeat the flag for a grid): N, const:N, uniform:A..B, geometric:P,
    /// poisson:L, exp:MEAN, pareto:SCALE,SHAPE, lognormal:MU,SIGMA, trace:FILE, W*MODEL+W*MODEL.
    #[arg(long)]
    delay: Vec<String>,
    /// Constant delays FROM:TO:STEP (inclusive), e.g. 0:160:10; replaces --delay.
    #[arg(long)]
    taus: Option<String>,
    /// Gradients drawn per run.
    #[arg(long)]
    steps: Option<u64>,
    /// Independent runs per point.
    #[arg(long)]
    runs: Option<u32>,
    /// Master seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Eigenvalues of a diagonal Σ, largest first, e.g. 4,3,2,1.
    #[arg(long, value_delimiter = ',')]
    spectrum: Vec<f64>,
    /// Full covariance, rows separated by `;`, e.g. "2,1;1,2".
    #[arg(long)]
    covariance: Option<String>,
    /// Data distribution: gaussian or uniform (bounded, Assumption 2 of 001).
    #[arg(long)]
    data: Option<String>,
    /// Start: saddle, random, eigenvector:K, vector:X1,X2,…
    #[arg(long)]
    init: Option<String>,
    /// Versions the server keeps for injected staleness.
    #[arg(long)]
    history: Option<usize>,
    /// Beyond the history: clamp (serve the oldest kept) or drop.
    #[arg(long = "history-policy")]
    history_policy: Option<String>,
    /// Record the error every N steps.
    #[arg(long = "record-every")]
    record_every: Option<u64>,
    /// Report the mean error over this last fraction of steps, in (0, 1].
    #[arg(long = "tail-fraction")]
    tail_fraction: Option<f64>,
    /// A run whose ‖v‖ exceeds this has diverged.
    #[arg(long = "divergence-norm")]
    divergence_norm: Option<f64>,
    /// Stop a run once its error reaches this.
    #[arg(long = "target-error")]
    target_error: Option<f64>,
    /// Engine: injected, virtual-time, threads, tasks.
    #[arg(long)]
    engine: Option<String>,
    /// Update rule: sgd, heavy-ball (default), nesterov, staleness-aware, dc-asgd:LAMBDA.
    #[arg(long)]
    rule: Option<String>,
    /// Step-size schedule: constant (default) or anneal:STEP:FACTOR[,STEP:FACTOR…].
    #[arg(long)]
    schedule: Option<String>,
    /// Workers of the simulated cluster (engines other than injected).
    #[arg(long)]
    workers: Option<usize>,
    /// Compute time per gradient in seconds, as a delay model.
    #[arg(long = "compute-time")]
    compute_time: Option<String>,
    /// Network delay per push in seconds, as a delay model.
    #[arg(long = "network-delay")]
    network_delay: Option<String>,
    /// Consistency model: asp, ssp:S, bsp.
    #[arg(long)]
    consistency: Option<String>,
    /// Server back-end of the threads engine: lock or channel.
    #[arg(long)]
    backend: Option<String>,
    /// When a worker panics (threads, tasks): stop or continue.
    #[arg(long = "on-worker-failure")]
    on_worker_failure: Option<String>,
    /// Optimal-delay rule factor: a delay is tolerated when its mean error ≤ FACTOR × the τ = 0 error.
    #[arg(long)]
    factor: Option<f64>,
}

/// Where and how to run.
#[derive(Args, Debug, Default, Clone)]
pub struct Execution {
    /// Output directory (default psim-out/NAME, suffixed when taken); must be new or empty.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Allow writing into a non-empty --out directory.
    #[arg(long)]
    force: bool,
    /// Worker threads for the runs (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Run the injected engine run by run on the scalar reference instead of
    /// in SIMD batches of 8 runs (other random numbers, same law), e.g.
    /// `psim reproduce tradeoff --scalar-engine`.
    #[arg(long)]
    scalar_engine: bool,
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
    if step == 0 || from > to || (to - from) / step > 10_000 {
        return Err(bad());
    }
    Ok((from..=to)
        .step_by(step as usize)
        .map(Delay::constant)
        .collect())
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

impl Overrides {
    /// Applies every given flag to `e`.
    fn apply(&self, e: &mut Experiment) -> Result<()> {
        let b = &mut e.base;
        if !self.momentum.is_empty() {
            e.grid.momentum = self.momentum.clone();
            b.momentum = self.momentum[0];
        }
        if !self.step_size.is_empty() {
            e.grid.step_size = self.step_size.clone();
            b.step_size = self.step_size[0];
        }
        if let Some(t) = &self.taus {
            e.grid.delay = parse_taus(t)?;
        } else if !self.delay.is_empty() {
            e.grid.delay = self
                .delay
                .iter()
                .map(|d| parse::<Delay>(d))
                .collect::<Result<_>>()?;
        }
        if let Some(d) = e.grid.delay.first() {
            b.delay = d.clone();
        }
        macro_rules! set {
            ($($flag:ident => $field:expr),*) => { $( if let Some(v) = self.$flag { $field = v; } )* };
        }
        set!(steps => b.steps, runs => b.runs, seed => b.seed, record_every => b.record_every, tail_fraction => b.tail_fraction, divergence_norm => b.divergence_norm, history => b.history.capacity);
        if let Some(t) = self.target_error {
            b.target_error = Some(t);
        }
        if let Some(p) = &self.history_policy {
            b.history.policy = parse::<HistoryPolicy>(p)?;
        }
        if let Some(x) = &self.rule {
            b.rule = parse::<psim_common::RuleKind>(x)?;
        }
        if let Some(x) = &self.schedule {
            b.schedule = parse::<psim_common::Schedule>(x)?;
        }
        if let Some(x) = &self.engine {
            b.engine = parse::<EngineKind>(x)?;
        }
        if let Some(w) = self.workers {
            b.cluster.workers = w;
        }
        if let Some(x) = &self.compute_time {
            b.cluster.compute_time = parse::<Delay>(x)?;
        }
        if let Some(x) = &self.network_delay {
            b.cluster.network_delay = parse::<Delay>(x)?;
        }
        if let Some(x) = &self.consistency {
            b.cluster.consistency = parse::<Consistency>(x)?;
        }
        if let Some(x) = &self.backend {
            b.cluster.backend = parse::<psim_common::Backend>(x)?;
        }
        if let Some(x) = &self.on_worker_failure {
            b.cluster.on_worker_failure = parse::<psim_common::FailurePolicy>(x)?;
        }
        let touches_pca = !self.spectrum.is_empty()
            || self.covariance.is_some()
            || self.data.is_some()
            || self.init.is_some();
        if touches_pca {
            #[allow(irrefutable_let_patterns)]
            let ObjectiveConfig::Pca(p) = &mut b.objective
            else {
                bail!("--spectrum, --covariance, --data and --init apply to the streaming-PCA objective only");
            };
            if !self.spectrum.is_empty() {
                p.spectrum = self.spectrum.clone();
                p.covariance = None;
            }
            if let Some(c) = &self.covariance {
                p.covariance = Some(parse_covariance(c)?);
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
        Ok(())
    }
}

fn load(path: &PathBuf) -> Result<Experiment> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config `{}`", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config `{}`", path.display()))
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

/// Runs an experiment: as its scenario when it names one, otherwise as a plain sweep.
fn execute(e: Experiment, exec: &Execution, scenario: Option<&dyn Scenario>) -> Result<()> {
    e.validate()?;
    let out = OutputDir::create(exec.out.as_deref(), &e.name, exec.force)?;
    out.write_config(&e)?;
    let total = match scenario {
        Some(s) => s.total_runs(&e),
        None => e.points().len() as u64 * e.base.runs as u64,
    };
    let bar = progress_bar(total, exec.quiet);
    let tick = || bar.inc(1);
    // Wall-clock engines measure time: their runs must not share the cores.
    let wall_clock = matches!(e.base.engine, EngineKind::Threads | EngineKind::Tasks);
    let opts = SweepOptions {
        threads: if wall_clock && exec.threads == 0 {
            1
        } else {
            exec.threads
        },
        progress: Some(&tick),
        scalar: exec.scalar_engine,
    };
    let report = match scenario {
        Some(s) => s.run(&e, &out, &opts)?,
        None => {
            let sweep = run_sweep(&e, &opts)?;
            let rows = e.tradeoff.map(|rule| analyse(&sweep, &rule));
            write_sweep(&out, &sweep, rows.as_deref())?;
            match (&rows, &e.tradeoff) {
                (Some(rows), Some(rule)) => psim_scenarios::experiments::tradeoff::tradeoff_report(
                    &e,
                    rows,
                    rule,
                    sweep.wall_seconds,
                    sweep.threads,
                ),
                _ => points_report(&sweep),
            }
        }
    };
    bar.finish_and_clear();
    out.write("report.txt", &report)?;
    print!("{report}");
    println!("\nresults in {}", out.path().display());
    Ok(())
}

/// The table printed by `psim run` and `psim sweep`.
pub fn points_report(s: &SweepResult) -> String {
    let mut t = String::new();
    let b = &s.experiment.base;
    let _ = writeln!(t, "{}: {} runs × {} steps per point, engine {:?}, seed {}; error = mean over the last {}% of steps; ran in {:.2} s on {} threads\n", s.experiment.name, b.runs, b.steps, b.engine, b.seed, b.tail_fraction * 100.0, s.wall_seconds, s.threads);
    let _ = writeln!(t, "{:>6} {:>9} {:>24} | {:>9} {:>11} {:>10} {:>10} {:>10} | {:>8} {:>6} {:>6} {:>8} | {:>9} {:>9} {:>8}", "μ", "η", "delay", "diverged", "mean error", "± sem", "p10", "p90", "τ mean", "p50", "p99", "max", "applied", "dropped", "clamped");
    for p in &s.points {
        let x = &p.summary;
        let _ = writeln!(
            t,
            "{:>6} {:>9} {:>24} | {:>9} {:>11.5} {:>10.5} {:>10.5} {:>10.5} | {:>8.2} {:>6} {:>6} {:>8} | {:>9} {:>9} {:>8}",
            x.momentum,
            x.step_size,
            x.delay,
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
    if matches!(b.engine, EngineKind::Threads | EngineKind::Tasks) {
        let _ = writeln!(
            t,
            "\nmeasured staleness ({:?} engine, {} workers, {}):",
            b.engine, b.cluster.workers, b.cluster.consistency
        );
        let _ = writeln!(
            t,
            "{:>6} {:>9} | {:>10} {:>8} {:>6} {:>6} {:>7} {:>8}",
            "μ", "η", "pushes", "mean", "p50", "p99", "p99.9", "max"
        );
        for p in &s.points {
            let x = &p.summary;
            let q = &x.staleness;
            let _ = writeln!(
                t,
                "{:>6} {:>9} | {:>10} {:>8.2} {:>6} {:>6} {:>7} {:>8}",
                x.momentum, x.step_size, q.count, q.mean, q.p50, q.p99, q.p999, q.max
            );
        }
    }
    t
}

/// `psim run`.
pub fn run(a: RunArgs) -> Result<()> {
    let mut e = match &a.config {
        Some(p) => load(p)?,
        None => Experiment {
            name: "run".into(),
            base: Default::default(),
            grid: Default::default(),
            tradeoff: None,
        },
    };
    a.overrides.apply(&mut e)?;
    if a.config.is_none() && e.points().len() > 1 {
        bail!("`psim run` takes one value of --momentum, --step-size and --delay; use `psim sweep` for a grid");
    }
    let scenario = catalogue::find(&e.name);
    execute(e, &a.exec, scenario)
}

/// `psim sweep`.
pub fn sweep(a: SweepArgs) -> Result<()> {
    let mut e = match &a.config {
        Some(p) => load(p)?,
        None => Experiment {
            name: "sweep".into(),
            base: Default::default(),
            grid: Default::default(),
            tradeoff: None,
        },
    };
    if a.optimal_delay && e.tradeoff.is_none() {
        e.tradeoff = Some(Tolerance::default());
    }
    a.overrides.apply(&mut e)?;
    let scenario = catalogue::find(&e.name);
    execute(e, &a.exec, scenario)
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
    let mut e = scenario.experiment();
    a.overrides.apply(&mut e)?;
    execute(e, &a.exec, Some(scenario))
}
