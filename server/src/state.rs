//! The server state shared by every engine.

use crate::history::History;
use crate::rule::{StepContext, UpdateRule};
use psim_common::{HistoryPolicy, ServerCounters};

/// What the server does with a gradient of a requested staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Served exactly: the gradient is computed at the version `staleness`
    /// versions back (the initial point when that is before the start).
    Exact { staleness: u64 },
    /// Beyond the history: capped to the oldest kept version.
    Clamped { staleness: u64 },
    /// Beyond the history under the `drop` policy: discarded.
    Dropped,
}

/// Parameters, momentum state, version counter, history and counters.
#[derive(Debug, Clone)]
pub struct ServerState<R: UpdateRule> {
    params: Vec<f64>,
    previous: Vec<f64>,
    version: u64,
    history: History,
    policy: HistoryPolicy,
    counters: ServerCounters,
    rule: R,
    keep_history: bool,
}

impl<R: UpdateRule> ServerState<R> {
    /// A server at v_0 = v_{−1} = `initial`, keeping `history` past versions
    /// (use 1 when no engine will ask for stale versions).
    pub fn new(initial: &[f64], rule: R, history: usize, policy: HistoryPolicy) -> Self {
        Self {
            params: initial.to_vec(),
            previous: initial.to_vec(),
            version: 0,
            history: History::new(initial, history),
            policy,
            counters: ServerCounters::default(),
            rule,
            keep_history: true,
        }
    }

    /// A server for engines whose workers hold their own copies (threads,
    /// tasks): no past versions are recorded, so an update touches only the
    /// parameters, the momentum state and the gradient.
    pub fn without_history(initial: &[f64], rule: R) -> Self {
        Self {
            keep_history: false,
            ..Self::new(initial, rule, 1, HistoryPolicy::Clamp)
        }
    }

    /// Current parameters v_k.
    #[inline]
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// Momentum state v_{k−1}.
    pub fn previous(&self) -> &[f64] {
        &self.previous
    }

    /// Updates applied so far.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Counters so far.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// Versions kept for stale reads.
    pub fn history_capacity(&self) -> usize {
        self.history.capacity()
    }

    /// The update rule.
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// Receives a gradient that will be computed `requested` versions back
    /// and decides, under the history policy, what is served. Counts the
    /// push as received (and as dropped or clamped when so).
    #[inline]
    pub fn serve(&mut self, requested: u64) -> Served {
        self.counters.received += 1;
        let cap = self.history.capacity() as u64;
        if requested < cap {
            // Before the start, v_{−i} = v_0 (still in the ring): i.e. `version` back.
            return Served::Exact {
                staleness: requested.min(self.version),
            };
        }
        if self.version < cap {
            // The requested version predates the start and v_0 is still kept.
            return Served::Exact {
                staleness: self.version,
            };
        }
        match self.policy {
            HistoryPolicy::Clamp => {
                self.counters.clamped += 1;
                Served::Clamped { staleness: cap - 1 }
            }
            HistoryPolicy::Drop => {
                self.counters.dropped_too_stale += 1;
                Served::Dropped
            }
        }
    }

    /// The parameters `staleness` versions back (as decided by [`ServerState::serve`]).
    #[inline]
    pub fn stale_params(&self, staleness: u64) -> &[f64] {
        self.history.get(staleness as usize)
    }

    /// Applies a gradient computed at the kept version `staleness` back,
    /// advances the version and records it in the history.
    #[inline]
    pub fn apply_stale(&mut self, gradient: &[f64], staleness: u64) {
        let ctx = StepContext {
            step: self.version,
            staleness,
            stale_params: self.history.get(staleness as usize),
        };
        self.rule
            .apply(&mut self.params, &mut self.previous, gradient, &ctx);
        self.finish_update();
    }

    /// Receives and applies a gradient computed by a worker on its own copy
    /// `stale_params` of version `computed_at` (the concurrent engines' path).
    /// Returns the staleness, the versions applied in between.
    pub fn push(&mut self, gradient: &[f64], stale_params: &[f64], computed_at: u64) -> u64 {
        self.counters.received += 1;
        let staleness = self.version.saturating_sub(computed_at);
        let ctx = StepContext {
            step: self.version,
            staleness,
            stale_params,
        };
        self.rule
            .apply(&mut self.params, &mut self.previous, gradient, &ctx);
        self.finish_update();
        staleness
    }

    /// Receives `count` gradients whose sum is `sum` and applies their mean
    /// as one update computed at `stale_params` with staleness `staleness`
    /// (BSP: synchronous MSGD with a mini-batch of `count` workers, staleness
    /// 0; Rennala and m-sync likewise; a buffered update: the largest
    /// staleness in the buffer). All `count` are received and applied; the
    /// version advances by one. `sum` is scaled in place.
    pub fn push_mean(&mut self, sum: &mut [f64], count: u64, stale_params: &[f64], staleness: u64) {
        debug_assert!(count > 0);
        let inv = 1.0 / count as f64;
        sum.iter_mut().for_each(|g| *g *= inv);
        self.counters.received += count;
        let ctx = StepContext {
            step: self.version,
            staleness,
            stale_params,
        };
        self.rule
            .apply(&mut self.params, &mut self.previous, sum, &ctx);
        self.version += 1;
        self.counters.applied += count;
        if self.keep_history {
            self.history.push(&self.params);
        }
    }

