//! Delay models: where staleness (in steps) and injected latencies (in
//! seconds) come from.
//!
//! One trait, [`DelayModel`], with one required method; one enum, [`Delay`],
//! that implements it for every model psim knows and that round-trips through
//! a short text syntax (used on the command line and in `config.toml`):
//!
//! | syntax | model | staleness it yields |
//! |---|---|---|
//! | `10` or `const:10` | constant | always 10 |
//! | `uniform:0..20` | uniform | integers 0..=20 equally likely (seconds: continuous) |
//! | `geometric:0.1` | geometric, success probability p | failures before a success, mean (1−p)/p |
//! | `poisson:20` | Poisson with mean λ | |
//! | `exp:5` | exponential with mean 5 | rounded |
//! | `pareto:1,1.1` | Pareto, scale x_m, shape α | rounded; α ≤ 1 has an infinite mean |
//! | `lognormal:2,0.5` | log-normal, μ and σ of the log | rounded |
//! | `0.95*uniform:0..20+0.05*const:200` | mixture | weights are normalised |
//! | `trace:delays.txt` | recorded trace | resampled uniformly at random |
//! | `trace:DIR/pushes.csv` | a push log of psim (`--record-pushes`) | its staleness column replayed in order, cycled (injected engine) |
//!
//! Unbounded models can return huge values; a staleness saturates at
//! `u64::MAX` and engines decide (and count) what to do with values beyond
//! what they keep, see the server's history policy.
//!
//! ## Discretisation: one rule, and the mean of what runs
//!
//! A staleness is a whole number of steps. Every model's real draw `x`
//! becomes the nearest integer, `round(x)` (halves away from zero),
//! saturating at `u64::MAX` ([`to_steps`]); that is what
//! [`DelayModel::sample_steps`] returns. Models whose values are integers by
//! construction (geometric, Poisson, a push log) are unchanged by it; a
//! uniform staleness is the discrete uniform on the integers `A..=B`.
//! A model that would run something other than what is written is refused
//! as a staleness ([`Delay::validate_steps`], naming the field): a
//! non-integer constant (`const:2.7` would run 3) or uniform bound
//! (`uniform:0.5..1.5`), in a mixture too. The mean reported for a
//! staleness model is [`Delay::mean_steps`], the mean of the rounded draws
//! (`exp:0.5` runs a mean of 0.43, not 0.5); [`Delay::mean`] is the mean of
//! the real-valued model, for durations in seconds.
//!
//! Mixture weights are normalised (scaled by the largest first, so `1e308`
//! does not overflow); a part whose share is below [`MIN_MIXTURE_SHARE`]
//! is refused (it would almost never be drawn and could not be written back
//! to `config.toml`). Every `Delay` prints as text that parses back to the
//! same model (`to_string` → `parse` → `to_string` is the identity).

use crate::error::{ConfigError, DelayParseError};
use crate::num::show;
use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// One line of syntax help, shown with every parse error.
pub const SYNTAX_HELP: &str = "N | const:N | uniform:A..B | geometric:P | poisson:L | exp:MEAN | \
pareto:SCALE,SHAPE | lognormal:MU,SIGMA | trace:FILE | W1*MODEL+W2*MODEL…";

/// A source of delays. `sample` draws a non-negative real delay (seconds for
/// injected latencies); `sample_steps` turns it into an integer staleness.
pub trait DelayModel {
    /// Draws one delay, always finite-or-infinite and never negative or NaN.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64;

    /// Draws one integer staleness: the real delay rounded to the nearest
    /// integer, saturating at `u64::MAX` (the module's discretisation rule).
    fn sample_steps<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        to_steps(self.sample(rng))
    }
}

/// Rounds a non-negative delay to the nearest integer, saturating.
#[inline]
pub fn to_steps(x: f64) -> u64 {
    // `as` saturates for out-of-range floats and maps NaN to 0.
    x.round() as u64
}

/// Every delay model psim knows; see the module documentation for the
/// syntax. Construct it by parsing (`"uniform:0..20".parse()`), which
/// validates every parameter.
#[derive(Debug, Clone)]
pub enum Delay {
    /// Always the same value.
    Constant(f64),
    /// Uniform on `[lo, hi]`: integers `lo..=hi` as staleness, continuous as
    /// a duration.
    Uniform { lo: f64, hi: f64 },
    /// Number of failures before the first success with probability `p`.
    Geometric { p: f64 },
    /// Poisson with mean `mean`.
    Poisson { mean: f64, dist: Poisson<f64> },
    /// Exponential with mean `mean`.
    Exponential { mean: f64 },
    /// Pareto with scale `scale` (the minimum) and shape `shape`.
    Pareto { scale: f64, shape: f64 },
    /// `exp(N(mu, sigma²))`.
    LogNormal { mu: f64, sigma: f64 },
    /// A weighted mixture; weights are normalised and cumulative.
    Mixture(Arc<[(f64, Delay)]>),
    /// Values read from a file, resampled uniformly; or, from a psim push
    /// log (`pushes.csv`), its staleness column replayed in order
    /// (`ordered`, by the injected engine; other uses resample it).
    Trace {
        /// The file read.
        path: String,
        /// Its values.
        values: Arc<[f64]>,
        /// Replayed in order (a push log) rather than resampled.
        ordered: bool,
    },
}

