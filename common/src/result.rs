//! The one result type every engine produces, and its parts: how a run
//! ended, its error trace, its staleness histogram and the server counters
//! that prove no push was lost.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// How a run ended. Divergence is an outcome, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// All configured steps were drawn.
    StepsReached,
    /// The error fell to the configured target at `step`.
    TargetErrorReached { step: u64 },
    /// The iterate turned non-finite or its norm exceeded the divergence
    /// threshold; detected at `step`.
    Diverged { step: u64 },
    /// The objective asked to stop at the trace point of `step`
    /// ([`crate::Objective::on_trace_point`]: the Python package's
    /// `callback` returned True or raised `psim.Stop`). Not a divergence:
    /// the run's errors count like a finished run's.
    Stopped { step: u64 },
}

impl Outcome {
    /// Whether the run diverged.
    pub fn diverged(&self) -> bool {
        matches!(self, Outcome::Diverged { .. })
    }
}

/// Counters kept by the server. `received == applied + dropped()` always
/// holds; [`ServerCounters::check`] says so or names the gap.
///
/// One meaning on every engine: the counters count **gradients** (one per
/// worker push, or per injected draw), while the step limit and the server's
/// version count **updates**. Under ASP and SSP one applied gradient is one
/// update. Under BSP one update applies the mean of the round's M gradients,
/// so `applied` = M × updates (a run of N steps with M workers reports
/// `applied` = N·M on the virtual-time, threads and tasks engines alike).
/// A gradient that reaches the server after the run stopped (a push still in
/// flight, or one the SSP order still held) is received and counted in
/// `dropped_after_stop`; the virtual-time engine delivers its in-flight
/// pushes at the stop for that reason. A gradient a policy refuses on
/// arrival (Ringmaster's staleness ≥ R, Rennala's computed at an older
/// point) is received and counted in `dropped_too_stale`; a computation a
/// policy cancels is never received and is counted in `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerCounters {
    /// Gradients pushed to the server (under BSP, each worker's gradient).
    pub received: u64,
    /// Gradients applied (under BSP, the M gradients of each round's update;
    /// otherwise one per update).
    pub applied: u64,
    /// Gradients discarded because their staleness exceeded the history
    /// (policy `drop`) or the consistency bound.
    pub dropped_too_stale: u64,
    /// Gradients discarded because the run had already stopped.
    pub dropped_after_stop: u64,
    /// Gradients applied with their staleness capped to the oldest kept
    /// version (policy `clamp`); these are also counted in `applied`.
    pub clamped: u64,
    /// Computations the server cancelled before their gradient arrived
    /// (Rennala and m-sync at each update, Ringmaster with `stop` when a
    /// computation becomes R versions stale). A cancelled computation is
    /// *not* received, so it stands outside received = applied + dropped;
    /// a worker of the threads or tasks engine whose cancelled computation
    /// still reaches the server has that push refused and does not count it
    /// as sent. Absent from files when 0 (every policy that cannot cancel).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cancelled: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ServerCounters {
    /// All discarded gradients, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_too_stale + self.dropped_after_stop
    }

    /// Checks the accounting invariant received = applied + dropped.
    pub fn check(&self) -> Result<(), String> {
        if self.received == self.applied + self.dropped() {
            Ok(())
        } else {
            Err(format!(
                "lost pushes: received {} ≠ applied {} + dropped {}",
                self.received,
                self.applied,
                self.dropped()
            ))
        }
    }

    /// Adds another run's counters.
    pub fn add(&mut self, o: &ServerCounters) {
        self.received += o.received;
        self.applied += o.applied;
        self.dropped_too_stale += o.dropped_too_stale;
        self.dropped_after_stop += o.dropped_after_stop;
        self.clamped += o.clamped;
        self.cancelled += o.cancelled;
    }
}

/// Values at or above this are recorded at this cap (hdrhistogram tracks up
/// to 2⁶³; a Pareto staleness can exceed it).
pub const HIST_CAP: u64 = 1 << 62;
const DENSE: usize = 512;

