//! Runners: the worker loop on OS threads and on tokio tasks.
//!
//! Each worker fetches once, then loops stochastic gradient → injected
//! delay (compute time × the worker's speed factor, then network delay;
//! real sleeps) → push-and-fetch (the push and the next fetch in one
//! operation, as parameter servers usually pair them), until the server
//! says the run has stopped. Every worker leaves the
//! server when it ends, normally or by a panic (a drop guard), so a failed
//! worker never holds an SSP ticket or a BSP round hostage, and its report
//! (with the panic marked) is still collected.

use crate::Worker;
use parking_lot::Mutex;
use psim_common::profile::WorkerClock;
use psim_common::pushes::PushRecord;
use psim_common::{Delay, DelayModel, Objective, PsimRng, StalenessHistogram};
use psim_server::backend::{CancelFlags, FetchReply, PushReply, Pushed, ServerClient, TaskClient};
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest single injected sleep. A heavy-tailed delay (Pareto with shape
/// ≤ 1 has an infinite mean) could otherwise stall a run for hours; a
/// capped sleep is counted in [`WorkerReport::capped_sleeps`].
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Sleeps longer than this are cut into slices of this length, so that a
/// sleeping worker notices the stop within one slice.
pub const SLEEP_SLICE: Duration = Duration::from_millis(5);

/// What every worker of a run shares: the injected delays and the stop flag.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// Seconds one gradient takes (multiplied by the worker's speed factor).
    pub compute_time: Delay,
    /// Seconds a push travels.
    pub network_delay: Delay,
    /// Longest single sleep ([`MAX_SLEEP`] by default).
    pub max_sleep: Duration,
    /// Set once the run has stopped; sleeping workers wake up early.
    pub stop: Arc<AtomicBool>,
    /// Start each worker after a random fraction of one compute time, so
    /// that equal-speed workers are not phase-locked by a common start (in
    /// lockstep, a burst of M pushes lands before the burst of fetches and
    /// the measured staleness halves to (M−1)/2).
    pub stagger: bool,
    /// Keep a [`PushRecord`] of every applied push, at most this many per
    /// worker (0: none).
    pub record_pushes: usize,
    /// The run's start: the time axis of the workers' power and outages
    /// (`profile:`).
    pub epoch: Instant,
    /// The server's cancellation flags, under a policy that cancels
    /// computations (Rennala, m-sync, Ringmaster with `stop`): a worker
    /// whose flag rises while it computes stops and fetches the current
    /// point at once (within one [`SLEEP_SLICE`]).
    pub cancel: Option<CancelFlags>,
}

/// One worker's inputs: its step state, its delay stream and speed factor.
#[derive(Debug)]
pub struct WorkerSetup {
    /// The worker (id, data stream, gradient buffer).
    pub worker: Worker,
    /// Stream for the injected delays.
    pub delay_rng: PsimRng,
    /// Compute-time multiplier (stragglers, `worker_compute` factors).
    pub speed_factor: f64,
    /// Its own compute-time model (`worker_compute = "models:…"`), else the plan's.
    pub compute_time: Option<Delay>,
    /// Its clock under `worker_compute = "profile:…"`: noise, download and
    /// upload times, power and outages on top of the compute-time draw.
    pub clock: Option<WorkerClock>,
}

/// What one worker measured.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// Pushes sent and received (applied, waiting, discarded or dropped by
    /// the server; a push the server refused as cancelled is not counted).
    pub pushes: u64,
    /// Staleness of each of its applied pushes.
    pub staleness: StalenessHistogram,
    /// Round-trip times of the first fetch, ns (waits included).
    pub fetch_ns: StalenessHistogram,
    /// Round-trip times of push-and-fetch, ns (waits included).
    pub push_fetch_ns: StalenessHistogram,
    /// Time the consistency model made it wait, ns, one value per wait.
    pub wait_ns: StalenessHistogram,
    /// Sleeps cut to [`WorkerPlan::max_sleep`].
    pub capped_sleeps: u64,
    /// Set when the worker panicked: the panic message.
    pub failure: Option<String>,
    /// Its applied pushes, when the plan records them (at most
    /// `record_pushes`; `pushes_truncated` says whether more were applied).
    pub records: Vec<PushRecord>,
    /// Whether it applied more pushes than it recorded.
    pub records_truncated: bool,
}

