//! Every named experiment of EXPERIMENTS.md in one place, each a
//! [`crate::catalogue::Scenario`]: E1 `tradeoff` (with its optimal-delay
//! analysis), E2 `momentum_vs_workers`, E3 `three_phases`, E4 and E6
//! `escape`, E5 `spiky`, `speedup` on the real parameter server, and
//! `implicit_momentum` (Mitliagkas et al. 2016).

pub mod common;
pub mod escape;
pub mod heterogeneous;
pub mod implicit_momentum;
pub mod momentum_vs_workers;
pub mod phase_diagram;
pub mod plain;
pub mod speedup;
pub mod spiky;
pub mod three_phases;
pub mod tradeoff;
