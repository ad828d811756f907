//! Cancellation that reaches inside a run.
//!
//! A caller that may be interrupted (Ctrl-C on the command line or in
//! Python) runs its engines inside [`with_cancel`]: every run started on
//! that thread polls the flag every [`POLL_EVERY`] versions (the
//! [`crate::record::RunRecorder`] of the scalar engines, the batched
//! kernel's loop) and stops early once it is raised. A run stopped that way
//! is incomplete: the caller, which raised the flag, discards it (the
//! executor writes no point of which a run was cancelled), so a cancelled
//! run never reaches an output file.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Versions between two polls of the flag: a load every 4096 updates costs
/// nothing measurable and stops a run within milliseconds.
pub const POLL_EVERY: u64 = 4096;

thread_local! {
    static CURRENT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `f` with `flag` as the cancel flag of every run started on this thread.
pub fn with_cancel<T>(flag: Option<&Arc<AtomicBool>>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(flag.cloned()));
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// The cancel flag of runs started on this thread now, if any.
pub fn current() -> Option<Arc<AtomicBool>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether `flag` is raised.
#[inline]
pub fn raised(flag: &Option<Arc<AtomicBool>>) -> bool {
    flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_scoped_to_the_call_and_restored_after() {
        let flag = Arc::new(AtomicBool::new(true));
        assert!(current().is_none());
        with_cancel(Some(&flag), || {
            assert!(raised(&current()));
            with_cancel(None, || assert!(current().is_none()));
            assert!(raised(&current()));
        });
        assert!(current().is_none());
    }
}
