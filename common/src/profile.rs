//! Heterogeneous workers as the asynchronous-SGD papers model them
//! (Tyurin & Richtárik 2023, "Optimal time complexities of parallel
//! stochastic optimization methods under a fixed computation model";
//! Maranjyan, Tyurin & Richtárik 2025, "Ringmaster ASGD"; Tyurin 2024's
//! universal computation model for time-varying power): the value
//! `--worker-compute profile:…` ([`ComputeProfile`]) and the per-worker
//! clock the engines draw durations from ([`WorkerClock`]).
//!
//! Worker i (the papers' 1-based index: psim's worker w is i = w + 1) of a
//! run whose `compute_time` draw is c computes one gradient with
//!
//! ```text
//!   work_i = c · s_i · (A + B·i^P + ξ_i)
//! ```
//!
//! seconds of work, where s_i is the straggler factor and ξ_i ≥ 0 is drawn
//! afresh for every gradient (half-normal |N(0, (S·i^Q)²)| or exponential
//! with mean S·i^Q). Without time-varying power the computation takes
//! `work_i` seconds; with it, the worker's power v_i(t) (piecewise constant:
//! segments of drawn length with drawn level, times 0 while the worker is in
//! an outage) stretches it to the first t' with ∫ v_i = work_i. Around the
//! computation, the parameters take a drawn download time to reach the
//! worker and the gradient a drawn upload time (× i^Q) to reach the server,
//! on top of `--network-delay` (the upload time common to all workers).

use crate::delay::{Delay, DelayModel};
use crate::error::ConfigError;
use crate::num::show;
use crate::PsimRng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// The field every profile error names.
const FIELD: &str = "engine.cluster.worker_compute";

/// The grammar, shown with every parse error.
pub const PROFILE_SYNTAX: &str = "`profile:A+B*i^P` followed by any of `;noise=half-normal:S*i^Q` or `;noise=exp:S*i^Q`, `;period=MODEL;power=MODEL` (time-varying power), `;up=MODEL;down=MODEL` (outages), `;upload=MODEL*i^Q`, `;download=MODEL*i^Q` (`*i^Q` optional; MODEL a duration model such as `exp:0.1`)";

/// The law of the per-gradient noise ξ_i.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseLaw {
    /// |N(0, scale²)|: mean scale·√(2/π), variance scale²(1 − 2/π).
    HalfNormal,
    /// Exponential with mean scale: variance scale².
    Exponential,
}

impl NoiseLaw {
    /// Mean of one draw of unit scale.
    pub fn unit_mean(self) -> f64 {
        match self {
            NoiseLaw::HalfNormal => (2.0 / std::f64::consts::PI).sqrt(),
            NoiseLaw::Exponential => 1.0,
        }
    }

    /// Variance of one draw of unit scale.
    pub fn unit_variance(self) -> f64 {
        match self {
            NoiseLaw::HalfNormal => 1.0 - 2.0 / std::f64::consts::PI,
            NoiseLaw::Exponential => 1.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            NoiseLaw::HalfNormal => "half-normal",
            NoiseLaw::Exponential => "exp",
        }
    }
}

/// A scale growing with the worker index: `value · i^exponent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Power {
    /// The value at i = 1.
    pub value: f64,
    /// Exponent Q of i.
    pub exponent: f64,
}

impl Power {
    /// `value · i^exponent` for the 1-based index `i`.
    pub fn at(&self, i: usize) -> f64 {
        if self.exponent == 0.0 {
            self.value
        } else {
            self.value * (i as f64).powf(self.exponent)
        }
    }
}

/// Per-gradient noise ξ_i of worker i: its law and scale S·i^Q.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Half-normal or exponential.
    pub law: NoiseLaw,
    /// Scale S·i^Q.
    pub scale: Power,
}

/// A duration model scaled per worker: a draw × i^Q.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledDelay {
    /// The model (seconds).
    pub model: Delay,
    /// Exponent Q of i (0: the same law for every worker).
    pub exponent: f64,
}