impl Delay {
    /// A text that two models share exactly when they draw the same law:
    /// `uniform:A..A` is `const:A`, a mixture of one distinct part is that
    /// part, equal parts of a mixture are merged and the parts ordered. Used
    /// to refuse a grid that lists one law twice under two spellings.
    pub fn law_key(&self) -> String {
        match self {
            Delay::Uniform { lo, hi } if lo == hi => Delay::Constant(*lo).law_key(),
            Delay::Mixture(parts) => {
                let mut merged: Vec<(String, f64)> = Vec::new();
                let mut prev = 0.0;
                for (cum, d) in parts.iter() {
                    let w = cum - prev;
                    prev = *cum;
                    if w <= 0.0 {
                        continue;
                    }
                    let k = d.law_key();
                    match merged.iter_mut().find(|(m, _)| *m == k) {
                        Some((_, total)) => *total += w,
                        None => merged.push((k, w)),
                    }
                }
                if merged.len() == 1 {
                    return merged.remove(0).0;
                }
                merged.sort_by(|a, b| a.0.cmp(&b.0));
                merged
                    .iter()
                    .map(|(k, w)| format!("{}*{k}", show(round_weight(*w))))
                    .collect::<Vec<_>>()
                    .join("+")
            }
            other => other.to_string(),
        }
    }

    /// A constant delay of `steps`.
    pub fn constant(steps: u64) -> Self {
        Delay::Constant(steps as f64)
    }

    /// The mean of the model, `None` when it is infinite (Pareto with shape ≤ 1).
    pub fn mean(&self) -> Option<f64> {
        match self {
            Delay::Constant(c) => Some(*c),
            Delay::Uniform { lo, hi } => Some((lo + hi) / 2.0),
            Delay::Geometric { p } => Some((1.0 - p) / p),
            Delay::Poisson { mean, .. } | Delay::Exponential { mean } => Some(*mean),
            Delay::Pareto { scale, shape } => (*shape > 1.0).then(|| shape * scale / (shape - 1.0)),
            Delay::LogNormal { mu, sigma } => Some((mu + sigma * sigma / 2.0).exp()),
            Delay::Mixture(parts) => {
                let mut acc = 0.0;
                let mut prev = 0.0;
                for (cum, d) in parts.iter() {
                    acc += (cum - prev) * d.mean()?;
                    prev = *cum;
                }
                Some(acc)
            }
            Delay::Trace { values, .. } => Some(values.iter().sum::<f64>() / values.len() as f64),
        }
    }

    /// The mean of the staleness the model runs: the mean of its draws
    /// after the discretisation rule (round to nearest), `None` when it is
    /// infinite. Exact for every model but Pareto and log-normal, whose
    /// tail beyond 1024 steps is integrated (error below 1e-3 steps).
    pub fn mean_steps(&self) -> Option<f64> {
        /// Terms summed exactly before the tail integral.
        const N: f64 = 1024.0;
        Some(match self {
            Delay::Constant(c) => to_steps(*c) as f64,
            Delay::Uniform { lo, hi } => (to_steps(*lo) as f64 + to_steps(*hi) as f64) / 2.0,
            Delay::Geometric { p } => (1.0 - p) / p,
            Delay::Poisson { mean, .. } => *mean,
            // Σ_{k≥1} P(X ≥ k − ½) = e^{−1/(2m)} / (1 − e^{−1/m}).
            Delay::Exponential { mean } => (-0.5 / mean).exp() / -(-1.0 / mean).exp_m1(),
            Delay::Pareto { scale, shape } => {
                if *shape <= 1.0 {
                    return None;
                }
                let (s, a) = (*scale, *shape);
                let surv = |x: f64| if x <= s { 1.0 } else { (s / x).powf(a) };
                // E[round X] = Σ_{k≥1} P(X ≥ k − ½): the first N terms,
                // then ∫_N^∞ P(X ≥ x) dx = E[(X − N)⁺].
                let head: f64 = (1..=N as u64).map(|k| surv(k as f64 - 0.5)).sum();
                let tail = if N >= s {
                    // s^a N^(1−a)/(a−1), written so that no power overflows.
                    N * (s / N).powf(a) / (a - 1.0)
                } else {
                    a * s / (a - 1.0) - N
                };
                head + tail
            }
            Delay::LogNormal { mu, sigma } => {
                if *sigma == 0.0 {
                    return Some(to_steps(mu.exp()) as f64);
                }
                // Arguments clamped: Φ is 0 or 1 to double precision beyond ±40.
                let phi = |z: f64| crate::theory::normal_cdf(z.clamp(-40.0, 40.0));
                let surv = |x: f64| 1.0 - phi((x.ln() - mu) / sigma);
                let head: f64 = (1..=N as u64).map(|k| surv(k as f64 - 0.5)).sum();
                let ln_n = N.ln();
                let tail = (mu + sigma * sigma / 2.0).exp()
                    * phi((mu + sigma * sigma - ln_n) / sigma)
                    - N * phi((mu - ln_n) / sigma);
                head + tail.max(0.0)
            }
            Delay::Mixture(parts) => {
                let mut acc = 0.0;
                let mut prev = 0.0;
                for (cum, d) in parts.iter() {
                    acc += (cum - prev) * d.mean_steps()?;
                    prev = *cum;
                }
                acc
            }
            Delay::Trace { values, .. } => {
                values.iter().map(|&v| to_steps(v) as f64).sum::<f64>() / values.len() as f64
            }
        })
    }

