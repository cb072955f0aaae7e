//! The binary's allocator: mimalloc, told to keep freed memory.
//!
//! The runtime makes each node's output in a fresh buffer and frees its inputs when
//! their last reader has run, so a detector allocates and frees hundreds of tensors of
//! tens of megabytes per batch. Handed back to the kernel on free (glibc above 32 MiB,
//! mimalloc after a delay), every buffer was faulted in and zeroed again by the next node:
//! a third of calibration time on a 640x640 text detector. Kept, they are reused; the
//! peak resident memory is the high-water mark of live tensors, as before, plus
//! fragmentation (505 -> 667 MiB on that detector).

/// `mi_option_purge_delay`: position 15 of `mi_option_e` in `mimalloc.h` (the same in
/// mimalloc 2.x and 3.x, which libmimalloc-sys builds by default); the Rust bindings do
/// not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never returns freed memory to the kernel; call first thing in `main`.
pub fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_is_the_option_it_names() {
        // The default of `mi_option_purge_delay` in mimalloc 3.x is 1000 ms; a wrong
        // index would read another option's default.
        // SAFETY: reading an option has no precondition.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        keep_freed_memory();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, -1);
    }
}
