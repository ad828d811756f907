//! Large per-worker arrays on transparent huge pages.
//!
//! The virtual-time engine touches a few hundred bytes of per-worker state
//! per event, in random worker order; at 10⁶ workers that state spans
//! ≈ 200 MB, so with 4 KiB pages nearly every access also misses the TLB
//! and walks the page tables. Backed by 2 MiB pages the same arrays need
//! ≈ 100 TLB entries instead of ≈ 50,000. Linux gives huge pages to memory
//! that asks for them (`madvise(MADV_HUGEPAGE)`, honoured when
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`,
//! the usual default); elsewhere the advice is skipped. Advice only: the
//! contents and every result are the same either way.

/// Arrays smaller than this are left alone (they fit in a few pages).
pub const HUGE_PAGES_FROM: usize = 4 << 20;

/// Bytes of a huge page on x86-64 Linux.
const HUGE_PAGE: usize = 2 << 20;

/// An empty vector with room for `capacity` values, its memory advised
/// onto huge pages before anything touches it (see the module docs).
pub fn vec_on_huge_pages<T>(capacity: usize) -> Vec<T> {
    let v = Vec::with_capacity(capacity);
    advise_huge_pages(&v);
    v
}

/// Advises the whole 2 MiB pages inside `v`'s allocation onto huge pages
/// (from [`HUGE_PAGES_FROM`] bytes of capacity on; Linux only). Pages
/// already touched keep their size until the kernel's background
/// collapse, so call it before filling the vector.
pub fn advise_huge_pages<T>(v: &Vec<T>) {
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    if bytes < HUGE_PAGES_FROM {
        return;
    }
    let start = v.as_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the range is page-aligned and lies inside `v`'s
        // allocation; MADV_HUGEPAGE only changes how the kernel backs it,
        // never its contents. A refusal (an old kernel, huge pages off) is
        // harmless and ignored.
        let _ =
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_keeps_the_contents() {
        let mut v: Vec<u64> = vec_on_huge_pages(3 << 20);
        v.extend(0..3 << 20);
        advise_huge_pages(&v);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        // Small vectors are left alone.
        let small: Vec<u8> = vec_on_huge_pages(10);
        assert!(small.capacity() >= 10);
    }
}
