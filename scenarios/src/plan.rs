//! What an experiment runs: a [`Plan`] of points, each a configuration with
//! what to keep of its runs. A plain sweep's points are built on demand from
//! its grid's axes ([`Points`]), so a plan of 10⁶ points costs the memory of
//! its axes, not of 10⁶ configurations.

use crate::executor::fnv1a;
use crate::sweep::SweepError;
use psim_common::{GridAxes, RunConfig};
use std::borrow::Cow;

/// One point of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPoint {
    /// The configuration its runs use (`config.runs` runs).
    pub config: RunConfig,
    /// Run r starts from the final parameters of run r of this earlier
    /// point (E5's staged noise), instead of the objective's initial point.
    pub start_from: Option<usize>,
    /// Keep every run's final parameters (columns `param_0…` of the runs
    /// file), for analyses that look at the iterate itself.
    pub keep_params: bool,
}

impl PlannedPoint {
    /// A point of independent runs from the objective's initial point.
    pub fn new(config: RunConfig) -> Self {
        Self {
            config,
            start_from: None,
            keep_params: false,
        }
    }
}

/// A run of consecutive points: listed one by one (named scenarios), or a
/// grid whose point `i` is built when asked for (plain sweeps).
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Listed(Vec<PlannedPoint>),
    Grid {
        base: Box<RunConfig>,
        axes: GridAxes,
    },
}

impl Segment {
    fn len(&self) -> usize {
        match self {
            Segment::Listed(v) => v.len(),
            Segment::Grid { axes, .. } => axes.len(),
        }
    }
}

/// The points of a plan, in the order the analysis reads them. Built from
/// a list (`collect()`) or from a grid ([`Points::grid`]); segments
/// concatenate with [`Points::extend`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Points {
    segments: Vec<Segment>,
}

impl Points {
    /// The points of a grid over `base` (independent runs; the final
    /// parameters kept when the configuration records them).
    pub fn grid(base: RunConfig, axes: GridAxes) -> Self {
        Self {
            segments: vec![Segment::Grid {
                base: Box::new(base),
                axes,
            }],
        }
    }

    /// Points in all.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Segment::len).sum()
    }

    /// Whether there is no point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s points after these.
    pub fn extend(&mut self, other: Points) {
        self.segments.extend(other.segments);
    }

    /// The segment holding point `p`, and `p`'s index in it.
    fn locate(&self, mut p: usize) -> (&Segment, usize) {
        for s in &self.segments {
            let n = s.len();
            if p < n {
                return (s, p);
            }
            p -= n;
        }
        panic!("plan point out of range (a bug: indices come from the plan)")
    }

    /// Point `p` (< `len()`): borrowed when listed, built when on a grid.
    pub fn get(&self, p: usize) -> Cow<'_, PlannedPoint> {
        match self.locate(p) {
            (Segment::Listed(v), i) => Cow::Borrowed(&v[i]),
            (Segment::Grid { base, axes }, i) => {
                let config = axes.point(base, i);
                Cow::Owned(PlannedPoint {
                    keep_params: config.record_params,
                    ..PlannedPoint::new(config)
                })
            }
        }
    }

    /// The point `p` starts from, without building it.
    pub fn start_from(&self, p: usize) -> Option<usize> {
        match self.locate(p) {
            (Segment::Listed(v), i) => v[i].start_from,
            (Segment::Grid { .. }, _) => None,
        }
    }

    /// Runs of point `p`, without building it (a grid never varies runs).
    pub fn runs(&self, p: usize) -> u64 {
        match self.locate(p) {
            (Segment::Listed(v), i) => v[i].config.runs as u64,
            (Segment::Grid { base, .. }, _) => base.runs as u64,
        }
    }

    /// Every point in order.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, PlannedPoint>> + '_ {
        (0..self.len()).map(|p| self.get(p))
    }
}

impl FromIterator<PlannedPoint> for Points {
    fn from_iter<I: IntoIterator<Item = PlannedPoint>>(iter: I) -> Self {
        Self {
            segments: vec![Segment::Listed(iter.into_iter().collect())],
        }
    }
}

impl From<Vec<PlannedPoint>> for Points {
    fn from(v: Vec<PlannedPoint>) -> Self {
        Self {
            segments: vec![Segment::Listed(v)],
        }
    }
}

/// What to run: points, and what the analysis needs of each run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The points, in the order the analysis reads them.
    pub points: Points,
    /// Names of the per-run columns the scenario measures on each finished
    /// run (its `measure`), written to the runs file after the fixed columns.
    pub columns: Vec<String>,
    /// Whether the analysis reads the runs' rows (otherwise only the points'
    /// aggregates are read back).
    pub rows: bool,
    /// Whether runs may go through the batched injected engine (other
    /// random numbers, same law): plain sweeps and the tradeoff; scenarios
    /// whose published numbers come from the scalar engine say no.
    pub batch: bool,
}

