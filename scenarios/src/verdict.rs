//! Verdicts of the named scenarios, and whether they hold across master seeds.
//!
//! Every scenario's report ends with one or more verdict lines of the form
//! `headline (…): HOLDS` or `…: DOES NOT HOLD` (E3 adds a `theory (…)`
//! line). [`verdict`] reads them back; [`check_seeds`] reruns a scenario at
//! other master seeds and counts the seeds where every verdict holds. A
//! verdict that flips with the seed is a defect: `psim reproduce NAME
//! --check-seeds 1..10` must hold for at least [`REQUIRED_SHARE`] of them.

use crate::catalogue::{Scenario, ScenarioError};
use crate::output::OutputDir;
use crate::sweep::SweepOptions;
use psim_common::Experiment;
use std::path::Path;

/// The text a holding verdict line ends with.
pub const HOLDS: &str = ": HOLDS";
/// The text a failing verdict line ends with.
pub const DOES_NOT_HOLD: &str = ": DOES NOT HOLD";
/// The share of master seeds whose verdicts must all hold (9 of 10).
pub const REQUIRED_SHARE: f64 = 0.9;

/// The verdict of a report: `Some(true)` when it has verdict lines and all
/// hold, `Some(false)` when one does not, `None` when it has none.
pub fn verdict(report: &str) -> Option<bool> {
    let mut seen = None;
    for line in report.lines().map(str::trim_end) {
        if line.ends_with(DOES_NOT_HOLD) {
            return Some(false);
        }
        if line.ends_with(HOLDS) {
            seen = Some(true);
        }
    }
    seen
}

/// The verdict as printed.
pub fn verdict_word(holds: bool) -> &'static str {
    if holds {
        "HOLDS"
    } else {
        "DOES NOT HOLD"
    }
}

/// Parses a seed range `A..B` (inclusive, as in `1..10`) or a comma list.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let max = psim_common::config::MAX_INTEGER;
    let bad = || {
        format!(
            "invalid `--check-seeds` = `{text}`: want A..B (inclusive, e.g. 1..10, at most 10000 seeds) or a comma list of distinct seeds, each in [0, {max}] (the largest integer config.toml holds)"
        )
    };
    let seed = |s: &str| -> Result<u64, String> {
        let v: u64 = s.trim().parse().map_err(|_| bad())?;
        if v > max {
            return Err(bad());
        }
        Ok(v)
    };
    if let Some((a, b)) = text.split_once("..") {
        let a = seed(a)?;
        let b = seed(b.trim().trim_start_matches('='))?;
        if a > b || b - a >= 10_000 {
            return Err(bad());
        }
        return Ok((a..=b).collect());
    }
    let v: Vec<u64> = text.split(',').map(seed).collect::<Result<_, _>>()?;
    if v.is_empty() || v.len() > 10_000 || v.iter().enumerate().any(|(i, s)| v[..i].contains(s)) {
        return Err(bad());
    }
    Ok(v)
}

/// One seed's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedVerdict {
    /// Master seed.
    pub seed: u64,
    /// All verdict lines held (`None`: the report has no verdict line).
    pub holds: Option<bool>,
    /// The report's failing verdict lines.
    pub failing: Vec<String>,
}

/// The outcome over seeds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedCheck {
    /// Scenario name.
    pub scenario: String,
    /// Per seed, in order.
    pub seeds: Vec<SeedVerdict>,
}

impl SeedCheck {
    /// Seeds whose verdicts all hold.
    pub fn held(&self) -> usize {
        self.seeds.iter().filter(|s| s.holds == Some(true)).count()
    }

    /// Whether at least [`REQUIRED_SHARE`] of the seeds hold.
    pub fn passes(&self) -> bool {
        self.held() as f64 >= REQUIRED_SHARE * self.seeds.len() as f64 - 1e-9
    }

    /// The summary printed by `--check-seeds`.
    pub fn report(&self) -> String {
        let mut s = format!("{}: verdict per master seed\n", self.scenario);
        for v in &self.seeds {
            let word = match v.holds {
                Some(h) => verdict_word(h),
                None => "no verdict",
            };
            s.push_str(&format!("  seed {:>6}: {word}\n", v.seed));
            for f in &v.failing {
                s.push_str(&format!("               {f}\n"));
            }
        }
        s.push_str(&format!(
            "held for {} of {} seeds (required: {:.0}%): {}\n",
            self.held(),
            self.seeds.len(),
            100.0 * REQUIRED_SHARE,
            if self.passes() { "PASS" } else { "FAIL" }
        ));
        s
    }
}

/// Runs `scenario` on `e` once per seed (the master seed replaced), each
/// into `root/seed-S`, and reads every report's verdict.
pub fn check_seeds(
    scenario: &dyn Scenario,
    e: &Experiment,
    seeds: &[u64],
    root: &Path,
    opts: &SweepOptions<'_>,
) -> Result<SeedCheck, ScenarioError> {
    let mut out = Vec::new();
    for &seed in seeds {
        let mut e = e.clone();
        e.base.seed = seed;
        let dir = OutputDir::create(Some(&root.join(format!("seed-{seed}"))), &e.name, true)?;
        dir.write_config(&e)?;
        let report = match crate::executor::run_in_dir(
            scenario,
            &e,
            &crate::executor::BuiltIn,
            &dir,
            crate::durable::Shard::ALL,
            opts,
        )? {
            crate::durable::Progress::Complete(report) => report,
            crate::durable::Progress::Partial { .. } => unreachable!("an unsharded run finishes"),
        };
        out.push(SeedVerdict {
            seed,
            holds: verdict(&report),
            failing: report
                .lines()
                .filter(|l| l.trim_end().ends_with(DOES_NOT_HOLD))
                .map(|l| l.trim().to_string())
                .collect(),
        });
    }
    Ok(SeedCheck {
        scenario: scenario.name().to_string(),
        seeds: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_verdict_lines() {
        assert_eq!(verdict("a\nheadline (x): HOLDS\n"), Some(true));
        assert_eq!(
            verdict("headline (x): HOLDS\ntheory (y): DOES NOT HOLD\n"),
            Some(false)
        );
        assert_eq!(verdict("no verdict here\n"), None);
    }

    #[test]
    fn parses_seed_ranges() {
        assert_eq!(parse_seeds("1..10").unwrap(), (1..=10).collect::<Vec<_>>());
        assert_eq!(parse_seeds("3,5").unwrap(), vec![3, 5]);
        assert!(parse_seeds("5..1").is_err());
        assert!(parse_seeds("x").is_err());
    }
}
