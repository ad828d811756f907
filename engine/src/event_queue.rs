//! The virtual-time engine's event queue: pending arrivals ordered by
//! `(time key, worker, generation)`, each packed into one `u128` whose
//! integer order is the order of the triple (a comparison is one 128-bit
//! compare).
//!
//! Below [`CALENDAR_FROM`] entries of capacity it is a 4-ary min-heap.
//! From there on it is a calendar queue in front of that heap: the time
//! axis is cut into buckets of equal width; the entries of the buckets up
//! to the current one sit in the heap (`near`), the later ones in their
//! bucket's list, and the ones beyond the last bucket in `far`. A pop takes
//! the heap's top; when the heap empties, the next non-empty bucket moves
//! into it, and when the buckets run out they are rebuilt from `far`, as
//! many as half the entries, their width set so that the earlier half of
//! `far` (by a sample's median) fills half of them. A push lands in its
//! bucket in O(1). The entries grow past eight a bucket, or the heap past
//! an eighth of them (a bucket that gathered a cluster), and everything is
//! spread anew; a rebuild costs O(entries) and the limits grow with them,
//! so the cost stays O(1) an event, and keys that tie (constant compute
//! times) simply stay in the heap.
//!
//! What an event touches, at 10⁶ pending entries: the heap of one bucket
//! (a few entries, in cache), the bucket heads in order, one 16-byte node
//! per entry, and the head of the bucket a new arrival lands in. A worker's
//! entry sits in the worker's own node (a shared one only for the stale
//! entry of a cancelled computation), so [`EventQueue::lookahead`] can name
//! the workers of the events a few buckets ahead from the heads alone, and
//! the engine prefetches their state; a new arrival is linked into its
//! bucket a few placements later (the `inbox`), its bucket head prefetched
//! meanwhile. A heap of 10⁶ entries instead walks ten levels per event,
//! the deeper ones out of the caches, one dependent load after another.
//!
//! Either way it pops in exactly the order of the `BinaryHeap<Reverse<(u64,
//! u32, u32)>>` the engine first used: an entry's bucket is ⌊(t − start) ·
//! per_time⌋ of its time t, a monotone function of the key (floating-point
//! subtraction and multiplication round monotonically), so every entry of
//! `near` precedes every entry of a later bucket, which precedes `far`; the
//! heap orders equal keys by worker, then generation; and two equal entries
//! are the same triple, so which comes out first cannot be told apart.
//! Tests pop both forms against `BinaryHeap` on random inputs with frequent
//! ties, keys up to `u64::MAX`, and the engine's hold pattern with
//! exponential, heavy-tailed and tying increments over many rebuilds.

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

use psim_common::memory::vec_on_huge_pages;

/// A hint to load the cache line at `p` (no effect off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86-64 baseline, and a prefetch never
        // faults nor changes memory, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Children per node of the heap.
const ARITY: usize = 4;

/// From this many entries of capacity on, [`EventQueue::with_capacity`]
/// builds the calendar; below, the whole queue is the heap, which is in the
/// L1 and L2 caches there and cheaper than moving entries between tiers.
pub const CALENDAR_FROM: usize = 4096;

/// No node (an empty bucket, the end of a list).
const NIL: u32 = u32::MAX;

/// The link of a pool node that holds no entry.
const FREE: u32 = u32::MAX - 1;

/// Entries `near` may hold before the first rebuild forces a new spread
/// (and at least, after it).
const NEAR_LIMIT: usize = 1024;

/// Placed nodes waiting to be linked into their buckets at most.
const INBOX: usize = 8;

/// How many buckets ahead of the current one [`EventQueue::lookahead`]
/// prefetches the first entry of each bucket; the second entries half as
/// far, the third a quarter as far.
const LOOKAHEAD: u64 = 8;

/// An entry in a bucket or in `far`: its key and generation, and the link
/// to the next node of its bucket's list; its worker is the node's index
/// (a worker's own node) or kept aside (a shared node). 16 bytes: what a
/// bucket's walk reads of an entry is one load.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Node {
    key: u64,
    generation: u32,
    /// Next node of the list, [`NIL`] at its end, [`FREE`] when unused.
    link: u32,
}

const _: () = assert!(std::mem::size_of::<Node>() == 16);

impl Node {
    const UNUSED: Node = Node {
        key: 0,
        generation: 0,
        link: FREE,
    };
}

/// Buckets at least, when the calendar is on.
const MIN_BUCKETS: usize = 16;

