//! How the process's allocator treats the large buffers that networks allocate and free
//! every step.
//!
//! A training step (and an inference pass over a large batch) allocates a few dozen
//! tensors of megabytes each and frees them at its end. glibc's allocator hands memory at
//! the top of its heap back to the kernel once more than twice its mmap threshold (at most
//! 64 MiB) is free there, and serves requests above that threshold (128 KiB growing to at
//! most 32 MiB) with fresh mappings. Either way the next step's tensors land on fresh pages,
//! faulted in one 4 KiB page at a time with a TLB shootdown across the threads when they
//! are unmapped again: a third of a forward pass of the HRTEM encoder-decoder at 256²
//! (`perf`, 2 threads).
//!
//! [`keep_freed_memory`] asks glibc to keep what is freed for reuse instead: the process's
//! resident memory then stays near its peak, which the next step needs anyway. It changes a
//! process-wide setting, so nanoml never calls it from library code; programs opt in (all of
//! nanoml's own examples do). The same settings can be given to any program, PyTorch
//! included, from outside: `GLIBC_TUNABLES=glibc.malloc.trim_threshold=2147483647:glibc.malloc.mmap_threshold=33554432`
//! ([`GLIBC_TUNABLES`]).

/// The environment variable that gives any glibc program, PyTorch included, the settings
/// of [`keep_freed_memory`].
pub const GLIBC_TUNABLES: &str = "glibc.malloc.trim_threshold=2147483647:glibc.malloc.mmap_threshold=33554432";

/// Asks the C allocator to keep freed memory for reuse: never hand the top of the heap back
/// to the kernel below 2 GiB free, and serve requests up to 32 MiB (glibc's largest
/// threshold) from the heap instead of fresh mappings. Returns whether the allocator took
/// both settings: `false` where the C library is not glibc (where this is not needed the
/// same way, or has no such settings), or if glibc refused one of them.
///
/// Call it once, early in a program that trains or runs networks; see the [module
/// documentation](self) for what it costs and saves.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation parameters; it is safe to call at
        // any time, from any thread, and reports a refused value by returning 0.
        #[allow(unsafe_code)]
        unsafe {
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            trim == 1 && mmap == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings_and_memory_still_works() {
        assert!(super::keep_freed_memory());
        // Large buffers still allocate, fill and free after the change.
        for mb in [1usize, 16, 40] {
            let v = vec![1u8; mb << 20];
            assert_eq!(v.iter().map(|&b| usize::from(b)).sum::<usize>(), mb << 20);
        }
    }
}