    /// The largest value the model can produce, `None` when unbounded.
    pub fn upper_bound(&self) -> Option<f64> {
        match self {
            Delay::Constant(c) => Some(*c),
            Delay::Uniform { hi, .. } => Some(*hi),
            Delay::Mixture(parts) => parts
                .iter()
                .map(|(_, d)| d.upper_bound())
                .try_fold(0.0f64, |m, b| b.map(|b| m.max(b))),
            Delay::Trace { values, .. } => Some(values.iter().cloned().fold(0.0, f64::max)),
            _ => None,
        }
    }
}

/// Largest delay parameter accepted for a staleness in steps: 2⁵³, the
/// largest integer an f64 parameter holds exactly (a larger constant or
/// bound could not be told apart from its neighbours, and near 2⁶⁴ it
/// would not fit a `u64` staleness at all).
pub const MAX_STALENESS: f64 = 9_007_199_254_740_992.0;

/// Largest delay parameter accepted in seconds (compute time, network
/// delay): 10⁹ s, about 32 years. It keeps a virtual clock finite and
/// fine-grained over any number of steps a run may take (2⁶³ steps × 10⁹ s
/// is still far below `f64::MAX`), where `const:1e308` would overflow it
/// to +∞ after two steps.
pub const MAX_SECONDS: f64 = 1e9;

impl Delay {
    /// The model's largest location parameter, in its own unit: the
    /// constant, the upper bound of a uniform, the mean of a geometric,
    /// Poisson or exponential, the scale of a Pareto, e^μ of a log-normal,
    /// the largest value of a trace, the largest of a mixture's parts.
    pub fn scale(&self) -> f64 {
        match self {
            Delay::Constant(c) => *c,
            Delay::Uniform { hi, .. } => *hi,
            Delay::Geometric { p } => (1.0 - p) / p,
            Delay::Poisson { mean, .. } | Delay::Exponential { mean } => *mean,
            Delay::Pareto { scale, .. } => *scale,
            Delay::LogNormal { mu, .. } => mu.exp(),
            Delay::Mixture(parts) => parts.iter().map(|(_, d)| d.scale()).fold(0.0, f64::max),
            Delay::Trace { values, .. } => values.iter().cloned().fold(0.0, f64::max),
        }
    }

    /// Checks that every parameter of the model is finite and at most `max` (`unit` for the message).
    pub fn validate_scale(&self, field: &str, max: f64, unit: &str) -> Result<(), ConfigError> {
        let s = self.scale();
        if s.is_finite() && s <= max {
            return Ok(());
        }
        Err(ConfigError::new(
            field,
            self,
            format!(
                "a model whose parameters (constant, bound, mean, scale, e^MU, trace values) are at most {max:e} {unit}; this one reaches {s:e}"
            ),
        ))
    }

    /// Checks that the model can be used as a staleness in steps: every
    /// parameter at most [`MAX_STALENESS`]. `field` names the setting
    /// (`delay`, `grid.delay[2]`).
    /// A constant or uniform bound that is not a whole number is refused:
    /// it would run something other than what is written (module docs).
    pub fn validate_steps(&self, field: &str) -> Result<(), ConfigError> {
        self.validate_scale(field, MAX_STALENESS, "steps")?;
        if let Some(v) = self.non_integer() {
            return Err(ConfigError::new(
                field,
                self,
                format!(
                    "whole numbers of steps for a constant or a uniform bound (a staleness is an integer; `{v}` would run as {}): write an integer, or a mixture such as `0.7*const:3+0.3*const:2`",
                    to_steps(v)
                ),
            ));
        }
        Ok(())
    }

