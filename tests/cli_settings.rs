//! Every setting honoured or refused: a table-driven test over command ×
//! engine × flag, and over the keys of a config file.
//!
//! For each combination psim must either exit 2 naming the flag (or key),
//! or exit 0 with results that differ from the same command without it.
//! "Results" are the numbers psim writes (CSV and JSON) with the echo of the
//! configuration removed: wall-clock times, and the labels that only say
//! what a point was (its delay, worker count, compute time, consistency,
//! seed, run and step counts). So a flag that is recorded but not honoured
//! fails here.
//!
//! The test keeps its own table of flags and alternative values: it does not
//! read psim's table of what each command accepts, so it checks that table
//! rather than repeating it. The few settings whose effect cannot show in
//! deterministic numbers are listed in [`special`] with the check used
//! instead.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn psim(args: &[String], out: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .arg("--quiet")
        .arg("--out")
        .arg(out)
        .output()
        .expect("running psim");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Keys that only echo the configuration or measure wall-clock time.
fn is_echo(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("second")
        || k.contains("wall")
        || k.contains("time_to_target")
        || k.contains("updates_per_second")
        || [
            "delay",
            "mean_delay",
            "workers",
            "compute_time",
            "consistency",
            "seed",
            "runs",
            "steps",
            "threads",
            "name",
            "psim_version",
            "point",
        ]
        .contains(&k.as_str())
}

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !is_echo(k));
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// The results in `dir`: every CSV and JSON file with echo columns and keys removed.
fn results(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if name.ends_with(".json") {
            let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            strip(&mut v);
            out.insert(name, v.to_string());
        } else if name.ends_with(".csv") {
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
            let keep: Vec<usize> = (0..header.len()).filter(|&i| !is_echo(header[i])).collect();
            let body: Vec<String> = lines
                .map(|l| {
                    let cells: Vec<&str> = l.split(',').collect();
                    keep.iter()
                        .filter_map(|&i| cells.get(i).copied())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            out.insert(name, body.join("\n"));
        }
    }
    // Speedup's tables are wall-clock figures (stripped above); its
    // deterministic numbers are the per-point mean traces of one worker.
    if dir.join("speedup.csv").exists() {
        for p in 0.. {
            let Ok(text) = std::fs::read_to_string(dir.join(format!("points/{p}.json"))) else {
                break;
            };
            let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let mut trace = v["trace"].take();
            strip(&mut trace);
            out.insert(format!("points/{p}.trace"), trace.to_string());
        }
    }
    out
}

fn mean_wall_seconds(dir: &Path) -> f64 {
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    // A sweep's summary has the point's figures; a scenario whose summary
    // is its own analysis (speedup) has them in its first point file.
    read("summary.json")["points"][0]["mean_wall_seconds"]
        .as_f64()
        .or_else(|| read("points/0.json")["summary"]["mean_wall_seconds"].as_f64())
        .unwrap_or(0.0)
}

/// A command under test: its arguments without the flag being varied.
struct Case {
    label: String,
    args: Vec<(String, Option<String>)>,
    wall_clock: bool,
}

/// Whether `flag` is left out for `case`: `--engine` where the base already
/// names an engine (switching it back and forth is covered by the cases
/// that start on the default engine, and a switch from one deterministic
/// single-worker engine to another legitimately gives the same numbers).
fn skipped(case: &Case, flag: &str) -> bool {
    flag == "--engine"
        && (case.args.iter().any(|(f, _)| f == "--engine")
            || case.label.contains("momentum-vs-workers")
            || case.label.contains("--optimal-delay"))
}

impl Case {
    fn new(label: &str, cmd: &[&str], flags: &[(&str, &str)], wall_clock: bool) -> Self {
        let mut args: Vec<(String, Option<String>)> =
            cmd.iter().map(|c| (c.to_string(), None)).collect();
        args.extend(
            flags
                .iter()
                .map(|(f, v)| (f.to_string(), Some(v.to_string()))),
        );
        Self {
            label: label.into(),
            args,
            wall_clock,
        }
    }

    /// The arguments with `flag` set to `value` (replacing a base value).
    fn with(&self, flag: &str, value: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        let mut done = false;
        for (f, v) in &self.args {
            if f == flag {
                if let Some(v) = value {
                    out.push(f.clone());
                    out.push(v.into());
                }
                done = true;
                continue;
            }
            out.push(f.clone());
            if let Some(v) = v {
                out.push(v.clone());
            }
        }
        if !done {
            if let Some(v) = value {
                out.push(flag.into());
                out.push(v.into());
            }
        }
        out
    }
}

/// Every flag that sets a value, with an alternative value chosen to make a
/// difference wherever the flag applies.
const FLAGS: &[(&str, &str)] = &[
    ("--momentum", "0.5"),
    ("--step-size", "0.002"),
    ("--steps", "330"),
    ("--runs", "3"),
    ("--seed", "7"),
    ("--record-every", "20"),
    ("--tail-fraction", "0.6"),
    ("--divergence-norm", "1.0001"),
    ("--target-error", "0.99999"),
    ("--record-params", "true"),
    ("--rule", "nesterov"),
    ("--schedule", "anneal:50:0.1"),
    ("--spectrum", "5,3,2,1"),
    ("--covariance", "2,1;1,2"),
    ("--data", "uniform"),
    ("--init", "random"),
    ("--engine", "virtual-time"),
    ("--delay", "const:7"),
    ("--taus", "0:8:4"),
    ("--history", "2"),
    ("--history-policy", "drop"),
    ("--workers", "3"),
    ("--compute-time", "exp:0.001"),
    ("--network-delay", "exp:0.001"),
    ("--consistency", "bsp"),
    ("--worker-compute", "linear:20,1"),
    ("--record-pushes", "true"),
    ("--backend", "channel"),
    ("--on-worker-failure", "continue"),
    ("--stragglers", "1:11"),
    ("--factor", "1.01"),
];

/// Settings whose effect cannot show in deterministic numbers, and the check
/// that replaces "the results differ":
/// - on threads and tasks, `--compute-time`, `--network-delay`,
///   `--worker-compute` (worker 0's factor 20) and `--stragglers` (the one
///   worker 11× slower: 10 × 0.1 ms more per step) only
///   change how long the (deterministic, one-worker) run takes: the mean
///   wall time per run must grow by at least half the expected sleep;
/// - `--backend` and `--on-worker-failure` change how pushes travel and
///   what a panic does, not the numbers of a run without panics; they are
///   exercised on both back-ends and with a panicking objective in
///   `tests/engine_threads.rs` (every_backend_…, worker_failure_…), so here
///   they need only be accepted without error where they apply.
/// - on threads and tasks with one worker, `--consistency` has nothing to
///   order; SSP's bound and BSP's barrier are checked with many workers in
///   `tests/engine_threads.rs` and `tests/server_ssp.rs`.
fn special(flag: &str, wall_clock: bool) -> Option<&'static str> {
    match flag {
        "--compute-time" | "--network-delay" | "--worker-compute" | "--stragglers"
            if wall_clock =>
        {
            Some("sleeps")
        }
        "--consistency" if wall_clock => Some("no-numeric-effect"),
        "--backend" | "--on-worker-failure" => Some("no-numeric-effect"),
        _ => None,
    }
}

