use psim_common::{Backend, Delay, EngineKind, PcaConfig, RunConfig, StreamingPca};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m: usize = args[1].parse().unwrap();
    let backend = if args[2] == "channel" {
        Backend::Channel
    } else {
        Backend::Lock
    };
    let engine: EngineKind = args[3].parse().unwrap();
    let mut cfg = RunConfig {
        steps: args[4].parse::<u64>().unwrap() * m as u64,
        runs: 1,
        record_every: 10,
        engine,
        ..Default::default()
    };
    cfg.cluster.workers = m;
    cfg.cluster.backend = backend;
    cfg.cluster.compute_time = Delay::Constant(2e-3);
    let o = StreamingPca::new(&PcaConfig::default()).unwrap();
    let r = psim_scenarios::engine::run(&cfg, &o, 0).unwrap();
    println!(
        "{:?} {:?} {:?} wall {:.3}",
        r.outcome,
        r.counters,
        r.staleness.summary(),
        r.wall_seconds
    );
    for w in 0..m.min(8) {
        println!(
            "w{w} {:?}",
            r.histograms[&format!("staleness.worker{w}")].summary()
        );
    }
    println!(
        "fetch {:?}\npush {:?}",
        r.histograms["fetch_ns"].summary(),
        r.histograms["push_fetch_ns"].summary()
    );
}