impl ScaledDelay {
    fn factor(&self, i: usize) -> f64 {
        Power {
            value: 1.0,
            exponent: self.exponent,
        }
        .at(i)
    }
}

/// Alternating segments: lengths drawn from one model, and either a level
/// drawn per segment (time-varying power) or up/down phases (outages).
#[derive(Debug, Clone, PartialEq)]
pub struct Alternation {
    /// First model: segment lengths (`period=`) or up-times (`up=`).
    pub first: Delay,
    /// Second model: power levels (`power=`) or down-times (`down=`).
    pub second: Delay,
}

/// `--worker-compute profile:…`: worker i computes for
/// c·(A + B·i^P + ξ_i), with optional time-varying power, outages and
/// per-worker upload and download times (module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeProfile {
    /// A: the part every worker shares.
    pub a: f64,
    /// B: the weight of i^P.
    pub b: f64,
    /// P: √i is 0.5, linear 1.
    pub p: f64,
    /// ξ_i, if any.
    pub noise: Option<Noise>,
    /// Time-varying power: `period=` lengths, `power=` levels.
    pub power: Option<Alternation>,
    /// Outages: `up=` up-times, `down=` down-times.
    pub outage: Option<Alternation>,
    /// Seconds the gradient takes to reach the server (× i^Q), on top of
    /// `network_delay`.
    pub upload: Option<ScaledDelay>,
    /// Seconds the parameters take to reach the worker (× i^Q).
    pub download: Option<ScaledDelay>,
}

/// Writes `value*i^exponent`, omitting `*i^0`.
fn write_power(f: &mut fmt::Formatter<'_>, value: &dyn fmt::Display, exponent: f64) -> fmt::Result {
    write!(f, "{value}")?;
    if exponent != 0.0 {
        write!(f, "*i^{}", show(exponent))?;
    }
    Ok(())
}

impl fmt::Display for ComputeProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "profile:{}+{}*i^{}",
            show(self.a),
            show(self.b),
            show(self.p)
        )?;
        if let Some(n) = &self.noise {
            write!(f, ";noise={}:", n.law.name())?;
            write_power(f, &show(n.scale.value), n.scale.exponent)?;
        }
        if let Some(p) = &self.power {
            write!(f, ";period={};power={}", p.first, p.second)?;
        }
        if let Some(o) = &self.outage {
            write!(f, ";up={};down={}", o.first, o.second)?;
        }
        for (key, d) in [("upload", &self.upload), ("download", &self.download)] {
            if let Some(d) = d {
                write!(f, ";{key}=")?;
                write_power(f, &d.model, d.exponent)?;
            }
        }
        Ok(())
    }
}

/// Splits `X*i^Q` into `X` and Q (0 without the suffix).
fn split_power<'a>(
    s: &'a str,
    bad: &dyn Fn(String) -> ConfigError,
) -> Result<(&'a str, f64), ConfigError> {
    match s.rsplit_once("*i^") {
        Some((x, q)) => {
            let q: f64 = q
                .trim()
                .parse()
                .map_err(|_| bad(format!("exponent `{q}` of `*i^Q` is not a number")))?;
            Ok((x.trim(), q))
        }
        None => Ok((s.trim(), 0.0)),
    }
}

impl FromStr for ComputeProfile {
    type Err = ConfigError;

