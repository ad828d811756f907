//! Virtual-time engine throughput (events per second, one core) for small
//! d, from 8 to 10,000 workers, and its memory per worker measured with a
//! counting allocator. Run: `cargo bench --bench virtual_time`.
//!
//! One event is one push arriving at the server (fetch, gradient, update and
//! the next fetch are handled within it), so events/s = server updates/s.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use psim_common::{
    ClusterConfig, Consistency, Delay, EngineConfig, EngineKind, Objective, PcaConfig, RunConfig,
    StreamingPca,
};
use psim_engine::run_virtual_time;
use psim_engine::virtual_time::bytes_per_worker;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Tracks live and peak heap bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

fn config(workers: usize, steps: u64) -> RunConfig {
    RunConfig {
        // Staleness up to ~10⁴ needs plain SGD with a small step to stay finite.
        momentum: 0.0,
        step_size: 1e-6,
        steps,
        runs: 1,
        record_every: steps,
        tail_fraction: 1.0 / steps as f64,
        engine: EngineConfig::new(
            EngineKind::VirtualTime,
            ClusterConfig {
                workers,
                compute_time: Delay::Exponential { mean: 1e-3 },
                network_delay: Delay::Constant(0.0),
                consistency: Consistency::Asp,
                stragglers: None,
                worker_compute: None,
                record_pushes: false,
            },
        ),
        ..RunConfig::default()
    }
}

fn events_per_second(c: &mut Criterion) {
    let pca = StreamingPca::new(&PcaConfig::default()).unwrap();
    let events = 1_000_000u64;
    let mut g = c.benchmark_group("virtual_time_asp_d4");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(events));
    for workers in [8usize, 1_000, 10_000] {
        let cfg = config(workers, events);
        g.bench_with_input(BenchmarkId::from_parameter(workers), &cfg, |b, cfg| {
            b.iter(|| run_virtual_time(cfg, &pca, 0).counters.applied)
        });
    }
    g.finish();
}

/// Peak heap of a short run with `workers` workers.
fn peak_bytes(pca: &StreamingPca, workers: usize) -> usize {
    let cfg = config(workers, 2 * workers as u64);
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    let r = run_virtual_time(&cfg, pca, 0);
    assert_eq!(r.counters.applied, 2 * workers as u64);
    PEAK.load(Ordering::Relaxed) - base
}

fn memory_per_worker() {
    let pca = StreamingPca::new(&PcaConfig::default()).unwrap();
    let small = peak_bytes(&pca, 1_000);
    let large = peak_bytes(&pca, 10_000);
    let per = (large - small) as f64 / 9_000.0;
    println!(
        "virtual_time memory: peak heap {small} B at 1,000 workers, {large} B at 10,000 workers \
         → {per:.1} B per worker measured (d = {}; engine's own estimate {} B)",
        pca.dim(),
        bytes_per_worker(pca.dim())
    );
}

criterion_group!(benches, events_per_second);

fn main() {
    memory_per_worker();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
