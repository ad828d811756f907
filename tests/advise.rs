//! `psim advise`: predictions, confirmations on E1's problem and two
//! variants (other spectrum, other η), and refusals.

use std::process::{Command, Output};

fn psim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const HOLDS: &str = "predicted and measured within one grid step for every checked μ: HOLDS";

/// E1's problem and two variants, by delay and by cluster: predicted and
/// measured largest tolerated delay (M − 1) within one grid step (≈ 1/8 of
/// the prediction, at least 2) for every μ of the default grid, at a fixed
/// seed. The variants: Σ = diag(8,4,2,1) (stiffest curvature doubled) and
/// η = 10⁻³ (the gain doubled through the step).
#[test]
fn confirmation_agrees_on_e1_and_two_variants() {
    for problem in [
        ["--spectrum", "4,3,2,1", "--step-size", "5e-4"],
        ["--spectrum", "8,4,2,1", "--step-size", "5e-4"],
        ["--spectrum", "4,3,2,1", "--step-size", "1e-3"],
    ] {
        for form in [
            &["--delay", "const:30"][..],
            &["--workers", "16", "--compute-time", "const:1"][..],
        ] {
            let mut args = vec!["advise"];
            args.extend(problem);
            args.extend(form);
            args.extend(["--confirm", "--seed", "1"]);
            let o = psim(&args);
            let t = text(&o);
            assert!(o.status.success(), "{args:?}: {t}");
            assert!(t.contains(HOLDS), "{args:?}:\n{t}");
        }
    }
}

/// The prediction for E1's problem is the root crossing printed by E1
/// (stable τ ≤ 115, 74, 32, 13 for μ = 0.7, 0.8, 0.9, 0.95), the best μ for
/// a delay of 30 is 0.9 and the paragraph names the radial mode.
#[test]
fn prediction_on_e1s_problem() {
    let o = psim(&[
        "advise",
        "--step-size",
        "5e-4",
        "--delay",
        "const:30",
        "--momentum",
        "0.7,0.8,0.9,0.95",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for (mu, tau) in [("0.7", "115"), ("0.8", "74"), ("0.9", "32"), ("0.95", "13")] {
        assert!(
            t.lines()
                .any(|l| l.trim_start().starts_with(mu) && l.contains(&format!(" {tau} "))),
            "μ = {mu}: τ {tau}\n{t}"
        );
    }
    assert!(t.contains("best μ: 0.9"), "{t}");
    assert!(t.contains("radial mode"), "{t}");
}

/// Random delays are tolerated longer than constant ones of the same mean
/// (the expected recursion), and exponential compute times longer than
/// constant ones (implicit momentum).
#[test]
fn random_staleness_is_tolerated_longer() {
    let largest = |args: &[&str]| -> u64 {
        let mut a = vec!["advise", "--step-size", "5e-4", "--momentum", "0.9"];
        a.extend(args);
        let o = psim(&a);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with("0.9 "))
            .unwrap();
        line.split('|')
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(u64::MAX)
    };
    assert!(largest(&["--delay", "uniform:0..60"]) > largest(&["--delay", "const:30"]));
    assert!(largest(&["--workers", "8", "--compute-time", "exp:1"]) > largest(&["--workers", "8"]));
}

/// Inputs advise cannot take are refused with exit 2, naming the flag.
#[test]
fn refusals_name_the_flag() {
    for (args, word) in [
        (vec!["--step-size", "0", "--delay", "const:1"], "step-size"),
        (
            vec![
                "--step-size",
                "5e-4",
                "--delay",
                "const:1",
                "--momentum",
                "1",
            ],
            "momentum",
        ),
        (
            vec!["--step-size", "5e-4", "--delay", "pareto:1,2"],
            "delay",
        ),
        (
            vec![
                "--step-size",
                "5e-4",
                "--workers",
                "4",
                "--compute-time",
                "lognormal:0,1",
            ],
            "compute-time",
        ),
        (
            vec![
                "--step-size",
                "5e-4",
                "--workers",
                "4",
                "--consistency",
                "bsp",
            ],
            "consistency",
        ),
        (
            vec![
                "--curvature",
                "8",
                "--step-size",
                "5e-4",
                "--delay",
                "const:1",
                "--confirm",
            ],
            "confirm",
        ),
        (
            vec![
                "--curvature",
                "-1",
                "--step-size",
                "5e-4",
                "--delay",
                "const:1",
            ],
            "curvature",
        ),
        (vec!["--step-size", "5e-4"], "--delay"),
    ] {
        let mut a = vec!["advise"];
        a.extend(args.iter().copied());
        let o = psim(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", text(&o));
        assert!(text(&o).contains(word), "{a:?}: {}", text(&o));
    }
}

/// Negative momentum (μ ∈ (−1, 0)) runs on every engine; with rule `sgd`,
/// which has no momentum term, it is refused by name.
#[test]
fn negative_momentum_runs_on_every_engine_and_is_refused_for_sgd() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("neg");
    for engine in [
        &[][..],
        &["--scalar-engine"][..],
        &["--engine", "virtual-time", "--workers", "4"][..],
        &[
            "--engine",
            "threads",
            "--workers",
            "2",
            "--compute-time",
            "0",
        ][..],
        &["--engine", "tasks", "--workers", "2", "--compute-time", "0"][..],
    ] {
        let mut a = vec![
            "run",
            "--momentum",
            "-0.3",
            "--runs",
            "2",
            "--steps",
            "500",
            "-q",
            "--force",
            "--out",
        ];
        a.push(out.to_str().unwrap());
        a.extend(engine);
        let o = psim(&a);
        assert!(o.status.success(), "{a:?}: {}", text(&o));
    }
    let o = psim(&["run", "--momentum", "-0.3", "--rule", "sgd", "--runs", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("with rule `sgd`"), "{}", text(&o));
}
