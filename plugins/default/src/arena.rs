//! The component's allocator: a bump arena that starts over whenever nothing
//! in it is alive, over the standard allocator for everything else.
//!
//! Every allocation of a call is short-lived: the host writes the finding
//! into our memory (`cabi_realloc`), the rule builds its policies, and the
//! host's `post_return` frees them once it has read them. Between two calls
//! nothing of ours is alive, so the arena is empty again and the next call
//! allocates from its start, without the free-list work of the standard
//! allocator (dlmalloc on `wasm32-wasip2`), which was a large part of a
//! call. What does not fit, and anything allocated while the arena is full,
//! comes from the standard allocator; an allocation that lives on (none
//! does today) would only keep the arena from starting over, so that the
//! component falls back to the standard allocator, never that it grows
//! without bound.
//!
//! A component instance runs on one thread (`wasm32-wasip2` has none), so
//! the state needs no synchronisation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// The arena's size, many times what one call of the default mapper
/// allocates (its finding and its answer: a few kilobytes of text).
const SIZE: usize = 256 << 10;
/// The arena's alignment, the largest any of our types needs.
const ALIGN: usize = 16;

struct State {
    /// The arena's first byte, or 0 before the first allocation.
    start: usize,
    /// Where the next allocation goes.
    next: usize,
    /// How many allocations in the arena are alive.
    live: usize,
}

/// The allocator (a value of its own in the unit tests, which run natively).
pub(crate) struct Arena(UnsafeCell<State>);

impl Arena {
    pub(crate) const fn new() -> Arena {
        Arena(UnsafeCell::new(State { start: 0, next: 0, live: 0 }))
    }
}

// SAFETY: `wasm32-wasip2` components are single-threaded; the state is
// never touched from two threads.
#[cfg(target_arch = "wasm32")]
unsafe impl Sync for Arena {}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ARENA: Arena = Arena::new();

impl State {
    fn contains(&self, ptr: *mut u8) -> bool {
        let at = ptr as usize;
        self.start != 0 && at >= self.start && at < self.start + SIZE
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded (see `Sync`), and no reference to the
        // state outlives this call.
        let state = unsafe { &mut *self.0.get() };
        if state.start == 0 {
            // SAFETY: SIZE is not zero and ALIGN is a power of two.
            let start = unsafe { System.alloc(Layout::from_size_align_unchecked(SIZE, ALIGN)) };
            if start.is_null() {
                // SAFETY: the caller's layout is valid and not zero-sized.
                return unsafe { System.alloc(layout) };
            }
            state.start = start as usize;
            state.next = state.start;
        }
        let at = (state.next + layout.align() - 1) & !(layout.align() - 1);
        match at.checked_add(layout.size()) {
            Some(end) if end <= state.start + SIZE => {
                state.next = end;
                state.live += 1;
                at as *mut u8
            }
            // SAFETY: the caller's layout is valid and not zero-sized.
            _ => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        if state.contains(ptr) {
            state.live -= 1;
            if state.live == 0 {
                state.next = state.start;
            }
        } else {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        if state.contains(ptr) {
            // The last allocation grows or shrinks where it is.
            let at = ptr as usize;
            if at + layout.size() == state.next && new_size <= state.start + SIZE - at {
                state.next = at + new_size;
                return ptr;
            }
        } else {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` with `layout`'s alignment
        // is a valid, non-zero layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not
            // overlap (the new one is past the old one's end, or elsewhere).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn the_arena_starts_over_once_nothing_in_it_is_alive() {
        let arena = Arena::new();
        unsafe {
            let a = arena.alloc(layout(100));
            let b = arena.alloc(layout(10));
            assert_eq!(b as usize, a as usize + 104, "the next allocation follows, aligned");
            arena.dealloc(a, layout(100));
            let c = arena.alloc(layout(10));
            assert!(c as usize > b as usize, "one allocation is still alive: no start over");
            arena.dealloc(b, layout(10));
            arena.dealloc(c, layout(10));
            assert_eq!(arena.alloc(layout(10)), a, "nothing alive: the next call starts at the start");
        }
    }

    #[test]
    fn the_last_allocation_grows_in_place_and_another_moves_with_its_bytes() {
        let arena = Arena::new();
        unsafe {
            let a = arena.alloc(layout(4));
            a.copy_from_nonoverlapping(b"spec".as_ptr(), 4);
            let grown = arena.realloc(a, layout(4), 64);
            assert_eq!(grown, a, "the last allocation grows where it is");
            let b = arena.alloc(layout(8));
            let moved = arena.realloc(a, layout(64), 128);
            assert!(moved as usize > b as usize);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"spec");
            arena.dealloc(b, layout(8));
            arena.dealloc(moved, layout(128));
            assert_eq!(arena.alloc(layout(1)), a, "the move freed the old block");
        }
    }

    #[test]
    fn what_does_not_fit_comes_from_the_standard_allocator_and_goes_back_to_it() {
        let arena = Arena::new();
        unsafe {
            let small = arena.alloc(layout(16));
            let big = arena.alloc(layout(SIZE));
            let state = &*arena.0.get();
            assert!(state.contains(small) && !state.contains(big));
            big.write_bytes(7, SIZE);
            let bigger = arena.realloc(big, layout(SIZE), 2 * SIZE);
            assert_eq!(*bigger.add(SIZE - 1), 7);
            arena.dealloc(bigger, layout(2 * SIZE));
            arena.dealloc(small, layout(16));
            assert_eq!(arena.alloc(layout(16)), small);
        }
    }
}