/// A histogram of non-negative integers (staleness in steps, latencies in
/// nanoseconds): an exact dense array for small values, hdrhistogram with 3
/// significant digits above. Recording is a bounds check and an increment on
/// the common path.
#[derive(Debug, Clone)]
pub struct StalenessHistogram {
    dense: Box<[u64; DENSE]>,
    hdr: Histogram<u64>,
}

/// A finished staleness histogram as its (value, count) pairs, ascending:
/// what a point keeps once its runs are folded (16 bytes per distinct value
/// instead of the live histogram's arrays, so a sweep's memory does not grow
/// with its number of points). Its statistics are the histogram's, computed
/// the same way in the same order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StalenessCounts(pub Vec<(u64, u64)>);

impl StalenessCounts {
    /// The pairs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// As [`StalenessHistogram::quantile`].
    pub fn quantile(&self, q: f64) -> u64 {
        quantile_of(self.iter(), self.count(), q)
            .unwrap_or_else(|| self.0.last().map_or(0, |(v, _)| *v))
    }

    /// As [`StalenessHistogram::mean`].
    pub fn mean(&self) -> f64 {
        mean_of(self.iter(), self.count())
    }
}

/// The smallest value v of ascending `(value, count)` pairs with at least a
/// fraction `q` of the `n` values ≤ v: `Some(0)` when empty, `None` when the
/// pairs hold fewer than the rank (the caller's largest value then). The one
/// implementation of [`StalenessHistogram`] and [`StalenessCounts`].
fn quantile_of(pairs: impl Iterator<Item = (u64, u64)>, n: u64, q: f64) -> Option<u64> {
    if n == 0 {
        return Some(0);
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (v, c) in pairs {
        seen += c;
        if seen >= rank {
            return Some(v);
        }
    }
    None
}

/// The mean of `n` values given as `(value, count)` pairs (0 when empty).
fn mean_of(pairs: impl Iterator<Item = (u64, u64)>, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let s: f64 = pairs.map(|(v, c)| v as f64 * c as f64).sum();
    s / n as f64
}

impl From<&StalenessHistogram> for StalenessCounts {
    fn from(h: &StalenessHistogram) -> Self {
        Self(h.iter().collect())
    }
}

impl Default for StalenessHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl StalenessHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            dense: Box::new([0; DENSE]),
            hdr: Histogram::new(3).expect("3 significant digits is valid"),
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        if (value as usize) < DENSE {
            self.dense[value as usize] += 1;
        } else {
            self.record_n(value, 1);
        }
    }

    /// Records `count` copies of a value.
    pub fn record_n(&mut self, value: u64, count: u64) {
        if (value as usize) < DENSE {
            self.dense[value as usize] += count;
        } else {
            // Auto-resizing histogram: recording below HIST_CAP cannot fail.
            let _ = self.hdr.record_n(value.min(HIST_CAP), count);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &StalenessHistogram) {
        for (a, b) in self.dense.iter_mut().zip(other.dense.iter()) {
            *a += b;
        }
        let _ = self.hdr.add(&other.hdr);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.dense.iter().sum::<u64>() + self.hdr.len()
    }

    /// Recorded values and their counts, ascending (values above the dense
    /// range are hdrhistogram bucket representatives).
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(v, c)| (v as u64, *c));
        let hdr = self
            .hdr
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()));
        dense.chain(hdr)
    }

    /// The smallest recorded value v with at least a fraction `q` of values ≤ v.
    pub fn quantile(&self, q: f64) -> u64 {
        quantile_of(self.iter(), self.count(), q).unwrap_or_else(|| self.max())
    }

    /// Mean of the recorded values (0 when empty).
    pub fn mean(&self) -> f64 {
        mean_of(self.iter(), self.count())
    }

    /// Largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        if !self.hdr.is_empty() {
            return self.hdr.max();
        }
        self.dense
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |v| v as u64)
    }

    /// The usual quantiles in one struct.
    pub fn summary(&self) -> StalenessSummary {
        StalenessSummary {
            count: self.count(),
            mean: self.mean(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
        }
    }
}