    /// Counts a received gradient that the engine discards (run stopped, or
    /// `too_stale`: the history or the consistency policy refuses it), so the
    /// invariant received = applied + dropped holds.
    pub fn drop_push(&mut self, too_stale: bool) {
        self.counters.received += 1;
        if too_stale {
            self.counters.dropped_too_stale += 1;
        } else {
            self.counters.dropped_after_stop += 1;
        }
    }

    /// Counts `n` computations the consistency policy cancelled before their
    /// gradient arrived (never received; see `ServerCounters::cancelled`).
    pub fn count_cancelled(&mut self, n: u64) {
        self.counters.cancelled += n;
    }

    #[inline]
    fn finish_update(&mut self) {
        self.version += 1;
        self.counters.applied += 1;
        if self.keep_history {
            self.history.push(&self.params);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::HeavyBall;

    #[test]
    fn the_policy_applies_beyond_the_configured_capacity_not_the_ring() {
        // A history of 5 versions (a ring of 8): staleness 5 is beyond it.
        let mut s = server(5, HistoryPolicy::Drop);
        for _ in 0..10 {
            if let Served::Exact { staleness } = s.serve(0) {
                s.apply_stale(&[0.0], staleness);
            }
        }
        assert!(matches!(s.serve(4), Served::Exact { staleness: 4 }));
        assert_eq!(s.serve(5), Served::Dropped);
        assert_eq!(s.counters().dropped_too_stale, 1);
    }

    fn server(cap: usize, policy: HistoryPolicy) -> ServerState<HeavyBall> {
        ServerState::new(
            &[0.0],
            HeavyBall {
                momentum: 0.0,
                step_size: 1.0,
            },
            cap,
            policy,
        )
    }

    #[test]
    fn serves_exact_history_and_the_start() {
        let mut s = server(4, HistoryPolicy::Clamp);
        // Before any update every staleness maps to v_0 exactly.
        assert_eq!(s.serve(100), Served::Exact { staleness: 0 });
        s.apply_stale(&[-1.0], 0);
        s.serve(0);
        s.apply_stale(&[-1.0], 0);
        assert_eq!(s.params(), &[2.0]);
        assert_eq!(s.serve(1), Served::Exact { staleness: 1 });
        assert_eq!(s.stale_params(1), &[1.0]);
        assert_eq!(
            s.serve(7),
            Served::Exact { staleness: 2 },
            "v_{{-5}} = v_0, two versions back"
        );
        assert_eq!(s.counters().clamped, 0);
    }

    #[test]
    fn policies_count_every_event() {
        for policy in [HistoryPolicy::Clamp, HistoryPolicy::Drop] {
            let mut s = server(4, policy);
            for _ in 0..10 {
                let served = s.serve(0);
                assert_eq!(served, Served::Exact { staleness: 0 });
                s.apply_stale(&[-1.0], 0);
            }
            let served = s.serve(9);
            match policy {
                HistoryPolicy::Clamp => {
                    assert_eq!(served, Served::Clamped { staleness: 3 });
                    assert_eq!(s.stale_params(3), &[7.0]);
                    s.apply_stale(&[-1.0], 3);
                    assert_eq!(s.counters().clamped, 1);
                }
                HistoryPolicy::Drop => {
                    assert_eq!(served, Served::Dropped);
                    assert_eq!(s.counters().dropped_too_stale, 1);
                }
            }
            s.counters().check().unwrap();
        }
    }

    #[test]
    fn push_measures_staleness_from_versions() {
        let mut s = server(1, HistoryPolicy::Clamp);
        assert_eq!(s.push(&[-1.0], &[0.0], 0), 0);
        assert_eq!(s.push(&[-1.0], &[0.0], 0), 1);
        s.drop_push(false);
        assert_eq!(s.counters().received, 3);
        s.counters().check().unwrap();
    }

    #[test]
    fn push_mean_applies_the_average_as_one_update() {
        let rule = HeavyBall {
            momentum: 0.0,
            step_size: 1.0,
        };
        let mut s = ServerState::without_history(&[0.0, 0.0], rule);
        let mut sum = [-1.0, -6.0];
        s.push_mean(&mut sum, 2, &[0.0, 0.0], 0);
        assert_eq!(s.params(), &[0.5, 3.0]);
        assert_eq!(s.version(), 1);
        assert_eq!((s.counters().received, s.counters().applied), (2, 2));
        s.counters().check().unwrap();
    }
}
