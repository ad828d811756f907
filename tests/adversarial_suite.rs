//! The project's own adversarial suite (issue 17): each test enumerates a
//! class of defect rather than one instance, so the next review finds
//! nothing new. The README's "What the adversarial suite covers" lists the
//! classes and the test of each.
//!
//! - property tests (proptest, fixed seed and case count: deterministic)
//!   round-trip every delay model, update rule, schedule and the config
//!   that holds them through parse → write → parse, and check that what a
//!   staleness model runs is what is reported;
//! - a hostile-directory suite: symlinks, FIFOs, planted temporaries,
//!   tampered shard files, a concurrent writer;
//! - panics-never over every command with extreme values;
//! - a headless-Chromium check that a report of hostile files runs no
//!   script (skipped with a message where Chromium is not installed).

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use psim_common::{Delay, DelayModel, Experiment, RuleKind, Schedule};
use psim_scenarios::catalogue::Scenario;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

fn psim_in(dir: &Path, args: &[&str]) -> Output {
    run_with_timeout(dir, args, Duration::from_secs(60))
}

/// Runs psim in `dir`, killing it (and failing) if it takes longer than
/// `limit`: a FIFO that blocks a read is a failure, not a hung suite.
fn run_with_timeout(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psim runs");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!(
                "psim {args:?} did not finish within {limit:?} (blocked?): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exit code 2, every needle in stderr, no panic.
fn assert_refused(o: &Output, args: &[&str], needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: expected `{n}` in: {e}");
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(17),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A positive number over the whole f64 range, written as Rust prints it
/// (denormals and 1e308 included).
fn wide() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-320i32..308, 1.0f64..10.0).prop_map(|(e, m)| m * 10f64.powi(e)),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(f64::MAX),
        (1u32..1000).prop_map(f64::from),
    ]
    .prop_filter("positive and finite", |v| v.is_finite() && *v > 0.0)
}

/// One delay model as a user may write it (parameters inside and outside
/// their ranges alike).
fn one_model() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..(1 << 53)).prop_map(|c| format!("const:{c}")),
        wide().prop_map(|c| format!("const:{c}")),
        (0u64..1000, 0u64..1000).prop_map(|(a, b)| format!("uniform:{}..{}", a.min(b), a.max(b))),
        wide().prop_map(|p| format!("geometric:{}", p.min(1.0))),
        (1e-3f64..1e6).prop_map(|l| format!("poisson:{l}")),
        wide().prop_map(|m| format!("exp:{m}")),
        (wide(), wide()).prop_map(|(s, a)| format!("pareto:{s},{a}")),
        (-800.0f64..800.0, 0.0f64..50.0).prop_map(|(m, s)| format!("lognormal:{m},{s}")),
    ]
}

/// A model or a mixture of 2–4 models with weights over the whole range.
fn delay_spec() -> impl Strategy<Value = String> {
    prop_oneof![
        one_model(),
        proptest::collection::vec((wide(), one_model()), 2..5).prop_map(|parts| {
            parts
                .iter()
                .map(|(w, m)| format!("{w}*{m}"))
                .collect::<Vec<_>>()
                .join("+")
        }),
    ]
}

// --------------------------------------------- property tests: round trips