    /// Parses the text after `profile:` (the module documentation's grammar).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let whole = format!("profile:{s}");
        let bad =
            |why: String| ConfigError::new(FIELD, &whole, format!("{PROFILE_SYNTAX} ({why})"));
        let num = |x: &str, name: &str| -> Result<f64, ConfigError> {
            x.trim()
                .parse::<f64>()
                .map_err(|_| bad(format!("{name} `{}` is not a number", x.trim())))
        };
        let mut clauses = s.split(';');
        let base = clauses.next().unwrap_or("").trim();
        let (ab, p) = base
            .rsplit_once("*i^")
            .ok_or_else(|| bad(format!("the base `{base}` is not `A+B*i^P`")))?;
        let (a, b) = ab
            .rsplit_once('+')
            .ok_or_else(|| bad(format!("the base `{base}` is not `A+B*i^P`")))?;
        let mut out = ComputeProfile {
            a: num(a, "A")?,
            b: num(b, "B")?,
            p: num(p, "P")?,
            noise: None,
            power: None,
            outage: None,
            upload: None,
            download: None,
        };
        let mut period = None;
        let mut level = None;
        let mut up = None;
        let mut down = None;
        let model = |key: &str, v: &str| -> Result<Delay, ConfigError> {
            v.trim()
                .parse::<Delay>()
                .map_err(|e| bad(format!("`{key}=`: {e}")))
        };
        for clause in clauses {
            let clause = clause.trim();
            if clause.is_empty() {
                continue;
            }
            let (key, value) = clause
                .split_once('=')
                .ok_or_else(|| bad(format!("the clause `{clause}` is not `KEY=VALUE`")))?;
            let key = key.trim();
            let once = |set: bool| -> Result<(), ConfigError> {
                if set {
                    Err(bad(format!("`{key}=` is given twice")))
                } else {
                    Ok(())
                }
            };
            match key {
                "noise" => {
                    once(out.noise.is_some())?;
                    let (law, scale) = value.split_once(':').ok_or_else(|| {
                        bad(format!("`noise={value}` is not `half-normal:S*i^Q` or `exp:S*i^Q`"))
                    })?;
                    let law = match law.trim() {
                        "half-normal" => NoiseLaw::HalfNormal,
                        "exp" => NoiseLaw::Exponential,
                        other => {
                            return Err(bad(format!(
                                "noise law `{other}` is not `half-normal` or `exp`"
                            )))
                        }
                    };
                    let (s, q) = split_power(scale, &bad)?;
                    out.noise = Some(Noise {
                        law,
                        scale: Power {
                            value: num(s, "S")?,
                            exponent: q,
                        },
                    });
                }
                "period" => {
                    once(period.is_some())?;
                    period = Some(model(key, value)?);
                }
                "power" => {
                    once(level.is_some())?;
                    level = Some(model(key, value)?);
                }
                "up" => {
                    once(up.is_some())?;
                    up = Some(model(key, value)?);
                }
                "down" => {
                    once(down.is_some())?;
                    down = Some(model(key, value)?);
                }
                "upload" | "download" => {
                    let slot = if key == "upload" {
                        &mut out.upload
                    } else {
                        &mut out.download
                    };
                    once(slot.is_some())?;
                    let (m, q) = split_power(value, &bad)?;
                    *slot = Some(ScaledDelay {
                        model: model(key, m)?,
                        exponent: q,
                    });
                }
                other => {
                    return Err(bad(format!(
                        "unknown clause `{other}=` (known: noise, period, power, up, down, upload, download)"
                    )))
                }
            }
        }
        out.power = match (period, level) {
            (None, None) => None,
            (Some(first), Some(second)) => Some(Alternation { first, second }),
            _ => return Err(bad("`period=` and `power=` go together".into())),
        };
        out.outage = match (up, down) {
            (None, None) => None,
            (Some(first), Some(second)) => Some(Alternation { first, second }),
            _ => return Err(bad("`up=` and `down=` go together".into())),
        };
        Ok(out)
    }
}

/// Most segments a computation may span on average (time-varying power or
/// outages): a segment model far shorter than the work would make every
/// gradient walk millions of segments.
pub const MAX_SEGMENTS_PER_GRADIENT: f64 = 1000.0;

impl ComputeProfile {
    /// A + B·i^P for the 1-based index `i`.
    pub fn base(&self, i: usize) -> f64 {
        self.a
            + Power {
                value: self.b,
                exponent: self.p,
            }
            .at(i)
    }