/// Called (once) by a worker that panics, with its index; the engine
/// decides whether the run ends.
pub type FailureHook = Arc<dyn Fn(usize) + Send + Sync>;

/// The worker's side of a run; on drop (normal end or unwinding) it leaves
/// the server and files its report.
struct Session<C> {
    client: C,
    leave: fn(&mut C),
    report: WorkerReport,
    sink: Arc<Mutex<Vec<WorkerReport>>>,
    on_failure: FailureHook,
    stop: Arc<AtomicBool>,
    record: usize,
    fetched: u64,
    fetched_at: Instant,
}

impl<C> Drop for Session<C> {
    fn drop(&mut self) {
        (self.leave)(&mut self.client);
        if std::thread::panicking() {
            self.report.failure = Some("panicked".into());
            (self.on_failure)(self.report.worker);
        } else {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.sink.lock().push(std::mem::take(&mut self.report));
    }
}

impl<C> Session<C> {
    fn after_fetch(&mut self, started: Instant, reply: &FetchReply) -> bool {
        self.report
            .fetch_ns
            .record(started.elapsed().as_nanos() as u64);
        self.fetched = reply.version;
        self.fetched_at = Instant::now();
        if reply.waited_ns > 0 {
            self.report.wait_ns.record(reply.waited_ns);
        }
        !reply.stopped
    }

    fn after_push_fetch(&mut self, started: Instant, push: &PushReply, fetch: &FetchReply) -> bool {
        self.report
            .push_fetch_ns
            .record(started.elapsed().as_nanos() as u64);
        if push.stopped {
            self.report.pushes += 1;
            return false;
        }
        // A cancelled computation's push is refused unreceived (the
        // server counted the cancellation); a discarded one is received.
        match push.outcome {
            Pushed::Cancelled => {}
            Pushed::Discarded => self.report.pushes += 1,
            Pushed::Accepted { .. } => {
                self.report.pushes += 1;
                self.report.staleness.record(push.staleness);
            }
        }
        if self.record > 0 && push.outcome.staleness().is_some() {
            if self.report.records.len() < self.record {
                self.report.records.push(PushRecord {
                    worker: self.report.worker as u32,
                    fetched_version: self.fetched,
                    applied_version: self.fetched + push.staleness + 1,
                    staleness: push.staleness,
                    compute_seconds: started.duration_since(self.fetched_at).as_secs_f64(),
                    wait_seconds: push.waited_ns as f64 * 1e-9,
                });
            } else {
                self.report.records_truncated = true;
            }
        }
        self.fetched = fetch.version;
        self.fetched_at = Instant::now();
        let waited = push.waited_ns + fetch.waited_ns;
        if waited > 0 {
            self.report.wait_ns.record(waited);
        }
        !fetch.stopped
    }
}

/// The injected delay of one step: compute time × speed (through the
/// worker's clock under `profile:`, at the time since the run's start),
/// plus network delay, capped at `max_sleep`.
fn draw_delay(
    plan: &WorkerPlan,
    own: Option<&Delay>,
    clock: Option<&mut WorkerClock>,
    rng: &mut PsimRng,
    speed: f64,
    capped: &mut u64,
) -> Duration {
    let compute = own.unwrap_or(&plan.compute_time);
    let c = compute.sample(rng) * speed;
    let c = match clock {
        Some(clock) => clock
            .step(plan.epoch.elapsed().as_secs_f64(), c, rng)
            .total(),
        None => c,
    };
    let secs = c + plan.network_delay.sample(rng);
    let max = plan.max_sleep.as_secs_f64();
    if secs > max {
        *capped += 1;
        return plan.max_sleep;
    }
    Duration::from_secs_f64(secs.max(0.0))
}

fn start_offset(plan: &WorkerPlan, setup: &mut WorkerSetup) -> Duration {
    if !plan.stagger {
        return Duration::ZERO;
    }
    let mut capped = 0;
    let first = draw_delay(
        plan,
        setup.compute_time.as_ref(),
        setup.clock.as_mut(),
        &mut setup.delay_rng,
        setup.speed_factor,
        &mut capped,
    );
    first.mul_f64(rand::Rng::random::<f64>(&mut setup.delay_rng))
}

fn thread_sleep(mut left: Duration, stop: &AtomicBool) {
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let slice = left.min(SLEEP_SLICE);
        std::thread::sleep(slice);
        left -= slice;
    }
}

