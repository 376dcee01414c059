//! A counting global allocator: the largest single allocation and the peak of live bytes that one
//! fuzz execution makes on its thread, so an input that makes a parser allocate far more than its
//! own size is caught even when the machine has the memory to grant it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// A request this large is never granted while an input runs: the input is printed and the
/// process aborts, rather than the machine thrashing or the kernel killing us silently.
pub const REFUSED_ALLOCATION: usize = 1 << 30;

/// What one execution allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocStats {
    /// The largest single allocation (or reallocation) in bytes.
    pub largest: usize,
    /// The most bytes allocated and not yet freed at any moment, counted from the start.
    pub peak_live: usize,
}

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// The running input, for the message printed before a refused allocation aborts.
    static INPUT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// Starts counting this thread's allocations for an execution of `input`.
pub fn begin(input: &[u8]) {
    LARGEST.set(0);
    LIVE.set(0);
    PEAK.set(0);
    INPUT.set((input.as_ptr(), input.len()));
    TRACKING.set(true);
}

/// Stops counting and returns what the execution allocated.
pub fn end() -> AllocStats {
    TRACKING.set(false);
    INPUT.set((std::ptr::null(), 0));
    AllocStats {
        largest: LARGEST.get(),
        peak_live: PEAK.get().max(0) as usize,
    }
}

fn grew(size: usize) {
    if TRACKING.get() {
        LARGEST.set(LARGEST.get().max(size));
        let live = LIVE.get() + size as isize;
        LIVE.set(live);
        PEAK.set(PEAK.get().max(live));
        if size >= REFUSED_ALLOCATION {
            refuse(size);
        }
    }
}

fn shrank(size: usize) {
    if TRACKING.get() {
        LIVE.set(LIVE.get() - size as isize);
    }
}

/// Prints the input that asked for `size` bytes (hex, written from a stack buffer: nothing may
/// allocate in here) and aborts.
fn refuse(size: usize) -> ! {
    TRACKING.set(false);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\nfuzz: an input asked for one allocation of {size} bytes; input (hex):"
    );
    let (ptr, len) = INPUT.get();
    if !ptr.is_null() {
        // SAFETY: `begin` stored the pointer and length of a slice that outlives the execution,
        // and `end` clears them before the slice can go away.
        let input = unsafe { std::slice::from_raw_parts(ptr, len) };
        let mut line = [0u8; 128];
        for chunk in input.chunks(64) {
            for (i, byte) in chunk.iter().enumerate() {
                line[2 * i] = b"0123456789abcdef"[usize::from(byte >> 4)];
                line[2 * i + 1] = b"0123456789abcdef"[usize::from(byte & 15)];
            }
            let _ = err.write_all(&line[..2 * chunk.len()]);
        }
    }
    let _ = writeln!(err);
    std::process::abort();
}

/// The system allocator, counting.
pub struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrank(layout.size());
        grew(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
