//! `psim advise`: the predicted largest tolerated delay or worker count per
//! momentum, the best momentum and why, and with `--confirm` a short
//! simulation beside it. The work is `psim_scenarios::advise`.

use anyhow::{bail, Result};
use clap::Args;
use psim_common::{Consistency, Delay};
use psim_scenarios::advise::{
    advise as predict, confirm, Asynchrony, ConfirmSettings, Problem, Request,
};
use psim_scenarios::sweep::SweepOptions;

/// `psim advise`.
#[derive(Args, Debug)]
pub struct AdviseArgs {
    /// Streaming PCA with Σ = diag(SPECTRUM), Gaussian data (E1's problem is 4,3,2,1); the stiffest mode is the radial one, curvature 2λ₁.
    #[arg(long, value_delimiter = ',', conflicts_with = "curvature")]
    spectrum: Option<Vec<f64>>,
    /// A problem known by its curvature range, `MAX` or `MIN..MAX` (the largest limits the delay); predicted only.
    #[arg(long)]
    curvature: Option<String>,
    /// Step size η > 0.
    #[arg(long = "step-size")]
    step_size: f64,
    /// Momenta μ ∈ (−1, 1) to predict for, a comma list (default 0.5,0.6,0.7,0.8,0.85,0.9,0.925,0.95,0.975).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    momentum: Vec<f64>,
    /// Injected delays: a model whose family is scanned by its mean (const:N, uniform:0..B, geometric:P, poisson:L, exp:MEAN); its mean is the delay asked about.
    #[arg(long, conflicts_with_all = ["workers", "compute_time"])]
    delay: Option<String>,
    /// A cluster (asynchronous): the worker count asked about.
    #[arg(long)]
    workers: Option<u64>,
    /// A cluster: the compute-time model, `const:1` (staleness M − 1) or `exp:1` (geometric staleness, implicit momentum 1 − 1/M).
    #[arg(long = "compute-time")]
    compute_time: Option<String>,
    /// A cluster: the consistency model (only `asp` is predicted).
    #[arg(long, default_value = "asp")]
    consistency: String,
    /// Check the prediction with a short simulation (per μ, 16 grid values around the prediction) and print predicted beside measured.
    #[arg(long)]
    confirm: bool,
    /// Confirmation (with --confirm only): runs per grid value [default: 16].
    #[arg(long)]
    runs: Option<u32>,
    /// Confirmation (with --confirm only): steps per run [default: 20000].
    #[arg(long)]
    steps: Option<u64>,
    /// Confirmation (with --confirm only): master seed [default: 1].
    #[arg(long)]
    seed: Option<u64>,
}

/// The confirmation's settings, `None` without `--confirm`; refused when
/// given without it (they would change nothing), or when they cannot run.
fn confirm_settings(a: &AdviseArgs) -> Result<Option<ConfirmSettings>> {
    if !a.confirm {
        for (given, flag) in [
            (a.runs.is_some(), "--runs"),
            (a.steps.is_some(), "--steps"),
            (a.seed.is_some(), "--seed"),
        ] {
            if given {
                bail!("`{flag}` sets the confirmation's simulation: add `--confirm` (without it the flag would change nothing)");
            }
        }
        return Ok(None);
    }
    let d = ConfirmSettings::default();
    let s = ConfirmSettings {
        runs: a.runs.unwrap_or(d.runs),
        steps: a.steps.unwrap_or(d.steps),
        seed: a.seed.unwrap_or(d.seed),
    };
    // The confirmation's runs are a sweep's: checked as one before
    // anything is printed.
    psim_common::RunConfig {
        runs: s.runs,
        steps: s.steps,
        seed: s.seed,
        record_every: (s.steps / 20).max(1),
        ..psim_common::RunConfig::default()
    }
    .validate()?;
    if a.spectrum.is_none() && a.curvature.is_some() {
        bail!("`--confirm` needs `--spectrum` (streaming PCA, a problem psim simulates); a curvature range is predicted only");
    }
    Ok(Some(s))
}

