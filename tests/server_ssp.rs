//! The consistency rules of the concurrent server core, step by step and
//! deterministic: SSP tickets, BSP rounds, leaving workers, the stop, and
//! the counters that prove no push is lost.

use psim_common::Consistency;
use psim_server::backend::{Poll, Pushed, ServerCore, StepLimit, StopReason};
use psim_server::{HeavyBall, ServerState};

/// A push accepted with staleness `staleness`.
fn accepted(staleness: u64) -> Poll<Pushed> {
    Poll::Ready(Pushed::Accepted { staleness })
}

fn core(consistency: Consistency, workers: usize, limit: u64) -> ServerCore<HeavyBall, StepLimit> {
    let rule = HeavyBall {
        momentum: 0.0,
        step_size: 1.0,
    };
    ServerCore::new(
        ServerState::without_history(&[0.0], rule),
        StepLimit(limit),
        consistency,
        workers,
    )
}

#[test]
fn ssp_zero_serialises_workers() {
    let mut c = core(Consistency::Ssp { bound: 0 }, 2, 100);
    let (mut a, mut b) = ([0.0], [0.0]);
    assert_eq!(c.try_fetch(0, &mut a), Poll::Ready(0));
    assert_eq!(
        c.try_fetch(1, &mut b),
        Poll::Wait,
        "ticket 1 > cursor 0 + bound 0"
    );
    assert_eq!(c.try_push(0, &[-1.0], &a, 0), accepted(0));
    assert_eq!(c.try_fetch(1, &mut b), Poll::Ready(1));
    assert_eq!(b, [1.0]);
    assert_eq!(c.try_push(1, &[-1.0], &b, 1), accepted(0));
    c.state().counters().check().unwrap();
}

#[test]
fn ssp_orders_pushes_by_ticket_and_bounds_staleness() {
    let bound = 2;
    let mut c = core(Consistency::Ssp { bound }, 3, 1000);
    let mut bufs = [[0.0]; 3];
    let mut versions = [0; 3];
    for w in 0..3 {
        versions[w] = match c.try_fetch(w, &mut bufs[w]) {
            Poll::Ready(v) => v,
            p => panic!("{p:?}"),
        };
    }
    // Worker 2 holds ticket 2: it must wait for tickets 0 and 1.
    assert_eq!(c.try_push(2, &[-1.0], &bufs[2], versions[2]), Poll::Wait);
    assert_eq!(c.try_push(0, &[-1.0], &bufs[0], versions[0]), accepted(0));
    assert_eq!(c.try_push(1, &[-1.0], &bufs[1], versions[1]), accepted(1));
    assert_eq!(c.try_push(2, &[-1.0], &bufs[2], versions[2]), accepted(2));
    assert!(2 <= bound);
}

#[test]
fn a_leaving_worker_releases_its_ticket() {
    let mut c = core(Consistency::Ssp { bound: 0 }, 2, 100);
    let (mut a, mut b) = ([0.0], [0.0]);
    assert_eq!(c.try_fetch(0, &mut a), Poll::Ready(0));
    assert_eq!(c.try_fetch(1, &mut b), Poll::Wait);
    c.leave(0); // worker 0 fails holding ticket 0
    assert_eq!(c.try_fetch(1, &mut b), Poll::Ready(0));
    assert_eq!(c.try_push(1, &[-1.0], &b, 0), accepted(0));
    assert_eq!(c.state().version(), 1);
}

#[test]
fn bsp_averages_a_round_and_a_leaver_closes_it() {
    let mut c = core(Consistency::Bsp, 3, 100);
    let mut bufs = [[0.0]; 3];
    for (w, buf) in bufs.iter_mut().enumerate() {
        assert_eq!(c.try_fetch(w, buf), Poll::Ready(0));
    }
    assert_eq!(c.try_push(0, &[-1.0], &bufs[0], 0), accepted(0));
    assert_eq!(
        c.try_fetch(0, &mut bufs[0]),
        Poll::Wait,
        "round 0 not applied yet"
    );
    assert_eq!(c.try_push(1, &[-2.0], &bufs[1], 0), accepted(0));
    c.leave(2); // the round no longer waits for worker 2
    assert_eq!(c.state().version(), 1);
    assert_eq!(c.state().params(), &[1.5], "mean of the two gradients");
    assert_eq!(c.try_fetch(0, &mut bufs[0]), Poll::Ready(1));
    let k = c.state().counters();
    assert_eq!((k.received, k.applied), (2, 2));
}

#[test]
fn the_stop_drops_late_pushes_and_an_open_round() {
    let mut c = core(Consistency::Bsp, 2, 100);
    let (mut a, mut b) = ([0.0], [0.0]);
    c.try_fetch(0, &mut a);
    c.try_fetch(1, &mut b);
    c.try_push(0, &[-1.0], &a, 0);
    c.halt(StopReason::Requested);
    assert_eq!(c.try_push(1, &[-1.0], &b, 0), Poll::Stopped);
    assert_eq!(c.try_fetch(0, &mut a), Poll::Stopped);
    let k = *c.state().counters();
    assert_eq!((k.received, k.applied, k.dropped_after_stop), (2, 0, 2));
    k.check().unwrap();
}

#[test]
fn asp_stops_exactly_at_the_step_limit() {
    let mut c = core(Consistency::Asp, 1, 3);
    let mut a = [0.0];
    for k in 0..3 {
        assert_eq!(c.try_fetch(0, &mut a), Poll::Ready(k));
        c.try_push(0, &[-1.0], &a, k);
    }
    assert_eq!(c.stopped(), Some(StopReason::StepsReached));
    assert_eq!(c.try_push(0, &[-1.0], &a, 3), Poll::Stopped);
    assert_eq!(c.state().counters().dropped_after_stop, 1);
}