    /// The first constant or uniform bound that is not an integer.
    fn non_integer(&self) -> Option<f64> {
        match self {
            Delay::Constant(c) => (c.fract() != 0.0).then_some(*c),
            Delay::Uniform { lo, hi } => [*lo, *hi].into_iter().find(|v| v.fract() != 0.0),
            Delay::Mixture(parts) => parts.iter().find_map(|(_, d)| d.non_integer()),
            _ => None,
        }
    }

    /// Checks that the model can be used as a duration in seconds: every
    /// parameter at most [`MAX_SECONDS`].
    pub fn validate_seconds(&self, field: &str) -> Result<(), ConfigError> {
        if let Delay::Trace {
            path,
            ordered: true,
            ..
        } = self
        {
            return Err(ConfigError::new(
                field,
                self,
                format!("a duration model; `{path}` is a push log, whose staleness column replays on the injected engine (`--delay trace:FILE`); replay its compute times with `--worker-compute replay:FILE` on the virtual-time engine"),
            ));
        }
        self.validate_scale(field, MAX_SECONDS, "seconds")
    }
}

impl DelayModel for Delay {
    #[inline]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.sample_inline(rng)
    }

    #[inline]
    fn sample_steps<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            Delay::Constant(c) => to_steps(*c),
            Delay::Uniform { lo, hi } => rng.random_range(to_steps(*lo)..=to_steps(*hi)),
            Delay::Geometric { p } => geometric(*p, rng),
            Delay::Mixture(parts) => pick(parts, rng).sample_steps(rng),
            other => to_steps(other.sample(rng)),
        }
    }
}

impl Delay {
    /// [`DelayModel::sample`] inlined into its caller: the same draw, for
    /// an event loop that draws once per event (there the call and its
    /// prologue are a few percent of an event).
    #[inline(always)]
    pub fn sample_inline<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Delay::Constant(c) => *c,
            Delay::Uniform { lo, hi } => lo + (hi - lo) * rng.random::<f64>(),
            Delay::Geometric { p } => geometric(*p, rng) as f64,
            Delay::Poisson { dist, .. } => dist.sample(rng),
            Delay::Exponential { mean } => -mean * open01(rng).ln(),
            Delay::Pareto { scale, shape } => scale * open01(rng).powf(-1.0 / shape),
            Delay::LogNormal { mu, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + sigma * z).exp()
            }
            Delay::Mixture(parts) => pick(parts, rng).sample(rng),
            Delay::Trace { values, .. } => values[rng.random_range(0..values.len())],
        }
    }
}

/// A uniform draw in (0, 1], safe for `ln` and negative powers.
#[inline]
fn open01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    1.0 - rng.random::<f64>()
}

/// Failures before the first success, by inversion (exact, O(1)).
#[inline]
fn geometric<R: Rng + ?Sized>(p: f64, rng: &mut R) -> u64 {
    if p >= 1.0 {
        return 0;
    }
    (open01(rng).ln() / (1.0 - p).ln()).floor() as u64
}

#[inline]
fn pick<'a, R: Rng + ?Sized>(parts: &'a [(f64, Delay)], rng: &mut R) -> &'a Delay {
    let u: f64 = rng.random();
    parts
        .iter()
        .find(|(cum, _)| u < *cum)
        .map(|(_, d)| d)
        .unwrap_or(&parts[parts.len() - 1].1)
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delay::Constant(c) => write!(f, "const:{}", show(*c)),
            Delay::Uniform { lo, hi } => write!(f, "uniform:{}..{}", show(*lo), show(*hi)),
            Delay::Geometric { p } => write!(f, "geometric:{}", show(*p)),
            Delay::Poisson { mean, .. } => write!(f, "poisson:{}", show(*mean)),
            Delay::Exponential { mean } => write!(f, "exp:{}", show(*mean)),
            Delay::Pareto { scale, shape } => write!(f, "pareto:{},{}", show(*scale), show(*shape)),
            Delay::LogNormal { mu, sigma } => write!(f, "lognormal:{},{}", show(*mu), show(*sigma)),
            Delay::Mixture(parts) => {
                let mut prev = 0.0;
                for (i, (cum, d)) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("+")?;
                    }
                    let w = cum - prev;
                    prev = *cum;
                    write!(f, "{}*{d}", show(round_weight(w)))?;
                }
                Ok(())
            }
            Delay::Trace { path, .. } => write!(f, "trace:{path}"),
        }
    }
}

/// The smallest share of a mixture part: below it the part is refused
/// (weights print rounded to 1e-12, so a smaller share would print as 0).
pub const MIN_MIXTURE_SHARE: f64 = 1e-9;

/// Weights print without float noise (0.95 rather than 0.9500000000000001).
fn round_weight(w: f64) -> f64 {
    (w * 1e12).round() / 1e12
}