/// A [`StalenessHistogram`] behind a window of exact counts: an event loop
/// that records one staleness per event increments a counter there instead
/// of computing hdrhistogram's bucket (about 40 instructions), and
/// [`StalenessTally::finish`] adds each counted value with
/// [`StalenessHistogram::record_n`]. The histogram it returns is the one
/// recording every value one by one would have built (recording `c` copies
/// of a value at once adds the same count to the same bucket and sees the
/// same extremes), so results do not depend on the window.
#[derive(Debug)]
pub struct StalenessTally {
    /// `counts[v]`: values v recorded since they were last flushed (one
    /// byte each, so that the window costs little memory; a count is
    /// flushed once every 255 values, a negligible share of the records).
    counts: Vec<u8>,
    /// A count is flushed into `hist` when it reaches this (`u8::MAX`;
    /// smaller in the tests, which check the flush).
    limit: u8,
    hist: StalenessHistogram,
}

impl StalenessTally {
    /// Counts values below the first power of two ≥ `expected`, at most
    /// 2²¹ (2 MiB of zeroed memory, which the system maps only where it is
    /// written); larger values go straight to the histogram.
    pub fn new(expected: usize) -> Self {
        let span = expected.clamp(1024, 1 << 21).next_power_of_two();
        Self {
            counts: vec![0; span],
            limit: u8::MAX,
            hist: StalenessHistogram::new(),
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        match self.counts.get_mut(value as usize) {
            Some(c) => {
                *c += 1;
                if *c == self.limit {
                    self.hist.record_n(value, u64::from(*c));
                    *c = 0;
                }
            }
            None => self.hist.record(value),
        }
    }

    /// The histogram of every recorded value.
    pub fn finish(mut self) -> StalenessHistogram {
        for (v, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                self.hist.record_n(v as u64, u64::from(c));
            }
        }
        self.hist
    }
}

impl Serialize for StalenessHistogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.summary().serialize(s)
    }
}

/// Quantiles of a [`StalenessHistogram`], as written to JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StalenessSummary {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

/// One point of an error trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Updates applied so far.
    pub step: u64,
    /// Optimisation error at that step.
    pub error: f64,
    /// Seconds since the start (wall-clock or virtual), when the engine has a clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// Everything one run produced; the same type for every engine.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Index of the run within its configuration.
    pub run: u64,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Error at the end (NaN when diverged).
    pub final_error: f64,
    /// Mean error over the last `tail_fraction` of the steps (NaN when diverged).
    pub tail_error: f64,
    /// Error every `record_every` steps.
    pub trace: Vec<TracePoint>,
    /// Staleness of every applied gradient.
    pub staleness: StalenessHistogram,
    /// Other histograms by name (latencies in ns, waits), for engines that measure them.
    pub histograms: BTreeMap<String, StalenessHistogram>,
    /// Server counters.
    pub counters: ServerCounters,
    /// Wall-clock seconds the run took.
    pub wall_seconds: f64,
    /// Virtual seconds the run spanned, for engines with a clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_seconds: Option<f64>,
    /// Injected sleeps (threads and tasks engines) cut to the longest
    /// sleep, 1 s: a draw of an unbounded compute-time or network-delay
    /// model beyond it. 0 on the other engines.
    pub capped_sleeps: u64,
    /// Per-worker contributions (cluster engines; empty on the injected
    /// engine). Per-worker staleness quantiles are in `histograms` as
    /// `staleness.workerN` for up to 256 workers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerStats>,
    /// Every applied push, in the order applied, when the run recorded them
    /// (`--record-pushes`; at most [`crate::pushes::MAX_RECORDED_PUSHES`]).
    #[serde(skip)]
    pub pushes: Option<Vec<crate::pushes::PushRecord>>,
    /// The final parameters, when the configuration keeps them
    /// (`record_params`; empty on a diverged run's non-finite iterate too).
    #[serde(skip)]
    pub final_params: Option<Vec<f64>>,
    /// The parameters at the trace's points, point after point (`dim`
    /// values each), when the configuration keeps parameters
    /// (`record_params`) on an engine with one run per recorder (every
    /// engine but the batched injected kernel, which keeps `None`): the
    /// first `len / dim` points of `trace`, all of them unless the run
    /// would have kept more than 2²⁰ values. In memory only, for analyses
    /// of the iterate's path (`reproduce implicit-momentum`).
    #[serde(skip)]
    pub trace_params: Option<Vec<f64>>,
}

