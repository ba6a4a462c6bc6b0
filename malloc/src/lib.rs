//! The C allocator's settings both agents start with.
//!
//! Ferry's large buffers (an object's expanded form, a patch window and its
//! reference range, zstd's and liblzma's match tables) live for one object
//! and are freed. glibc's malloc serves a block of 128 KiB or more with its
//! own `mmap` and unmaps it on `free`, but it raises that threshold to the
//! size of each such block freed (up to 32 MiB). After the first large
//! buffer is freed, the next ones of up to 32 MiB come from the heap, and
//! freed heap memory stays with the process. Measured on the compression
//! benchmark's debs at `--delta high` (`tests/bench/compressed.sh`'s corpus,
//! session 16, docs/compression.md): a peak RSS of 322 MiB with glibc's
//! default, 192 MiB with the threshold fixed at 4 MiB (180 MiB at 128 KiB),
//! for the same bundle and less system time. A heaptrack of the same export
//! found a heap peak of 227 MB: the rest was freed memory glibc kept.
//!
//! [`release_large_blocks`] fixes the threshold, which also stops glibc
//! from moving it. It is the one `unsafe` call in Ferry: `mallopt` is a C
//! function, so calling it is `unsafe` in Rust, though it has no memory-safety
//! precondition (it takes two integers); it is called first in `main`, before
//! any thread starts. An
//! operator's own `MALLOC_MMAP_THRESHOLD_` in the environment is left as set.

#![deny(missing_docs)]

/// Blocks of this size or more get their own mapping, returned to the system
/// when freed. Above the 1 MiB blocks the export reads files in and the
/// chunker's buffers, which are reused through malloc's free lists, and far
/// below the tens of MiB of the buffers that must not be retained.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Sets glibc's mmap threshold to [`MMAP_THRESHOLD`], unless the environment
/// sets it (`MALLOC_MMAP_THRESHOLD_`). Returns whether the threshold is now
/// fixed (by this call or by the environment); `false` on other C libraries,
/// where there is nothing to set. Call it first in `main`, before any thread
/// starts.
pub fn release_large_blocks() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return true;
    }
    set_threshold(MMAP_THRESHOLD)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_threshold(bytes: usize) -> bool {
    let Ok(bytes) = libc::c_int::try_from(bytes) else {
        return false;
    };
    // SAFETY: mallopt takes two integers and changes only malloc's own
    // parameters; no pointer or memory of ours is involved. glibc's manual
    // does not mark it thread-safe (it may initialise malloc), so the agents
    // call it first in `main`, before they start any thread.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_threshold(_bytes: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_threshold() {
        // The test process may have the variable from a developer's shell.
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            eprintln!("skipped: MALLOC_MMAP_THRESHOLD_ is set in the environment");
            return;
        }
        // mallopt's own answer: 1 when glibc took the value.
        assert!(release_large_blocks());
        assert!(set_threshold(MMAP_THRESHOLD));
    }
}