    /// E[ξ_i].
    pub fn noise_mean(&self, i: usize) -> f64 {
        self.noise
            .map_or(0.0, |n| n.law.unit_mean() * n.scale.at(i))
    }

    /// Var[ξ_i].
    pub fn noise_variance(&self, i: usize) -> f64 {
        self.noise.map_or(0.0, |n| {
            let s = n.scale.at(i);
            n.law.unit_variance() * s * s
        })
    }

    /// The long-run fraction of work per second: E[level] under
    /// time-varying power (segment lengths drawn independently of the
    /// levels, so the time-average power is E[level]) times the up-time
    /// fraction E[up]/(E[up]+E[down]) under outages; `None` if a mean is
    /// infinite.
    pub fn throughput(&self) -> Option<f64> {
        let mut r = 1.0;
        if let Some(p) = &self.power {
            r *= p.second.mean()?;
        }
        if let Some(o) = &self.outage {
            let (u, d) = (o.first.mean()?, o.second.mean()?);
            r *= u / (u + d);
        }
        Some(r)
    }

    /// Mean seconds from fetch to push arrival of worker `i` (1-based),
    /// without `network_delay`, for a `compute_time` mean `c` (straggler
    /// factor included): c·(A + B·i^P + E ξ_i) / throughput, plus the mean
    /// download and upload. Exact without time-varying power and outages; with them,
    /// the long-run mean (renewal-reward). `None` when a mean is infinite.
    pub fn mean_time(&self, i: usize, c: f64) -> Option<f64> {
        let compute = c * (self.base(i) + self.noise_mean(i)) / self.throughput()?;
        let mut t = compute;
        for d in [&self.upload, &self.download].into_iter().flatten() {
            t += d.model.mean()? * d.factor(i);
        }
        Some(t)
    }

    /// Mean compute seconds only (no upload or download) of worker `i`.
    pub fn mean_compute(&self, i: usize, c: f64) -> Option<f64> {
        Some(c * (self.base(i) + self.noise_mean(i)) / self.throughput()?)
    }

    /// Checks the ranges for `workers` workers, naming the field and the part.
    pub fn validate(&self, workers: usize, max_factor: f64) -> Result<(), ConfigError> {
        let err = |why: String| ConfigError::new(FIELD, self, why);
        for (name, v) in [("A", self.a), ("B", self.b), ("P", self.p)] {
            if !v.is_finite() {
                return Err(err(format!("{name} finite; it is {v}")));
            }
        }
        let m = workers.max(1);
        // i^P is monotone in i: the extremes are at i = 1 and i = M.
        for (what, v) in [
            ("A + B (worker i = 1)", self.base(1)),
            ("A + B·M^P (the last worker)", self.base(m)),
        ] {
            if !(v.is_finite() && (0.0..=max_factor).contains(&v)) {
                return Err(err(format!(
                    "A + B·i^P in [0, {max_factor:e}] for every worker; {what} is {v}"
                )));
            }
        }
        if let Some(n) = &self.noise {
            let (s, q) = (n.scale.value, n.scale.exponent);
            if !(s.is_finite() && s >= 0.0 && q.is_finite()) {
                return Err(err(format!(
                    "a noise scale S ≥ 0 and exponent Q finite; they are {s} and {q}"
                )));
            }
            let last = n.scale.at(m);
            if !(last.is_finite() && last <= max_factor) {
                return Err(err(format!(
                    "noise scales S·i^Q at most {max_factor:e}; the last worker's is {last}"
                )));
            }
        }
        for (key, d) in [("upload", &self.upload), ("download", &self.download)] {
            if let Some(d) = d {
                d.model.validate_seconds(&format!("{FIELD} ({key})"))?;
                let f = d.factor(m).max(d.factor(1));
                if !(d.exponent.is_finite() && f <= max_factor) {
                    return Err(err(format!(
                        "`{key}=MODEL*i^Q` with i^Q at most {max_factor:e}; it reaches {f}"
                    )));
                }
            }
        }
        // The smallest mean work a gradient can need: bounds how many
        // segments one computation spans.
        let work = self.base(1).min(self.base(m)).max(f64::MIN_POSITIVE);
        for (keys, alt) in [
            (("period", "power"), &self.power),
            (("up", "down"), &self.outage),
        ] {
            let Some(alt) = alt else { continue };
            alt.first
                .validate_seconds(&format!("{FIELD} ({})", keys.0))?;
            let second_field = format!("{FIELD} ({})", keys.1);
            if keys.1 == "power" {
                alt.second.validate_scale(&second_field, max_factor, "")?;
            } else {
                alt.second.validate_seconds(&second_field)?;
            }
            let first_mean = alt.first.mean().unwrap_or(f64::INFINITY);
            if !(first_mean > 0.0 && first_mean * MAX_SEGMENTS_PER_GRADIENT >= work) {
                return Err(err(format!(
                    "`{}=` with a mean of at least 1/{MAX_SEGMENTS_PER_GRADIENT} of the smallest work A + B·i^P = {} (in units of compute_time), so that a gradient spans at most ~{MAX_SEGMENTS_PER_GRADIENT} segments; its mean is {first_mean}",
                    keys.0,
                    show(work)
                )));
            }
            if keys.1 == "power" && !alt.second.mean().is_some_and(|l| l > 0.0) {
                return Err(err("`power=` with a positive finite mean (a worker whose power is always 0 never finishes; model outages with `up=`/`down=`)".into()));
            }
        }
        Ok(())
    }