fn cases() -> Vec<Case> {
    let common = [
        ("--runs", "2"),
        ("--steps", "300"),
        ("--record-every", "50"),
    ];
    let mut v = Vec::new();
    for cmd in ["run", "sweep"] {
        // The injected engine with a delay and a history it reaches, so
        // that the history flags have something to do.
        let mut inj = common.to_vec();
        inj.extend([("--delay", "uniform:0..6"), ("--history", "5")]);
        v.push(Case::new(&format!("{cmd} injected"), &[cmd], &inj, false));
        // Virtual time is deterministic with any worker count.
        let mut vt = common.to_vec();
        vt.extend([
            ("--engine", "virtual-time"),
            ("--workers", "2"),
            ("--compute-time", "exp:1"),
        ]);
        v.push(Case::new(
            &format!("{cmd} virtual-time"),
            &[cmd],
            &vt,
            false,
        ));
        // One real worker: deterministic numbers, real sleeps.
        for engine in ["threads", "tasks"] {
            let mut w = common.to_vec();
            w.extend([
                ("--engine", engine),
                ("--workers", "1"),
                ("--compute-time", "const:0.0001"),
            ]);
            v.push(Case::new(&format!("{cmd} {engine}"), &[cmd], &w, true));
        }
    }
    // The sweep with the tradeoff analysis, where --factor applies.
    v.push(Case::new(
        "sweep --optimal-delay",
        &["sweep", "--optimal-delay"],
        &[
            ("--runs", "2"),
            ("--steps", "300"),
            ("--momentum", "0.9"),
            ("--taus", "0:200:100"),
        ],
        false,
    ));
    let r = |name: &str, flags: &[(&str, &str)], wall: bool| {
        Case::new(
            &format!("reproduce {name}"),
            &["reproduce", name],
            flags,
            wall,
        )
    };
    v.push(r(
        "tradeoff",
        &[("--runs", "2"), ("--steps", "300"), ("--momentum", "0.9")],
        false,
    ));
    v.push(r(
        "three-phases",
        &[("--runs", "2"), ("--steps", "400")],
        false,
    ));
    v.push(r(
        "saddle-escape",
        &[("--runs", "2"), ("--steps", "300"), ("--momentum", "0,0.9")],
        false,
    ));
    v.push(r("spiky", &[("--runs", "2"), ("--steps", "100")], false));
    // A step budget small enough that the batch-size rows hit it.
    v.push(r(
        "escape-times",
        &[
            ("--runs", "2"),
            ("--steps", "5"),
            ("--step-size", "0.1,0.03"),
        ],
        false,
    ));
    // Largest worker count 4: the axis is 1, 2, 4 (3 would give 1, 2).
    v.push(r(
        "momentum-vs-workers",
        &[("--runs", "1"), ("--steps", "60"), ("--workers", "4")],
        false,
    ));
    // Its fixed n = 1…10⁴ √i workers; a short budget keeps it quick.
    v.push(r(
        "heterogeneous",
        &[("--runs", "1"), ("--steps", "100")],
        false,
    ));
    v.push(r(
        "phase-diagram",
        &[("--runs", "2"), ("--steps", "100"), ("--momentum", "0,0.9")],
        false,
    ));
    // One real worker reaching the target: updates to ε are deterministic,
    // the times are not (and are stripped as wall-clock figures).
    v.push(r(
        "speedup",
        &[
            ("--runs", "1"),
            ("--steps", "300"),
            ("--workers", "1"),
            ("--compute-time", "const:0.0001"),
            ("--target-error", "0.5"),
        ],
        true,
    ));
    v
}

