//! A ring of the last `capacity` versions of the parameters, so that an
//! injected staleness τ can be served as v_{k−τ} exactly.

/// The last versions of the parameters, newest at `head`. Capacity is
/// rounded up to a power of two so indexing is a mask, not a division.
#[derive(Debug, Clone)]
pub struct History {
    buf: Vec<f64>,
    dim: usize,
    mask: usize,
    head: usize,
}

impl History {
    /// A history able to serve stalenesses `0..capacity` (at least), filled
    /// with `initial` so that v_{−i} = v_0 as eq. (2.1) of 001 assumes.
    pub fn new(initial: &[f64], capacity: usize) -> Self {
        let cap = capacity.max(1).next_power_of_two();
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
        }
    }

    /// How many versions are kept: stalenesses `0..capacity()` are exact.
    pub fn capacity(&self) -> usize {
        self.mask + 1
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
        let mut h = History::new(&[0.0], 3); // rounded to 4
        assert_eq!(h.capacity(), 4);
        for v in 1..=2 {
            h.push(&[v as f64]);
        }
        assert_eq!(h.get(0), &[2.0]);
        assert_eq!(h.get(1), &[1.0]);
        assert_eq!(h.get(2), &[0.0]);
        assert_eq!(h.get(3), &[0.0], "v_{{-1}} = v_0");
        for v in 3..=9 {
            h.push(&[v as f64]);
        }
        assert_eq!(h.get(3), &[6.0]);
    }
}