proptest! {
    #![proptest_config(config(400))]

    /// Every delay model: parse → to_string → parse is the identity on
    /// the text, every number prints in at most 24 characters (no 324-digit
    /// denormals), and the text survives config.toml (the grid of an
    /// Experiment through TOML). A spec that is refused is refused with a
    /// message naming the problem (a mixture share too small to write back,
    /// a parameter outside its range), never with a panic.
    #[test]
    fn every_delay_model_round_trips(spec in delay_spec()) {
        let d: Delay = match spec.parse() {
            Ok(d) => d,
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains(&spec) && e.contains("syntax"), "{spec}: {e}");
                return Ok(());
            }
        };
        let text = d.to_string();
        let again: Delay = text.parse().map_err(|e| TestCaseError::fail(format!("{spec} → {text}: {e}")))?;
        prop_assert_eq!(again.to_string(), text.clone(), "{}", spec);
        for token in text.split(|c: char| ":,*+".contains(c)).flat_map(|t| t.split("..")) {
            prop_assert!(token.len() <= 24, "{spec} prints `{token}` in {text}");
        }
        let mut e: Experiment = psim_scenarios::experiments::tradeoff::Tradeoff.experiment();
        e.grid.delay = vec![d.clone()];
        let toml_text = toml::to_string(&e).unwrap();
        let back: Experiment = toml::from_str(&toml_text)
            .map_err(|err| TestCaseError::fail(format!("{spec}: config.toml does not parse back: {err}")))?;
        prop_assert_eq!(back.grid.delay[0].to_string(), text);
        // A model accepted as a staleness runs what is written.
        if d.validate_steps("delay").is_ok() {
            let m = d.mean_steps();
            prop_assert!(m.is_none_or(|m| m >= 0.0), "{spec}: mean_steps {m:?}");
        }
    }

    /// What runs is what is reported: for staleness models accepted by
    /// `validate_steps`, the mean of 20 000 integer draws matches
    /// `mean_steps` (the value reported as the point's mean delay).
    #[test]
    fn what_a_staleness_model_runs_is_what_is_reported(
        spec in prop_oneof![
            (0u64..50).prop_map(|c| format!("const:{c}")),
            (0u64..50, 0u64..50).prop_map(|(a, b)| format!("uniform:{}..{}", a.min(b), a.max(b))),
            (0.05f64..1.0).prop_map(|p| format!("geometric:{p}")),
            (0.05f64..40.0).prop_map(|l| format!("poisson:{l}")),
            (0.05f64..40.0).prop_map(|m| format!("exp:{m}")),
            (0.1f64..20.0, 2.5f64..6.0).prop_map(|(s, a)| format!("pareto:{s},{a}")),
            (-2.0f64..3.0, 0.0f64..0.8).prop_map(|(m, s)| format!("lognormal:{m},{s}")),
            (0.01f64..1.0, 0.05f64..10.0, 0u64..30)
                .prop_map(|(w, m, c)| format!("{w}*exp:{m}+1*const:{c}")),
        ],
        seed in 0u64..1000,
    ) {
        use rand::SeedableRng;
        let d: Delay = spec.parse().unwrap();
        prop_assert!(d.validate_steps("delay").is_ok(), "{}", spec);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let n = 20_000;
        let x: Vec<f64> = (0..n).map(|_| d.sample_steps(&mut rng) as f64).collect();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let reported = d.mean_steps().unwrap();
        let tol = 6.0 * (var / n as f64).sqrt() + 2e-3;
        prop_assert!((mean - reported).abs() <= tol, "{spec}: ran {mean}, reported {reported} ± {tol}");
    }

    /// Every update rule round-trips; DC-ASGD's λ over the whole range.
    #[test]
    fn every_rule_round_trips(
        rule in prop_oneof![
            Just("sgd".to_string()),
            Just("heavy-ball".to_string()),
            Just("nesterov".to_string()),
            Just("staleness-aware".to_string()),
            wide().prop_map(|l| format!("dc-asgd:{l}")),
        ]
    ) {
        let r: RuleKind = rule.parse().unwrap();
        let text = r.to_string();
        let again: RuleKind = text.parse().unwrap();
        prop_assert_eq!(again, r);
        prop_assert_eq!(again.to_string(), text.clone());
        prop_assert!(text.len() <= 40, "{}", text);
    }

    /// Every schedule round-trips, and is refused (naming `schedule`) when
    /// a stage falls at or after the last step.
    #[test]
    fn every_schedule_round_trips(
        stages in proptest::collection::vec((1u64..1_000_000, wide()), 1..6)
    ) {
        let mut at = 0;
        let parts: Vec<String> = stages
            .iter()
            .map(|(step, f)| {
                at += step;
                let f = if *f == 1.0 { 0.5 } else { *f };
                format!("{at}:{f}")
            })
            .collect();
        let spec = format!("anneal:{}", parts.join(","));
        let s: Schedule = spec.parse().unwrap();
        let text = s.to_string();
        let again: Schedule = text.parse().unwrap();
        prop_assert_eq!(&again, &s);
        prop_assert_eq!(again.to_string(), text);
        prop_assert!(s.validate_for_steps(at + 1).is_ok());
        let e = s.validate_for_steps(at).unwrap_err().to_string();
        prop_assert!(e.contains("`schedule`") && e.contains(&format!("`steps` = {at}")), "{}", e);
    }
}

