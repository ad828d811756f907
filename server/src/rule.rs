//! Update rules: how the server turns a (possibly stale) gradient into a new
//! version. One trait, one required method.
//!
//! [`HeavyBall`] is eq. (2.1) of 001 alone; [`Rule`] is what the engines use:
//! every rule of [`RuleKind`] with a step-size [`Schedule`], dispatched by a
//! `match` (no virtual call, no allocation per step).

use psim_common::{RuleKind, RunConfig, Schedule};

/// What a rule may know about the gradient it applies.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Index of this update (the server's version before it).
    pub step: u64,
    /// Versions applied between the fetch and this push.
    pub staleness: u64,
    /// The parameters the gradient was computed at.
    pub stale_params: &'a [f64],
}

/// An update rule: writes the next parameters into `params` and keeps its
/// state in `previous` (the momentum state v_{k−1} for heavy ball).
pub trait UpdateRule: Send + Sync {
    /// Applies `gradient` (a descent direction) in place. Must not allocate.
    fn apply(
        &self,
        params: &mut [f64],
        previous: &mut [f64],
        gradient: &[f64],
        ctx: &StepContext<'_>,
    );
}

/// Polyak's heavy ball, eq. (2.1) of 001 written for minimisation:
/// v_{k+1} = v_k + μ(v_k − v_{k−1}) − η·g. With μ = 0 it is plain SGD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeavyBall {
    /// Momentum μ in [0, 1).
    pub momentum: f64,
    /// Step size η.
    pub step_size: f64,
}

impl UpdateRule for HeavyBall {
    #[inline]
    fn apply(
        &self,
        params: &mut [f64],
        previous: &mut [f64],
        gradient: &[f64],
        _ctx: &StepContext<'_>,
    ) {
        let (mu, eta) = (self.momentum, self.step_size);
        for ((v, p), g) in params.iter_mut().zip(previous.iter_mut()).zip(gradient) {
            let now = *v;
            *v = now + mu * (now - *p) - eta * g;
            *p = now;
        }
    }
}

/// The configured update rule of a run: one of [`RuleKind`] with momentum
/// μ, base step size η and a schedule, η_k = η·schedule(k).
///
/// All rules keep `previous` = v − u with u the velocity, so that a server
/// started at v_{−1} = v_0 starts with zero velocity whatever the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Which formula.
    pub kind: RuleKind,
    /// Momentum μ (ignored by [`RuleKind::Sgd`]).
    pub momentum: f64,
    /// Base step size η.
    pub step_size: f64,
    /// Step-size schedule.
    pub schedule: Schedule,
}

impl Rule {
    /// The rule a run configuration names.
    /// `delay-adaptive` without C takes C = the cluster's number of workers.
    pub fn from_config(cfg: &RunConfig) -> Self {
        let kind = match (cfg.rule, cfg.cluster()) {
            (RuleKind::DelayAdaptive { c: None }, Some(cluster)) => RuleKind::DelayAdaptive {
                c: Some(cluster.workers as f64),
            },
            (kind, _) => kind,
        };
        Self {
            kind,
            momentum: cfg.momentum,
            step_size: cfg.step_size,
            schedule: cfg.schedule.clone(),
        }
    }

    /// The step size at step `step` for a gradient of staleness `staleness`.
    #[inline]
    pub fn step_size_at(&self, step: u64, staleness: u64) -> f64 {
        let eta = self.step_size * self.schedule.factor(step);
        match self.kind {
            RuleKind::StalenessAware => eta / staleness.max(1) as f64,
            // η·min(1, C/τ), written so that C = 1 is `staleness-aware` bit for bit.
            RuleKind::DelayAdaptive { c } => {
                let c = c.expect("C is resolved by Rule::from_config (validation refuses it unset without workers)");
                let tau = staleness as f64;
                if tau <= c {
                    eta
                } else {
                    eta * c / tau
                }
            }
            _ => eta,
        }
    }
}