impl Plan {
    /// The points of a plain sweep: every grid point, batched where
    /// possible, built on demand from the grid's axes.
    pub fn sweep(e: &psim_common::Experiment) -> Self {
        Self {
            points: Points::grid(e.base.clone(), e.axes()),
            columns: Vec::new(),
            rows: false,
            batch: true,
        }
    }

    /// The first point of `p`'s chain of start points (`p` itself when it
    /// starts from the objective's initial point).
    pub fn root(&self, mut p: usize) -> usize {
        while let Some(from) = self.points.start_from(p) {
            p = from;
        }
        p
    }

    /// The points of `shard`: point P goes where its chain's first point
    /// goes (`root mod count`), so a chain of start points never spans two
    /// shards.
    pub fn share(&self, shard: crate::durable::Shard) -> Vec<usize> {
        (0..self.points.len())
            .filter(|&p| shard.owns(self.root(p)))
            .collect()
    }

    /// Independent chains of points: the most shards that all get a point.
    pub fn chains(&self) -> usize {
        (0..self.points.len())
            .filter(|&p| self.points.start_from(p).is_none())
            .count()
    }

    /// Runs in all (the progress bar's length).
    pub fn total_runs(&self) -> u64 {
        (0..self.points.len()).map(|p| self.points.runs(p)).sum()
    }

    /// Runs of the points `todo`.
    pub fn runs_of(&self, todo: &[usize]) -> u64 {
        todo.iter().map(|&p| self.points.runs(p)).sum()
    }

    /// Checks what the executor needs: dependencies point backwards, and a
    /// start point or kept parameters only on the injected engine (the one
    /// engine that starts a run from given parameters). A grid's points are
    /// checked through their axes (each engine setting once).
    pub fn validate(&self) -> Result<(), SweepError> {
        let mut offset = 0;
        for segment in &self.points.segments {
            match segment {
                Segment::Grid { base, axes } => {
                    base.validate()?;
                    for engine in &axes.engine {
                        let mut cfg = (**base).clone();
                        cfg.engine = engine.clone();
                        for &momentum in &axes.momentum {
                            for &step_size in &axes.step_size {
                                cfg.momentum = momentum;
                                cfg.step_size = step_size;
                                cfg.validate()?;
                            }
                        }
                    }
                }
                Segment::Listed(points) => {
                    for (j, p) in points.iter().enumerate() {
                        self.validate_listed(offset + j, p)?;
                    }
                }
            }
            offset += segment.len();
        }
        Ok(())
    }

    fn validate_listed(&self, i: usize, p: &PlannedPoint) -> Result<(), SweepError> {
        p.config.validate()?;
        if let Some(from) = p.start_from {
            if from >= i || self.points.runs(from) != p.config.runs as u64 {
                return Err(SweepError::Durable(format!(
                    "plan point {i} starts from point {from}, which must come before it with as many runs"
                )));
            }
        }
        let injected_only = p.start_from.is_some() || (p.keep_params && !p.config.record_params);
        if injected_only && p.config.injected().is_none() {
            return Err(SweepError::Durable(format!(
                "plan point {i}: start points and parameters the configuration does not record need the injected engine"
            )));
        }
        Ok(())
    }

    /// A fingerprint of point `p` as planned: its resolved configuration
    /// (trace files' values included), its start and what it keeps. A
    /// point file records it; resume, merge and report refuse a point file
    /// whose fingerprint differs from the plan's (an edited config.toml, a
    /// rewritten trace file).
    pub fn fingerprint(&self, p: usize) -> String {
        let point = self.points.get(p);
        let text = format!(
            "{:?}|{:?}|{}|{:?}",
            point.config, point.start_from, point.keep_params, self.columns
        );
        format!("{:016x}", fnv1a(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psim_common::Experiment;

    /// The grid's on-demand points are the materialised ones, in order.
    #[test]
    fn grid_points_equal_the_materialised_grid() {
        let mut e = crate::catalogue::study_of(&Experiment {
            name: "sweep".into(),
            base: Default::default(),
            grid: Default::default(),
            tradeoff: None,
        })
        .experiment();
        e.grid.momentum = vec![0.0, 0.5, 0.9];
        e.grid.step_size = vec![1e-3, 5e-4];
        e.grid.delay = (0..5)
            .map(|t| format!("const:{t}").parse().unwrap())
            .collect();
        let plan = Plan::sweep(&e);
        let all = e.points();
        assert_eq!(plan.points.len(), 30);
        for (p, cfg) in all.iter().enumerate() {
            assert_eq!(&plan.points.get(p).config, cfg, "point {p}");
        }
        let mut twice = plan.points.clone();
        twice.extend(plan.points.clone());
        assert_eq!(twice.get(31).config, all[1]);
        assert_eq!(plan.total_runs(), 30 * e.base.runs as u64);
    }
}