/// Whether worker `id`'s computation has been cancelled by the server.
#[inline]
fn cancelled(plan: &WorkerPlan, id: usize) -> bool {
    plan.cancel
        .as_ref()
        .is_some_and(|f| f[id].load(Ordering::Relaxed))
}

/// [`thread_sleep`] for a computation: also ends when the server cancels
/// it, and says so.
fn compute_sleep(mut left: Duration, plan: &WorkerPlan, id: usize) -> bool {
    while !left.is_zero() && !plan.stop.load(Ordering::Relaxed) {
        if cancelled(plan, id) {
            return true;
        }
        let slice = left.min(SLEEP_SLICE);
        std::thread::sleep(slice);
        left -= slice;
    }
    cancelled(plan, id)
}

async fn task_sleep(mut left: Duration, stop: &AtomicBool) {
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let slice = left.min(SLEEP_SLICE);
        tokio::time::sleep(slice).await;
        left -= slice;
    }
}

/// [`task_sleep`] for a computation, as [`compute_sleep`].
async fn compute_task_sleep(mut left: Duration, plan: &WorkerPlan, id: usize) -> bool {
    while !left.is_zero() && !plan.stop.load(Ordering::Relaxed) {
        if cancelled(plan, id) {
            return true;
        }
        let slice = left.min(SLEEP_SLICE);
        tokio::time::sleep(slice).await;
        left -= slice;
    }
    cancelled(plan, id)
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Runs one OS thread per client until the server stops the run; returns
/// one report per worker, ordered by worker.
pub fn spawn_thread_workers<C, O>(
    clients: Vec<C>,
    setups: Vec<WorkerSetup>,
    objective: &O,
    plan: &WorkerPlan,
    on_failure: FailureHook,
) -> Vec<WorkerReport>
where
    C: ServerClient,
    O: Objective + ?Sized,
{
    let sink = Arc::new(Mutex::new(Vec::with_capacity(clients.len())));
    let mut messages = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .into_iter()
            .zip(setups)
            .map(|(client, mut setup)| {
                let id = setup.worker.id() as usize;
                let mut session = Session {
                    client,
                    leave: C::leave,
                    report: WorkerReport {
                        worker: id,
                        ..Default::default()
                    },
                    sink: sink.clone(),
                    on_failure: on_failure.clone(),
                    stop: plan.stop.clone(),
                    record: plan.record_pushes,
                    fetched: 0,
                    fetched_at: Instant::now(),
                };
                let handle = std::thread::Builder::new()
                    .name(format!("psim-worker-{id}"))
                    .spawn_scoped(scope, move || {
                        let _span = tracing::trace_span!("worker", id).entered();
                        thread_sleep(start_offset(plan, &mut setup), &plan.stop);
                        let t = Instant::now();
                        let reply = session.client.fetch();
                        if !session.after_fetch(t, &reply) {
                            return;
                        }
                        loop {
                            let gradient = setup.worker.compute(objective, session.client.params());
                            let pause = draw_delay(
                                plan,
                                setup.compute_time.as_ref(),
                                setup.clock.as_mut(),
                                &mut setup.delay_rng,
                                setup.speed_factor,
                                &mut session.report.capped_sleeps,
                            );
                            if compute_sleep(pause, plan, id) {
                                // Cancelled: restart on the current point.
                                let t = Instant::now();
                                let reply = session.client.fetch();
                                if !session.after_fetch(t, &reply) {
                                    break;
                                }
                                continue;
                            }
                            let t = Instant::now();
                            let (push, fetch) = session.client.push_fetch(gradient);
                            if !session.after_push_fetch(t, &push, &fetch) {
                                break;
                            }
                        }
                    })
                    .expect("spawning a worker thread");
                (id, handle)
            })
            .collect();
        for (id, h) in handles {
            if let Err(payload) = h.join() {
                messages.push((id, panic_message(payload.as_ref())));
            }
        }
    });
    collect(sink, messages)
}

