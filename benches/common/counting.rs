//! The benchmarks' allocator: the CLI's (mimalloc, src/main.rs), counting live heap bytes and their high-water mark
//! (`LIVE`, `PEAK`).
//!
//! A block grows in place where the allocator can (its `realloc`), as the CLI's does: the trait's default
//! would allocate, copy and free on every growth, which the fleet benchmark measured as a large part of its own CPU
//! (a script of 1,000 peers grows its string some twenty times). `FLEET_ALLOC=copy` keeps that default, to compare.
//!
//! Each thread adds its allocations up on its own and moves them to the shared counters once they reach 64 KiB
//! either way: one shared atomic add per allocation, from both cores, had each core take the counters' cache line
//! from the other millions of times (a tenth of the fleet benchmark's CPU, in the allocator, not in vxmesh). So
//! `LIVE` and `PEAK` may each be off by up to 64 KiB per thread that allocates (a few MiB at most, next to the
//! hundreds of MiB measured); the kernel's peak RSS, printed beside, is exact.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// What the CLI allocates with.
use mimalloc::MiMalloc as Inner;

/// Counts live heap bytes and their high-water mark.
struct Counting;
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
pub static PEAK: AtomicUsize = AtomicUsize::new(0);

/// 0: not read yet; 1: in place (the default); 2: allocate, copy, free (`FLEET_ALLOC=copy`).
static MODE: AtomicU8 = AtomicU8::new(0);

unsafe extern "C" {
    fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
}

fn copy_mode() -> bool {
    match MODE.load(Ordering::Relaxed) {
        0 => {
            // std::env::var allocates, and this runs inside the allocator: libc's getenv does not.
            // SAFETY: a NUL-terminated name; getenv returns NULL or a NUL-terminated string, only read here.
            let v = unsafe { getenv(c"FLEET_ALLOC".as_ptr()) };
            let copy = !v.is_null() && unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes() == b"copy";
            MODE.store(if copy { 2 } else { 1 }, Ordering::Relaxed);
            copy
        }
        m => m == 2,
    }
}

/// Bytes this thread allocated (positive) or freed (negative) that the shared counters do not have yet.
const FLUSH_AT: isize = 64 << 10;

thread_local! {
    // Const and without a destructor: no allocation to make it, which the allocator itself could not do.
    static PENDING: Cell<isize> = const { Cell::new(0) };
}

/// `delta` bytes more (or fewer) live, counted on this thread until they add up to [`FLUSH_AT`].
fn moved(delta: isize) {
    let due = PENDING
        .try_with(|p| {
            let v = p.get() + delta;
            if v.abs() < FLUSH_AT {
                p.set(v);
                None
            } else {
                p.set(0);
                Some(v)
            }
        })
        // A thread being torn down has no thread-locals left: straight to the shared counters.
        .unwrap_or(Some(delta));
    if let Some(v) = due {
        // Two's complement: adding a negative delta's bit pattern subtracts it.
        let now = LIVE.fetch_add(v as usize, Ordering::Relaxed).wrapping_add(v as usize);
        // A read first: most flushes set no new peak, and a read leaves the counter's line shared between cores.
        if v > 0 && now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

fn grew(bytes: usize) {
    moved(bytes as isize);
}

fn shrank(bytes: usize) {
    moved(-(bytes as isize));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { Inner.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { Inner.dealloc(p, l) };
        shrank(l.size());
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if copy_mode() {
            // The trait's default: a new block, the bytes copied, the old block freed.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, l.align()) };
            let q = unsafe { self.alloc(new_layout) };
            if !q.is_null() {
                unsafe { std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size)) };
                unsafe { self.dealloc(p, l) };
            }
            return q;
        }
        let q = unsafe { Inner.realloc(p, l, new_size) };
        if !q.is_null() {
            if new_size >= l.size() {
                grew(new_size - l.size());
            } else {
                shrank(l.size() - new_size);
            }
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;
