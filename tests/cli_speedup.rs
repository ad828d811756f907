//! `psim speedup` and `psim run --engine threads` end to end: tiny,
//! sleep-based runs in a temp directory; the table, the files and the
//! errors for bad input.

use std::process::{Command, Output};

fn psim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .output()
        .expect("running psim")
}

#[test]
fn speedup_prints_a_row_per_point_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sp");
    let o = psim(&[
        "speedup",
        "--workers",
        "1,4",
        "--momentum",
        "0.5",
        "--step-size",
        "0.005",
        "--target-error",
        "0.3",
        "--compute-time",
        "0.0002",
        "--runs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("0.5 "))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].contains("1.00"),
        "speedup of the baseline is 1: {}",
        rows[0]
    );
    for f in ["config.toml", "speedup.csv", "summary.json", "speedup.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join("speedup.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header and two rows:\n{csv}");
}

#[test]
fn speedup_rejects_bad_input_naming_the_field() {
    let o = psim(&["speedup", "--engine", "injected", "--out", "/nonexistent/x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("engine"));
    let o = psim(&["speedup", "--consistency", "ssp:x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cluster.consistency"));
}

#[test]
fn run_on_threads_prints_staleness_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = psim(&[
        "run",
        "--engine",
        "threads",
        "--workers",
        "4",
        "--compute-time",
        "0.0005",
        "--steps",
        "200",
        "--runs",
        "1",
        "--backend",
        "channel",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("measured staleness") && stdout.contains("p99.9"),
        "{stdout}"
    );
}
