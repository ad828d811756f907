//! `psim reproduce momentum-vs-workers` as a user runs it (a small grid).

use std::process::Command;

#[test]
fn reproduce_momentum_vs_workers_writes_its_outputs() {
    let out = std::env::temp_dir().join(format!("psim-cli-{}-e2", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args([
            "reproduce",
            "momentum-vs-workers",
            "--runs",
            "2",
            "--steps",
            "200",
            "--workers",
            "4",
            "--momentum",
            "0.5,0.9",
            "--step-size",
            "0.02",
            "-q",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("psim runs");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    // Worker counts are the powers of two up to --workers; the mean
    // staleness is M − 1 except for the warm-up round: (M−1)(1 − (M/2)/200).
    for row in ["\n| 1 | 0.00 |", "\n| 2 | 0.99 |", "\n| 4 | 2.97 |"] {
        assert!(text.contains(row), "missing {row}: {text}");
    }
    assert!(
        text.contains("200 updates per run") && text.contains("2 seeds"),
        "{text}"
    );
    for f in [
        "runs.csv",
        "summary.json",
        "table.md",
        "accuracy.svg",
        "config.toml",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 3 * 2 * 2, "{runs}");
    let svg = std::fs::read_to_string(out.join("accuracy.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("μ = 0.9"));
    let _ = std::fs::remove_dir_all(&out);
}
