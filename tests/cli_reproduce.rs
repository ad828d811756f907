//! The `psim` binary as a user runs it: outputs, replay, errors.

use std::path::Path;
use std::process::{Command, Output};

fn psim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .output()
        .expect("psim runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("psim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn reproduce_tradeoff_writes_every_output_and_replays_identically() {
    let out = tmp("e1");
    let o = psim(&[
        "reproduce",
        "tradeoff",
        "--runs",
        "4",
        "--steps",
        "4000",
        "--taus",
        "0:40:20",
        "--momentum",
        "0.8,0.9",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = text(&o);
    assert!(
        stdout.contains("optimal τ") && stdout.contains("OU theory"),
        "{stdout}"
    );
    for f in [
        "config.toml",
        "summary.json",
        "runs.csv",
        "traces.csv",
        "staleness.csv",
        "tradeoff.svg",
        "traces.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let t = summary["tradeoff"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    for row in t {
        assert!(row["momentum"].is_number() && row["errors"].as_array().unwrap().len() == 3);
        assert!(row.get("optimal_delay").is_some() && row.get("theory_max_stable_delay").is_some());
        let e0 = &row["errors"][0];
        for k in [
            "delay",
            "mean_error",
            "std_error",
            "p10",
            "p90",
            "diverged",
            "ratio",
            "tolerated",
        ] {
            assert!(e0.get(k).is_some(), "field {k}");
        }
    }
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 2 * 3 * 4);

    // Replay from the written config: identical per-run results.
    let again = tmp("e1-replay");
    let o = psim(&[
        "run",
        "--config",
        out.join("config.toml").to_str().unwrap(),
        "-q",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let cols = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("runs.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(
        cols(&out),
        cols(&again),
        "replay differs (wall time column excluded)"
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&again);
}

#[test]
fn never_writes_over_a_users_files() {
    let out = tmp("busy");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), "precious").unwrap();
    let o = psim(&[
        "run",
        "--runs",
        "1",
        "--steps",
        "100",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not empty"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("mine.txt")).unwrap(),
        "precious"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_values_name_the_field_and_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--momentum", "1.5"],
            "`momentum` = 1.5: must be in (−1, 1)",
        ),
        (&["run", "--step-size", "-1"], "`step_size`"),
        (&["run", "--runs", "0"], "`runs`"),
        (&["run", "--spectrum", "1,2"], "objective.spectrum[1]"),
        (&["run", "--delay", "uniform:5..3"], "A ≤ B"),
        (&["run", "--delay", "zipf:2"], "unknown model"),
        (&["run", "--history-policy", "keep"], "`clamp` or `drop`"),
        (&["sweep", "--taus", "0:10:0"], "FROM:TO:STEP"),
        (&["run", "--momentum", "0.1,0.2"], "use `psim sweep`"),
        (&["reproduce", "nonesuch"], "unknown scenario"),
        (&["run", "--tail-fraction", "2"], "`tail_fraction`"),
        (
            &["run", "--config", "/nonexistent/config.toml"],
            "cannot read config",
        ),
    ];
    for (args, needle) in cases {
        let mut all = args.to_vec();
        all.extend(["-q", "--out", "/nonexistent-dir-never-created/x"]);
        let o = psim(&all);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(
            text(&o).contains(needle),
            "{args:?}: expected `{needle}` in {}",
            text(&o)
        );
        assert!(!text(&o).contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn list_and_help_show_examples() {
    let o = psim(&["reproduce", "--list"]);
    assert!(o.status.success() && text(&o).contains("tradeoff"));
    let o = psim(&["--help"]);
    assert!(text(&o).contains("psim reproduce tradeoff"));
    let o = psim(&["sweep", "--help"]);
    assert!(text(&o).contains("Example:"));
}

#[test]
fn run_prints_staleness_quantiles_and_counters() {
    let out = tmp("run");
    let o = psim(&[
        "run",
        "--delay",
        "0.9*uniform:0..10+0.1*const:100",
        "--runs",
        "3",
        "--steps",
        "3000",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("p99") && t.contains("clamped") && t.contains("0/3"),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
