//! The virtual-time engine's event queue: a 4-ary min-heap of
//! `(time key, worker, generation)` entries, each packed into one `u128`
//! whose integer order is the order of the triple, so a comparison is one
//! 128-bit compare and the four children of a node sit in 64 bytes (one
//! cache line when aligned, two at most).
//!
//! It pops in exactly the order of the `BinaryHeap<Reverse<(u64, u32,
//! u32)>>` it replaces: both are correct priority queues of the same total
//! order, and two equal entries are the same triple, so which of them comes
//! out first cannot be told apart. Against the binary heap it halves the
//! depth (10 levels instead of 20 at 10⁶ pending events) and with it the
//! cache lines a pop touches, which is what a pop costs once the heap no
//! longer fits in the caches.

/// One pending arrival: the time key (the arrival's `f64` bits, monotone
/// for non-negative times), the worker, and the generation of its
/// computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Arrival time as ordered bits.
    pub key: u64,
    /// Worker id.
    pub worker: u32,
    /// Generation of the worker's computation when it was scheduled.
    pub generation: u32,
}

impl Entry {
    /// The entry as one integer with the triple's order.
    #[inline]
    fn pack(self) -> u128 {
        (u128::from(self.key) << 64) | (u128::from(self.worker) << 32) | u128::from(self.generation)
    }

    #[inline]
    fn unpack(x: u128) -> Self {
        Self {
            key: (x >> 64) as u64,
            worker: (x >> 32) as u32,
            generation: x as u32,
        }
    }
}

/// Children per node.
const ARITY: usize = 4;

/// A min-priority queue of [`Entry`]s ordered by (key, worker,
/// generation); see the module documentation.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: Vec<u128>,
}