fn collect(
    sink: Arc<Mutex<Vec<WorkerReport>>>,
    messages: Vec<(usize, String)>,
) -> Vec<WorkerReport> {
    let mut reports = std::mem::take(&mut *sink.lock());
    for (id, msg) in messages {
        if let Some(r) = reports.iter_mut().find(|r| r.worker == id) {
            r.failure = Some(msg);
        }
    }
    reports.sort_by_key(|r| r.worker);
    reports
}

/// Runs one tokio task per client on the current runtime until the server
/// stops the run; returns one report per worker, ordered by worker.
pub async fn spawn_task_workers<O>(
    clients: Vec<TaskClient>,
    setups: Vec<WorkerSetup>,
    objective: Arc<O>,
    plan: &WorkerPlan,
    on_failure: FailureHook,
) -> Vec<WorkerReport>
where
    O: Objective + ?Sized + 'static,
{
    let sink = Arc::new(Mutex::new(Vec::with_capacity(clients.len())));
    let handles: Vec<_> = clients
        .into_iter()
        .zip(setups)
        .map(|(client, mut setup)| {
            let id = setup.worker.id() as usize;
            let mut session = Session {
                client,
                leave: TaskClient::leave,
                report: WorkerReport {
                    worker: id,
                    ..Default::default()
                },
                sink: sink.clone(),
                on_failure: on_failure.clone(),
                stop: plan.stop.clone(),
                record: plan.record_pushes,
                fetched: 0,
                fetched_at: Instant::now(),
            };
            let objective = objective.clone();
            let plan = plan.clone();
            let handle = tokio::spawn(async move {
                task_sleep(start_offset(&plan, &mut setup), &plan.stop).await;
                let t = Instant::now();
                let reply = session.client.fetch().await;
                if !session.after_fetch(t, &reply) {
                    return;
                }
                loop {
                    setup.worker.compute(&*objective, session.client.params());
                    let pause = draw_delay(
                        &plan,
                        setup.compute_time.as_ref(),
                        setup.clock.as_mut(),
                        &mut setup.delay_rng,
                        setup.speed_factor,
                        &mut session.report.capped_sleeps,
                    );
                    if compute_task_sleep(pause, &plan, id).await {
                        // Cancelled: restart on the current point.
                        let t = Instant::now();
                        let reply = session.client.fetch().await;
                        if !session.after_fetch(t, &reply) {
                            break;
                        }
                        continue;
                    }
                    let t = Instant::now();
                    let (push, fetch) = session.client.push_fetch(setup.worker.gradient()).await;
                    if !session.after_push_fetch(t, &push, &fetch) {
                        break;
                    }
                }
            });
            (id, handle)
        })
        .collect();
    let mut messages = Vec::new();
    for (id, h) in handles {
        if let Err(e) = h.await {
            let msg = if e.is_panic() {
                panic_message(e.into_panic().as_ref())
            } else {
                "task cancelled".into()
            };
            messages.push((id, msg));
        }
    }
    collect(sink, messages)
}