/// The request a command line describes.
pub fn request(a: &AdviseArgs) -> Result<Request> {
    let problem = match (&a.spectrum, &a.curvature) {
        (Some(s), None) => Problem::Spectrum(s.clone()),
        (None, Some(c)) => {
            let (min, max) = match c.split_once("..") {
                Some((lo, hi)) => (Some(num("curvature", lo)?), num("curvature", hi)?),
                None => (None, num("curvature", c)?),
            };
            Problem::Curvature { min, max }
        }
        (None, None) => Problem::Spectrum(vec![4.0, 3.0, 2.0, 1.0]),
        (Some(_), Some(_)) => bail!("give `--spectrum` or `--curvature`, not both"),
    };
    let asynchrony = match (&a.delay, a.workers.is_some() || a.compute_time.is_some()) {
        (Some(d), false) => {
            let d = parse_delay("delay", d)?;
            d.validate_steps("delay")?;
            Asynchrony::Delay(d)
        }
        (None, true) => Asynchrony::Cluster {
            workers: a.workers,
            compute_time: match &a.compute_time {
                Some(c) => {
                    let d = parse_delay("compute-time", c)?;
                    d.validate_seconds("compute-time")?;
                    d
                }
                None => Delay::Constant(1.0),
            },
            consistency: a
                .consistency
                .parse::<Consistency>()
                .map_err(|e| anyhow::anyhow!("invalid `--consistency`: {e}"))?,
        },
        (None, false) => bail!("give `--delay MODEL` (injected delays) or `--workers M` / `--compute-time MODEL` (a cluster)"),
        (Some(_), true) => bail!("give `--delay` or the cluster flags (`--workers`, `--compute-time`), not both"),
    };
    Ok(Request {
        problem,
        step_size: a.step_size,
        asynchrony,
        momenta: a.momentum.clone(),
    })
}

fn num(flag: &str, s: &str) -> Result<f64> {
    s.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid `--{flag}` = {s}: a number, or MIN..MAX"))
}

fn parse_delay(flag: &str, s: &str) -> Result<Delay> {
    let d: Delay = s
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid `--{flag}`: {e}"))?;
    Ok(d)
}

/// Runs `psim advise`.
pub fn advise(a: AdviseArgs) -> Result<()> {
    let req = request(&a)?;
    let settings = confirm_settings(&a)?;
    let advice = predict(&req)?;
    super::print(format_args!("{}", advice.report()))?;
    if let Some(settings) = settings {
        let c = confirm(&req, &advice, &settings, &SweepOptions::default())?;
        super::print(format_args!("\n{}", c.report(advice.axis)))?;
    }
    Ok(())
}

/// `psim advise`'s flags alone, for [`advise_json`].
#[derive(clap::Parser, Debug)]
#[command(name = "advise", allow_negative_numbers = true)]
struct AdviseCli {
    #[command(flatten)]
    args: AdviseArgs,
}

/// `psim advise ARGS…` without printing (the Python package's
/// `psim.advise`): `argv` are the flags (no program name); returns JSON
/// `{"report": text, "advice": …, "confirmation": … or null}`.
pub fn advise_json(argv: Vec<String>) -> Result<String> {
    use clap::Parser;
    let cli = AdviseCli::try_parse_from(std::iter::once("advise".to_string()).chain(argv))
        .map_err(|e| anyhow::anyhow!("{}", e.render().to_string().trim_end()))?;
    let a = cli.args;
    let req = request(&a)?;
    let settings = confirm_settings(&a)?;
    let advice = predict(&req)?;
    let mut report = advice.report();
    let confirmation = if let Some(settings) = settings {
        let c = confirm(&req, &advice, &settings, &SweepOptions::default())?;
        report.push('\n');
        report.push_str(&c.report(advice.axis));
        Some(c)
    } else {
        None
    };
    Ok(serde_json::json!({
        "report": report,
        "advice": advice,
        "confirmation": confirmation,
    })
    .to_string())
}