/// Entries sampled from `far` to choose the buckets' width.
const WIDTH_SAMPLE: usize = 255;

/// A 4-ary min-heap of packed entries.
#[derive(Debug, Default)]
struct Heap {
    heap: Vec<u128>,
}

impl Heap {
    #[inline]
    fn push(&mut self, x: u128) {
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

    /// The least of the root's children: the next to pop unless a smaller
    /// one is pushed.
    #[inline]
    fn runner_up(&self) -> Option<u128> {
        if let Some(&[a, b, c, d]) = self.heap.get(1..1 + ARITY) {
            return Some(a.min(b).min(c.min(d)));
        }
        let n = self.heap.len().min(ARITY + 1);
        self.heap[1.min(n)..n].iter().min().copied()
    }

    #[inline]
    fn pop(&mut self) -> Option<u128> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = self.heap[0];
        Self::sift(&mut self.heap, 0, last);
        Some(top)
    }

    /// Replaces the top (there is one) by `x`: one sift-down.
    #[inline]
    fn replace_top(&mut self, x: u128) {
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

    /// Keeps the entries `keep` accepts and restores the heap order
    /// (Floyd's construction, bottom-up).
    fn retain(&mut self, mut keep: impl FnMut(u128) -> bool) {
        self.heap.retain(|&x| keep(x));
        for i in (0..self.heap.len() / ARITY + 1).rev() {
            if let Some(&x) = self.heap.get(i) {
                Self::sift(&mut self.heap, i, x);
            }
        }
    }
}

/// The time a key stands for: the `f64` whose bits it is, up to the bits
/// of +∞, and +∞ beyond (keys the engine never makes), so that the map is
/// monotone over all keys.
#[inline]
fn time_of(key: u64) -> f64 {
    if key <= f64::INFINITY.to_bits() {
        f64::from_bits(key)
    } else {
        f64::INFINITY
    }
}

/// A min-priority queue of [`Entry`]s ordered by (key, worker,
/// generation); see the module documentation.
#[derive(Debug)]
pub struct EventQueue {
    /// The entries of the buckets up to the current one.
    near: Heap,
    /// The time bucket 0 starts at.
    start: f64,
    /// Buckets per unit of time: an entry of time t lies in bucket
    /// `⌊(t − start) · per_time⌋` (0 below `start`, and 0 for the
    /// undefined products of infinities), a monotone map.
    per_time: f64,
    /// The bucket `near` holds up to (the current one).
    cur: u64,
    /// Buckets in use (the calendar's length; `heads` may be longer).
    buckets: u64,
    /// First node of each bucket's list, or [`NIL`].
    heads: Vec<u32>,
    /// Pool of nodes: the entries of the buckets and of `far`. Node w <
    /// `home` is worker w's own: an entry of worker w takes it when it is
    /// free, so that the node an event reads is known from the worker
    /// alone; the nodes from `home` on are shared (stale entries of a
    /// cancelled computation beside the current one).
    nodes: Vec<Node>,
    /// Nodes `home..` of the pool belong to workers kept here.
    shared_workers: Vec<u32>,
    /// Free shared nodes.
    free: Vec<u32>,
    home: usize,
    /// Nodes of the entries beyond the last bucket.
    far: Vec<u32>,
    /// Nodes placed in a bucket and not yet linked into its list, with
    /// their bucket: at most [`INBOX`].
    inbox: Vec<(u32, u32)>,
    /// The last bucket whose first, second and third entries
    /// [`Self::lookahead`] prefetched.
    looked: [u64; 3],
    /// Entries in all.
    len: usize,
    /// Entries were added by [`Self::push_unsorted`] and not spread yet.
    unsettled: bool,
    /// When `near` grows past it, every entry is spread anew
    /// ([`Self::retier`]); set at each rebuild.
    near_limit: usize,
    /// When the entries grow past it (eight per bucket), every entry is
    /// spread anew over more buckets; set at each rebuild.
    grow_limit: usize,
}

impl Default for EventQueue {
    /// An empty heap.
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl EventQueue {
    /// Bytes the queue holds per entry at most, with the calendar: its
    /// node (16), its place in `far` (4) and its share of the bucket heads
    /// (at most one 4-byte head per entry).
    pub const BYTES_PER_ENTRY: usize = std::mem::size_of::<Node>() + 2 * std::mem::size_of::<u32>();

    /// An empty queue with room for `capacity` entries: the calendar from
    /// [`CALENDAR_FROM`] on, else the heap alone.
    pub fn with_capacity(capacity: usize) -> Self {
        if capacity >= CALENDAR_FROM {
            Self::calendar(capacity)
        } else {
            Self::heap(capacity)
        }
    }

    /// The heap alone, whatever the capacity.
    pub fn heap(capacity: usize) -> Self {
        Self {
            near: Heap {
                heap: Vec::with_capacity(capacity),
            },
            // Never spread: one bucket holds everything.
            near_limit: usize::MAX,
            ..Self::calendar(0)
        }
    }

    /// The calendar queue, whatever the capacity. It starts as the heap
    /// alone (one bucket, `per_time` 0) and spreads its entries over
    /// buckets once there are more than [`NEAR_LIMIT`].
    pub fn calendar(capacity: usize) -> Self {
        assert!(capacity < FREE as usize, "fewer than 2³² − 2 workers");
        Self {
            near: Heap::default(),
            start: 0.0,
            per_time: 0.0,
            cur: 0,
            buckets: 0,
            heads: Vec::new(),
            nodes: {
                let mut nodes = vec_on_huge_pages(capacity);
                nodes.resize(capacity, Node::UNUSED);
                nodes
            },
            shared_workers: Vec::new(),
            free: Vec::new(),
            home: capacity,
            far: vec_on_huge_pages(capacity),
            inbox: Vec::with_capacity(INBOX),
            looked: [0; 3],
            len: 0,
            unsettled: false,
            near_limit: NEAR_LIMIT,
            grow_limit: usize::MAX,
        }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the queue is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bucket of an entry of key `key` (see `per_time`); 0 while the
    /// heap holds everything.
    #[inline]
    fn bucket_of(&self, key: u64) -> u64 {
        if self.buckets == 0 {
            return 0;
        }
        // `as` saturates, and maps NaN (∞ − ∞, 0 · ∞) to 0.
        ((time_of(key) - self.start) * self.per_time) as u64
    }

    /// Adds entries in bulk, in any order: they wait unsorted (beyond the
    /// last bucket) and are spread once, by a single rebuild, instead of
    /// through the heap and the rebuilds that a growing queue makes. Until
    /// the next `push`, `pop` or `replace_top`, [`Self::peek`] does not see
    /// them (call [`Self::settle`] first). Without the calendar, pushes.
    pub fn push_unsorted(&mut self, entries: impl IntoIterator<Item = Entry>) {
        if self.near_limit == usize::MAX {
            entries.into_iter().for_each(|e| self.push(e));
            return;
        }
        self.link_inbox();
        for e in entries {
            let node = self.alloc(e);
            self.far.push(node);
            self.len += 1;
        }
        self.unsettled = true;
    }

    /// Spreads the entries [`Self::push_unsorted`] added, if any: every
    /// operation does it first; `peek` needs it done.
    #[inline]
    pub fn settle(&mut self) {
        if self.unsettled {
            self.unsettled = false;
            self.retier();
        }
    }

    /// Adds `e`.
    #[inline]
    pub fn push(&mut self, e: Entry) {
        self.settle();
        self.len += 1;
        let b = self.bucket_of(e.key);
        if b <= self.cur {
            self.near.push(e.pack());
            if self.near.heap.len() > self.near_limit || self.len > self.grow_limit {
                self.retier();
            }
        } else {
            self.place(e, b);
            if self.near.heap.is_empty() {
                self.advance();
            } else if self.len > self.grow_limit {
                self.retier();
            }
        }
    }

    /// The smallest entry, if any.
    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        debug_assert!(!self.unsettled, "settle() before peek()");
        self.near.heap.first().map(|&x| Entry::unpack(x))
    }

    /// Probably the entry after the top (the least of the heap root's
    /// children): the next to pop unless a smaller one is pushed, or one
    /// in the next bucket is. A hint for prefetching.
    #[inline]
    pub fn runner_up(&self) -> Option<Entry> {
        self.near.runner_up().map(Entry::unpack)
    }

    /// Asks the processor for the queue nodes of the events a few buckets
    /// ahead and calls `worker` with their workers, for the caller to
    /// prefetch what their events will touch: the first entry of each
    /// bucket as it comes within [`LOOKAHEAD`] buckets of the current one,
    /// its second within half that, its third within a quarter (the links
    /// read on the way were asked for at the earlier stage, so the walk
    /// does not wait on memory). Entries outside their worker's own node
    /// are skipped; nothing without the calendar. A hint only.
    #[inline]
    pub fn lookahead(&mut self, mut worker: impl FnMut(u32)) {
        let mut ahead = LOOKAHEAD;
        for depth in 0..3 {
            let end = (self.cur + ahead).min(self.buckets.saturating_sub(1));
            ahead /= 2;
            let from = self.looked[depth].max(self.cur) + 1;
            for b in from..=end {
                let mut h = self.heads[b as usize];
                for _ in 0..depth {
                    if h == NIL {
                        break;
                    }
                    h = self.nodes[h as usize].link;
                }
                if (h as usize) < self.home {
                    prefetch(self.nodes.as_ptr().wrapping_add(h as usize));
                    worker(h);
                }
            }
            self.looked[depth] = self.looked[depth].max(end);
        }
    }

    /// Removes and returns the smallest entry, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        self.settle();
        let top = self.near.pop()?;
        self.len -= 1;
        if self.near.heap.is_empty() && self.len > 0 {
            self.advance();
        }
        Some(Entry::unpack(top))
    }

