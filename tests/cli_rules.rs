//! `--rule` and `--schedule` reach the run and its replayable config.

use std::process::Command;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("psim-rules-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Annealing by 0.1 halfway must lower the stationary error of momentum SGD
/// by about 10× (OU is linear in η); a ratio above 3 cannot happen if the
/// schedule were ignored (same seed, so the first half is identical).
#[test]
fn schedule_flag_changes_the_run_and_is_recorded() {
    let (a, b) = (tmp("const"), tmp("anneal"));
    let common = [
        "run",
        "--runs",
        "8",
        "--steps",
        "30000",
        "--momentum",
        "0.9",
        "-q",
    ];
    let (ok, t) = run(&[&common[..], &["--out", a.to_str().unwrap()]].concat());
    assert!(ok, "{t}");
    let (ok, t) = run(&[
        &common[..],
        &[
            "--rule",
            "nesterov",
            "--schedule",
            "anneal:15000:0.1",
            "--out",
            b.to_str().unwrap(),
        ],
    ]
    .concat());
    assert!(ok, "{t}");
    let cfg = std::fs::read_to_string(b.join("config.toml")).unwrap();
    assert!(
        cfg.contains("rule = \"nesterov\"") && cfg.contains("schedule = \"anneal:15000:0.1\""),
        "{cfg}"
    );
    let tail = |d: &std::path::Path| -> f64 {
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        j["points"][0]["error"]["mean"].as_f64().unwrap()
    };
    let q = tail(&a) / tail(&b);
    assert!(q > 3.0, "constant/annealed tail error ratio {q}");
    let (ok, t) = run(&["run", "--rule", "dc-asgd:-1", "-q"]);
    assert!(!ok && t.contains("`rule`") && t.contains("LAMBDA"), "{t}");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}