    /// The clock of worker `w` (0-based; the papers' i = w + 1) for the
    /// run's `compute_time` unit: `availability` is the worker's own stream
    /// for the power and outage segments.
    pub fn clock(&self, w: usize, availability: PsimRng) -> WorkerClock {
        let i = w + 1;
        let schedule = (self.power.is_some() || self.outage.is_some())
            .then(|| Schedule::new(availability, self.power.clone(), self.outage.clone()));
        WorkerClock {
            base: self.base(i),
            noise: self.noise.map(|n| (n.law, n.scale.at(i))),
            upload: self.upload.as_ref().map(|d| (d.model.clone(), d.factor(i))),
            download: self
                .download
                .as_ref()
                .map(|d| (d.model.clone(), d.factor(i))),
            schedule,
        }
    }
}

/// A worker's power over time: piecewise-constant levels and up/down
/// phases, drawn lazily as time advances. Fetch times of a worker never go
/// back, but a cancelled computation may have drawn segments beyond the next
/// fetch: the drawn segments are kept until a fetch passes their end, so a
/// restarted computation sees the same schedule.
#[derive(Debug, Clone)]
struct Schedule {
    rng: PsimRng,
    power: Option<Alternation>,
    outage: Option<Alternation>,
    /// Drawn power segments not yet passed: (end, level).
    levels: VecDeque<(f64, f64)>,
    /// End of the last drawn power segment.
    level_end: f64,
    /// Drawn phases not yet passed: (end, up).
    phases: VecDeque<(f64, bool)>,
    /// End and kind of the last drawn phase (down until 0: the first is up).
    phase_end: f64,
    last_up: bool,
}

impl Schedule {
    fn new(rng: PsimRng, power: Option<Alternation>, outage: Option<Alternation>) -> Self {
        Self {
            rng,
            power,
            outage,
            levels: VecDeque::new(),
            level_end: 0.0,
            phases: VecDeque::new(),
            phase_end: 0.0,
            last_up: false,
        }
    }

    /// The `k`-th power segment not yet passed, drawing as needed
    /// ((∞, 1) without time-varying power).
    fn level(&mut self, k: usize) -> (f64, f64) {
        let Some(p) = &self.power else {
            return (f64::INFINITY, 1.0);
        };
        while self.levels.len() <= k {
            self.level_end += p.first.sample(&mut self.rng).max(0.0);
            let level = p.second.sample(&mut self.rng).max(0.0);
            self.levels.push_back((self.level_end, level));
        }
        self.levels[k]
    }

