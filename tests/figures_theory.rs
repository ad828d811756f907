//! The theory is drawn on the figures: every theory curve is a dashed series
//! rendered with `class="theory"` and a legend label naming it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn reproduce(name: &str, extra: &[&str]) -> PathBuf {
    let out = std::env::temp_dir().join(format!("psim-fig-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(["reproduce", name, "-q", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("psim runs");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn svg(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Asserts `svg` has at least `n` theory paths and every label in `labels`.
fn has_theory(svg: &str, n: usize, labels: &[&str]) {
    // Each theory series draws its path and its legend line with the class.
    let count = svg.matches(r#"class="theory""#).count();
    assert!(count >= 2 * n, "{count} theory elements, want ≥ {}", 2 * n);
    for l in labels {
        assert!(svg.contains(l), "label `{l}` missing");
    }
}

/// E1 (tiny): the OU level at τ = 0 and each μ's predicted stable delay.
#[test]
fn e1_plot_shows_the_ou_level_and_stable_delays() {
    let out = reproduce(
        "tradeoff",
        &[
            "--runs",
            "3",
            "--steps",
            "2000",
            "--momentum",
            "0.7,0.9",
            "--taus",
            "0:40:20",
        ],
    );
    let s = svg(&out, "tradeoff.svg");
    has_theory(
        &s,
        2,
        &["theory μ=0.7: OU, τ ≤ 115", "theory μ=0.9: OU, τ ≤ 32"],
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// E2 (tiny): the paper's reading (0.9 at 1 worker, 0.5 at 8) beside the best μ.
#[test]
fn e2_best_momentum_plot_shows_the_paper() {
    let out = reproduce(
        "momentum-vs-workers",
        &[
            "--runs",
            "1",
            "--steps",
            "50",
            "--workers",
            "2",
            "--momentum",
            "0.5,0.9",
            "--step-size",
            "0.02",
        ],
    );
    has_theory(
        &svg(&out, "best-momentum.svg"),
        1,
        &["paper (ResNet, CIFAR-100)"],
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// E3 (reduced): the OU floors of the three algorithms and the ODE.
#[test]
fn e3_plot_shows_the_ode_and_the_ou_floors() {
    let out = reproduce("three-phases", &["--runs", "10", "--steps", "12000"]);
    let s = svg(&out, "three-phases.svg");
    has_theory(
        &s,
        5,
        &["OU floor, SGD", "OU floor, MSGD", "ODE, SGD", "ODE, MSGD"],
    );
    has_theory(&svg(&out, "phase-two-ode.svg"), 2, &["ODE, μ = 0.9"]);
    let _ = std::fs::remove_dir_all(&out);
}

/// E4 and E6 (reduced): the escape theory, and E6's η⁻¹ log η⁻¹ law.
#[test]
fn escape_plots_show_the_theory_and_the_law() {
    let out = reproduce("saddle-escape", &["--runs", "10"]);
    has_theory(
        &svg(&out, "saddle-escape.svg"),
        1,
        &["theory (discrete recurrence)"],
    );
    let _ = std::fs::remove_dir_all(&out);
    let out = reproduce("escape-times", &["--runs", "10", "--step-size", "0.1,0.01"]);
    has_theory(
        &svg(&out, "escape-vs-step-size.svg"),
        2,
        &["(1/2γ₁) η⁻¹ log η⁻¹", "theory (SGD recurrence)"],
    );
    let _ = std::fs::remove_dir_all(&out);
}
