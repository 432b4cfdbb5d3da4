//! The benchmarks' allocator: the system's, counting live heap bytes and their high-water mark (`LIVE`, `PEAK`).
//!
//! Each thread adds up its own allocations and frees and moves them to the shared counters only once they reach
//! [`BATCH`]: one shared counter written on every allocation by every core was itself a large part of what a
//! multi-threaded run measured (each write takes the counter's cache line from the other core). The peak is then
//! exact to within [`BATCH`] per thread. `FLEET_ALLOC=shared` counts every allocation in the shared counters as
//! before (and grows by allocate, copy, free), to compare.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Counts live heap bytes and their high-water mark.
struct Counting;
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
pub static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes a thread may hold back from the shared counters.
const BATCH: isize = 256 * 1024;

/// 0: not read yet; 1: batched (the default); 2: every allocation shared (`FLEET_ALLOC=shared`).
static MODE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// Bytes this thread allocated (positive) or freed (negative) that the shared counters do not show yet.
    static PENDING: Cell<isize> = const { Cell::new(0) };
}

fn shared_mode() -> bool {
    match MODE.load(Ordering::Relaxed) {
        0 => {
            // std::env::var allocates: read the variable through libc, which does not.
            // SAFETY: a NUL-terminated name; getenv returns NULL or a NUL-terminated string that is only read here.
            let v = unsafe { getenv(c"FLEET_ALLOC".as_ptr()) };
            let shared = !v.is_null() && unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes() == b"shared";
            MODE.store(if shared { 2 } else { 1 }, Ordering::Relaxed);
            shared
        }
        m => m == 2,
    }
}

unsafe extern "C" {
    fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
}

fn publish(delta: isize) {
    if delta >= 0 {
        let now = LIVE.fetch_add(delta as usize, Ordering::Relaxed) + delta as usize;
        // A plain read first: most allocations set no new peak, and a read leaves the line shared between cores.
        if now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    } else {
        LIVE.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

fn count(delta: isize) {
    if shared_mode() {
        if delta >= 0 {
            let now = LIVE.fetch_add(delta as usize, Ordering::Relaxed) + delta as usize;
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
        return;
    }
    let held = PENDING.try_with(|p| {
        let v = p.get() + delta;
        if v.abs() >= BATCH {
            p.set(0);
            publish(v);
        } else {
            p.set(v);
        }
    });
    if held.is_err() {
        // The thread is ending: no batch of its own any more.
        publish(delta);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        count(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if shared_mode() {
            // What the trait's default does: a new block, the bytes copied, the old block freed.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, l.align()) };
            let q = unsafe { self.alloc(new_layout) };
            if !q.is_null() {
                unsafe { std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size)) };
                unsafe { self.dealloc(p, l) };
            }
            return q;
        }
        // The system's realloc grows in place where it can, as the CLI's allocator (the system's) does.
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            count(new_size as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;
