//! A ring of the last `capacity` versions of the parameters, so that an
//! injected staleness τ can be served as v_{k−τ} exactly.

/// The last versions of the parameters, newest at `head`. The ring is
/// rounded up to a power of two so indexing is a mask, not a division; the
/// capacity it reports is the one asked for, so a configured history of 5
/// versions serves stalenesses 0..5 exactly and applies the history policy
/// beyond, as configured (not beyond the ring's 8).
#[derive(Debug, Clone)]
pub struct History {
    buf: Vec<f64>,
    dim: usize,
    mask: usize,
    head: usize,
    capacity: usize,
}

impl History {
    /// A history able to serve stalenesses `0..capacity` (at least), filled
    /// with `initial` so that v_{−i} = v_0 as eq. (2.1) of 001 assumes.
    pub fn new(initial: &[f64], capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let cap = capacity.next_power_of_two();
        let dim = initial.len();
        let mut buf = Vec::with_capacity(cap * dim);
        for _ in 0..cap {
            buf.extend_from_slice(initial);
        }
        Self {
            buf,
            dim,
            mask: cap - 1,
            head: 0,
            capacity,
        }
    }

    /// How many versions are kept: stalenesses `0..capacity()` are exact.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends a new newest version.
    #[inline]
    pub fn push(&mut self, params: &[f64]) {
        self.head = (self.head + 1) & self.mask;
        let at = self.head * self.dim;
        self.buf[at..at + self.dim].copy_from_slice(params);
    }

    /// The version `staleness` versions before the newest; `staleness` must
    /// be below [`History::capacity`].
    #[inline]
    pub fn get(&self, staleness: usize) -> &[f64] {
        debug_assert!(staleness <= self.mask);
        let at = ((self.head.wrapping_sub(staleness)) & self.mask) * self.dim;
        &self.buf[at..at + self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_past_versions_and_the_initial_point_before_the_start() {
        // The ring is 4 long; the capacity is the 3 asked for.
        let mut h = History::new(&[0.0], 3);
        assert_eq!(h.capacity(), 3);
        h.push(&[1.0]);
        assert_eq!(h.get(0), &[1.0]);
        assert_eq!(h.get(1), &[0.0]);
        assert_eq!(h.get(2), &[0.0], "v_{{-1}} = v_0");
        for v in 2..=9 {
            h.push(&[v as f64]);
        }
        assert_eq!(h.get(2), &[7.0]);
    }
}