impl EventQueue {
    /// An empty queue with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            heap: Vec::with_capacity(capacity),
        }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the queue is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds `e`.
    #[inline]
    pub fn push(&mut self, e: Entry) {
        let x = e.pack();
        let mut i = self.heap.len();
        self.heap.push(x);
        while i > 0 {
            let parent = (i - 1) / ARITY;
            let p = self.heap[parent];
            if p <= x {
                break;
            }
            self.heap[i] = p;
            i = parent;
        }
        self.heap[i] = x;
    }

    /// The smallest entry, if any.
    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        self.heap.first().map(|&x| Entry::unpack(x))
    }

    /// The smallest entry after the top (the least of the root's
    /// children), if any: the next to pop unless a smaller one is pushed.
    #[inline]
    pub fn runner_up(&self) -> Option<Entry> {
        if let Some(&[a, b, c, d]) = self.heap.get(1..1 + ARITY) {
            return Some(Entry::unpack(a.min(b).min(c.min(d))));
        }
        let n = self.heap.len().min(ARITY + 1);
        self.heap[1.min(n)..n]
            .iter()
            .min()
            .map(|&x| Entry::unpack(x))
    }

    /// Removes and returns the smallest entry, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(Entry::unpack(last));
        }
        let top = self.heap[0];
        self.sift_down(last);
        Some(Entry::unpack(top))
    }

    /// Replaces the smallest entry by `e` (one sift-down, not a pop and a
    /// push), returning the entry replaced; `e` is pushed if the queue is
    /// empty.
    #[inline]
    pub fn replace_top(&mut self, e: Entry) -> Option<Entry> {
        match self.heap.first() {
            Some(&top) => {
                self.sift_down(e.pack());
                Some(Entry::unpack(top))
            }
            None => {
                self.push(e);
                None
            }
        }
    }

    /// Puts `x` at the root and moves it down to its place.
    #[inline]
    fn sift_down(&mut self, x: u128) {
        Self::sift(&mut self.heap, 0, x);
    }

    /// Puts `x` at `i` and moves it down to its place below.
    #[inline]
    fn sift(heap: &mut [u128], mut i: usize, x: u128) {
        let n = heap.len();
        loop {
            let first = ARITY * i + 1;
            if first >= n {
                break;
            }
            let (c, v) = if let Some(&[a, b, c, d]) = heap.get(first..first + ARITY) {
                // All four children: a tournament the compiler can make
                // branch-free (conditional moves).
                let (i, x) = if b < a { (1, b) } else { (0, a) };
                let (j, y) = if d < c { (3, d) } else { (2, c) };
                if y < x {
                    (j, y)
                } else {
                    (i, x)
                }
            } else {
                let children = &heap[first..n];
                let (mut c, mut v) = (0, children[0]);
                for (k, &y) in children.iter().enumerate().skip(1) {
                    if y < v {
                        (c, v) = (k, y);
                    }
                }
                (c, v)
            };
            if x <= v {
                break;
            }
            heap[i] = v;
            i = first + c;
        }
        heap[i] = x;
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.heap.retain(|&x| keep(&Entry::unpack(x)));
        // Floyd's heap construction, bottom-up.
        for i in (0..self.heap.len() / ARITY + 1).rev() {
            if let Some(&x) = self.heap.get(i) {
                Self::sift(&mut self.heap, i, x);
            }
        }
    }

    /// Removes every entry, in no particular order.
    pub fn drain_unordered(&mut self) -> impl Iterator<Item = Entry> + '_ {
        self.heap.drain(..).map(Entry::unpack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psim_common::PsimRng;
    use rand::{Rng, SeedableRng};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// Random pushes (keys at or after the last pop, as the engine's, from
    /// a small range so that ties on the key and on (key, worker) are
    /// frequent), pops, replacements of the top and retains: the queue must pop exactly what a
    /// `BinaryHeap<Reverse<(key, worker, generation)>>` pops.
    #[test]
    fn pops_in_the_binary_heaps_order() {
        for seed in 0..300u64 {
            let mut rng = PsimRng::seed_from_u64(seed);
            let mut q = EventQueue::with_capacity(0);
            let mut h: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
            let mut last = 0u64;
            // Spread of keys: from all-equal to full 64-bit jumps.
            let spread = [1u64, 4, 1 << 10, 1 << 40, u64::MAX / 4][seed as usize % 5];
            let workers = [1u32, 3, 50][seed as usize % 3];
            for _ in 0..2_000 {
                match rng.random_range(0..10) {
                    0..=4 => {
                        let key = last.saturating_add(rng.random_range(0..=spread));
                        let e = Entry {
                            key,
                            worker: rng.random_range(0..workers),
                            generation: rng.random_range(0..3),
                        };
                        q.push(e);
                        h.push(Reverse((e.key, e.worker, e.generation)));
                    }
                    5..=7 => {
                        let a = q.pop();
                        let b = h.pop().map(|Reverse((k, w, g))| Entry {
                            key: k,
                            worker: w,
                            generation: g,
                        });
                        assert_eq!(a, b, "seed {seed}");
                        if let Some(e) = a {
                            last = e.key;
                        }
                    }
                    8 => {
                        // Peek, then replace the top (the engine's hot path).
                        let a = q.peek();
                        assert_eq!(
                            a.map(|e| (e.key, e.worker, e.generation)),
                            h.peek().map(|r| r.0),
                            "seed {seed}"
                        );
                        if let Some(e) = a {
                            last = e.key;
                            let n = Entry {
                                key: last + rng.random_range(0..=spread.min(u64::MAX - last)),
                                ..e
                            };
                            assert_eq!(q.replace_top(n), Some(e));
                            h.pop();
                            h.push(Reverse((n.key, n.worker, n.generation)));
                        }
                    }
                    _ => {
                        let g = rng.random_range(0..3u32);
                        q.retain(|e| e.generation != g);
                        h.retain(|Reverse((_, _, eg))| *eg != g);
                    }
                }
                assert_eq!(q.len(), h.len());
            }
            while let Some(Reverse((k, w, g))) = h.pop() {
                assert_eq!(
                    q.pop(),
                    Some(Entry {
                        key: k,
                        worker: w,
                        generation: g
                    }),
                    "seed {seed}"
                );
            }
            assert!(q.pop().is_none() && q.is_empty());
        }
    }

    #[test]
    fn drains_everything() {
        let mut q = EventQueue::with_capacity(0);
        for w in 0..100u32 {
            q.push(Entry {
                key: u64::from(w % 7) << 20,
                worker: w,
                generation: 0,
            });
        }
        q.pop();
        let mut rest: Vec<u32> = q.drain_unordered().map(|e| e.worker).collect();
        rest.sort_unstable();
        assert_eq!(rest.len(), 99);
        assert!(q.is_empty() && q.pop().is_none());
    }
}
