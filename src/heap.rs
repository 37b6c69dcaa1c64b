//! The tiny build's memory allocator: power-of-two size classes, each with a free list, fed by a
//! bump pointer over pages from a [`Pages`] source (the wasm memory in the browser).
//!
//! A block's class follows from its `Layout` alone (the larger of size and alignment, rounded up
//! to a power of two, at least 8 bytes), so blocks carry no header; a free block holds the link
//! to the next free block of its class. Every block is aligned to its class size, which honours
//! any alignment up to it. A class with no free block splits the smallest larger free one before
//! taking fresh memory. Alignment gaps in the bump region, the rest of a region left behind and
//! the rest of a split block become free blocks of smaller classes. Free blocks are never merged,
//! and memory is never given back to the source.

#[allow(unused_imports)]
use crate::prelude::*;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Size of one page from a [`Pages`] source: the wasm page, 64 KiB.
pub const PAGE: usize = 64 * 1024;

/// log2 of the smallest block, 8 bytes: room for the free-list link on 64-bit hosts too.
const MIN_SHIFT: u32 = 3;
/// One class per power of two from `2^MIN_SHIFT` up to the largest a `usize` holds.
const CLASSES: usize = (usize::BITS - MIN_SHIFT) as usize;

/// A source of fresh memory in whole pages.
pub trait Pages {
    /// Adds `count` pages and returns the address of the first (`PAGE`-aligned, not 0), or `None`
    /// when no more memory can be had. Successive regions are usually, not necessarily, adjacent.
    fn grow(&mut self, count: usize) -> Option<usize>;
}

/// Class of a layout (index into the free lists); `None` when larger than the largest class.
fn class(layout: Layout) -> Option<usize> {
    size_class(layout.size(), layout.align())
}

/// Class of a block of `size` bytes aligned to `align`; `None` when larger than the largest.
fn size_class(size: usize, align: usize) -> Option<usize> {
    let size = size.max(align).checked_next_power_of_two()?;
    Some((size.trailing_zeros().max(MIN_SHIFT) - MIN_SHIFT) as usize)
}

/// Block size of a class.
fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

/// Size-class free lists and a bump region over memory from a [`Pages`] source.
pub struct Heap<P> {
    pages: P,
    /// Head of each class's free list, null when empty; a free block starts with the next one.
    free: [*mut u8; CLASSES],
    /// Start of the unused part of the bump region `[next, end)`.
    next: usize,
    /// End of the bump region (end of the last region from the source).
    end: usize,
}

impl<P: Pages> Heap<P> {
    /// An empty heap; it takes pages from `pages` as it needs them.
    pub const fn new(pages: P) -> Self {
        Heap {
            pages,
            free: [ptr::null_mut(); CLASSES],
            next: 0,
            end: 0,
        }
    }