impl UpdateRule for Rule {
    #[inline]
    fn apply(
        &self,
        params: &mut [f64],
        previous: &mut [f64],
        gradient: &[f64],
        ctx: &StepContext<'_>,
    ) {
        let eta = self.step_size_at(ctx.step, ctx.staleness);
        let mu = self.momentum;
        match self.kind {
            RuleKind::Sgd => {
                for ((v, p), g) in params.iter_mut().zip(previous.iter_mut()).zip(gradient) {
                    *p = *v;
                    *v -= eta * g;
                }
            }
            RuleKind::HeavyBall | RuleKind::StalenessAware | RuleKind::DelayAdaptive { .. } => {
                heavy_ball(mu, eta, params, previous, gradient)
            }
            RuleKind::Nesterov => {
                for ((v, p), g) in params.iter_mut().zip(previous.iter_mut()).zip(gradient) {
                    let u = mu * (*v - *p) - eta * g;
                    *v += mu * u - eta * g;
                    *p = *v - u;
                }
            }
            RuleKind::DcAsgd { lambda } => {
                for (((v, p), g), s) in params
                    .iter_mut()
                    .zip(previous.iter_mut())
                    .zip(gradient)
                    .zip(ctx.stale_params)
                {
                    let now = *v;
                    let gc = g + lambda * g * g * (now - s);
                    *v = now + mu * (now - *p) - eta * gc;
                    *p = now;
                }
            }
        }
    }
}

