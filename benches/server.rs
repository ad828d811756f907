//! Parameter-server benchmarks.
//!
//! 1. Push-apply throughput for d = 10⁶ (one heavy-ball update through the
//!    lock back-end, uncontended) next to a plain memory copy of the same
//!    size, measured in the same run; the ratio copy time / push time is
//!    printed (target ≥ 50%).
//! 2. Small-d (d = 16) push-and-fetch latency p50/p99 with 1, 2 and 8
//!    workers hammering each back-end (no injected delay), from an
//!    hdrhistogram of every call.
//!
//! `cargo bench --bench server` (criterion figures) prints both tables.

use criterion::{black_box, Criterion};
use psim_common::{Consistency, StalenessHistogram};
use psim_server::backend::{
    ChannelServer, LockServer, ServerClient, ServerCore, StepLimit, StopReason, TaskServer,
};
use psim_server::{HeavyBall, ServerState};
use std::time::{Duration, Instant};

const RULE: HeavyBall = HeavyBall {
    momentum: 0.9,
    step_size: 1e-6,
};

fn core(dim: usize, workers: usize) -> ServerCore<HeavyBall, StepLimit> {
    let init = vec![0.5; dim];
    ServerCore::new(
        ServerState::without_history(&init, RULE),
        StepLimit(u64::MAX),
        Consistency::Asp,
        workers,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn push_vs_copy(c: &mut Criterion) {
    const D: usize = 1_000_000;
    let server = LockServer::new(core(D, 1));
    let mut client = server.client(0);
    client.fetch();
    let gradient = vec![1e-3; D];
    let src = vec![1.0f64; D];
    let mut dst = vec![0.0f64; D];
    let mut g = c.benchmark_group("d=1e6");
    g.sample_size(30);
    g.bench_function("memcpy 8 MB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.bench_function("lock push (heavy ball)", |b| {
        b.iter(|| black_box(client.push(black_box(&gradient))))
    });
    g.finish();
    // Side-by-side medians of interleaved repeats, for the ratio.
    let (mut copy, mut push) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&dst);
        copy.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(client.push(black_box(&gradient)));
        push.push(t.elapsed().as_secs_f64());
    }
    let (copy, push) = (median(copy), median(push));
    println!(
        "d = 1e6: memcpy {:.3} ms ({:.1} GB/s), push-apply {:.3} ms ({:.0} updates/s); copy/push = {:.0}%",
        copy * 1e3,
        2.0 * 8.0 * D as f64 / copy / 1e9,
        push * 1e3,
        1.0 / push,
        100.0 * copy / push
    );
}

const SMALL_D: usize = 16;
const RUN: Duration = Duration::from_millis(300);

fn hammer<C: ServerClient>(mut client: C, stop_at: Instant) -> StalenessHistogram {
    let gradient = vec![1e-3; SMALL_D];
    let mut h = StalenessHistogram::new();
    client.fetch();
    while Instant::now() < stop_at {
        let t = Instant::now();
        let (p, _) = client.push_fetch(&gradient);
        h.record(t.elapsed().as_nanos() as u64);
        if p.stopped {
            break;
        }
    }
    client.leave();
    h
}

fn merged(hs: Vec<StalenessHistogram>) -> StalenessHistogram {
    let mut all = StalenessHistogram::new();
    hs.iter().for_each(|h| all.merge(h));
    all
}

fn row(backend: &str, workers: usize, h: &StalenessHistogram) {
    println!(
        "{backend:>8} {workers:>3} workers: push-and-fetch p50 {:>7} ns, p99 {:>8} ns, {:>9.0} updates/s",
        h.quantile(0.5),
        h.quantile(0.99),
        h.count() as f64 / RUN.as_secs_f64()
    );
}

fn latency_tables() {
    println!("\nsmall d = {SMALL_D}, no injected delay, {RUN:?} per point:");
    for workers in [1, 2, 8] {
        let server = LockServer::new(core(SMALL_D, workers));
        let stop_at = Instant::now() + RUN;
        let hs = std::thread::scope(|s| {
            let hs: Vec<_> = (0..workers)
                .map(|w| {
                    let c = server.client(w);
                    s.spawn(move || hammer(c, stop_at))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        row("lock", workers, &merged(hs));

        let (server, clients) = ChannelServer::spawn(core(SMALL_D, workers));
        let stop_at = Instant::now() + RUN;
        let hs: Vec<_> = clients
            .into_iter()
            .map(|c| std::thread::spawn(move || hammer(c, stop_at)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        server.halter()(StopReason::Requested);
        server.join();
        row("channel", workers, &merged(hs));

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let h = rt.block_on(async {
            let (server, clients) = TaskServer::spawn(core(SMALL_D, workers));
            let stop_at = Instant::now() + RUN;
            let handles: Vec<_> = clients
                .into_iter()
                .map(|mut client| {
                    tokio::spawn(async move {
                        let gradient = vec![1e-3; SMALL_D];
                        let mut h = StalenessHistogram::new();
                        client.fetch().await;
                        while Instant::now() < stop_at {
                            let t = Instant::now();
                            client.push_fetch(&gradient).await;
                            h.record(t.elapsed().as_nanos() as u64);
                        }
                        client.leave();
                        h
                    })
                })
                .collect();
            let mut hs = Vec::new();
            for h in handles {
                hs.push(h.await.unwrap());
            }
            server.join().await;
            merged(hs)
        });
        row("task", workers, &h);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    push_vs_copy(&mut c);
    latency_tables();
    c.final_summary();
}
