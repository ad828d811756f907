//! The event queue alone, in the engine's hold pattern: `n` pending
//! entries, each pop replaced by the same worker's next arrival, later by
//! an exponential increment (mean 10⁻³), as in
//! `psim run --engine virtual-time --compute-time exp:0.001`.
//!
//! ```text
//! cargo run --release -p psim-engine --example queue_hold -- N OPS heap|calendar [lookahead]
//! ```
//!
//! prints the nanoseconds per operation (peek and replace-top; with
//! `lookahead`, also the prefetch hint the engine calls every event) and a
//! checksum of the workers popped, which is the same for both forms.

use psim_engine::event_queue::{Entry, EventQueue};
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: queue_hold N OPS heap|calendar [lookahead]";
    let n: u32 = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let ops: usize = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let mut q = match args.get(3).map(String::as_str) {
        Some("heap") => EventQueue::with_capacity(0),
        Some("calendar") => EventQueue::calendar(n as usize),
        _ => panic!("{usage}"),
    };
    let lookahead = args.get(4).is_some_and(|a| a == "lookahead");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let draw = |rng: &mut rand::rngs::SmallRng| -(1.0 - rng.random::<f64>()).ln() * 1e-3;
    q.push_unsorted((0..n).map(|w| Entry {
        key: draw(&mut rng).to_bits(),
        worker: w,
        generation: 0,
    }));
    q.settle();
    let mut checksum = 0u64;
    let mut hinted = 0u64;
    let started = std::time::Instant::now();
    for _ in 0..ops {
        if lookahead {
            q.lookahead(|w| hinted = hinted.wrapping_add(u64::from(w)));
        }
        let e = q.peek().expect("never empty");
        checksum = checksum.wrapping_mul(31).wrapping_add(u64::from(e.worker));
        let now = f64::from_bits(e.key);
        q.replace_top(Entry {
            key: (now + draw(&mut rng)).to_bits(),
            ..e
        });
    }
    let ns = started.elapsed().as_secs_f64() / ops as f64 * 1e9;
    println!(
        "{n} entries, {}: {ns:.1} ns an operation (checksum {checksum:x}, hint sum {hinted})",
        args[3]
    );
}