    /// A block for `layout`, aligned to its class size; null when out of memory.
    pub fn alloc(&mut self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(class) => self.alloc_class(class),
            None => ptr::null_mut(),
        }
    }

    /// A block of `class`: a free one of the class, or else the smallest larger free block
    /// split (its first part is the block, the rest, one block of each class in between, goes
    /// to the free lists), or else fresh memory; null when out of memory.
    fn alloc_class(&mut self, class: usize) -> *mut u8 {
        for larger in class..CLASSES {
            if !self.free[larger].is_null() {
                let block = self.pop(larger);
                let start = block as usize;
                // SAFETY: the rest of a free block (empty for `class` itself) is unused memory;
                // both ends are multiples of 8.
                unsafe { self.carve(start + class_size(class), start + class_size(larger)) };
                return block;
            }
        }
        self.fresh(class_size(class)).unwrap_or(ptr::null_mut())
    }

    /// Takes the first block off the (non-empty) free list of `class`.
    fn pop(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        // SAFETY: a free block is at least 8 bytes, aligned to its size, and starts with the link
        // `push` wrote.
        self.free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    /// Gives a block back: it goes on its class's free list.
    ///
    /// # Safety
    /// `block` came from this heap's `alloc` or `realloc` with this `layout` (size as last
    /// requested) and is not used afterwards.
    pub unsafe fn dealloc(&mut self, block: *mut u8, layout: Layout) {
        if let Some(class) = class(layout) {
            // SAFETY: the caller's promise; the block is of this class.
            unsafe { self.push(block, class) }
        }
    }

    /// Resizes a block: the same block while `new_size` stays in its class, otherwise a new one
    /// holding the old contents (up to the smaller size). Null, with the old block untouched,
    /// when out of memory.
    ///
    /// # Safety
    /// As for [`Heap::dealloc`]; on success `block` must not be used afterwards.
    pub unsafe fn realloc(&mut self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(new_class) = size_class(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if Some(new_class) == class(layout) {
            return block;
        }
        let moved = self.alloc_class(new_class);
        if !moved.is_null() {
            // SAFETY: both blocks hold at least the smaller size and are distinct live blocks.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }

    /// A new block of `size` (a power of two, at least 8) from the bump region, growing it as
    /// needed; `None` when the source has no more pages.
    fn fresh(&mut self, size: usize) -> Option<*mut u8> {
        let mut apart = false;
        loop {
            let start = self.next.checked_add(size - 1)? & !(size - 1);
            let stop = start.checked_add(size)?;
            if stop <= self.end {
                // SAFETY: `[next, start)` is unused memory of the current region.
                unsafe { self.carve(self.next, start) };
                self.next = stop;
                return Some(start as *mut u8);
            }
            // Enough pages for the block if the new region follows the current one; once a
            // region did not, enough for it anywhere in a region of its own.
            let need = if apart {
                size.checked_mul(2)?.saturating_sub(PAGE).max(size)
            } else {
                stop - self.end
            };
            let count = need.div_ceil(PAGE);
            let base = self.pages.grow(count)?;
            let top = base.checked_add(count.checked_mul(PAGE)?)?;
            apart = base != self.end;
            if apart {
                // Not adjacent: the rest of the old region becomes free blocks.
                // SAFETY: `[next, end)` is unused memory of the old region.
                unsafe { self.carve(self.next, self.end) };
                self.next = base;
            }
            self.end = top;
        }
    }

    /// Splits `[from, to)` into the largest blocks aligned to their size and frees them.
    ///
    /// # Safety
    /// `[from, to)` is unused memory of this heap; both ends are multiples of 8.
    unsafe fn carve(&mut self, mut from: usize, to: usize) {
        while from < to {
            let fits = 1 << (usize::BITS - 1 - (to - from).leading_zeros());
            let aligned = from & from.wrapping_neg();
            let size = if aligned == 0 {
                fits
            } else {
                fits.min(aligned)
            };
            // SAFETY: the caller's promise; `size` is at least 8 and `from` is aligned to it.
            unsafe {
                self.push(
                    from as *mut u8,
                    (size.trailing_zeros() - MIN_SHIFT) as usize,
                )
            };
            from += size;
        }
    }

    /// Puts a block on the free list of `class`.
    ///
    /// # Safety
    /// `block` is unused memory of this heap, of `class`'s size and aligned to it.
    unsafe fn push(&mut self, block: *mut u8, class: usize) {
        // SAFETY: the caller's promise; the block is large and aligned enough for the link.
        unsafe { block.cast::<*mut u8>().write(self.free[class]) };
        self.free[class] = block;
    }
}

/// A [`Heap`] usable as a `#[global_allocator]`.
pub struct Allocator<P> {
    heap: UnsafeCell<Heap<P>>,
}

impl<P: Pages> Allocator<P> {
    /// An allocator over an empty heap that takes pages from `pages`.
    pub const fn new(pages: P) -> Self {
        Allocator {
            heap: UnsafeCell::new(Heap::new(pages)),
        }
    }
}

// SAFETY: `Heap` blocks satisfy `Layout` (class size >= size and >= align) and stay valid until
// freed. The `&mut Heap` taken in each method is the only one: `Allocator` is not `Sync` except
// in the wasm build, which runs on one thread, and the heap never calls back into the allocator.
unsafe impl<P: Pages> GlobalAlloc for Allocator<P> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.heap.get()).alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        unsafe { (*self.heap.get()).dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.heap.get()).realloc(block, layout, new_size) }
    }
}

/// The wasm module's own memory, grown with `memory.grow`.
#[cfg(target_arch = "wasm32")]
pub struct WasmPages;

#[cfg(target_arch = "wasm32")]
impl Pages for WasmPages {
    fn grow(&mut self, count: usize) -> Option<usize> {
        // The previous size in pages, where the new pages start; usize::MAX on failure.
        let old = core::arch::wasm32::memory_grow(0, count);
        if old == usize::MAX {
            None
        } else {
            old.checked_mul(PAGE)
        }
    }
}

