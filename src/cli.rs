//! The `psim` command line: clap's definition and dispatch, shared by the
//! `psim` binary (`src/main.rs`) and the `psim` command the Python package
//! installs (`python/psim/_cli.py` → `_psim.cli_main`). Thin by design:
//! parsing, progress, printing; the work lives in the library crates.

use crate::cmd;
use std::ffi::OsString;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "Examples:
  psim reproduce tradeoff                       # E1: optimal delay per momentum (Figure 1 of 001)
  psim reproduce --list                         # every named scenario
  psim run --momentum 0.9 --delay uniform:0..40 --runs 20
  psim sweep --momentum 0.7,0.9 --taus 0:100:20 --runs 50 --optimal-delay
  psim run --config psim-out/tradeoff/config.toml   # replay an earlier run
  psim bench                                    # engine throughput and E1 wall time
  psim theory --momentum 0.9 --step-size 5e-4   # the papers' predictions
  psim advise --step-size 5e-4 --delay const:30 --confirm   # tolerated delay per μ, best μ, checked
  psim report psim-out/tradeoff                 # one offline HTML page of an output directory
  psim reproduce tradeoff --resume psim-out/tradeoff   # finish an interrupted run
  psim reproduce tradeoff --shard 0/3 --out s0  # one share of the points; then psim merge s0 s1 s2 --out e1
  psim run --engine threads --workers 8 --compute-time 0.001 --steps 2000 --runs 1
  psim run --engine virtual-time --workers 8 --compute-time 1 --worker-compute linear:1,1
                                                # worker i takes i+1 time units; per-worker table
  psim run --engine threads --workers 4 --compute-time exp:0.0002 --steps 2000 --runs 1 \
           --record-pushes --out rec && psim run --delay trace:rec/pushes.csv --steps 2000 --runs 1
                                                # record measured staleness, replay it injected
  psim speedup --workers 1,2,4,8,16,32 --momentum 0.7,0.9 --target-error 0.1

Logs: RUST_LOG=info (or debug, trace) prints tracing spans to stderr.";

/// Parameter-server simulator for asynchronous momentum SGD.
///
/// Simulates workers pushing stale stochastic gradients to a server that
/// applies the momentum update v ← v + μ(v − v_prev) − η·g(v_stale), and
/// records staleness, error traces and divergence. Results go to an output
/// directory (config.toml, summary.json, runs.csv, traces.csv,
/// staleness.csv, SVG plots).
#[derive(Parser)]
#[command(name = "psim", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one configuration × N independent runs.
    #[command(
        allow_negative_numbers = true,
        after_help = "Examples:\n  psim run --momentum 0.8 --delay pareto:1,1.5 --runs 50 --out my-run\n  psim run --engine virtual-time --workers 8 --compute-time 1 --worker-compute linear:1,1   # worker i takes i+1\n  psim run --engine threads --workers 4 --record-pushes --out rec && psim run --delay trace:rec/pushes.csv"
    )]
    Run(cmd::experiment::RunArgs),
    /// Run a grid over momentum, step size and delay models.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  psim sweep --momentum 0.7,0.8,0.9 --step-size 5e-4,2.5e-4 --taus 0:160:10 --optimal-delay"
    )]
    Sweep(cmd::experiment::SweepArgs),
    /// Reproduce a named experiment of the papers (see --list).
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  psim reproduce tradeoff --runs 20 --steps 10000 --out quick-e1"
    )]
    Reproduce(cmd::experiment::ReproduceArgs),
    /// Time-to-ε and speedup per worker count and μ on the real parameter server.
    #[command(
        after_help = "Example:\n  psim speedup --workers 1,2,4,8,16,32 --momentum 0.7,0.9 --target-error 0.1 --compute-time 0.001"
    )]
    Speedup(cmd::speedup::SpeedupArgs),
    /// Measure the engine: run-steps per second and the E1 sweep's wall time.
    #[command(after_help = "Example:\n  psim bench --repeat 5")]
    Bench(cmd::bench::BenchArgs),
    /// Print the papers' predictions (ODE, OU, phase lengths, delay conditions, escape law).
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  psim theory --momentum 0.9 --step-size 5e-4 --delay uniform:0..40"
    )]
    Theory(cmd::theory::TheoryArgs),
    /// Predict the largest tolerated delay or worker count per μ and the best μ, explain it, and (--confirm) check it by simulation.
    #[command(
        allow_negative_numbers = true,
        after_help = "Examples:\n  psim advise --spectrum 4,3,2,1 --step-size 5e-4 --delay const:30 --confirm\n  psim advise --spectrum 4,3,2,1 --step-size 5e-4 --workers 16 --compute-time const:1 --confirm\n  psim advise --curvature 0.1..8 --step-size 5e-4 --delay uniform:0..60"
    )]
    Advise(cmd::advise::AdviseArgs),
    /// Combine the directories of a sharded sweep (--shard I/N) into what one unsharded run writes.
    #[command(
        after_help = "Example:\n  for i in 0 1 2; do psim reproduce tradeoff --shard $i/3 --out s$i; done\n  psim merge s0 s1 s2 --out e1"
    )]
    Merge(cmd::merge::MergeArgs),
    /// Write DIR/report.html: every figure and table of an output directory, readable offline.
    #[command(after_help = "Example:\n  psim reproduce tradeoff --out e1 && psim report e1")]
    Report(cmd::report::ReportArgs),
}

/// Runs the command line `args` (the program name first, as
/// `std::env::args_os` gives it) and returns the exit code: 0 on success
/// (and for `--help`, `--version`), 2 on a usage error or a failed command,
/// after printing `error: …` to stderr.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // A second call in one process (the Python package) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // A span's time when it closes (shown only at the level that
        // enables it, e.g. the virtual-time engine's phases at debug).
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" that print to stdout and exit 0.
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // Output errors never panic: `print!` into a full disk or `/dev/full`
    // panics with "failed printing to stdout"; that panic is caught here
    // and reported as an error (exit 2), like every other failure. The hook
    // that keeps such a panic quiet is installed once per process.
    static QUIET_OUTPUT_PANICS: std::sync::Once = std::sync::Once::new();
    QUIET_OUTPUT_PANICS.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if output_failure(info.payload()).is_none() {
                default_hook(info);
            }
        }));
    });
    let command = cli.command;
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(command)))
    {
        Ok(r) => r,
        Err(payload) => match output_failure(&*payload) {
            Some(msg) => Err(anyhow::anyhow!("cannot write the output: {msg}")),
            None => std::panic::resume_unwind(payload),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            // A standard-error write that fails has nowhere to be reported.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                psim_common::num::shorten(&chain(&e))
            );
            2
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => cmd::experiment::run(a),
        Command::Sweep(a) => cmd::experiment::sweep(a),
        Command::Reproduce(a) => cmd::experiment::reproduce(a),
        Command::Bench(a) => cmd::bench::bench(a),
        Command::Theory(a) => cmd::theory::theory(a),
        Command::Advise(a) => cmd::advise::advise(a),
        Command::Report(a) => cmd::report::report(a),
        Command::Merge(a) => cmd::merge::merge(a),
        Command::Speedup(a) => cmd::speedup::speedup(a),
    }
}

/// The message of a panic raised by `print!`/`println!` when standard output
/// or standard error cannot be written, `None` for any other panic.
fn output_failure(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())?;
    (msg.starts_with("failed printing to stdout") || msg.starts_with("failed printing to stderr"))
        .then(|| msg.to_string())
}

/// The error and its causes, each said once: a cause whose text an outer
/// message already includes (`cannot write X: No space left` over `No space
/// left`) is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
}
