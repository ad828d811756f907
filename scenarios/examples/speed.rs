use psim_common::{Objective, PcaConfig, RunConfig, StreamingPca};
fn main() {
    let p = StreamingPca::new(&PcaConfig::default()).unwrap();
    for tau in [0u64, 10, 30, 60, 100, 120, 150] {
        for mu in [0.7, 0.8, 0.85, 0.9, 0.95] {
            let cfg = RunConfig {
                momentum: mu,
                delay: psim_common::Delay::constant(tau),
                ..Default::default()
            };
            let t = std::time::Instant::now();
            let mut errs = vec![];
            let mut div = 0;
            for r in 0..20 {
                let res = psim_scenarios::engine::run_injected(&cfg, &p, r);
                if res.outcome.diverged() {
                    div += 1
                } else {
                    errs.push(res.tail_error)
                }
            }
            let el = t.elapsed().as_secs_f64();
            let m = errs.iter().sum::<f64>() / errs.len().max(1) as f64;
            println!(
                "tau {tau} mu {mu}: mean tail err {m:.5} div {div}  {:.1} Msteps/s",
                20.0 * 2e4 / el / 1e6
            );
            let _ = p.dim();
        }
    }
}
