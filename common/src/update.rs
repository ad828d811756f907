//! Which update rule the server applies and how its step size changes over
//! the steps: the configuration side of `psim_server::rule`.
//!
//! Both have a one-line text syntax used by the CLI and `config.toml`:
//! rules `sgd`, `heavy-ball`, `nesterov`, `staleness-aware`, `dc-asgd:λ`,
//! `delay-adaptive[:C]`;
//! schedules `constant` and `anneal:STEP:FACTOR[,STEP:FACTOR…]`.

use crate::error::ConfigError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Accepted rule spellings, for error messages and `--help`.
pub const RULE_SYNTAX: &str =
    "`sgd`, `heavy-ball`, `nesterov`, `staleness-aware`, `dc-asgd:LAMBDA` (LAMBDA finite and > 0; `dc-asgd:0` is `heavy-ball` exactly), `delay-adaptive` or `delay-adaptive:C` (C finite and > 0; C defaults to the number of workers; `staleness-aware` is C = 1)";

/// Accepted schedule spellings, for error messages and `--help`.
pub const SCHEDULE_SYNTAX: &str =
    "`constant` or `anneal:STEP:FACTOR[,STEP:FACTOR…]` (STEP increasing and below `steps`, FACTOR finite, > 0 and ≠ 1)";

/// The update rule of the server, with `g` the (possibly stale) gradient of
/// the function being minimised and η_k the scheduled step size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RuleKind {
    /// Plain SGD: v ← v − η_k g (the configured momentum is ignored).
    Sgd,
    /// Polyak's heavy ball, eq. (2.1) of 001: v ← v + μ(v − v_prev) − η_k g.
    #[default]
    HeavyBall,
    /// Nesterov's accelerated gradient in the look-ahead form
    /// u ← μu − η_k g, v ← v + μu − η_k g (gradients taken at the stored point).
    Nesterov,
    /// Heavy ball with the step divided by the staleness: η_k / max(τ_k, 1).
    StalenessAware,
    /// Delay-compensated ASGD (Zheng et al. 2017): heavy ball on
    /// g + λ g⊙g⊙(v_now − v_stale).
    DcAsgd {
        /// Compensation strength λ ≥ 0.
        lambda: f64,
    },
    /// Delay-adaptive heavy ball (Mishchenko et al. 2022; Koloskova et al.
    /// 2022): the step η_k·min(1, C/τ_k). `C` defaults to the number of
    /// workers M (`delay-adaptive`); `staleness-aware` is C = 1.
    DelayAdaptive {
        /// The delay C > 0 below which the full step is taken; `None`:
        /// the cluster's number of workers.
        c: Option<f64>,
    },
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleKind::Sgd => f.write_str("sgd"),
            RuleKind::HeavyBall => f.write_str("heavy-ball"),
            RuleKind::Nesterov => f.write_str("nesterov"),
            RuleKind::StalenessAware => f.write_str("staleness-aware"),
            RuleKind::DcAsgd { lambda } => write!(f, "dc-asgd:{}", crate::num::show(*lambda)),
            RuleKind::DelayAdaptive { c: None } => f.write_str("delay-adaptive"),
            RuleKind::DelayAdaptive { c: Some(c) } => {
                write!(f, "delay-adaptive:{}", crate::num::show(*c))
            }
        }
    }
}

impl FromStr for RuleKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::new("rule", s, RULE_SYNTAX);
        match s.trim() {
            "sgd" => Ok(Self::Sgd),
            "heavy-ball" | "momentum" => Ok(Self::HeavyBall),
            "nesterov" => Ok(Self::Nesterov),
            "staleness-aware" => Ok(Self::StalenessAware),
            "delay-adaptive" => Ok(Self::DelayAdaptive { c: None }),
            other if other.starts_with("delay-adaptive:") => {
                let c = other["delay-adaptive:".len()..].trim();
                let c: f64 = c.parse().map_err(|_| bad())?;
                let r = Self::DelayAdaptive { c: Some(c) };
                r.validate()?;
                Ok(r)
            }
            other => {
                let l = other.strip_prefix("dc-asgd:").ok_or_else(bad)?;
                let lambda: f64 = l.trim().parse().map_err(|_| bad())?;
                let r = Self::DcAsgd { lambda };
                r.validate()?;
                Ok(r)
            }
        }
    }
}

impl RuleKind {
    /// Checks the rule's own parameters (λ of DC-ASGD finite and > 0: at
    /// λ = 0 it is heavy ball exactly, a setting that cannot take effect).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let RuleKind::DcAsgd { lambda } = self {
            if !(lambda.is_finite() && *lambda > 0.0) {
                return Err(ConfigError::new("rule", self, RULE_SYNTAX));
            }
        }
        if let RuleKind::DelayAdaptive { c: Some(c) } = self {
            if !(c.is_finite() && *c > 0.0) {
                return Err(ConfigError::new("rule", self, RULE_SYNTAX));
            }
        }
        Ok(())
    }
}