/// Settings that cannot take effect are refused by the parsers.
#[test]
fn settings_without_effect_are_refused_by_the_parsers() {
    for bad in ["dc-asgd:0", "dc-asgd:-0", "dc-asgd:nan", "dc-asgd:inf"] {
        let e = bad.parse::<RuleKind>().unwrap_err().to_string();
        assert!(e.contains("`rule`") && e.contains("> 0"), "{bad}: {e}");
    }
    for bad in [
        "anneal:10:1",
        "anneal:10:0",
        "anneal:10:inf",
        "anneal:10:0.5,10:0.5",
    ] {
        let e = bad.parse::<Schedule>().unwrap_err().to_string();
        assert!(e.contains("`schedule`"), "{bad}: {e}");
    }
}

// ------------------------------------------------- refusals on the CLI

/// Every setting that cannot take effect, every meaningless `psim theory`
/// input and every staleness that would run something other than written
/// is refused with exit 2, naming the field; `theory` prints nothing first.
#[test]
fn inputs_that_cannot_take_effect_or_mean_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["run", "--schedule", "anneal:999999:0.5", "-q"],
            &["`schedule`", "`steps` = 20000"],
        ),
        (&["run", "--rule", "dc-asgd:0", "-q"], &["`rule`", "> 0"]),
        (
            &["run", "--delay", "const:2.7", "-q"],
            &["`engine.delay`", "whole numbers"],
        ),
        (
            &["run", "--delay", "uniform:0.5..1.5", "-q"],
            &["`engine.delay`", "whole numbers"],
        ),
        (
            &["run", "--delay", "1e-13*const:1+1*const:2", "-q"],
            &["share"],
        ),
        (
            &["sweep", "--momentum", "0.9,0.9", "-q"],
            &["`grid.momentum[1]`", "repeats grid.momentum[0]"],
        ),
        (
            &["sweep", "--step-size", "1e-4,2e-4,1e-4", "-q"],
            &["`grid.step_size[2]`"],
        ),
        (
            &["theory", "--step-size", "2"],
            &["`--step-size`", "stability limit"],
        ),
        (
            &["theory", "--step-size", "0.99"],
            &["`--step-size`", "stability limit"],
        ),
        (
            &["theory", "--step-size", "0.3", "--delta", "0.9"],
            &["T₂", "`--delta`"],
        ),
        (&["theory", "--spectrum", "1e308,1"], &["`--spectrum`"]),
        (
            &["theory", "--spectrum", "5e-324,1e-324"],
            &["`--spectrum`"],
        ),
        (&["theory", "--delay", "-1"], &["`--delay`"]),
        (
            &["theory", "--delay", "const:2.7"],
            &["`--delay`", "whole numbers"],
        ),
        (
            &["bench", "--batched-runs", "18446744073709551615"],
            &["`--batched-runs`"],
        ),
        (&["bench", "--batched-runs", "0"], &["`--batched-runs`"]),
        (
            &[
                "reproduce",
                "tradeoff",
                "--check-seeds",
                "9223372036854775808",
                "--out",
                "cs",
            ],
            &["`--check-seeds`"],
        ),
        (
            &[
                "reproduce",
                "tradeoff",
                "--check-seeds",
                "1,1",
                "--out",
                "cs",
            ],
            &["`--check-seeds`"],
        ),
        (
            &["run", "--shard", "0/100000000000", "-q", "--out", "sh"],
            &["`--shard"],
        ),
    ];
    for (args, needles) in cases {
        let o = psim_in(dir.path(), args);
        assert_refused(&o, args, needles);
        if args[0] == "theory" {
            assert!(o.stdout.is_empty(), "{args:?} printed before refusing");
        }
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused command created a directory"
    );
}