#[inline(always)]
fn heavy_ball(mu: f64, eta: f64, params: &mut [f64], previous: &mut [f64], gradient: &[f64]) {
    for ((v, p), g) in params.iter_mut().zip(previous.iter_mut()).zip(gradient) {
        let now = *v;
        *v = now + mu * (now - *p) - eta * g;
        *p = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_ball_matches_the_formula() {
        let rule = HeavyBall {
            momentum: 0.5,
            step_size: 0.1,
        };
        let mut v = [1.0, 2.0];
        let mut prev = [0.0, 2.0];
        let ctx = StepContext {
            step: 0,
            staleness: 0,
            stale_params: &[1.0, 2.0],
        };
        rule.apply(&mut v, &mut prev, &[1.0, -1.0], &ctx);
        assert_eq!(v, [1.0 + 0.5 * 1.0 - 0.1, 2.0 + 0.1]);
        assert_eq!(prev, [1.0, 2.0]);
    }

    fn rule(kind: &str, schedule: &str) -> Rule {
        Rule {
            kind: kind.parse().unwrap(),
            momentum: 0.5,
            step_size: 0.1,
            schedule: schedule.parse().unwrap(),
        }
    }

    /// Applies `r` once from v = (1, 2), v_prev = (0, 2), stale v = (0.5, 3).
    fn once(r: &Rule, step: u64, staleness: u64) -> ([f64; 2], [f64; 2]) {
        let mut v = [1.0, 2.0];
        let mut prev = [0.0, 2.0];
        let ctx = StepContext {
            step,
            staleness,
            stale_params: &[0.5, 3.0],
        };
        r.apply(&mut v, &mut prev, &[1.0, -2.0], &ctx);
        (v, prev)
    }

    #[test]
    fn every_rule_matches_its_formula() {
        let close =
            |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-12 && (a[1] - b[1]).abs() < 1e-12;
        // SGD ignores momentum: v − ηg.
        let (v, p) = once(&rule("sgd", "constant"), 0, 0);
        assert!(close(v, [0.9, 2.2]) && close(p, [1.0, 2.0]), "{v:?}");
        // Heavy ball: v + μ(v − v_prev) − ηg.
        let (v, _) = once(&rule("heavy-ball", "constant"), 0, 0);
        assert!(close(v, [1.4, 2.2]), "{v:?}");
        // Nesterov: u = μ(v − v_prev) − ηg = (0.4, 0.2); v + μu − ηg = (1.1, 2.3); v_prev = v − u.
        let (v, p) = once(&rule("nesterov", "constant"), 0, 0);
        assert!(close(v, [1.1, 2.3]) && close(p, [0.7, 2.1]), "{v:?} {p:?}");
        // Staleness-aware: η/τ with τ = 4, and τ = 0 treated as 1.
        let (v, _) = once(&rule("staleness-aware", "constant"), 0, 4);
        assert!(close(v, [1.5 - 0.025, 2.05]), "{v:?}");
        let (v0, _) = once(&rule("staleness-aware", "constant"), 0, 0);
        assert!(close(v0, [1.4, 2.2]), "{v0:?}");
        // DC-ASGD: g + λ g⊙g⊙(v − v_stale) = (1 + 2·1·0.5, −2 + 2·4·(−1)) = (2, −10).
        let (v, _) = once(&rule("dc-asgd:2", "constant"), 0, 3);
        assert!(close(v, [1.5 - 0.2, 2.0 + 1.0]), "{v:?}");
        // Schedule: from step 10 the step is η·0.1.
        let r = rule("heavy-ball", "anneal:10:0.1");
        let (v, _) = once(&r, 9, 0);
        assert!(close(v, [1.4, 2.2]));
        let (v, _) = once(&r, 10, 0);
        assert!(close(v, [1.49, 2.02]), "{v:?}");
    }

    #[test]
    fn nesterov_and_heavy_ball_agree_at_zero_momentum_and_start_at_rest() {
        // From v_prev = v (zero velocity), μ = 0: every rule but DC-ASGD is v − ηg.
        for kind in ["sgd", "heavy-ball", "nesterov", "staleness-aware"] {
            let r = Rule {
                momentum: 0.0,
                ..rule(kind, "constant")
            };
            let mut v = [1.0];
            let mut p = [1.0];
            let ctx = StepContext {
                step: 0,
                staleness: 1,
                stale_params: &[1.0],
            };
            r.apply(&mut v, &mut p, &[2.0], &ctx);
            assert!((v[0] - 0.8).abs() < 1e-12, "{kind}: {v:?}");
        }
    }

    #[test]
    fn delay_adaptive_takes_eta_min_1_c_over_tau_and_is_staleness_aware_at_c_1() {
        let r = |c: f64| Rule {
            kind: RuleKind::DelayAdaptive { c: Some(c) },
            momentum: 0.5,
            step_size: 0.3,
            schedule: Schedule::Constant,
        };
        let sa = rule("staleness-aware", "constant");
        let sa = Rule {
            step_size: 0.3,
            ..sa
        };
        for tau in [0, 1, 2, 3, 7, 64, 1000] {
            assert_eq!(
                r(1.0).step_size_at(5, tau),
                sa.step_size_at(5, tau),
                "τ = {tau}"
            );
        }
        assert_eq!(r(8.0).step_size_at(0, 0), 0.3);
        assert_eq!(r(8.0).step_size_at(0, 8), 0.3);
        assert_eq!(r(8.0).step_size_at(0, 16), 0.15);
        assert_eq!(r(2.5).step_size_at(0, 5), 0.3 * 2.5 / 5.0);
    }

    #[test]
    fn delay_adaptive_defaults_c_to_the_number_of_workers() {
        use psim_common::{ClusterConfig, EngineConfig, EngineKind};
        let cfg = RunConfig {
            rule: "delay-adaptive".parse().unwrap(),
            engine: EngineConfig::new(
                EngineKind::VirtualTime,
                ClusterConfig {
                    workers: 12,
                    ..Default::default()
                },
            ),
            ..RunConfig::default()
        };
        assert_eq!(
            Rule::from_config(&cfg).kind,
            RuleKind::DelayAdaptive { c: Some(12.0) }
        );
    }

    #[test]
    fn default_config_is_the_original_heavy_ball() {
        let cfg = RunConfig::default();
        let r = Rule::from_config(&cfg);
        assert_eq!(r.kind, RuleKind::HeavyBall);
        assert_eq!(r.step_size_at(1_000_000, 50), cfg.step_size);
    }
}