// SAFETY: the browser build runs on the page's main thread only (no wasm threads, no shared
// memory), so the heap is never reached from two threads at once.
#[cfg(target_arch = "wasm32")]
unsafe impl Sync for Allocator<WasmPages> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc};

    /// Test pages: a fixed buffer handed out in order, optionally skipping `gap` pages before
    /// each region so that regions are not adjacent.
    struct Buffer {
        base: *mut u8,
        pages: usize,
        used: usize,
        gap: usize,
        grows: usize,
    }

    impl Buffer {
        fn new(pages: usize, gap: usize) -> Self {
            let base = unsafe { alloc_zeroed(Self::layout(pages)) };
            assert!(!base.is_null());
            Buffer {
                base,
                pages,
                used: 0,
                gap,
                grows: 0,
            }
        }

        fn layout(pages: usize) -> Layout {
            Layout::from_size_align(pages * PAGE, PAGE).unwrap()
        }

        fn contains(&self, block: *mut u8, size: usize) -> bool {
            let (lo, hi) = (self.base as usize, self.base as usize + self.pages * PAGE);
            block as usize >= lo && block as usize + size <= hi
        }
    }

    impl Drop for Buffer {
        fn drop(&mut self) {
            unsafe { dealloc(self.base, Self::layout(self.pages)) }
        }
    }

    impl Pages for Buffer {
        fn grow(&mut self, count: usize) -> Option<usize> {
            let first = self.used + self.gap;
            if first + count > self.pages {
                return None;
            }
            self.used = first + count;
            self.grows += 1;
            Some(self.base as usize + first * PAGE)
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn pattern(id: usize, i: usize) -> u8 {
        (id.wrapping_mul(131) ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
    }

    fn fill(block: *mut u8, size: usize, id: usize) {
        for i in 0..size {
            unsafe { block.add(i).write(pattern(id, i)) }
        }
    }

    fn check(block: *mut u8, size: usize, id: usize) {
        for i in 0..size {
            let got = unsafe { block.add(i).read() };
            assert_eq!(got, pattern(id, i), "block {id} byte {i}");
        }
    }

    #[test]
    fn class_from_size_and_alignment() {
        assert_eq!(class(layout(0, 1)), Some(0));
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(8, 8)), Some(0));
        assert_eq!(class(layout(9, 1)), Some(1));
        assert_eq!(class(layout(16, 4)), Some(1));
        assert_eq!(class(layout(17, 1)), Some(2));
        assert_eq!(class(layout(1, 64)), Some(3));
        assert_eq!(class(layout(100, 4096)), Some(9));
        assert_eq!(class(layout(PAGE + 1, 1)), Some(14));
        assert_eq!(class(layout(isize::MAX as usize, 1)), Some(CLASSES - 1));
        assert_eq!(class_size(CLASSES - 1), 1 << (usize::BITS - 1));
    }

    #[test]
    fn blocks_are_aligned_and_disjoint() {
        let mut heap = Heap::new(Buffer::new(64, 0));
        let shapes = [
            (1, 1),
            (3, 1),
            (8, 8),
            (12, 4),
            (24, 8),
            (1, 64),
            (40, 128),
            (100, 16),
            (5, 4096),
            (3000, 8),
            (16, 32768),
            (70_000, 8),
            (8, 131_072),
        ];
        let mut live = Vec::new();
        for round in 0..3 {
            for &(size, align) in &shapes {
                let block = heap.alloc(layout(size, align));
                assert!(!block.is_null(), "size {size} align {align} round {round}");
                assert_eq!(block as usize % align, 0, "size {size} align {align}");
                assert!(heap.pages.contains(block, size));
                fill(block, size, live.len());
                live.push((block as usize, size));
            }
        }
        for (id, &(block, size)) in live.iter().enumerate() {
            check(block as *mut u8, size, id);
        }
        let mut ranges = live.clone();
        ranges.sort();
        for pair in ranges.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{pair:?} overlap");
        }
    }

    #[test]
    fn freed_blocks_are_reused_within_their_class() {
        let mut heap = Heap::new(Buffer::new(4, 0));
        let a = heap.alloc(layout(24, 8));
        let b = heap.alloc(layout(24, 8));
        assert_ne!(a, b);
        unsafe { heap.dealloc(a, layout(24, 8)) };
        // 17..=32 bytes, or an alignment of 32, are the same class as 24 bytes.
        assert_eq!(heap.alloc(layout(32, 1)), a);
        unsafe { heap.dealloc(b, layout(24, 8)) };
        assert_eq!(heap.alloc(layout(2, 32)), b);
        // Last freed, first reused.
        unsafe {
            heap.dealloc(a, layout(32, 1));
            heap.dealloc(b, layout(2, 32));
        }
        assert_eq!(heap.alloc(layout(20, 4)), b);
        assert_eq!(heap.alloc(layout(20, 4)), a);
        assert_eq!(heap.pages.grows, 1);
    }

    #[test]
    fn an_empty_class_splits_the_smallest_larger_free_block() {
        let mut heap = Heap::new(Buffer::new(4, 0));
        let huge = heap.alloc(layout(4096, 8));
        let big = heap.alloc(layout(1024, 8));
        let guard = heap.alloc(layout(8, 8));
        unsafe {
            heap.dealloc(huge, layout(4096, 8));
            heap.dealloc(big, layout(1000, 8));
        }
        // 128 bytes: the 1 KiB block (not the 4 KiB one) is split into 128 + 128 + 256 + 512.
        let parts = [(100, 0), (200, 256), (128, 128), (512, 512)];
        for (id, &(size, offset)) in parts.iter().enumerate() {
            let block = heap.alloc(layout(size, 8));
            assert_eq!(block as usize, big as usize + offset, "{size} bytes");
            fill(block, size, id);
        }
        for (id, &(size, offset)) in parts.iter().enumerate() {
            check(unsafe { big.add(offset) }, size, id);
        }
        // The 4 KiB block is still whole, and the bump region was not touched.
        assert_eq!(heap.alloc(layout(4096, 1)), huge);
        assert_eq!(heap.alloc(layout(8, 1)) as usize, guard as usize + 8);
        assert_eq!(heap.pages.grows, 1);
    }

    #[test]
    fn realloc_keeps_the_block_within_a_class_and_the_contents_across() {
        let mut heap = Heap::new(Buffer::new(8, 0));
        let l = layout(20, 4);
        let a = heap.alloc(l);
        fill(a, 20, 1);
        let same = unsafe { heap.realloc(a, l, 32) };
        assert_eq!(same, a);
        let same = unsafe { heap.realloc(same, layout(32, 4), 17) };
        assert_eq!(same, a);
        check(a, 17, 1);

        let grown = unsafe { heap.realloc(a, layout(17, 4), 1000) };
        assert_ne!(grown, a);
        assert_eq!(grown as usize % 4, 0);
        check(grown, 17, 1);
        fill(grown, 1000, 2);
        let big = unsafe { heap.realloc(grown, layout(1000, 4), 200_000) };
        check(big, 1000, 2);
        fill(big, 200_000, 3);

        let shrunk = unsafe { heap.realloc(big, layout(200_000, 4), 10) };
        assert_ne!(shrunk, big);
        check(shrunk, 10, 3);
        // The old block went back to its class.
        assert_eq!(heap.alloc(layout(1024, 1)), grown);
    }

    #[test]
    fn realloc_honours_the_alignment() {
        let mut heap = Heap::new(Buffer::new(8, 0));
        let a = heap.alloc(layout(8, 256));
        fill(a, 8, 4);
        let b = unsafe { heap.realloc(a, layout(8, 256), 300) };
        assert_eq!(b as usize % 256, 0);
        check(b, 8, 4);
        fill(b, 300, 5);
        let c = unsafe { heap.realloc(b, layout(300, 256), 100) };
        assert_ne!(c, b);
        assert_eq!(c as usize % 256, 0);
        check(c, 100, 5);
    }

    #[test]
    fn out_of_memory_is_null_and_the_heap_stays_usable() {
        let mut heap = Heap::new(Buffer::new(2, 0));
        assert!(heap.alloc(layout(3 * PAGE, 1)).is_null());
        assert!(heap.alloc(layout(isize::MAX as usize, 1)).is_null());
        let mut blocks = Vec::new();
        loop {
            let block = heap.alloc(layout(4096, 8));
            if block.is_null() {
                break;
            }
            fill(block, 4096, blocks.len());
            blocks.push(block);
        }
        assert_eq!(blocks.len(), 2 * PAGE / 4096);
        assert!(heap.alloc(layout(1, 1)).is_null());

        let last = *blocks.last().unwrap();
        let id = blocks.len() - 1;
        assert!(unsafe { heap.realloc(last, layout(4096, 8), 8192) }.is_null());
        assert!(unsafe { heap.realloc(last, layout(4096, 8), usize::MAX - 2) }.is_null());
        check(last, 4096, id);

        unsafe { heap.dealloc(blocks[0], layout(4096, 8)) };
        assert_eq!(heap.alloc(layout(4000, 1)), blocks[0]);
        for (id, &block) in blocks.iter().enumerate().skip(1) {
            check(block, 4096, id);
        }
    }

    #[test]
    fn regions_that_are_not_adjacent() {
        let mut heap = Heap::new(Buffer::new(64, 1));
        let mut live = Vec::new();
        for (id, &size) in [24, 40_000, 100_000, 300_000, 24].iter().enumerate() {
            let block = heap.alloc(layout(size, 8));
            assert!(!block.is_null());
            assert_eq!(block as usize % size.next_power_of_two(), 0);
            fill(block, size, id);
            live.push((block, size));
        }
        assert!(heap.pages.grows >= 4);
        for (id, &(block, size)) in live.iter().enumerate() {
            check(block, size, id);
        }
        // The first region (page 1, after a gap) held only the 32-byte block before the 64 KiB
        // block needed a new region; the rest of it went to free lists, so a 1 KiB block comes
        // from there.
        let first_region = heap.pages.base as usize + PAGE;
        let small = heap.alloc(layout(1000, 1)) as usize;
        assert!(small > first_region && small < first_region + PAGE);
    }

    #[test]
    fn large_blocks_from_regions_that_are_never_adjacent() {
        let mut heap = Heap::new(Buffer::new(256, 1));
        for (id, shift) in (17..=20).enumerate() {
            let size = 1 << shift;
            let grows = heap.pages.grows;
            let block = heap.alloc(layout(size, 8));
            assert!(!block.is_null(), "{size} bytes");
            assert_eq!(block as usize % size, 0);
            // One region for the adjacent case, then one big enough wherever it lands.
            assert!(heap.pages.grows - grows <= 2, "{size} bytes");
            fill(block, size, id);
            check(block, size, id);
        }
    }

    #[test]
    fn global_alloc_wrapper() {
        let allocator = Allocator::new(Buffer::new(4, 0));
        unsafe {
            let a = allocator.alloc(layout(10, 2));
            fill(a, 10, 5);
            let b = allocator.realloc(a, layout(10, 2), 5000);
            check(b, 10, 5);
            let z = allocator.alloc_zeroed(layout(5000, 2));
            assert!((0..5000).all(|i| z.add(i).read() == 0));
            allocator.dealloc(b, layout(5000, 2));
            allocator.dealloc(z, layout(5000, 2));
            let c = allocator.alloc_zeroed(layout(4097, 1));
            assert_eq!(c, z);
            assert!((0..4097).all(|i| c.add(i).read() == 0));
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_alloc_realloc_free_against_a_model() {
        let mut heap = Heap::new(Buffer::new(1024, 0));
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Live blocks: address, layout, pattern id.
        let mut live: Vec<(*mut u8, Layout, usize)> = Vec::new();
        let mut next_id = 0;
        let random_layout = |rng: &mut XorShift| {
            let size = match rng.below(10) {
                0..=5 => 1 + rng.below(64),
                6..=8 => 1 + rng.below(4096),
                _ => 1 + rng.below(150_000),
            };
            let align = if rng.below(8) == 0 {
                1 << rng.below(13)
            } else {
                1 << rng.below(4)
            };
            layout(size, align)
        };
        for step in 0..20_000 {
            let op = rng.below(100);
            if live.is_empty() || op < 35 {
                let l = random_layout(&mut rng);
                let block = heap.alloc(l);
                assert!(!block.is_null(), "step {step}");
                assert_eq!(block as usize % l.align(), 0);
                fill(block, l.size(), next_id);
                live.push((block, l, next_id));
                next_id += 1;
            } else if op < 70 {
                let (block, l, id) = live.swap_remove(rng.below(live.len()));
                check(block, l.size(), id);
                unsafe { heap.dealloc(block, l) };
            } else {
                let at = rng.below(live.len());
                let (block, l, id) = live[at];
                check(block, l.size(), id);
                let new_size = random_layout(&mut rng).size();
                let moved = unsafe { heap.realloc(block, l, new_size) };
                assert!(!moved.is_null(), "step {step}");
                assert_eq!(moved as usize % l.align(), 0);
                let kept = l.size().min(new_size);
                check(moved, kept, id);
                if class(layout(new_size, l.align())) == class(l) {
                    assert_eq!(moved, block);
                } else {
                    assert_ne!(moved, block);
                }
                fill(moved, new_size, next_id);
                live[at] = (moved, layout(new_size, l.align()), next_id);
                next_id += 1;
            }
        }
        for &(block, l, id) in &live {
            assert!(heap.pages.contains(block, l.size()));
            check(block, l.size(), id);
        }
    }
}