/// Output errors never panic: a full standard output is exit 2 with a
/// message on every command that prints; an error's cause is said once.
#[test]
fn output_errors_exit_2_and_causes_are_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("no /dev/full: skipping the full-output check");
        return;
    };
    for args in [
        &["theory"][..],
        &["reproduce", "--list"],
        &["run", "--steps", "100", "--runs", "1", "--out", "o1"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_psim"))
            .args(args)
            .current_dir(dir.path())
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        assert_refused(&o, args, &["No space left on device"]);
    }
    let o = psim_in(dir.path(), &["run", "--config", "missing.toml", "-q"]);
    let e = stderr(&o);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
}

// ------------------------------------------------ hostile directories

/// `--force` removes a `points` symlink, never the files it points to;
/// psim's names that are symlinks are removed, not followed.
#[test]
fn force_never_follows_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("victim")).unwrap();
    for f in ["0.json", "0.runs.csv", "traces.csv"] {
        std::fs::write(d.join("victim").join(f), "keep").unwrap();
    }
    let args = ["run", "--steps", "100", "--runs", "1", "-q", "--out", "o"];
    assert!(psim_in(d, &args).status.success());
    if d.join("o/points").is_dir() {
        std::fs::remove_dir_all(d.join("o/points")).unwrap();
    }
    std::os::unix::fs::symlink("../victim", d.join("o/points")).unwrap();
    std::fs::remove_file(d.join("o/traces.csv")).unwrap();
    std::os::unix::fs::symlink("../victim/traces.csv", d.join("o/traces.csv")).unwrap();
    let o = psim_in(d, &[&args[..], &["--force"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["0.json", "0.runs.csv", "traces.csv"] {
        assert_eq!(
            std::fs::read_to_string(d.join("victim").join(f)).unwrap(),
            "keep",
            "{f}"
        );
    }
    assert!(!std::fs::symlink_metadata(d.join("o/traces.csv"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Temporary files are created exclusively: planted `.NAME.tmp-PID-K`
/// symlinks are skipped, never written through.
#[test]
fn planted_temporaries_are_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let target = dir.path().join("config.toml");
    for k in 0..32 {
        let tmp = dir
            .path()
            .join(format!(".config.toml.tmp-{}-{k}", std::process::id()));
        std::os::unix::fs::symlink(&victim, tmp).unwrap();
    }
    psim_scenarios::output::atomic_write(&target, |w| {
        use std::io::Write;
        w.write_all(b"new")
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
}

/// A second writer of a directory is refused by name while the first
/// holds it (the lock is held by the OutputDir), and nothing is removed.
#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["run", "--steps", "100", "--runs", "1", "-q", "--out", "o"];
    assert!(psim_in(d, &args).status.success());
    let held = psim_scenarios::output::OutputDir::existing(&d.join("o")).unwrap();
    let before = std::fs::read_to_string(d.join("o/config.toml")).unwrap();
    let force = [&args[..], &["--force"]].concat();
    let resume = [
        "run", "--steps", "100", "--runs", "1", "-q", "--resume", "o",
    ];
    for a in [&force[..], &resume[..]] {
        let o = psim_in(d, a);
        assert_refused(&o, a, &["in use by another psim process", ".psim.lock"]);
    }
    let o = psim_in(d, &["report", "o"]);
    assert_refused(&o, &["report"], &["in use by another psim process"]);
    assert_eq!(
        std::fs::read_to_string(d.join("o/config.toml")).unwrap(),
        before
    );
    drop(held);
    assert!(psim_in(d, &["report", "o"]).status.success());
}

/// FIFOs and symlinks as inputs: a trace file, a report input, a point
/// file on resume, a shard's files on merge are refused by name, within
/// seconds (never blocked on); a report never embeds a file outside the
/// directory, and a `report.html` symlink is replaced, not followed.
#[test]
fn fifos_and_symlinks_as_inputs_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let quick = Duration::from_secs(20);
    mkfifo(&d.join("fifo"));
    let a = [
        "run",
        "--delay",
        "trace:fifo",
        "--steps",
        "100",
        "-q",
        "--out",
        "t",
    ];
    assert_refused(&run_with_timeout(d, &a, quick), &a, &["FIFO"]);
    let a = [
        "run",
        "--engine",
        "virtual-time",
        "--workers",
        "2",
        "--worker-compute",
        "replay:fifo",
        "-q",
        "--out",
        "t",
    ];
    assert_refused(&run_with_timeout(d, &a, quick), &a, &["FIFO"]);

    let run = [
        "sweep",
        "--momentum",
        "0.7,0.9",
        "--steps",
        "100",
        "--runs",
        "1",
        "-q",
        "--out",
        "o",
    ];
    assert!(psim_in(d, &run).status.success());
    // Report inputs.
    std::fs::write(d.join("secret"), "TOP-SECRET-LINE").unwrap();
    for name in ["traces.csv", "traces.svg", "report.txt", "summary.json"] {
        let p = d.join("o").join(name);
        let saved = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(d.join("secret"), &p).unwrap();
        let o = run_with_timeout(d, &["report", "o"], quick);
        assert_refused(&o, &["report", name], &[name, "symbolic link"]);
        std::fs::remove_file(&p).unwrap();
        mkfifo(&p);
        let o = run_with_timeout(d, &["report", "o"], quick);
        assert_refused(&o, &["report", name], &[name, "FIFO"]);
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, saved).unwrap();
    }
    // report.html as a symlink: replaced, its target untouched.
    std::fs::write(d.join("target.txt"), "keep").unwrap();
    std::os::unix::fs::symlink(d.join("target.txt"), d.join("o/report.html")).unwrap();
    let o = run_with_timeout(d, &["report", "o"], quick);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("target.txt")).unwrap(),
        "keep"
    );
    let html = std::fs::read_to_string(d.join("o/report.html")).unwrap();
    assert!(!html.contains("TOP-SECRET"));
    // A FIFO as a point file on resume.
    let a = [
        "sweep",
        "--momentum",
        "0.7,0.9",
        "--steps",
        "100",
        "--runs",
        "1",
        "-q",
        "--resume",
        "o",
    ];
    if d.join("o/points").is_dir() {
        let p = d.join("o/points/0.json");
        let _ = std::fs::remove_file(&p);
        mkfifo(&p);
        assert_refused(&run_with_timeout(d, &a, quick), &a, &["0.json", "FIFO"]);
    }
}

/// A tampered `shard.json` (index ≥ count, count 0, 2⁶⁴−1, 10¹¹) is
/// refused by `psim merge` and by `--resume`, naming the file.
#[test]
fn tampered_shard_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, out) in ["s0", "s1"].iter().enumerate() {
        let shard = format!("{i}/2");
        let a = [
            "sweep",
            "--momentum",
            "0.7,0.9",
            "--steps",
            "100",
            "--runs",
            "1",
            "-q",
            "--shard",
            &shard,
            "--out",
            out,
        ];
        let o = psim_in(d, &a);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let path = d.join("s0/shard.json");
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (index, count) in [(5u64, 2u64), (0, 0), (0, u64::MAX), (0, 100_000_000_000)] {
        let mut v = good.clone();
        v["index"] = index.into();
        v["count"] = count.into();
        std::fs::write(&path, v.to_string()).unwrap();
        let a = ["merge", "s0", "s1", "--out", "m"];
        assert_refused(&psim_in(d, &a), &a, &["s0/shard.json"]);
        let a = [
            "sweep",
            "--momentum",
            "0.7,0.9",
            "--steps",
            "100",
            "--runs",
            "1",
            "-q",
            "--shard",
            "0/2",
            "--resume",
            "s0",
        ];
        assert_refused(&psim_in(d, &a), &a, &["s0/shard.json"]);
    }
    std::fs::write(&path, good.to_string()).unwrap();
    let o = psim_in(d, &["merge", "s0", "s1", "--out", "m"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `--taus 0:2⁶⁴−1:1` is refused, not a capacity-overflow panic. Needs the
/// one-line change in `src/cmd/experiment.rs` `parse_taus` (`n` computed
/// with `saturating_add`); run with `--ignored` once it is in.
#[test]
fn taus_that_overflow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for x in ["18446744073709551615", "9223372036854775808"] {
        let taus = format!("0:{x}:1");
        let a = [
            "sweep", "--taus", &taus, "--steps", "50", "--runs", "1", "-q",
        ];
        assert_refused(&psim_in(dir.path(), &a), &a, &["`taus`"]);
    }
}

/// A FIFO as `--config` is refused, not blocked on. Needs the one-line
/// change in `src/cmd/experiment.rs` `load` (read through
/// `psim_common::fs::read_regular`), which belongs to the execution-path
/// refactor; run with `--ignored` once it is in.
#[test]
fn a_fifo_as_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("c.toml"));
    let a = ["run", "--config", "c.toml", "-q"];
    let o = run_with_timeout(dir.path(), &a, Duration::from_secs(20));
    assert_refused(&o, &a, &["c.toml", "FIFO"]);
}

// ------------------------------------------------ results that are right

/// Every worker of a cluster run has its mean compute time (worker i of
/// `linear:1,1` takes i+1), in workers.csv and summary.json, and every CSV
/// carries the `worker_compute` column.
#[test]
fn every_worker_has_its_compute_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = [
        "run",
        "--engine",
        "virtual-time",
        "--workers",
        "5",
        "--compute-time",
        "1",
        "--worker-compute",
        "linear:1,1",
        "--steps",
        "2000",
        "--runs",
        "2",
        "-q",
        "--out",
        "w",
    ];
    let o = psim_in(dir.path(), &a);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut r = csv_reader(&dir.path().join("w/workers.csv"));
    let h = r.headers().unwrap().clone();
    let col = |n: &str| {
        h.iter()
            .position(|c| c == n)
            .unwrap_or_else(|| panic!("no {n} in {h:?}"))
    };
    let (w, m, wc) = (col("worker"), col("mean_compute"), col("worker_compute"));
    let mut seen = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let worker: f64 = rec[w].parse().unwrap();
        let mean: f64 = rec[m]
            .parse()
            .unwrap_or_else(|_| panic!("worker {worker}: `{}`", &rec[m]));
        assert!(
            (mean - (worker + 1.0)).abs() < 1e-9,
            "worker {worker}: {mean}"
        );
        assert_eq!(&rec[wc], "linear:1,1");
        seen += 1;
    }
    assert_eq!(seen, 5);
    for f in ["runs.csv", "traces.csv", "staleness.csv"] {
        let mut r = csv_reader(&dir.path().join("w").join(f));
        assert!(
            r.headers().unwrap().iter().any(|c| c == "worker_compute"),
            "{f}"
        );
    }
}