    /// The `k`-th phase not yet passed, drawing as needed ((∞, up) without
    /// outages).
    fn phase(&mut self, k: usize) -> (f64, bool) {
        let Some(o) = &self.outage else {
            return (f64::INFINITY, true);
        };
        while self.phases.len() <= k {
            self.last_up = !self.last_up;
            let model = if self.last_up { &o.first } else { &o.second };
            self.phase_end += model.sample(&mut self.rng).max(0.0);
            self.phases.push_back((self.phase_end, self.last_up));
        }
        self.phases[k]
    }

    /// The time at which `work` seconds of work started at `start` finish
    /// (`start` never below an earlier call's).
    fn finish(&mut self, start: f64, work: f64) -> f64 {
        while self.level(0).0 <= start {
            self.levels.pop_front();
        }
        while self.phase(0).0 <= start {
            self.phases.pop_front();
        }
        let (mut i, mut j) = (0, 0);
        let mut t = start;
        let mut left = work;
        loop {
            let (level_end, level) = self.level(i);
            let (phase_end, up) = self.phase(j);
            let until = level_end.min(phase_end);
            let rate = if up { level } else { 0.0 };
            if rate > 0.0 && left <= (until - t) * rate {
                return t + left / rate;
            }
            left -= (until - t) * rate;
            t = until;
            if level_end <= t {
                i += 1;
            }
            if phase_end <= t {
                j += 1;
            }
        }
    }
}

/// One worker's durations under a [`ComputeProfile`].
#[derive(Debug, Clone)]
pub struct WorkerClock {
    base: f64,
    noise: Option<(NoiseLaw, f64)>,
    upload: Option<(Delay, f64)>,
    download: Option<(Delay, f64)>,
    schedule: Option<Schedule>,
}

/// The parts of one step's duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTimes {
    /// Seconds the parameters took to reach the worker.
    pub download: f64,
    /// Seconds of computation (stretched by power and outages).
    pub compute: f64,
    /// Seconds the gradient took to reach the server (without `network_delay`).
    pub upload: f64,
}

impl StepTimes {
    /// Fetch to arrival.
    pub fn total(&self) -> f64 {
        self.download + self.compute + self.upload
    }
}

