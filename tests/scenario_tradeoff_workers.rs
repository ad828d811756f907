//! E1 on the cluster engines: `psim reproduce tradeoff --engine virtual-time`
//! sweeps the worker count and reads, per μ, the largest tolerated M by
//! the same rule as the injected engine's optimal delay τ*.
//!
//! With every worker computing for one time unit, the virtual-time engine's
//! staleness is exactly M − 1 after the first round, so M* should be the
//! injected engine's τ* + 1 on the matching grid τ = M − 1. The two engines
//! draw different data streams (each worker has its own), so they agree
//! only up to the noise of the rule: the tolerance is one grid step.

use serde_json::Value;
use std::process::Command;

#[test]
fn largest_tolerated_worker_count_falls_with_momentum_and_matches_tau_star() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e1vt");
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args([
            "reproduce",
            "tradeoff",
            "--engine",
            "virtual-time",
            "--momentum",
            "0.7,0.9,0.95",
            "--runs",
            "30",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let rows = v["tradeoff"].as_array().expect("a tradeoff table");
    assert_eq!(rows.len(), 3);
    let mut last = u64::MAX;
    for r in rows {
        let mu = r["momentum"].as_f64().unwrap();
        let m = r["max_workers"]
            .as_u64()
            .expect("some worker count is tolerated");
        let tau = r["injected_optimal_delay"]
            .as_f64()
            .expect("an injected τ*");
        assert!(
            m < last,
            "μ = {mu}: M* = {m} should fall with μ (previous {last})"
        );
        last = m;
        // Grid step 10 workers (M = 1, 11, …, 161).
        assert!(
            (m as f64 - (tau + 1.0)).abs() <= 10.0,
            "μ = {mu}: M* = {m} vs injected τ* + 1 = {}",
            tau + 1.0
        );
        // The measured staleness at M* is M* − 1 except in the first round,
        // where the k-th push (k < M) has staleness k: over 20,000 updates
        // the mean falls short by M(M − 1)/2 / 20,000 (plus rounding).
        let s = r["staleness_at_max"].as_f64().unwrap();
        let mf = m as f64;
        let expected = (mf - 1.0) - mf * (mf - 1.0) / 2.0 / 20_000.0;
        assert!(
            (s - expected).abs() < 0.01,
            "μ = {mu}: staleness {s} at M = {m}, expected {expected}"
        );
    }
}

/// Every cluster axis the grid varies besides M is its own curve, labelled
/// in the report, the table heads, the plot and `summary.json`: two
/// compute-time models at one μ are two rows, each with its own baseline,
/// never M = 2 shown twice under one label.
#[test]
fn curves_that_differ_in_another_cluster_axis_are_labelled_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("two-models");
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args([
            "reproduce",
            "tradeoff",
            "--engine",
            "virtual-time",
            "--workers",
            "2,4",
            "--compute-time",
            "exp:1",
            "--compute-time",
            "1",
            "--momentum",
            "0.9",
            "--runs",
            "2",
            "--steps",
            "300",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        report.contains("compute time exp:1, const:1 (a row each)"),
        "{report}"
    );
    for model in ["exp:1", "const:1"] {
        let rows = report
            .lines()
            .filter(|l| l.contains(&format!("| compute {model} ")))
            .count();
        assert_eq!(rows, 1, "one row for compute {model}:\n{report}");
    }
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let settings: Vec<&str> = v["tradeoff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["setting"].as_str().expect("a labelled row"))
        .collect();
    assert_eq!(settings, ["compute exp:1", "compute const:1"]);
    let svg = std::fs::read_to_string(out.join("tradeoff.svg")).unwrap();
    assert!(
        svg.contains("compute const:1"),
        "the plot's legend names it"
    );
}
