//! Runs experiment E2 and prints its table (until `psim reproduce
//! momentum-vs-workers` is wired): `cargo run --release --example e2 [steps eta batch seeds hidden]`.
use psim_scenarios::momentum_vs_workers::{run_e2, E2Settings};
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut s = E2Settings::default();
    if let Some(x) = a.first() {
        s.steps = x.parse().unwrap();
    }
    if let Some(x) = a.get(1) {
        s.step_size = x.parse().unwrap();
    }
    if let Some(x) = a.get(2) {
        s.mlp.batch = x.parse().unwrap();
    }
    if let Some(x) = a.get(3) {
        s.seeds = x.parse().unwrap();
    }
    if let Some(x) = a.get(4) {
        s.mlp.hidden = vec![x.parse().unwrap()];
    }
    let t = std::time::Instant::now();
    let r = run_e2(&s, &Default::default()).unwrap();
    print!("{}", r.table());
    println!("{:.1} s", t.elapsed().as_secs_f64());
}
