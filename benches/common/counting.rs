//! The benchmarks' allocator: the system's, counting live heap bytes and their high-water mark (`LIVE`, `PEAK`).
//!
//! A block grows in place where the system's allocator can (its `realloc`), as the CLI's does: the trait's default
//! would allocate, copy and free on every growth, which the fleet benchmark measured as a large part of its own CPU
//! (a script of 1,000 peers grows its string some twenty times). `FLEET_ALLOC=copy` keeps that default, to compare.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

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

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    // A read first: most allocations set no new peak, and a read leaves the counter's line shared between cores.
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
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
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            if new_size >= l.size() {
                grew(new_size - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;
