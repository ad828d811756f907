//! One Python thread state per engine thread, for the thread's whole life.
//!
//! `Python::with_gil` on a thread Python did not create makes a new thread
//! state (`PyGILState_Ensure`) and destroys it again when the call returns,
//! so every callback from an engine thread paid for both (several µs) and
//! started with an empty `threading.local()`. [`ensure`] attaches a thread
//! once: it creates the thread state, keeps it (the `PyGILState` counter
//! stays at 1) and releases the GIL; later `with_gil` calls on that thread
//! only take and release the GIL. The thread state is destroyed by the
//! thread itself when it ends (a thread-local destructor), which is the
//! only thread that may delete it.
//!
//! At interpreter exit a thread must not take the GIL any more, so
//! [`wait_detached`] (called by `execute` before it returns, for at most
//! 100 ms) waits until the threads attached during a call have ended, and
//! [`shutting_down`] (registered with `atexit`) makes a later destructor
//! leave its thread state to the interpreter's finalisation instead. A
//! destructor caught between the two blocks in PyO3's `PyGILState_Ensure`,
//! which hangs that exiting thread rather than unwinding it, until the
//! process ends.

use pyo3::ffi;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Threads attached and not yet detached.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: destructors no longer touch Python.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

enum State {
    /// Not looked at yet.
    Unknown,
    /// A thread Python knows (the main thread, a `threading.Thread`).
    Python,
    /// A thread attached by [`ensure`]; detached when the thread ends.
    Attached,
}

struct Slot(State);

impl Drop for Slot {
    fn drop(&mut self) {
        if !matches!(self.0, State::Attached) {
            return;
        }
        if !SHUTTING_DOWN.load(Ordering::Acquire) {
            // SAFETY: this thread's thread state exists (made by `ensure`,
            // counter 1) and is not current. Ensure takes the GIL (counter
            // 2); the first Release, told the GIL was held, only counts down;
            // the second deletes the thread state and releases the GIL.
            unsafe {
                let _ = ffi::PyGILState_Ensure();
                ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_LOCKED);
                ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_UNLOCKED);
            }
        }
        LIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

thread_local! {
    static SLOT: RefCell<Slot> = const { RefCell::new(Slot(State::Unknown)) };
}

/// Gives the calling thread a Python thread state that lasts until the
/// thread ends, if it has none. Call without holding the GIL.
pub fn ensure() {
    SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if !matches!(slot.0, State::Unknown) {
            return;
        }
        // SAFETY: plain C-API calls on the current thread, which does not
        // hold the GIL; the interpreter is initialised (we are its extension).
        unsafe {
            if !ffi::PyGILState_GetThisThreadState().is_null() {
                slot.0 = State::Python;
                return;
            }
            let _ = ffi::PyGILState_Ensure();
            ffi::PyEval_SaveThread();
        }
        LIVE.fetch_add(1, Ordering::AcqRel);
        slot.0 = State::Attached;
    })
}

/// Waits (without the GIL) until no attached thread is left, at most
/// `limit`; returns whether none is.
pub fn wait_detached(limit: Duration) -> bool {
    let started = Instant::now();
    while LIVE.load(Ordering::Acquire) > 0 {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// Registered with `atexit`: thread states still attached are left to the
/// interpreter's finalisation.
#[pyo3::pyfunction]
pub fn shutting_down() {
    SHUTTING_DOWN.store(true, Ordering::Release);
}