    /// Replaces the smallest entry by `e` (one sift-down, not a pop and a
    /// push, when `e` stays in the current bucket), returning the entry
    /// replaced; `e` is pushed if the queue is empty.
    #[inline]
    pub fn replace_top(&mut self, e: Entry) -> Option<Entry> {
        self.settle();
        let Some(&top) = self.near.heap.first() else {
            self.push(e);
            return None;
        };
        let b = self.bucket_of(e.key);
        if b <= self.cur {
            self.near.replace_top(e.pack());
        } else {
            self.near.pop();
            self.place(e, b);
            if self.near.heap.is_empty() {
                self.advance();
            }
        }
        Some(Entry::unpack(top))
    }

    /// Puts `e`, of bucket `b` after the current one, in that bucket or,
    /// beyond the last, in `far`.
    #[inline]
    fn place(&mut self, e: Entry, b: u64) {
        let node = self.alloc(e);
        if b < self.buckets {
            // Linked at the next advance (or a few places later): its
            // bucket's head, a random one of many, loads meanwhile.
            prefetch(self.heads.as_ptr().wrapping_add(b as usize));
            self.inbox.push((node, b as u32));
            if self.inbox.len() == INBOX {
                self.link_inbox();
            }
        } else {
            self.far.push(node);
        }
    }