impl PartialEq for Delay {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

fn num(spec: &str, name: &str, text: &str) -> Result<f64, DelayParseError> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| DelayParseError::new(spec, format!("{name} `{text}` is not a number")))?;
    if !v.is_finite() {
        return Err(DelayParseError::new(
            spec,
            format!("{name} must be finite, got {v}"),
        ));
    }
    Ok(v)
}

fn two(spec: &str, args: &str, sep: &str, names: [&str; 2]) -> Result<(f64, f64), DelayParseError> {
    let (a, b) = args.split_once(sep).ok_or_else(|| {
        DelayParseError::new(spec, format!("expected {}{sep}{}", names[0], names[1]))
    })?;
    Ok((num(spec, names[0], a)?, num(spec, names[1], b)?))
}

fn parse_one(spec: &str, text: &str) -> Result<Delay, DelayParseError> {
    let text = text.trim();
    let (kind, args) = match text.split_once(':') {
        Some((k, a)) => (k.trim().to_ascii_lowercase(), a.trim()),
        None => ("const".to_string(), text),
    };
    let nonneg = |name: &str, v: f64| {
        if v < 0.0 {
            Err(DelayParseError::new(
                spec,
                format!("{name} must be ≥ 0, got {v}"),
            ))
        } else {
            Ok(v)
        }
    };
    let positive = |name: &str, v: f64| {
        if v <= 0.0 {
            Err(DelayParseError::new(
                spec,
                format!("{name} must be > 0, got {v}"),
            ))
        } else {
            Ok(v)
        }
    };
    Ok(match kind.as_str() {
        "const" | "constant" => {
            Delay::Constant(nonneg("the constant", num(spec, "the constant", args)?)?)
        }
        "uniform" => {
            let (lo, hi) = two(spec, args, "..", ["A", "B"])?;
            nonneg("the lower bound A", lo)?;
            if hi < lo {
                return Err(DelayParseError::new(
                    spec,
                    format!("need A ≤ B, got A = {lo} > B = {hi}"),
                ));
            }
            Delay::Uniform { lo, hi }
        }
        "geometric" | "geom" => {
            let p = num(spec, "the success probability P", args)?;
            if !(p > 0.0 && p <= 1.0) {
                return Err(DelayParseError::new(
                    spec,
                    format!("P must be in (0, 1], got {p}"),
                ));
            }
            Delay::Geometric { p }
        }
        "poisson" => {
            let mean = positive("the mean L", num(spec, "the mean L", args)?)?;
            let dist = Poisson::new(mean)
                .map_err(|e| DelayParseError::new(spec, format!("Poisson mean {mean}: {e}")))?;
            Delay::Poisson { mean, dist }
        }
        "exp" | "exponential" => Delay::Exponential {
            mean: positive("the mean", num(spec, "the mean", args)?)?,
        },
        "pareto" => {
            let (scale, shape) = two(spec, args, ",", ["SCALE", "SHAPE"])?;
            Delay::Pareto {
                scale: positive("SCALE", scale)?,
                shape: positive("SHAPE", shape)?,
            }
        }
        "lognormal" | "lognorm" => {
            let (mu, sigma) = two(spec, args, ",", ["MU", "SIGMA"])?;
            Delay::LogNormal {
                mu,
                sigma: nonneg("SIGMA", sigma)?,
            }
        }
        "trace" => {
            if args.is_empty() {
                return Err(DelayParseError::new(spec, "trace needs a file path"));
            }
            let body =
                crate::fs::read_regular(std::path::Path::new(args), crate::fs::Links::Follow)
                    .map_err(|e| {
                        DelayParseError::new(spec, format!("cannot read `{args}`: {e}"))
                    })?;
            if crate::pushes::is_push_log(&body) {
                let log = crate::pushes::parse_push_log(&body)
                    .map_err(|e| DelayParseError::new(spec, format!("push log `{args}`: {e}")))?;
                return Ok(Delay::Trace {
                    path: crate::fs::absolute(args),
                    values: log.staleness.iter().map(|&s| s as f64).collect(),
                    ordered: true,
                });
            }
            let mut values = Vec::new();
            for (i, tok) in body
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .enumerate()
            {
                let v = num(spec, &format!("trace value #{}", i + 1), tok)?;
                values.push(nonneg(&format!("trace value #{}", i + 1), v)?);
            }
            if values.is_empty() {
                return Err(DelayParseError::new(
                    spec,
                    format!("trace file `{args}` holds no values"),
                ));
            }
            Delay::Trace {
                path: crate::fs::absolute(args),
                values: values.into(),
                ordered: false,
            }
        }
        other => {
            return Err(DelayParseError::new(
                spec,
                format!("unknown model `{other}`"),
            ));
        }
    })
}

