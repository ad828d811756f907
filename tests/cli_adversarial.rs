//! The `psim` binary against adversarial input: every refusal is exit code
//! 2 with an error naming the field or flag and its range, never a panic,
//! a hang, a wrong result or files written where they should not be.

use std::path::Path;
use std::process::{Command, Output};

fn psim_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("psim runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs `args` in a fresh directory and checks: exit code 2, every needle
/// in stderr, no panic, and no output directory created.
fn refused(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let o = psim_in(dir.path(), args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: expected `{n}` in: {e}");
    }
    assert!(
        !dir.path().join("psim-out").exists(),
        "{args:?} created an output directory"
    );
}

/// Defect 1: an eigenvector beyond the dimension, on every engine.
#[test]
fn init_beyond_the_dimension_is_a_validation_error_on_every_engine() {
    for engine in ["injected", "virtual-time", "threads", "tasks"] {
        refused(
            &[
                "run",
                "--init",
                "eigenvector:5",
                "--runs",
                "2",
                "--steps",
                "200",
                "--engine",
                engine,
                "-q",
            ],
            &["`objective.init`", "1..=4"],
        );
    }
}

/// Defect 2: delays that a staleness or a virtual clock cannot represent.
#[test]
fn unrepresentable_delays_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("huge.txt");
    std::fs::write(&trace, "1e30\n").unwrap();
    let trace_spec = format!("trace:{}", trace.display());
    for spec in [
        "const:2e19",
        "uniform:0..18446744073709551615",
        trace_spec.as_str(),
    ] {
        refused(
            &[
                "run", "--delay", spec, "--runs", "5", "--steps", "2000", "-q",
            ],
            &["delay`", "9.007199254740992e15"],
        );
    }
    refused(
        &[
            "sweep",
            "--delay",
            "1",
            "--delay",
            "const:2e19",
            "--runs",
            "1",
            "-q",
        ],
        &["`grid.delay[1]`"],
    );
    refused(
        &[
            "run",
            "--engine",
            "virtual-time",
            "--workers",
            "4",
            "--compute-time",
            "const:1e308",
            "--runs",
            "1",
            "--steps",
            "200",
            "-q",
        ],
        &["cluster.compute_time`", "1e9 seconds"],
    );
    refused(
        &[
            "run",
            "--engine",
            "virtual-time",
            "--network-delay",
            "exp:1e300",
            "--runs",
            "1",
            "-q",
        ],
        &["cluster.network_delay`"],
    );
}

/// Defect 3: limits that cannot run in bounded memory, or cannot be
/// stored in config.toml, are refused up front with the field named.
#[test]
fn huge_limits_are_refused_before_any_output() {
    refused(
        &["run", "--steps", "1000000000000", "-q"],
        &["`record_every`", "1000000 trace points"],
    );
    for (flag, field) in [
        ("--steps", "`steps`"),
        ("--seed", "`seed`"),
        ("--record-every", "`record_every`"),
    ] {
        refused(
            &["run", flag, "9223372036854775808", "-q"],
            &[field, "9223372036854775807"],
        );
    }
    refused(
        &[
            "run",
            "--engine",
            "tasks",
            "--workers",
            "100000",
            "--runs",
            "1",
            "-q",
        ],
        &["cluster.workers`", "at most 43648"],
    );
    refused(
        &["run", "--threads", "10000", "--runs", "1", "-q"],
        &["`--threads`", "0 = one per core"],
    );
    // Many runs × many trace points: refused for memory, naming the field.
    refused(
        &[
            "run",
            "--steps",
            "1000000",
            "--record-every",
            "1",
            "--runs",
            "1000",
            "-q",
        ],
        &["`record_every`", "trace points in all"],
    );
}