    /// Links the nodes placed since the last time into their buckets'
    /// lists: before a bucket is taken, before a rebuild or a sweep.
    #[inline]
    fn link_inbox(&mut self) {
        for (node, b) in self.inbox.drain(..) {
            self.nodes[node as usize].link = self.heads[b as usize];
            self.heads[b as usize] = node;
        }
    }

    /// A pool node holding `e` (its link [`NIL`]): its worker's own when
    /// free.
    #[inline]
    fn alloc(&mut self, e: Entry) -> u32 {
        let node = Node {
            key: e.key,
            generation: e.generation,
            link: NIL,
        };
        let w = e.worker as usize;
        if w < self.home && self.nodes[w].link == FREE {
            self.nodes[w] = node;
            return e.worker;
        }
        match self.free.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                self.shared_workers[n as usize - self.home] = e.worker;
                n
            }
            None => {
                let n = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&n| n < FREE)
                    .expect("fewer than 2³² − 2 pending events");
                self.nodes.push(node);
                self.shared_workers.push(e.worker);
                n
            }
        }
    }

    /// The entry node `n` holds, packed as in the heap.
    #[inline]
    fn entry(&self, n: u32) -> Entry {
        let node = self.nodes[n as usize];
        Entry {
            key: node.key,
            worker: if (n as usize) < self.home {
                n
            } else {
                self.shared_workers[n as usize - self.home]
            },
            generation: node.generation,
        }
    }

    /// Frees node `n`, returning its entry.
    #[inline]
    fn release(&mut self, n: u32) -> Entry {
        let e = self.entry(n);
        self.nodes[n as usize].link = FREE;
        if n as usize >= self.home {
            self.free.push(n);
        }
        e
    }

    /// With `near` empty and entries left: moves the next non-empty bucket
    /// into `near`, rebuilding the buckets from `far` when they run out.
    fn advance(&mut self) {
        debug_assert!(self.near.heap.is_empty() && self.len > 0);
        self.link_inbox();
        loop {
            self.cur += 1;
            if self.cur >= self.buckets {
                self.rebuild();
                return;
            }
            let b = self.cur as usize;
            let mut n = std::mem::replace(&mut self.heads[b], NIL);
            if n != NIL {
                while n != NIL {
                    let following = self.nodes[n as usize].link;
                    let e = self.release(n);
                    self.near.push(e.pack());
                    n = following;
                }
                if self.near.heap.len() > self.near_limit {
                    self.retier();
                }
                return;
            }
        }
    }

    /// Spreads `far` (every entry left: `near` and the buckets are empty)
    /// over new buckets: half as many as the entries (a power of two, at
    /// least [`MIN_BUCKETS`]), starting at the least sampled time, each as
    /// wide as the sample's lower half spread over half of them; the
    /// entries of bucket 0 go to `near`, those beyond the last stay in
    /// `far`.
    fn rebuild(&mut self) {
        let n = self.far.len();
        debug_assert!(n > 0 && n == self.len && self.near.heap.is_empty());
        // Half as many buckets as entries, rounded up to a power of two.
        let buckets = (n.next_power_of_two() / 2).max(MIN_BUCKETS);
        if self.heads.len() < buckets {
            if self.heads.capacity() < buckets {
                let mut heads = vec_on_huge_pages(buckets);
                heads.extend_from_slice(&self.heads);
                self.heads = heads;
            }
            self.heads.resize(buckets, NIL);
        }
        self.buckets = buckets as u64;
        // A sample of times, evenly through `far`.
        let step = n.div_ceil(WIDTH_SAMPLE).max(1);
        let mut sample: Vec<u64> = (0..n)
            .step_by(step)
            .map(|i| self.nodes[self.far[i] as usize].key)
            .collect();
        sample.sort_unstable();
        let least = time_of(sample[0]);
        let median = time_of(sample[sample.len() / 2]);
        // Half the buckets for the times up to the median. Ties (a width
        // of 0, `per_time` +∞) put the least time's entries alone in
        // bucket 0; an infinite median (`per_time` 0) puts everything in
        // it: the heap alone until the next rebuild.
        self.start = least;
        self.per_time = (buckets / 2) as f64 / (median - least);
        if self.per_time.is_nan() {
            self.per_time = 0.0;
        }
        self.cur = 0;
        self.looked = [0; 3];
        let mut kept = std::mem::take(&mut self.far);
        let mut k = 0;
        for i in 0..kept.len() {
            let node = kept[i];
            let b = self.bucket_of(self.nodes[node as usize].key);
            if b == 0 {
                let e = self.release(node);
                self.near.push(e.pack());
            } else if b < self.buckets {
                let b = b as usize;
                self.nodes[node as usize].link = self.heads[b];
                self.heads[b] = node;
            } else {
                kept[k] = node;
                k += 1;
            }
        }
        kept.truncate(k);
        self.far = kept;
        // A rebuild costs O(entries): the next one `near` may force waits
        // for it to hold an eighth of them (or twice what it holds now,
        // when the keys tie so that no width can split them), and the
        // entries may grow to eight per bucket before they are spread over
        // more (geometric growth): O(1) a push in all.
        self.near_limit = NEAR_LIMIT.max(2 * self.near.heap.len()).max(self.len / 8);
        self.grow_limit = 8 * buckets;
        if self.near.heap.is_empty() {
            self.advance();
        }
    }

    /// Spreads every entry anew: `near` has outgrown its limit (the
    /// buckets were set when there were far fewer entries, or a bucket
    /// gathered a cluster), or the entries outgrew the buckets; `near` and
    /// the buckets go back to `far` and the buckets are rebuilt from all.
    #[cold]
    fn retier(&mut self) {
        self.link_inbox();
        if self.len == 0 {
            return;
        }
        for x in std::mem::take(&mut self.near.heap) {
            let node = self.alloc(Entry::unpack(x));
            self.far.push(node);
        }
        for b in self.cur + 1..self.buckets {
            let mut n = std::mem::replace(&mut self.heads[b as usize], NIL);
            while n != NIL {
                self.far.push(n);
                n = self.nodes[n as usize].link;
            }
        }
        self.rebuild();
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.settle();
        self.link_inbox();
        self.near.retain(|x| keep(&Entry::unpack(x)));
        let mut len = self.near.heap.len();
        for b in self.cur + 1..self.buckets {
            let mut n = std::mem::replace(&mut self.heads[b as usize], NIL);
            while n != NIL {
                let following = self.nodes[n as usize].link;
                if keep(&self.entry(n)) {
                    self.nodes[n as usize].link = self.heads[b as usize];
                    self.heads[b as usize] = n;
                    len += 1;
                } else {
                    self.release(n);
                }
                n = following;
            }
        }
        let mut far = std::mem::take(&mut self.far);
        far.retain(|&n| {
            let k = keep(&self.entry(n));
            if !k {
                self.release(n);
            }
            k
        });
        len += far.len();
        self.far = far;
        self.len = len;
        if self.near.heap.is_empty() && self.len > 0 {
            self.advance();
        }
    }

    /// Removes every entry, in no particular order.
    pub fn drain_unordered(&mut self) -> impl Iterator<Item = Entry> + '_ {
        let near = std::mem::take(&mut self.near.heap);
        // The nodes go with the entries: the queue left has no home nodes.
        let nodes = std::mem::take(&mut self.nodes);
        let shared = std::mem::take(&mut self.shared_workers);
        let home = std::mem::replace(&mut self.home, 0);
        self.free.clear();
        self.far.clear();
        self.inbox.clear();
        self.heads.iter_mut().for_each(|h| *h = NIL);
        self.len = 0;
        self.cur = 0;
        self.buckets = 0;
        self.per_time = 0.0;
        self.looked = [0; 3];
        self.unsettled = false;
        let pooled = nodes
            .into_iter()
            .enumerate()
            .filter(|(_, node)| node.link != FREE)
            .map(move |(n, node)| Entry {
                key: node.key,
                worker: if n < home { n as u32 } else { shared[n - home] },
                generation: node.generation,
            });
        near.into_iter().map(Entry::unpack).chain(pooled)
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
        for seed in 0..600u64 {
            let mut rng = PsimRng::seed_from_u64(seed);
            // Both forms: the heap alone, and the calendar from the first entry.
            let mut q = if seed % 2 == 0 {
                EventQueue::with_capacity(0)
            } else {
                EventQueue::calendar(0)
            };
            let mut h: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
            let mut last = 0u64;
            // Spread of keys: from all-equal to full 64-bit jumps.
            let spread = [1u64, 4, 1 << 10, 1 << 40, u64::MAX / 4][seed as usize / 2 % 5];
            let workers = [1u32, 3, 50][seed as usize / 2 % 3];
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

    /// The engine's pattern at scale: thousands of pending entries, each
    /// pop replaced by an entry later by a random increment (exponential,
    /// heavy-tailed, or from a few discrete values so that keys tie), with
    /// the calendar rebuilt many times: the pops must be the `BinaryHeap`'s.
    #[test]
    fn holds_in_the_binary_heaps_order() {
        for (case, pending) in [(0u64, 5_000u32), (1, 5_000), (2, 5_000), (3, 300)] {
            let mut rng = PsimRng::seed_from_u64(case);
            let mut q = EventQueue::with_capacity(CALENDAR_FROM);
            let mut h: BinaryHeap<Reverse<u128>> = BinaryHeap::new();
            let increment = |rng: &mut PsimRng| -> f64 {
                let u: f64 = rng.random::<f64>();
                match case {
                    0 | 3 => -(1.0 - u).ln() * 1e-3,
                    1 => 1e-3 * (1.0 - u).powf(-1.0 / 1.1),
                    _ => [1e-3, 2e-3, 5e-3][rng.random_range(0..3)],
                }
            };
            for w in 0..pending {
                let e = Entry {
                    key: increment(&mut rng).to_bits(),
                    worker: w,
                    generation: 0,
                };
                // The engine's first events go in unsorted, then settle.
                if case % 2 == 0 {
                    q.push_unsorted([e]);
                } else {
                    q.push(e);
                }
                h.push(Reverse(e.pack()));
            }
            q.settle();
            for _ in 0..200_000 {
                // The prefetch hint names workers that are pending.
                q.lookahead(|w| assert!(w < pending, "case {case}"));
                let e = q.peek().expect("never empty");
                assert_eq!(Some(e.pack()), h.peek().map(|r| r.0), "case {case}");
                let now = f64::from_bits(e.key);
                let n = Entry {
                    key: (now + increment(&mut rng)).to_bits(),
                    generation: e.generation ^ 1,
                    ..e
                };
                assert_eq!(q.replace_top(n), Some(e));
                h.pop();
                h.push(Reverse(n.pack()));
            }
            while let Some(Reverse(x)) = h.pop() {
                assert_eq!(q.pop().map(Entry::pack), Some(x), "case {case}");
            }
            assert!(q.is_empty());
        }
    }

    #[test]
    fn drains_everything() {
        for mut q in [EventQueue::with_capacity(0), EventQueue::calendar(0)] {
            drains_everything_of(&mut q);
        }
    }

    fn drains_everything_of(q: &mut EventQueue) {
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