/// Every named scenario of the catalogue is one of the cases above: a new
/// scenario fails here until its settings are enumerated.
#[test]
fn every_catalogued_scenario_is_a_case() {
    let labels: Vec<String> = cases().into_iter().map(|c| c.label).collect();
    for s in psim_scenarios::catalogue::catalogue() {
        let label = format!("reproduce {}", s.name());
        assert!(
            labels.contains(&label),
            "scenario {} is in the catalogue but not enumerated in cases()",
            s.name()
        );
    }
}

#[test]
fn every_flag_changes_the_results_or_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = cases();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (ci, case) in cases.iter().enumerate() {
        let base_dir = tmp.path().join(format!("c{ci}-base"));
        let (code, err) = psim(&case.with("", None), &base_dir);
        assert_eq!(code, 0, "{}: the base command fails: {err}", case.label);
        let base = results(&base_dir);
        let base_wall = mean_wall_seconds(&base_dir);
        for (fi, &(flag, alt)) in FLAGS.iter().enumerate() {
            if skipped(case, flag) {
                continue;
            }
            let dir = tmp.path().join(format!("c{ci}-f{fi}"));
            let args = case.with(flag, Some(alt));
            let (code, err) = psim(&args, &dir);
            checked += 1;
            let verdict = match code {
                2 if err.contains(flag) => continue,
                2 => format!("exit 2 without naming {flag}: {err}"),
                0 => match special(flag, case.wall_clock) {
                    Some("no-numeric-effect") => continue,
                    Some("sleeps") => {
                        // 300 steps × 1 ms mean per gradient (or push).
                        let wall = mean_wall_seconds(&dir);
                        if wall - base_wall > 0.5 * 300.0 * 1e-3 {
                            continue;
                        }
                        format!("mean wall time {wall:.4} s vs {base_wall:.4} s: the sleep did not happen")
                    }
                    _ => {
                        if results(&dir) != base {
                            continue;
                        }
                        "exit 0 with unchanged results".into()
                    }
                },
                c => format!("exit {c}: {err}"),
            };
            failures.push(format!("{} {flag} {alt}: {verdict}", case.label));
        }
    }
    assert!(checked > 250, "only {checked} combinations checked");
    // Every flag of psim's one table is exercised here: a new setting fails
    // this test until it is added to FLAGS above.
    for (flag, _) in psim::cmd::experiment::FLAGS {
        assert!(
            FLAGS.iter().any(|(f, _)| f == flag),
            "{flag} is in psim's flag table but not exercised by this test"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} combinations neither changed the results nor were refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The five commands of the issue, each of which used to exit 0 unchanged.
#[test]
fn the_reported_silent_flags_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for (i, (args, named)) in [
        (
            s(&[
                "reproduce",
                "tradeoff",
                "--engine",
                "virtual-time",
                "--workers",
                "4",
                "--runs",
                "2",
                "--steps",
                "200",
                "--taus",
                "0:160:10",
            ]),
            "--taus",
        ),
        (
            s(&[
                "run",
                "--engine",
                "virtual-time",
                "--workers",
                "8",
                "--delay",
                "pareto:1000,0.5",
            ]),
            "--delay",
        ),
        (
            s(&[
                "reproduce",
                "three-phases",
                "--engine",
                "threads",
                "--workers",
                "4",
            ]),
            "--engine",
        ),
        (s(&["reproduce", "spiky", "--rule", "sgd"]), "--rule"),
        (
            s(&["reproduce", "escape-times", "--momentum", "0.9"]),
            "--momentum",
        ),
        (
            s(&["reproduce", "saddle-escape", "--target-error", "0.1"]),
            "--target-error",
        ),
        (
            s(&["reproduce", "three-phases", "--factor", "3"]),
            "--factor",
        ),
        (s(&["run", "--factor", "3"]), "--factor"),
        (s(&["sweep", "--factor", "3"]), "--factor"),
        (s(&["run", "--momentum", "0.5,0.9"]), "--momentum"),
        (
            s(&["reproduce", "spiky", "--scalar-engine"]),
            "--scalar-engine",
        ),
        (
            s(&["run", "--engine", "virtual-time", "--scalar-engine"]),
            "--scalar-engine",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("r{i}"));
        let (code, err) = psim(&args, &dir);
        assert_eq!(code, 2, "{args:?} should be refused: {err}");
        assert!(
            err.contains(named),
            "{args:?}: the error should name {named}: {err}"
        );
        assert!(
            !dir.exists(),
            "{args:?}: a refused command must not create its output directory"
        );
    }
}