/// Defect 4: the experiment name may not lead outside psim-out/.
#[test]
fn a_config_name_is_a_plain_file_name() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["../../x", "/tmp/psim-adversarial-abs", "..", "", "a/b"] {
        let cfg = dir.path().join("c.toml");
        let text = format!(
            "name = {name:?}\n[base]\nmomentum = 0.9\nstep_size = 5e-4\nsteps = 100\nruns = 1\nseed = 1\nrecord_every = 10\ntail_fraction = 0.25\ndivergence_norm = 1e6\n[base.objective]\nkind = \"pca\"\nspectrum = [4.0, 3.0, 2.0, 1.0]\n"
        );
        std::fs::write(&cfg, text).unwrap();
        let work = tempfile::tempdir().unwrap();
        let o = psim_in(
            work.path(),
            &["run", "--config", cfg.to_str().unwrap(), "-q"],
        );
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(e.contains("`name`"), "{name}: {e}");
        assert!(std::fs::read_dir(work.path()).unwrap().next().is_none());
        assert!(!dir.path().parent().unwrap().join("x").exists());
        assert!(!Path::new("/tmp/psim-adversarial-abs").exists());
    }
}

/// Defect 5: a bounded sleep beyond the 1 s cap is refused; the cap is
/// otherwise counted in the results.
#[test]
fn sleeps_beyond_the_cap_are_refused_or_counted() {
    refused(
        &[
            "run",
            "--engine",
            "threads",
            "--compute-time",
            "uniform:0..3",
            "--runs",
            "1",
            "-q",
        ],
        &["cluster.compute_time`", "at most 1 s"],
    );
    refused(
        &[
            "run",
            "--engine",
            "tasks",
            "--network-delay",
            "const:2",
            "--runs",
            "1",
            "-q",
        ],
        &["cluster.network_delay`", "at most 1 s"],
    );
    let dir = tempfile::tempdir().unwrap();
    let o = psim_in(
        dir.path(),
        &[
            "run",
            "--engine",
            "threads",
            "--workers",
            "2",
            "--compute-time",
            "0.9*const:0.0001+0.1*exp:100",
            "--steps",
            "40",
            "--runs",
            "1",
            "-q",
            "--out",
            "o",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = std::fs::read_to_string(dir.path().join("o/runs.csv")).unwrap();
    let header: Vec<&str> = runs.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "capped_sleeps").unwrap();
    let capped: u64 = runs
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .parse()
        .unwrap();
    if capped > 0 {
        assert!(out.contains("cut to 1 s"), "{out}");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("o/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["points"][0]["capped_sleeps"], capped);
}

/// Defect 6: --force clears an earlier psim output and refuses anything else.
#[test]
fn force_clears_the_earlier_experiment_and_spares_other_directories() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| psim_in(dir.path(), args);
    let o = run(&[
        "sweep",
        "--optimal-delay",
        "--taus",
        "0:20:10",
        "--runs",
        "2",
        "--steps",
        "500",
        "-q",
        "--out",
        "o",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(run(&["report", "o"]).status.success());
    assert!(dir.path().join("o/tradeoff.svg").exists());
    assert!(dir.path().join("o/report.html").exists());
    let o = run(&[
        "run", "--runs", "2", "--steps", "500", "-q", "--out", "o", "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for gone in ["tradeoff.svg", "report.html"] {
        assert!(!dir.path().join("o").join(gone).exists(), "{gone} left");
    }
    assert!(run(&["report", "o"]).status.success());
    let html = std::fs::read_to_string(dir.path().join("o/report.html")).unwrap();
    assert!(!html.contains("tradeoff.svg"));
    // A directory psim did not write is never cleared.
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep").unwrap();
    let o = run(&["run", "--runs", "1", "-q", "--out", "mine", "--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a psim output directory"),
        "{}",
        stderr(&o)
    );
    assert!(dir.path().join("mine/notes.txt").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("mine")).unwrap().count(),
        1
    );
}

/// Defect 7: every numeric flag of `psim theory` is validated.
#[test]
fn theory_refuses_every_out_of_range_flag() {
    for (flag, value, range) in [
        ("--delta", "-1", "(0, 1)"),
        ("--delta", "1.5", "(0, 1)"),
        ("--gamma", "NaN", "[0, 0.5]"),
        ("--epsilon", "-1", "(0, 1)"),
        ("--c-d", "-1", "> 0"),
        ("--c-d", "inf", "> 0"),
        ("--gamma1", "inf", "> 0"),
        ("--nu", "NaN", "(0, 1)"),
        ("--step-size", "NaN", "> 0"),
        ("--momentum", "NaN", "[0, 1)"),
    ] {
        refused(&["theory", flag, value], &[&format!("`{flag}`"), range]);
    }
    refused(&["theory", "--spectrum", "inf,1"], &["`--spectrum`"]);
}

/// Defect 8: the report embeds only psim's figures, never active content.
#[test]
fn report_leaves_out_foreign_and_malicious_svg() {
    let dir = tempfile::tempdir().unwrap();
    let o = psim_in(
        dir.path(),
        &["run", "--runs", "1", "--steps", "200", "-q", "--out", "o"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let d = dir.path().join("o");
    std::fs::write(
        d.join("evil.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert('x')</script></svg>",
    )
    .unwrap();
    // A psim file name with active content in it is left out too.
    std::fs::write(
        d.join("traces.svg"),
        "<svg><circle r=\"1\" onclick=\"alert('y')\"/><a href=\"javascript:alert('z')\">z</a></svg>",
    )
    .unwrap();
    let o = psim_in(dir.path(), &["report", "o"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    for bad in ["<script", "alert(", "onclick", "javascript:", "evil.svg"] {
        assert!(!html.contains(bad), "`{bad}` in the report");
    }
}

/// Defect 9: bench and --taus refuse bad counts with the flag and the cap.
#[test]
fn bench_and_taus_name_the_flag_and_the_cap() {
    refused(
        &["bench", "--runs", "0", "--no-sweep"],
        &["`--runs`", "[1,"],
    );
    refused(
        &["bench", "--repeat", "0", "--no-sweep"],
        &["`--repeat`", "[1,"],
    );
    refused(
        &["sweep", "--taus", "0:100000:1", "-q"],
        &["`taus`", "at most 10001 delays"],
    );
}

/// Second review (policies, Parquet, merge): an update that could never
/// end in bounded time is refused (it hung, deaf to Ctrl-C, at
/// `rennala:2⁶⁴−1`); `--parquet` on a shard, whose tables are partial, is
/// refused naming `psim merge`; the rule's own error keeps the rule's
/// name beside the grid entry.
#[test]
fn second_review_refusals_name_the_field_and_the_range() {
    let vt = [
        "run",
        "--engine",
        "virtual-time",
        "--workers",
        "4",
        "--steps",
        "50",
        "--runs",
        "1",
    ];
    for (policy, range) in [
        ("rennala:18446744073709551615", "B in 1..=1048576"),
        ("rennala:1048577,discard", "B in 1..=1048576"),
        ("buffered:1000000000", "K in 1..=1048576"),
    ] {
        let mut args = vt.to_vec();
        args.extend(["--consistency", policy]);
        refused(&args, &["engine.cluster.consistency", range]);
    }
    refused(
        &[
            "sweep",
            "--taus",
            "0:5:1",
            "--steps",
            "5",
            "--runs",
            "1",
            "--parquet",
            "--shard",
            "0/2",
        ],
        &["--parquet", "--shard", "psim merge"],
    );
    let mut args = vt.to_vec();
    args[0] = "sweep";
    args.extend(["--rule", "dc-asgd:0.5", "--consistency", "asp,buffered:2"]);
    refused(&args, &["`rule (with grid.consistency[1] = buffered:2)`"]);
}

/// `psim merge --out` never writes into a shard's directory, and its
/// non-empty-directory error offers no flag it lacks.
#[test]
fn merge_refuses_a_shard_directory_and_a_foreign_one() {
    let dir = tempfile::tempdir().unwrap();
    for i in ["0/2", "1/2"] {
        let out = format!("s{}", &i[..1]);
        let o = psim_in(
            dir.path(),
            &[
                "sweep", "--taus", "0:5:1", "--steps", "5", "--runs", "1", "--shard", i, "--out",
                &out, "--quiet",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = psim_in(dir.path(), &["merge", "s0", "s1", "--out", "s0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("shard.json"), "{}", stderr(&o));
    std::fs::create_dir(dir.path().join("junk")).unwrap();
    std::fs::write(dir.path().join("junk/a"), "user data").unwrap();
    let o = psim_in(dir.path(), &["merge", "s0", "s1", "--out", "junk"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("junk/a")).unwrap(),
        "user data"
    );
    let o = psim_in(dir.path(), &["merge", "s0", "s1", "--out", "m"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A `config.toml` planted as a symlink is named as one on resume (not
/// "no config.toml"), like every other file psim reads back.
#[test]
fn a_config_toml_symlink_is_named_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let o = psim_in(
        dir.path(),
        &[
            "run", "--steps", "10", "--runs", "1", "--out", "r", "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = dir.path().join("r");
    std::fs::rename(r.join("config.toml"), r.join("real.toml")).unwrap();
    std::os::unix::fs::symlink("real.toml", r.join("config.toml")).unwrap();
    let o = psim_in(dir.path(), &["run", "--resume", "r"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("config.toml` is a symbolic link"),
        "{}",
        stderr(&o)
    );
}

/// The second review's settings that ran without effect, or that would run
/// one point twice, each refused naming its field or flag.
#[test]
fn settings_that_cannot_act_are_refused_by_name() {
    let vt = [
        "run",
        "--engine",
        "virtual-time",
        "--compute-time",
        "exp:1",
        "--steps",
        "200",
        "--runs",
        "1",
        "-q",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        vt.iter().copied().chain(extra.iter().copied()).collect()
    };
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        // Rules whose step no applied gradient's staleness reaches.
        (
            with(&[
                "--workers",
                "3",
                "--consistency",
                "rennala:2",
                "--rule",
                "staleness-aware",
            ]),
            &["`rule`"],
        ),
        (
            with(&[
                "--workers",
                "3",
                "--consistency",
                "ksync:3",
                "--rule",
                "dc-asgd:5",
            ]),
            &["`rule`"],
        ),
        (
            with(&[
                "--workers",
                "3",
                "--consistency",
                "bsp",
                "--rule",
                "delay-adaptive:0.5",
            ]),
            &["`rule`"],
        ),
        (
            with(&[
                "--workers",
                "8",
                "--consistency",
                "ringmaster:4",
                "--rule",
                "delay-adaptive",
            ]),
            &["`rule`"],
        ),
        (
            vec![
                "run",
                "--delay",
                "0",
                "--rule",
                "staleness-aware",
                "--steps",
                "20",
                "-q",
            ],
            &["`rule`"],
        ),
        (
            vec![
                "run",
                "--delay",
                "1",
                "--rule",
                "staleness-aware",
                "--steps",
                "20",
                "-q",
            ],
            &["`rule`"],
        ),
        (
            vec![
                "run",
                "--delay",
                "0",
                "--rule",
                "dc-asgd:5",
                "--steps",
                "20",
                "-q",
            ],
            &["`rule`"],
        ),
        (
            vec![
                "run",
                "--delay",
                "uniform:0..20",
                "--rule",
                "delay-adaptive:1e20",
                "--steps",
                "20",
                "-q",
            ],
            &["`rule`"],
        ),
        // Policy parameters beyond their reach.
        (
            with(&["--workers", "4", "--consistency", "ssp:5"]),
            &["consistency", "0..=3"],
        ),
        (
            with(&["--workers", "4", "--consistency", "ringmaster:1000"]),
            &["consistency", "steps"],
        ),
        // compute_time under per-worker models or replayed times.
        (
            vec![
                "run",
                "--engine",
                "virtual-time",
                "--workers",
                "2",
                "--compute-time",
                "5",
                "--worker-compute",
                "models:1;2",
                "--steps",
                "20",
                "-q",
            ],
            &["compute_time", "models"],
        ),
        // Σ given twice.
        (
            vec![
                "run",
                "--covariance",
                "2,1;1,2",
                "--spectrum",
                "4,3",
                "--steps",
                "20",
                "-q",
            ],
            &["--spectrum", "--covariance"],
        ),
        // One law, two spellings; bsp and its twin.
        (
            vec![
                "sweep",
                "--delay",
                "const:3",
                "--delay",
                "uniform:3..3",
                "--steps",
                "20",
                "-q",
            ],
            &["grid.delay[1]"],
        ),
        (
            vec![
                "sweep",
                "--delay",
                "const:3",
                "--delay",
                "0.5*const:3+0.5*const:3",
                "--steps",
                "20",
                "-q",
            ],
            &["grid.delay[1]"],
        ),
        (
            with(&["--workers", "4"])
                .into_iter()
                .map(|a| if a == "run" { "sweep" } else { a })
                .chain(["--consistency", "bsp,ksync:4"])
                .collect(),
            &["grid.consistency[1]"],
        ),
        // Flags of another mode.
        (
            vec![
                "advise",
                "--step-size",
                "5e-4",
                "--delay",
                "const:3",
                "--runs",
                "5",
            ],
            &["--runs", "--confirm"],
        ),
        (
            vec![
                "advise",
                "--step-size",
                "5e-4",
                "--delay",
                "const:3",
                "--seed",
                "9",
            ],
            &["--seed", "--confirm"],
        ),
        (
            vec![
                "advise",
                "--step-size",
                "5e-4",
                "--delay",
                "geometric:1e-300",
            ],
            &["`delay`"],
        ),
        (
            vec!["bench", "--phase-diagram", "--runs", "9"],
            &["--phase-diagram", "--runs"],
        ),
        (
            vec!["bench", "--phase-diagram", "--no-numpy"],
            &["--phase-diagram", "--no-numpy"],
        ),
        // The cluster tradeoff's injected twin has no workers for C.
        (
            vec![
                "reproduce",
                "tradeoff",
                "--engine",
                "virtual-time",
                "--workers",
                "2,4",
                "--compute-time",
                "1",
                "--rule",
                "delay-adaptive",
                "--steps",
                "50",
                "--runs",
                "1",
            ],
            &["delay-adaptive:C"],
        ),
    ];
    for (args, needles) in cases {
        refused(&args, needles);
    }
    // A confirmation that cannot run is refused before anything is printed.
    let dir = tempfile::tempdir().unwrap();
    let o = psim_in(
        dir.path(),
        &[
            "advise",
            "--step-size",
            "5e-4",
            "--delay",
            "const:3",
            "--confirm",
            "--runs",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        o.stdout.is_empty(),
        "printed before refusing: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A list of momenta may start with a minus.
    let o = psim_in(
        dir.path(),
        &[
            "sweep",
            "--momentum",
            "-0.5,0.5",
            "--steps",
            "10",
            "--runs",
            "1",
            "-q",
            "--out",
            "m",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// History settings in a config file that no delay reaches are refused as
/// the flags are.
#[test]
fn history_settings_no_delay_reaches_are_refused_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = psim_in(
        dir.path(),
        &["run", "--steps", "10", "--runs", "1", "-q", "--out", "a"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cfg = std::fs::read_to_string(dir.path().join("a/config.toml")).unwrap();
    for (from, to, field) in [
        ("capacity = 1024", "capacity = 5", "engine.history.capacity"),
        (
            "policy = \"clamp\"",
            "policy = \"drop\"",
            "engine.history.policy",
        ),
    ] {
        assert!(cfg.contains(from), "{cfg}");
        std::fs::write(dir.path().join("edited.toml"), cfg.replace(from, to)).unwrap();
        refused(
            &[
                "run",
                "--config",
                dir.path().join("edited.toml").to_str().unwrap(),
                "-q",
            ],
            &[field],
        );
    }
}