impl FromStr for Delay {
    type Err = DelayParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.trim().is_empty() {
            return Err(DelayParseError::new(spec, "empty"));
        }
        if !spec.contains('*') {
            return parse_one(spec, spec);
        }
        let mut parts = Vec::new();
        for term in spec.split('+') {
            let (w, model) = term.split_once('*').ok_or_else(|| {
                DelayParseError::new(
                    spec,
                    format!("mixture term `{term}` needs the form WEIGHT*MODEL"),
                )
            })?;
            let w = num(spec, "a mixture weight", w)?;
            if w <= 0.0 {
                return Err(DelayParseError::new(
                    spec,
                    format!("mixture weights must be > 0, got {w}"),
                ));
            }
            if model.contains('*') {
                return Err(DelayParseError::new(spec, "mixtures cannot be nested"));
            }
            parts.push((w, parse_one(spec, model)?));
        }
        // Scaled by the largest weight first: no sum overflows (1e308 + 1e308).
        let max = parts.iter().map(|(w, _)| *w).fold(0.0, f64::max);
        let total: f64 = parts.iter().map(|(w, _)| w / max).sum();
        if let Some((w, _)) = parts
            .iter()
            .find(|(w, _)| (w / max) / total < MIN_MIXTURE_SHARE)
        {
            return Err(DelayParseError::new(
                spec,
                format!(
                    "mixture weight {} is {} of the total; each part's share must be at least {MIN_MIXTURE_SHARE:e} (a smaller part is almost never drawn and cannot be written back exactly)",
                    show(*w),
                    show((w / max) / total)
                ),
            ));
        }
        let mut cum = 0.0;
        let n = parts.len();
        let parts: Vec<(f64, Delay)> = parts
            .into_iter()
            .enumerate()
            .map(|(i, (w, d))| {
                cum += (w / max) / total;
                // The last part closes the interval exactly.
                (if i + 1 == n { 1.0 } else { cum }, d)
            })
            .collect();
        Ok(Delay::Mixture(parts.into()))
    }
}