/// What one worker contributed to a run: 24 bytes plus its mean compute time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct WorkerStats {
    /// Its gradients the server applied.
    pub applied: u64,
    /// Sum of their staleness.
    pub staleness_sum: u64,
    /// Largest of their staleness.
    pub staleness_max: u64,
    /// Mean compute time of its model (seconds, × its factors), `None` when infinite.
    pub mean_compute: Option<f64>,
}

impl WorkerStats {
    /// Records one applied gradient of staleness `s`.
    #[inline]
    pub fn record(&mut self, s: u64) {
        self.applied += 1;
        self.staleness_sum = self.staleness_sum.saturating_add(s);
        self.staleness_max = self.staleness_max.max(s);
    }

    /// Mean staleness of its applied gradients (0 when none).
    pub fn mean_staleness(&self) -> f64 {
        if self.applied == 0 {
            0.0
        } else {
            self.staleness_sum as f64 / self.applied as f64
        }
    }
}

impl RunResult {
    /// Checks the run's accounting: received = applied + dropped.
    pub fn check(&self) -> Result<(), String> {
        self.counters
            .check()
            .map_err(|e| format!("run {}: {e}", self.run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_exact_in_the_dense_range() {
        let mut h = StalenessHistogram::new();
        for v in 0..100u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 49);
        assert_eq!(h.quantile(0.99), 98);
        assert_eq!(h.max(), 99);
        assert!((h.mean() - 49.5).abs() < 1e-12);
    }

    #[test]
    fn histogram_handles_huge_values_and_merges() {
        let mut a = StalenessHistogram::new();
        a.record(3);
        a.record(u64::MAX);
        let mut b = StalenessHistogram::new();
        b.record(100_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!(a.max() >= HIST_CAP);
        let q = a.quantile(0.6);
        assert!((99_900..=100_100).contains(&q), "3 significant digits: {q}");
    }

    /// The tally's histogram equals the one built value by value, in the
    /// dense range, in hdrhistogram's exact and bucketed ranges, above the
    /// window and at the cap, with counts flushed on the way (a limit of 3).
    #[test]
    fn tally_builds_the_histogram_of_one_by_one_recording() {
        let values: Vec<u64> = (0..20_000u64)
            .map(|i| match i % 5 {
                0 => i % 600,
                1 => 1_000 + (i * 7919) % 3_000,
                2 => 9_000 + (i * 31) % 700,
                3 => 1 << 40,
                _ => u64::MAX - i,
            })
            .collect();
        for limit in [3, u8::MAX] {
            let mut tally = StalenessTally::new(4096);
            tally.limit = limit;
            let mut direct = StalenessHistogram::new();
            for &v in &values {
                tally.record(v);
                direct.record(v);
            }
            let tally = tally.finish();
            assert_eq!(
                tally.iter().collect::<Vec<_>>(),
                direct.iter().collect::<Vec<_>>()
            );
            assert_eq!(tally.summary(), direct.summary());
            assert_eq!(tally.count(), values.len() as u64);
        }
    }

    #[test]
    fn counters_check_names_the_gap() {
        let c = ServerCounters {
            received: 10,
            applied: 7,
            dropped_too_stale: 2,
            ..Default::default()
        };
        assert!(c.check().unwrap_err().contains("received 10"));
        let ok = ServerCounters {
            dropped_after_stop: 1,
            ..c
        };
        ok.check().unwrap();
    }
}
