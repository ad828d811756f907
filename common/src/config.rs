//! Validated configuration. Every value a user can set lives here with its
//! allowed range; [`RunConfig::validate`] and friends turn a bad value into a
//! [`ConfigError`] that names the field, the value and the range.
//!
//! All types serialise to TOML so that an output directory's `config.toml`
//! replays a run exactly (`psim run --config DIR/config.toml`). One module
//! per concern: `objective` (the problem), `engine` (engine settings),
//! `run` (one configuration), `experiment` (base, grid, analysis).

mod engine;
mod experiment;
mod objective;
mod run;
pub mod setting;
mod tagged;

pub use engine::*;
pub use experiment::*;
pub use objective::*;
pub use run::*;
pub use setting::Setting;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delay::Delay;

    fn err(cfg: RunConfig) -> String {
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid_and_round_trips_through_toml() {
        let e = Experiment {
            name: "t".into(),
            base: RunConfig::default(),
            grid: Grid {
                momentum: vec![0.5, 0.9],
                delay: vec!["uniform:0..4".parse().unwrap()],
                ..Grid::default()
            },
            tradeoff: Some(Tolerance::default()),
        };
        e.validate().unwrap();
        let text = toml::to_string(&e).unwrap();
        let back: Experiment = toml::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.points().len(), 2);
    }

    #[test]
    fn a_papers_profile_round_trips_through_toml() {
        let wc: WorkerCompute = "profile:1+1*i^0.5;noise=exp:0.5*i^0.5;period=exp:20;power=uniform:0.5..1.5;up=exp:100;down=exp:10;upload=exp:0.1*i^1;download=const:0.01"
            .parse()
            .unwrap();
        let base = RunConfig {
            engine: EngineConfig::new(
                EngineKind::VirtualTime,
                ClusterConfig {
                    workers: 64,
                    worker_compute: Some(wc.clone()),
                    ..ClusterConfig::default()
                },
            ),
            ..RunConfig::default()
        };
        base.validate().unwrap();
        let text = toml::to_string(&base).unwrap();
        assert!(
            text.contains(&format!("worker_compute = \"{wc}\"")),
            "{text}"
        );
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, base);
        assert_eq!(wc.to_string().parse::<WorkerCompute>().unwrap(), wc);
    }

    #[test]
    fn every_field_names_itself_and_its_range() {
        let d = RunConfig::default;
        let cases: Vec<(RunConfig, &str, &str)> = vec![
            (
                RunConfig {
                    momentum: 1.0,
                    ..d()
                },
                "momentum",
                "(−1, 1)",
            ),
            (
                RunConfig {
                    momentum: -1.0,
                    ..d()
                },
                "momentum",
                "(−1, 1)",
            ),
            (
                RunConfig {
                    momentum: -0.1,
                    rule: crate::RuleKind::Sgd,
                    ..d()
                },
                "momentum",
                "with rule `sgd`",
            ),
            (
                RunConfig {
                    momentum: f64::NAN,
                    ..d()
                },
                "momentum",
                "(−1, 1)",
            ),
            (
                RunConfig {
                    step_size: 0.0,
                    ..d()
                },
                "step_size",
                "> 0",
            ),
            (
                RunConfig {
                    step_size: f64::INFINITY,
                    ..d()
                },
                "step_size",
                "finite",
            ),
            (RunConfig { steps: 0, ..d() }, "steps", "≥ 1"),
            (RunConfig { runs: 0, ..d() }, "runs", "≥ 1"),
            (
                RunConfig {
                    record_every: 0,
                    ..d()
                },
                "record_every",
                "≥ 1",
            ),
            (
                RunConfig {
                    tail_fraction: 0.0,
                    ..d()
                },
                "tail_fraction",
                "(0, 1]",
            ),
            (
                RunConfig {
                    tail_fraction: 1.5,
                    ..d()
                },
                "tail_fraction",
                "(0, 1]",
            ),
            (
                RunConfig {
                    divergence_norm: 0.5,
                    ..d()
                },
                "divergence_norm",
                "> 1",
            ),
            (
                RunConfig {
                    target_error: Some(-1.0),
                    ..d()
                },
                "target_error",
                "> 0",
            ),
            (
                RunConfig {
                    engine: EngineConfig::Injected(InjectedConfig {
                        history: HistoryConfig {
                            capacity: 0,
                            policy: HistoryPolicy::Clamp,
                        },
                        ..Default::default()
                    }),
                    ..d()
                },
                "engine.history.capacity",
                "[1,",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![1.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum",
                "dimension ≥ 2",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![2.0, 2.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum[0]",
                "eigengap",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![2.0, 0.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum[1]",
                "> 0",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        spectrum: vec![1.0, 2.0],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.spectrum[1]",
                "sorted",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        covariance: Some(vec![vec![1.0, 2.0], vec![0.0, 1.0]]),
                        spectrum: vec![],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.covariance[0][1]",
                "symmetric",
            ),
            (
                RunConfig {
                    objective: ObjectiveConfig::Pca(PcaConfig {
                        covariance: Some(vec![vec![1.0, 0.0], vec![0.0]]),
                        spectrum: vec![],
                        ..Default::default()
                    }),
                    ..d()
                },
                "objective.covariance[1]",
                "square",
            ),
        ];
        for (cfg, field, range) in cases {
            let e = err(cfg);
            assert!(
                e.contains(&format!("`{field}`")),
                "expected field {field} in: {e}"
            );
            assert!(e.contains(range), "expected range {range} in: {e}");
        }
    }

    #[test]
    fn grid_errors_name_the_grid_entry() {
        let e = Experiment {
            name: "t".into(),
            base: RunConfig::default(),
            grid: Grid {
                momentum: vec![0.5, 1.2],
                ..Default::default()
            },
            tradeoff: None,
        };
        let msg = e.validate().unwrap_err().to_string();
        assert!(
            msg.contains("grid.momentum[1]") && msg.contains("(−1, 1)"),
            "{msg}"
        );
        let e = Experiment {
            tradeoff: Some(Tolerance { factor: 0.5 }),
            grid: Grid::default(),
            ..e
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tradeoff.factor"));
    }

    #[test]
    fn cluster_validation_and_syntax() {
        let bad = RunConfig {
            engine: EngineConfig::new(
                EngineKind::VirtualTime,
                ClusterConfig {
                    workers: 0,
                    ..Default::default()
                },
            ),
            ..RunConfig::default()
        };
        assert!(err(bad).contains("cluster.workers`"));
        let slow = ClusterConfig {
            workers: 10,
            stragglers: Some(Stragglers {
                fraction: 0.25,
                slowdown: 4.0,
            }),
            ..Default::default()
        };
        slow.validate().unwrap();
        assert_eq!((0..10).filter(|&w| slow.speed_factor(w) == 4.0).count(), 3);
        let bad = ClusterConfig {
            stragglers: Some(Stragglers {
                fraction: 0.5,
                slowdown: 0.5,
            }),
            ..slow.clone()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("slowdown"));
        assert_eq!(
            "ssp:3".parse::<Consistency>().unwrap(),
            Consistency::Ssp { bound: 3 }
        );
        assert_eq!("bsp".parse::<Consistency>().unwrap().to_string(), "bsp");
        assert!("ssp:x"
            .parse::<Consistency>()
            .unwrap_err()
            .to_string()
            .contains("cluster.consistency"));
        assert!("gpu"
            .parse::<EngineKind>()
            .unwrap_err()
            .to_string()
            .contains("`engine`"));
    }

    #[test]
    fn initial_point_syntax() {
        assert_eq!(
            "saddle".parse::<InitialPoint>().unwrap(),
            InitialPoint::Saddle
        );
        assert_eq!(
            "eigenvector:3".parse::<InitialPoint>().unwrap(),
            InitialPoint::Eigenvector(3)
        );
        assert_eq!(
            "vector:1,0".parse::<InitialPoint>().unwrap(),
            InitialPoint::Vector(vec![1.0, 0.0])
        );
        for bad in ["eigenvector:0", "vector:0,0", "nowhere", "vector:a"] {
            assert!(bad
                .parse::<InitialPoint>()
                .unwrap_err()
                .to_string()
                .contains("objective.init"));
        }
    }

    #[test]
    fn an_engine_setting_cannot_be_written_for_another_engine() {
        // A delay model on a cluster engine, or workers on the injected
        // engine, is not a value the types can hold: the config file is refused.
        let text = |engine: &str| {
            format!(
                "name = \"t\"\n[base]\nmomentum = 0.9\nstep_size = 0.001\nsteps = 10\nruns = 1\nseed = 1\nrecord_every = 1\ntail_fraction = 0.5\ndivergence_norm = 10.0\n[base.objective]\nkind = \"pca\"\nspectrum = [2.0, 1.0]\n{engine}"
            )
        };
        let ok = text("[base.engine]\nkind = \"injected\"\ndelay = \"const:3\"\n");
        let e: Experiment = toml::from_str(&ok).unwrap();
        assert_eq!(e.base.injected().unwrap().delay, Delay::constant(3));
        for (bad, key) in [
            ("[base.engine]\nkind = \"virtual-time\"\ndelay = \"const:3\"\n[base.engine.cluster]\nworkers = 2\ncompute_time = \"const:1\"\nnetwork_delay = \"const:0\"\nconsistency = \"asp\"\n", "delay"),
            ("[base.engine]\nkind = \"injected\"\ndelay = \"const:3\"\nworkers = 4\n", "workers"),
            ("[base.engine]\nkind = \"tasks\"\nbackend = \"lock\"\n[base.engine.cluster]\nworkers = 2\ncompute_time = \"const:1\"\nnetwork_delay = \"const:0\"\nconsistency = \"asp\"\n", "backend"),
        ] {
            let err = toml::from_str::<Experiment>(&text(bad)).unwrap_err().to_string();
            assert!(err.contains(key), "expected `{key}` named in: {err}");
        }
    }

    #[test]
    fn grid_axes_must_suit_the_engine() {
        let mut e = Experiment {
            name: "t".into(),
            base: RunConfig::default(),
            grid: Grid {
                workers: vec![1, 2],
                ..Grid::default()
            },
            tradeoff: None,
        };
        let msg = e.validate().unwrap_err().to_string();
        assert!(
            msg.contains("grid.workers") && msg.contains("cluster engines"),
            "{msg}"
        );
        e.base.engine = EngineConfig::new(EngineKind::VirtualTime, ClusterConfig::default());
        e.validate().unwrap();
        assert_eq!(e.points().len(), 2);
        assert_eq!(e.points()[1].cluster().unwrap().workers, 2);
        e.grid.delay = vec![Delay::constant(1)];
        let msg = e.validate().unwrap_err().to_string();
        assert!(
            msg.contains("grid.delay") && msg.contains("injected"),
            "{msg}"
        );
    }
}