impl WorkerClock {
    /// The durations of a step fetched at `now` (seconds since the start)
    /// whose `compute_time` draw × straggler factor is `c`; draws ξ, then
    /// the download, then the upload, from `rng`.
    pub fn step(&mut self, now: f64, c: f64, rng: &mut PsimRng) -> StepTimes {
        let xi = match self.noise {
            None => 0.0,
            Some((NoiseLaw::HalfNormal, s)) => {
                let z: f64 = StandardNormal.sample(rng);
                s * z.abs()
            }
            Some((NoiseLaw::Exponential, s)) => {
                let e: f64 = Exp1.sample(rng);
                s * e
            }
        };
        let work = c * (self.base + xi);
        let draw = |d: &Option<(Delay, f64)>, rng: &mut PsimRng| {
            d.as_ref().map_or(0.0, |(m, f)| m.sample(rng).max(0.0) * f)
        };
        let download = draw(&self.download, rng);
        let upload = draw(&self.upload, rng);
        let compute = match &mut self.schedule {
            None => work,
            Some(s) => {
                let start = now + download;
                s.finish(start, work) - start
            }
        };
        StepTimes {
            download,
            compute,
            upload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{SeedTree, Stream};

    fn parse(s: &str) -> ComputeProfile {
        s.strip_prefix("profile:").unwrap().parse().unwrap()
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "profile:1+1*i^0.5",
            "profile:0+1*i^1;noise=half-normal:1*i^0.5",
            "profile:1+2*i^0.5;noise=exp:0.3;period=const:10;power=uniform:0.5..1.5;up=exp:100;down=exp:10;upload=exp:0.1*i^0.5;download=const:0.01",
        ] {
            let p = parse(s);
            assert_eq!(p.to_string(), s);
            assert_eq!(parse(&p.to_string()), p);
        }
        // Spaces and any order of the clauses are accepted; Display is canonical.
        let p = parse("profile: 1 + 1*i^0.5 ; download=const:1 ; noise = exp:2");
        assert_eq!(
            p.to_string(),
            "profile:1+1*i^0.5;noise=exp:2;download=const:1"
        );
    }

    #[test]
    fn malformed_values_name_the_field_and_the_form() {
        for (s, why) in [
            ("1+1", "is not `A+B*i^P`"),
            ("x+1*i^0.5", "A `x`"),
            ("1+1*i^0.5;noise=gauss:1", "noise law `gauss`"),
            ("1+1*i^0.5;period=const:1", "go together"),
            ("1+1*i^0.5;down=exp:1", "go together"),
            ("1+1*i^0.5;speed=2", "unknown clause `speed=`"),
            ("1+1*i^0.5;noise=exp:1;noise=exp:2", "twice"),
            ("1+1*i^0.5;upload=exp:1*i^x", "exponent `x`"),
        ] {
            let e = s.parse::<ComputeProfile>().unwrap_err().to_string();
            assert!(
                e.contains(FIELD) && e.contains(why) && e.contains("profile:A+B*i^P"),
                "{s}: {e}"
            );
        }
        let e = parse("profile:2+-1*i^1")
            .validate(8, 1e9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the last worker"), "{e}");
        let e = parse("profile:1+1*i^1;period=const:0.0001;power=const:1")
            .validate(8, 1e9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`period=` with a mean"), "{e}");
        let e = parse("profile:1+1*i^1;period=const:1;power=const:0")
            .validate(8, 1e9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`power=` with a positive"), "{e}");
    }

    /// Draws `n` steps of worker `w` back to back and returns the mean and
    /// the sample of compute seconds.
    fn mean_compute(p: &ComputeProfile, w: usize, c: f64, n: usize) -> f64 {
        let tree = SeedTree::new(7);
        let mut clock = p.clock(w, tree.rng(0, w as u64, Stream::Engine));
        let mut rng = tree.rng(0, w as u64, Stream::Delay);
        let mut now = 0.0;
        let mut sum = 0.0;
        for _ in 0..n {
            let s = clock.step(now, c, &mut rng);
            sum += s.compute;
            now += s.total();
        }
        sum / n as f64
    }

    #[test]
    fn mean_compute_time_is_a_plus_b_i_to_the_p_plus_the_noise_mean() {
        // Tolerance: 5 standard errors, σ/√n with σ² = c²·Var ξ_i (the only
        // random part); a wrong exponent, index or law misses it by far.
        let n = 20_000;
        let c = 2.0;
        for s in [
            "profile:1+1*i^0.5;noise=half-normal:1*i^0.5",
            "profile:0+1*i^1;noise=exp:0.5*i^0.5",
            "profile:1+1*i^0.5",
        ] {
            let p = parse(s);
            for w in [0usize, 3, 99] {
                let i = w + 1;
                let want = c * (p.base(i) + p.noise_mean(i));
                let sd = c * p.noise_variance(i).sqrt();
                let got = mean_compute(&p, w, c, n);
                let tol = 5.0 * sd / (n as f64).sqrt() + 1e-12 * want;
                assert!(
                    (got - want).abs() <= tol,
                    "{s}, worker {w}: {got} vs {want} ± {tol}"
                );
            }
        }
        // The index is the papers' 1-based i: worker 0 of √i computes 1.
        assert_eq!(mean_compute(&parse("profile:0+1*i^0.5"), 0, 1.0, 3), 1.0);
        assert_eq!(mean_compute(&parse("profile:0+1*i^0.5"), 3, 1.0, 3), 2.0);
    }

    #[test]
    fn outages_stretch_the_mean_by_the_up_fraction() {
        // Work w = 1 per gradient back to back, up ~ Exp(U), down ~ Exp(D).
        // Over N gradients the down time is a compound Poisson sum: about
        // Nw/U outages (memoryless up-times), each Exp(D), variance
        // (Nw/U)·2D². Mean time per gradient → w(U+D)/U, tolerance 5 sd.
        let (u, d, n) = (20.0, 5.0, 20_000usize);
        let p = parse(&format!("profile:1+0*i^1;up=exp:{u};down=exp:{d}"));
        let got = mean_compute(&p, 0, 1.0, n);
        let want = (u + d) / u;
        let sd = ((n as f64 / u) * 2.0 * d * d).sqrt() / n as f64;
        assert!(
            (got - want).abs() <= 5.0 * sd,
            "{got} vs {want} ± {}",
            5.0 * sd
        );
        assert!((p.mean_compute(1, 1.0).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn time_varying_power_divides_by_the_mean_level() {
        // Segments of length 1 with level ~ U[1, 3] (mean 2, variance 1/3):
        // the work done per segment has mean 2, so N gradients of work 1
        // take ≈ N/2 segments; by the renewal CLT the segment count has
        // variance ≈ (N/2)·Var/E² = N/24; tolerance 5 sd (+1 segment of
        // edge effect).
        let n = 20_000usize;
        let p = parse("profile:1+0*i^1;period=const:1;power=uniform:1..3");
        let got = mean_compute(&p, 0, 1.0, n);
        let sd = (n as f64 / 24.0).sqrt() / n as f64;
        assert!((got - 0.5).abs() <= 5.0 * sd + 1.0 / n as f64, "{got}");
        assert_eq!(p.mean_compute(1, 1.0), Some(0.5));
    }

    #[test]
    fn a_computation_waits_out_an_outage() {
        // Up for 1 s, down for 2 s, alternately: work 1.5 from 0 runs 0–1,
        // pauses 1–3, finishes at 3.5.
        let p = parse("profile:1.5+0*i^1;up=const:1;down=const:2");
        let mut clock = p.clock(0, SeedTree::new(1).rng(0, 0, Stream::Engine));
        let mut rng = SeedTree::new(1).rng(0, 0, Stream::Delay);
        assert_eq!(clock.step(0.0, 1.0, &mut rng).compute, 3.5);
        // From 3.5 (up until 4, down until 6): 0.5 + wait 2 + 1.0 = 3.5.
        assert_eq!(clock.step(3.5, 1.0, &mut rng).compute, 3.5);
    }

    #[test]
    fn a_restarted_computation_sees_the_same_schedule() {
        // Up 0–1, down 1–3, up 3–4, …: a computation of work 5 from 0
        // draws phases far ahead; cancelled, a restart at 0.5 with work 1
        // runs 0.5–1 and 3–3.5, on the same phases.
        let p = parse("profile:1+0*i^1;up=const:1;down=const:2");
        let mut clock = p.clock(0, SeedTree::new(1).rng(0, 0, Stream::Engine));
        let mut rng = SeedTree::new(1).rng(0, 0, Stream::Delay);
        assert_eq!(clock.step(0.0, 5.0, &mut rng).compute, 13.0);
        assert_eq!(clock.step(0.5, 1.0, &mut rng).compute, 3.0);
    }

    #[test]
    fn upload_and_download_scale_with_i() {
        let p = parse("profile:0+0*i^1;upload=const:1*i^0.5;download=const:2");
        let mut clock = p.clock(3, SeedTree::new(1).rng(0, 3, Stream::Engine));
        let s = clock.step(0.0, 1.0, &mut SeedTree::new(1).rng(0, 3, Stream::Delay));
        assert_eq!((s.download, s.compute, s.upload), (2.0, 0.0, 2.0));
        assert_eq!(p.mean_time(4, 1.0), Some(4.0));
    }
}