impl Serialize for Delay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn draws(d: &Delay, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n).map(|_| d.sample_steps(&mut rng) as f64).collect()
    }

    fn mean_var(x: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        (
            m,
            x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0),
        )
    }

    /// Sample mean within 5 standard errors of the true mean: with the
    /// fixed seed the check is deterministic, and a correct sampler fails it
    /// with probability < 1e-6 over seeds.
    fn assert_mean(d: &Delay, true_mean: f64, true_var: f64, n: usize) {
        let (m, _) = mean_var(&draws(d, n, 11));
        let tol = 5.0 * (true_var / n as f64).sqrt();
        assert!(
            (m - true_mean).abs() <= tol,
            "{d}: mean {m} vs {true_mean} ± {tol}"
        );
    }

    /// The reported mean of a staleness model is the mean of what runs:
    /// `mean_steps` against the sample mean of `sample_steps`, within 5
    /// standard errors (fixed seed: deterministic).
    #[test]
    fn mean_steps_is_the_mean_of_the_draws() {
        for spec in [
            "const:3",
            "uniform:2..9",
            "geometric:0.3",
            "poisson:0.7",
            "exp:0.5",
            "exp:7",
            "pareto:0.6,2.5",
            "pareto:3,3",
            "lognormal:0,1",
            "lognormal:1.5,0.3",
            "0.3*exp:0.4+0.7*const:2",
        ] {
            let d: Delay = spec.parse().unwrap();
            let n = 400_000;
            let x = draws(&d, n, 21);
            let (m, v) = mean_var(&x);
            let want = d.mean_steps().unwrap();
            let tol = 5.0 * (v / n as f64).sqrt() + 1e-3;
            assert!(
                (m - want).abs() <= tol,
                "{spec}: draws {m}, mean_steps {want} ± {tol}"
            );
        }
        // exp:0.5 runs a mean of 0.43, not the 0.5 of the real model.
        let e: Delay = "exp:0.5".parse().unwrap();
        assert!((e.mean_steps().unwrap() - 0.4255).abs() < 1e-3);
        assert_eq!("pareto:1,1".parse::<Delay>().unwrap().mean_steps(), None);
    }

    #[test]
    fn non_integer_staleness_and_extreme_weights_are_refused_or_normalised() {
        for bad in [
            "const:2.7",
            "uniform:0.5..1.5",
            "uniform:0..1.5",
            "0.5*const:1+0.5*const:2.5",
        ] {
            let d: Delay = bad.parse().unwrap();
            let e = d.validate_steps("delay").unwrap_err().to_string();
            assert!(
                e.contains("`delay`") && e.contains("whole numbers"),
                "{bad}: {e}"
            );
            assert!(
                d.validate_seconds("compute_time").is_ok(),
                "{bad} is a fine duration"
            );
        }
        let d: Delay = "1e308*const:1+1e308*const:2".parse().unwrap();
        assert_eq!(d.to_string(), "0.5*const:1+0.5*const:2");
        for bad in ["1e-13*const:1+1*const:2", "5e-324*const:1+1*const:2"] {
            let e = bad.parse::<Delay>().unwrap_err().to_string();
            assert!(e.contains("share"), "{bad}: {e}");
        }
        let d: Delay = "1e-300".parse().unwrap();
        assert_eq!(d.to_string(), "const:1e-300");
    }

    #[test]
    fn constant_is_constant() {
        let d: Delay = "17".parse().unwrap();
        assert!(draws(&d, 100, 1).iter().all(|&x| x == 17.0));
        assert_eq!(d.to_string(), "const:17");
    }

    #[test]
    fn uniform_integer_moments_and_bounds() {
        let d: Delay = "uniform:3..12".parse().unwrap();
        let x = draws(&d, 200_000, 2);
        assert!(x
            .iter()
            .all(|&v| (3.0..=12.0).contains(&v) && v.fract() == 0.0));
        // Discrete uniform on 10 values: variance (10² − 1)/12.
        let var = (100.0 - 1.0) / 12.0;
        assert_mean(&d, 7.5, var, 200_000);
        let (_, v) = mean_var(&x);
        // Sample variance of a bounded variable: relative error ≈ sqrt(2/n)·kurtosis term; 5% is > 10σ here.
        assert!((v - var).abs() / var < 0.05, "variance {v} vs {var}");
        // Every value is hit.
        for k in 3..=12 {
            assert!(x.contains(&(k as f64)));
        }
    }

    #[test]
    fn geometric_and_poisson_moments() {
        let p = 0.2;
        let g: Delay = format!("geometric:{p}").parse().unwrap();
        assert_mean(&g, (1.0 - p) / p, (1.0 - p) / (p * p), 200_000);
        let pois: Delay = "poisson:20".parse().unwrap();
        assert_mean(&pois, 20.0, 20.0, 200_000);
        let (_, v) = mean_var(&draws(&pois, 200_000, 5));
        assert!((v - 20.0).abs() / 20.0 < 0.03, "Poisson variance {v}");
    }

    #[test]
    fn exponential_lognormal_real_moments() {
        let mut rng = SmallRng::seed_from_u64(9);
        let e: Delay = "exp:4".parse().unwrap();
        let x: Vec<f64> = (0..200_000).map(|_| e.sample(&mut rng)).collect();
        let (m, v) = mean_var(&x);
        assert!(
            (m - 4.0).abs() < 5.0 * (16.0f64 / 2e5).sqrt(),
            "exp mean {m}"
        );
        assert!((v - 16.0).abs() / 16.0 < 0.05, "exp variance {v}");
        let l: Delay = "lognormal:1,0.5".parse().unwrap();
        let x: Vec<f64> = (0..200_000).map(|_| l.sample(&mut rng)).collect();
        let true_mean = (1.0f64 + 0.125).exp();
        let true_var = (0.25f64.exp() - 1.0) * (2.0 + 0.25f64).exp();
        let (m, _) = mean_var(&x);
        assert!(
            (m - true_mean).abs() < 5.0 * (true_var / 2e5).sqrt(),
            "lognormal mean {m}"
        );
        assert_eq!(l.mean().map(|m| (m - true_mean).abs() < 1e-12), Some(true));
        // Rounding moves each draw by at most 1/2.
        let mut a = SmallRng::seed_from_u64(3);
        let mut b = SmallRng::seed_from_u64(3);
        for _ in 0..1000 {
            let real = l.sample(&mut a);
            let step = l.sample_steps(&mut b) as f64;
            assert!((real - step).abs() <= 0.5);
        }
    }

    #[test]
    fn pareto_tail_and_infinite_mean() {
        // P(X > x) = (scale/x)^shape exactly; check at x = 4·scale with a
        // binomial 5σ tolerance.
        let d: Delay = "pareto:2,1.5".parse().unwrap();
        let mut rng = SmallRng::seed_from_u64(4);
        let n = 200_000;
        let x: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        assert!(x.iter().all(|&v| v >= 2.0));
        let p = 0.25f64.powf(1.5);
        let frac = x.iter().filter(|&&v| v > 8.0).count() as f64 / n as f64;
        assert!(
            (frac - p).abs() < 5.0 * (p * (1.0 - p) / n as f64).sqrt(),
            "tail {frac} vs {p}"
        );
        // Shape ≤ 1: infinite mean, yet every draw is a finite staleness.
        let heavy: Delay = "pareto:1,0.5".parse().unwrap();
        assert_eq!(heavy.mean(), None);
        assert_eq!(heavy.upper_bound(), None);
        let s: Vec<u64> = (0..100_000).map(|_| heavy.sample_steps(&mut rng)).collect();
        assert!(s.iter().all(|&v| v >= 1));
        assert!(
            *s.iter().max().unwrap() > 1_000_000,
            "a shape-0.5 tail reaches far"
        );
    }

    #[test]
    fn mixture_weights_and_bounds() {
        let d: Delay = "0.95*uniform:0..20+0.05*const:200".parse().unwrap();
        assert_eq!(d.to_string(), "0.95*uniform:0..20+0.05*const:200");
        assert_eq!(d.upper_bound(), Some(200.0));
        let x = draws(&d, 100_000, 6);
        let stragglers = x.iter().filter(|&&v| v == 200.0).count() as f64 / 1e5;
        assert!((stragglers - 0.05).abs() < 5.0 * (0.05f64 * 0.95 / 1e5).sqrt());
        assert!(x.iter().all(|&v| v <= 20.0 || v == 200.0));
        let mean = 0.95 * 10.0 + 0.05 * 200.0;
        assert!((d.mean().unwrap() - mean).abs() < 1e-9);
    }

    #[test]
    fn round_trips_through_text_and_serde() {
        for s in [
            "const:5",
            "uniform:0..20",
            "geometric:0.25",
            "poisson:3",
            "exp:2.5",
            "pareto:1,1.1",
            "lognormal:2,0.5",
            "0.5*const:1+0.5*exp:3",
        ] {
            let d: Delay = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
            let again: Delay = d.to_string().parse().unwrap();
            assert_eq!(again, d);
            let json = serde_json::to_string(&d).unwrap();
            let back: Delay = serde_json::from_str(&json).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let cases = [
            ("", "empty"),
            ("const:-1", "must be ≥ 0"),
            ("uniform:5..3", "A ≤ B"),
            ("uniform:5", "expected A..B"),
            ("geometric:0", "(0, 1]"),
            ("geometric:1.5", "(0, 1]"),
            ("poisson:0", "must be > 0"),
            ("pareto:1", "expected SCALE,SHAPE"),
            ("pareto:1,-2", "SHAPE must be > 0"),
            ("lognormal:1,-1", "SIGMA must be ≥ 0"),
            ("warp:3", "unknown model `warp`"),
            ("exp:abc", "not a number"),
            ("exp:inf", "finite"),
            ("0.5*const:1+const:2", "WEIGHT*MODEL"),
            ("-1*const:1+2*const:2", "weights must be > 0"),
            ("trace:/nonexistent/file", "cannot read"),
        ];
        for (spec, needle) in cases {
            let err = spec.parse::<Delay>().unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "`{spec}` gave `{err}`, expected `{needle}`"
            );
            assert!(err.contains("syntax:"), "error lists the syntax");
        }
    }

    #[test]
    fn parameters_beyond_what_a_staleness_or_a_clock_holds_are_refused() {
        for spec in [
            "const:2e19",
            "uniform:0..18446744073709551615",
            "0.5*const:1+0.5*const:1e30",
            "exp:1e300",
            "lognormal:800,1",
        ] {
            let d: Delay = spec.parse().unwrap();
            let e = d.validate_steps("delay").unwrap_err().to_string();
            assert!(e.contains("`delay`") && e.contains("9.007"), "{spec}: {e}");
        }
        for spec in ["const:1e308", "pareto:1e10,2"] {
            let d: Delay = spec.parse().unwrap();
            let e = d
                .validate_seconds("cluster.compute_time")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("`cluster.compute_time`") && e.contains("1e9"),
                "{e}"
            );
        }
        for spec in ["const:1000", "uniform:0..9007199254740992", "pareto:1,0.5"] {
            let d: Delay = spec.parse().unwrap();
            d.validate_steps("delay").unwrap();
        }
        "const:0.001"
            .parse::<Delay>()
            .unwrap()
            .validate_seconds("cluster.compute_time")
            .unwrap();
    }

    #[test]
    fn trace_resamples_its_values() {
        let dir = std::env::temp_dir().join(format!("psim-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.txt");
        std::fs::write(&path, "1 2\n3,40\n").unwrap();
        let d: Delay = format!("trace:{}", path.display()).parse().unwrap();
        let x = draws(&d, 10_000, 8);
        for v in [1.0, 2.0, 3.0, 40.0] {
            assert!(x.contains(&v));
        }
        assert!(x.iter().all(|v| [1.0, 2.0, 3.0, 40.0].contains(v)));
        assert_eq!(d.upper_bound(), Some(40.0));
        std::fs::write(&path, "1 x").unwrap();
        let err = format!("trace:{}", path.display())
            .parse::<Delay>()
            .unwrap_err();
        assert!(err.to_string().contains("trace value #2"));
    }
}