/// A step-size schedule: η_k = η · factor(k).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Schedule {
    /// η_k = η.
    #[default]
    Constant,
    /// From step `at` of each stage on, the step size is multiplied by
    /// `factor` (cumulatively); E3 anneals by (1−μ) at step 2·10⁴.
    Anneal(Vec<AnnealStage>),
}

/// One annealing point of a [`Schedule::Anneal`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnealStage {
    /// First step with the reduced step size.
    pub at: u64,
    /// Multiplier applied from `at` on.
    pub factor: f64,
}

impl Schedule {
    /// One annealing at step `at` by `factor`.
    pub fn anneal(at: u64, factor: f64) -> Self {
        Schedule::Anneal(vec![AnnealStage { at, factor }])
    }

    /// The multiplier of the step size at step `step`. No allocation; the
    /// stage list is short, so a linear scan is the fastest lookup.
    #[inline]
    pub fn factor(&self, step: u64) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Anneal(stages) => {
                let mut f = 1.0;
                for s in stages {
                    if step < s.at {
                        break;
                    }
                    f *= s.factor;
                }
                f
            }
        }
    }

    /// Checks that every stage takes effect within a run of `steps` steps:
    /// a stage at or after the last step would never change the step size.
    pub fn validate_for_steps(&self, steps: u64) -> Result<(), ConfigError> {
        self.validate()?;
        if let Schedule::Anneal(stages) = self {
            if let Some(s) = stages.iter().find(|s| s.at >= steps) {
                return Err(ConfigError::new(
                    "schedule",
                    self,
                    format!(
                        "every STEP below `steps` = {steps} (the stage at step {} never takes effect in a run of {steps} steps)",
                        s.at
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks increasing steps and finite positive factors other than 1
    /// (a factor of 1 changes nothing).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Schedule::Anneal(stages) = self {
            let bad = || ConfigError::new("schedule", self, SCHEDULE_SYNTAX);
            if stages.is_empty() {
                return Err(bad());
            }
            for (i, s) in stages.iter().enumerate() {
                if !(s.factor.is_finite() && s.factor > 0.0 && s.factor != 1.0) {
                    return Err(bad());
                }
                if i > 0 && s.at <= stages[i - 1].at {
                    return Err(bad());
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Anneal(stages) => {
                f.write_str("anneal:")?;
                for (i, s) in stages.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", s.at, crate::num::show(s.factor))?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::new("schedule", s, SCHEDULE_SYNTAX);
        let t = s.trim();
        if t == "constant" {
            return Ok(Schedule::Constant);
        }
        let rest = t.strip_prefix("anneal:").ok_or_else(bad)?;
        let mut stages = Vec::new();
        for part in rest.split(',') {
            let (at, factor) = part.split_once(':').ok_or_else(bad)?;
            stages.push(AnnealStage {
                at: at.trim().parse().map_err(|_| bad())?,
                factor: factor.trim().parse().map_err(|_| bad())?,
            });
        }
        let sch = Schedule::Anneal(stages);
        sch.validate().map_err(|_| bad())?;
        Ok(sch)
    }
}

macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
text_serde!(RuleKind);
text_serde!(Schedule);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_syntax_round_trips_and_rejects() {
        for s in [
            "sgd",
            "heavy-ball",
            "nesterov",
            "staleness-aware",
            "dc-asgd:0.04",
        ] {
            let r: RuleKind = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        for bad in ["adam", "dc-asgd:", "dc-asgd:-1", "dc-asgd:nan", "dc-asgd:0"] {
            let e = bad.parse::<RuleKind>().unwrap_err().to_string();
            assert!(e.contains("`rule`") && e.contains("dc-asgd:LAMBDA"), "{e}");
        }
    }

    #[test]
    fn schedule_factors() {
        let s: Schedule = "anneal:20000:0.1".parse().unwrap();
        assert_eq!(s.factor(19_999), 1.0);
        assert_eq!(s.factor(20_000), 0.1);
        let s: Schedule = "anneal:10:0.5,20:0.5".parse().unwrap();
        assert_eq!((s.factor(9), s.factor(10), s.factor(25)), (1.0, 0.5, 0.25));
        assert_eq!(s.to_string(), "anneal:10:0.5,20:0.5");
        assert_eq!(Schedule::Constant.factor(u64::MAX), 1.0);
        let s: Schedule = "anneal:10:0.5".parse().unwrap();
        assert!(s.validate_for_steps(11).is_ok());
        let e = s.validate_for_steps(10).unwrap_err().to_string();
        assert!(
            e.contains("`schedule`") && e.contains("below `steps` = 10"),
            "{e}"
        );
        for bad in [
            "anneal:",
            "anneal:10:0",
            "anneal:10:1",
            "anneal:20:0.5,10:0.5",
            "cosine",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains("`schedule`"), "{e}");
        }
    }
}