fn edit(config: &Path, key: &str, value: toml::Value) -> String {
    let mut doc: toml::Value = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let mut at = &mut doc;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        at = at
            .as_table_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert(toml::Value::Table(Default::default()));
    }
    at.as_table_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].to_string(), value);
    toml::to_string(&doc).unwrap()
}

/// Every key of a config file, on `psim run --config`: a changed value
/// changes the results, and a key the engine or scenario does not have is
/// refused by name.
#[test]
fn every_config_key_changes_the_results_or_is_refused_by_name() {
    use toml::Value as T;
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, args: &[&str]| -> PathBuf {
        let dir = tmp.path().join(name);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (code, err) = psim(&args, &dir);
        assert_eq!(code, 0, "{err}");
        dir
    };
    let inj = run(
        "inj",
        &[
            "run",
            "--runs",
            "2",
            "--steps",
            "300",
            "--delay",
            "uniform:0..6",
            "--history",
            "5",
        ],
    );
    let vt = run(
        "vt",
        &[
            "run",
            "--runs",
            "2",
            "--steps",
            "300",
            "--engine",
            "virtual-time",
            "--workers",
            "2",
            "--compute-time",
            "exp:1",
        ],
    );
    let e3 = run(
        "e3",
        &["reproduce", "three-phases", "--runs", "2", "--steps", "400"],
    );
    let s = |x: &str| T::String(x.into());
    let cases: Vec<(&Path, &str, T, Option<&str>)> = vec![
        // (config, key, value, None = must change results / Some(name) = refused naming it)
        (&inj, "base.momentum", T::Float(0.5), None),
        (&inj, "base.step_size", T::Float(0.002), None),
        (&inj, "base.steps", T::Integer(330), None),
        (&inj, "base.runs", T::Integer(3), None),
        (&inj, "base.seed", T::Integer(7), None),
        (&inj, "base.record_every", T::Integer(20), None),
        (&inj, "base.tail_fraction", T::Float(0.6), None),
        (&inj, "base.divergence_norm", T::Float(1.0001), None),
        (&inj, "base.target_error", T::Float(0.9), None),
        (&inj, "base.rule", s("nesterov"), None),
        (&inj, "base.schedule", s("anneal:50:0.1"), None),
        (&inj, "base.objective.data", s("uniform"), None),
        (&inj, "base.objective.init", s("random"), None),
        (&inj, "base.engine.delay", s("const:7"), None),
        (&inj, "base.engine.history.capacity", T::Integer(2), None),
        (&inj, "base.engine.history.policy", s("drop"), None),
        (&inj, "tradeoff.factor", T::Float(2.0), None),
        (&inj, "base.engine.workers", T::Integer(4), Some("workers")),
        (&inj, "base.engine.backend", s("channel"), Some("backend")),
        (&inj, "base.delay", s("const:3"), Some("delay")),
        (
            &inj,
            "grid.workers",
            T::Array(vec![T::Integer(1), T::Integer(2)]),
            Some("grid.workers"),
        ),
        (&inj, "base.bogus", T::Integer(1), Some("bogus")),
        (&vt, "base.engine.cluster.workers", T::Integer(3), None),
        (&vt, "base.engine.cluster.compute_time", s("exp:0.2"), None),
        (&vt, "base.engine.cluster.network_delay", s("exp:1"), None),
        (&vt, "base.engine.cluster.consistency", s("bsp"), None),
        (
            &vt,
            "base.engine.cluster.worker_compute",
            s("linear:1,1"),
            None,
        ),
        (
            &vt,
            "base.engine.cluster.worker_compute",
            T::Array(vec![s("exp:1"), s("const:3")]),
            // Its models replace the base's compute_time (exp:1), which
            // would be ignored.
            Some("compute_time"),
        ),
        (
            &vt,
            "base.engine.cluster.worker_compute",
            s("models:exp:1"),
            Some("worker_compute"),
        ),
        (
            &vt,
            "base.engine.cluster.record_pushes",
            T::Boolean(true),
            None,
        ),
        (
            &vt,
            "grid.workers",
            T::Array(vec![T::Integer(1), T::Integer(3)]),
            None,
        ),
        (&vt, "base.engine.delay", s("const:3"), Some("delay")),
        (
            &vt,
            "base.engine.history",
            T::Table(Default::default()),
            Some("history"),
        ),
        (
            &vt,
            "grid.delay",
            T::Array(vec![s("const:1")]),
            Some("grid.delay"),
        ),
        (&e3, "base.momentum", T::Float(0.5), None),
        (&e3, "base.rule", s("sgd"), Some("base.rule")),
        (
            &e3,
            "base.target_error",
            T::Float(0.5),
            Some("base.target_error"),
        ),
        (
            &e3,
            "base.engine.delay",
            s("const:3"),
            Some("base.engine.delay"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (config, key, value, refused)) in cases.into_iter().enumerate() {
        let file = tmp.path().join(format!("k{i}.toml"));
        std::fs::write(&file, edit(&config.join("config.toml"), key, value)).unwrap();
        let dir = tmp.path().join(format!("k{i}"));
        let args = vec![
            "run".to_string(),
            "--config".into(),
            file.display().to_string(),
        ];
        let (code, err) = psim(&args, &dir);
        let ok = match (code, refused) {
            (2, Some(name)) => err.contains(name),
            (0, None) => results(&dir) != results(config),
            _ => false,
        };
        if !ok {
            failures.push(format!("{} {key}: exit {code} {err}", config.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Replaying any output directory's config.toml reproduces its results.
#[test]
fn replaying_config_toml_reproduces_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, args) in [
        vec![
            "run",
            "--runs",
            "2",
            "--steps",
            "300",
            "--delay",
            "uniform:0..6",
        ],
        vec![
            "sweep",
            "--runs",
            "2",
            "--steps",
            "300",
            "--engine",
            "virtual-time",
            "--workers",
            "1,3",
            "--consistency",
            "asp,bsp",
        ],
        vec![
            "reproduce",
            "tradeoff",
            "--runs",
            "2",
            "--steps",
            "300",
            "--engine",
            "virtual-time",
            "--workers",
            "1,11",
        ],
        vec!["reproduce", "spiky", "--runs", "2", "--steps", "100"],
        vec![
            "speedup",
            "--workers",
            "1,2",
            "--momentum",
            "0.5",
            "--runs",
            "1",
            "--steps",
            "200",
            "--compute-time",
            "0",
            "--target-error",
            "0.5",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let first = tmp.path().join(format!("a{i}"));
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let (code, err) = psim(&args, &first);
        assert_eq!(code, 0, "{args:?}: {err}");
        let again = tmp.path().join(format!("b{i}"));
        let replay = vec![
            "run".to_string(),
            "--config".into(),
            first.join("config.toml").display().to_string(),
        ];
        let (code, err) = psim(&replay, &again);
        assert_eq!(code, 0, "replay of {args:?}: {err}");
        let (a, b) = (results(&first), results(&again));
        assert!(!a.is_empty(), "{args:?} wrote no results");
        if args[0] == "speedup" {
            // Real threads: the replay must run the same grid (one row per
            // μ × workers), its timings differ.
            let rows = |d: &Path| {
                std::fs::read_to_string(d.join("speedup.csv"))
                    .unwrap()
                    .lines()
                    .count()
            };
            assert_eq!(
                rows(&first),
                rows(&again),
                "speedup replay ran another grid"
            );
            assert_eq!(rows(&first), 3, "header and one row per worker count");
        } else {
            assert_eq!(a, b, "replay of {args:?} differs");
        }
    }
}