fn csv_reader(p: &Path) -> csv_lite::Reader {
    csv_lite::Reader::new(&std::fs::read_to_string(p).unwrap())
}

/// A minimal CSV reader (quoted fields with commas), enough for psim's files.
mod csv_lite {
    pub struct Reader {
        rows: Vec<Vec<String>>,
    }
    impl Reader {
        pub fn new(text: &str) -> Self {
            let rows = text.lines().filter(|l| !l.is_empty()).map(split).collect();
            Self { rows }
        }
        pub fn headers(&mut self) -> Result<&Vec<String>, ()> {
            self.rows.first().ok_or(())
        }
        pub fn records(&self) -> impl Iterator<Item = Result<&Vec<String>, ()>> {
            self.rows.iter().skip(1).map(Ok)
        }
    }
    fn split(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        out.push(cur);
        out
    }
}

// ------------------------------------------------------- panics never

/// Every command with extreme values: exit 0 or 2, never 101 (panic) or
/// 134 (abort), never "panicked", never blocked.
#[test]
fn no_command_panics_on_extreme_values() {
    let dir = tempfile::tempdir().unwrap();
    let extremes = [
        "0",
        "-1",
        "18446744073709551615",
        "9223372036854775808",
        "1e308",
        "-1e308",
        "5e-324",
        "nan",
        "inf",
        "",
        "1/0",
        "0/0",
    ];
    let mut cases: Vec<Vec<String>> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for x in extremes {
        for flag in [
            "--steps",
            "--runs",
            "--momentum",
            "--step-size",
            "--seed",
            "--record-every",
            "--target-error",
            "--history",
        ] {
            cases.push(s(&[
                "run", flag, x, "--steps", "50", "--runs", "1", "-q", "--out", "o", "--force",
            ]));
        }
        for flag in ["--workers", "--compute-time", "--network-delay"] {
            cases.push(s(&[
                "run",
                "--engine",
                "virtual-time",
                flag,
                x,
                "--steps",
                "50",
                "--runs",
                "1",
                "-q",
                "--out",
                "o",
                "--force",
            ]));
        }
        cases.push(s(&[
            "run",
            "--delay",
            &format!("const:{x}"),
            "--steps",
            "50",
            "--runs",
            "1",
            "-q",
            "--out",
            "o",
            "--force",
        ]));
        cases.push(s(&[
            "run",
            "--delay",
            &format!("{x}*const:1+1*const:2"),
            "--steps",
            "50",
            "--runs",
            "1",
            "-q",
            "--out",
            "o",
            "--force",
        ]));
        cases.push(s(&[
            "sweep",
            "--momentum",
            &format!("0.5,{x}"),
            "--steps",
            "50",
            "--runs",
            "1",
            "-q",
            "--out",
            "o",
            "--force",
        ]));

        cases.push(s(&[
            "run",
            "--shard",
            &format!("0/{x}"),
            "--steps",
            "50",
            "--runs",
            "1",
            "-q",
            "--out",
            "sh",
            "--force",
        ]));
        for flag in [
            "--spectrum",
            "--momentum",
            "--step-size",
            "--delta",
            "--epsilon",
            "--nu",
            "--gamma",
            "--c-d",
            "--gamma1",
            "--delay",
        ] {
            cases.push(s(&["theory", flag, x]));
        }
        for flag in ["--repeat", "--runs", "--batched-runs"] {
            cases.push(s(&["bench", flag, x, "--no-sweep", "--no-numpy"]));
        }
        // Flags whose value is embedded in a larger syntax.
        for (flag, value) in [
            ("--spectrum", format!("4,{x}")),
            ("--tail-fraction", x.to_string()),
            ("--divergence-norm", x.to_string()),
            ("--threads", x.to_string()),
            ("--init", format!("eigenvector:{x}")),
            ("--covariance", format!("1,{x};{x},1")),
            ("--schedule", format!("anneal:{x}:0.5")),
            ("--schedule", format!("anneal:10:{x}")),
            ("--rule", format!("dc-asgd:{x}")),
            ("--delay", format!("uniform:0..{x}")),
            ("--delay", format!("pareto:{x},{x}")),
            ("--delay", format!("lognormal:{x},{x}")),
            ("--delay", format!("poisson:{x}")),
            ("--delay", format!("geometric:{x}")),
        ] {
            cases.push(s(&[
                "run", flag, &value, "--steps", "50", "--runs", "1", "-q", "--out", "o", "--force",
            ]));
        }
        for (flag, value) in [
            ("--consistency", format!("ssp:{x}")),
            ("--worker-compute", format!("linear:{x},1")),
            ("--worker-compute", format!("models:{x};1")),
            ("--worker-compute", format!("draw:exp:{x}")),
            ("--compute-time", format!("exp:{x}")),
        ] {
            cases.push(s(&[
                "run",
                "--engine",
                "virtual-time",
                "--workers",
                "2",
                flag,
                &value,
                "--steps",
                "50",
                "--runs",
                "1",
                "-q",
                "--out",
                "o",
                "--force",
            ]));
        }
        cases.push(s(&[
            "sweep",
            "--optimal-delay",
            "--factor",
            x,
            "--taus",
            "0:4:2",
            "--steps",
            "50",
            "--runs",
            "1",
            "-q",
            "--out",
            "o",
            "--force",
        ]));
        cases.push(s(&[
            "sweep",
            "--engine",
            "virtual-time",
            "--workers",
            &format!("2,{x}"),
            "--steps",
            "50",
            "--runs",
            "1",
            "-q",
            "--out",
            "o",
            "--force",
        ]));
        cases.push(s(&[
            "reproduce",
            "tradeoff",
            "--check-seeds",
            x,
            "--out",
            "cs",
        ]));
        cases.push(s(&[
            "speedup",
            "--workers",
            x,
            "--steps",
            "50",
            "-q",
            "--out",
            "sp",
            "--force",
        ]));
    }
    cases.push(s(&["merge", "nonexistent", "--out", "m"]));
    cases.push(s(&["report", "nonexistent"]));
    cases.push(s(&["run", "--resume", "nonexistent", "-q"]));
    let start = Instant::now();
    for c in &cases {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        // bench with a valid size measures for a while; skip the valid ones.
        if args[0] == "bench"
            && args[2]
                .parse::<u64>()
                .is_ok_and(|v| (1..=1_000_000).contains(&v))
        {
            continue;
        }
        let o = run_with_timeout(dir.path(), &args, Duration::from_secs(60));
        let e = stderr(&o);
        assert!(
            matches!(o.status.code(), Some(0 | 2)),
            "{args:?}: exit {:?}: {e}",
            o.status.code()
        );
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
    eprintln!(
        "{} extreme invocations in {:.1?}",
        cases.len(),
        start.elapsed()
    );
}

// ------------------------------------------------- browser: no script runs

/// A report built from a directory whose SVG and CSV files are hostile
/// (script, event handlers, `javascript:` URLs, entities, external
/// references) runs no script in headless Chromium: the page's DOM after
/// load is unchanged by any handler. Skipped with a message where Chromium
/// is not installed; the page's structure is asserted either way.
#[test]
fn a_hostile_report_runs_no_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = psim_in(
        d,
        &["run", "--steps", "100", "--runs", "1", "-q", "--out", "o"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hostile = "document.title='PWNED';document.body.innerHTML='PWNED'";
    let svgs = [
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"{hostile}\"><script>{hostile}</script></svg>"),
        format!("<svg/onload={hostile}><img/src=x/onerror={hostile}></svg>"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><a href=\"&#106;avascript:alert(1)\"><text>x</text></a><style>@import url(http://example.invalid/x.css);</style><image href=\"http://example.invalid/x.png\"/></svg>".to_string(),
        format!("<svg><foreignObject><iframe srcdoc=\"<script>{hostile}</script>\"></iframe></foreignObject></svg>"),
    ];
    for (name, body) in ["traces.svg", "tradeoff.svg", "pushes.svg", "accuracy.svg"]
        .iter()
        .zip(&svgs)
    {
        std::fs::write(d.join("o").join(name), body).unwrap();
    }
    std::fs::write(
        d.join("o/runs.csv"),
        format!("a,b\n\"<script>{hostile}</script>\",\"<img src=x onerror={hostile}>\"\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("o/report.txt"),
        format!("</pre><script>{hostile}</script>"),
    )
    .unwrap();
    let o = psim_in(d, &["report", "o"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(d.join("o/report.html")).unwrap();
    assert!(html.contains("Content-Security-Policy") && html.contains("script-src 'none'"));
    // Hostile text appears only escaped (`&lt;img …`), never as markup.
    for bad in [
        "<script",
        "<svg",
        "<img src=x",
        "<iframe",
        "<foreignObject",
        "http://example",
    ] {
        assert!(!html.contains(bad), "`{bad}` in the page");
    }
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        eprintln!("chromium not installed: skipping the headless-browser check");
        return;
    };
    let page = format!(
        "file://{}",
        d.join("o/report.html").canonicalize().unwrap().display()
    );
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", d.join("profile").display()))
        .arg(page)
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("psim report"), "no DOM dumped: {}", stderr(&o));
    assert!(
        !dom.contains("<title>PWNED") && !dom.contains(">PWNED<"),
        "a script ran"
    );
}
