//! The base-parse reader of `ferry_recipe::reuse` reads a base's deflate
//! stream, which a hostile recipe or store could make anything: on any
//! input it ends without a panic, its block starts are in order and inside
//! the input, they are the cut finder's block ends (where the stream is one
//! the cut finder reads too), and a reader started at any of them reaches
//! the same plain length; read from a file a window at a time, it ends where
//! it ends reading the input whole.
#![no_main]
use ferry_recipe::fuzzing::{deflate_block_ends, deflate_symbols, deflate_symbols_windowed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [whole, windowed] = deflate_symbols_windowed(data);
    assert_eq!(whole, windowed, "read a window at a time, the stream ends elsewhere");
    let (whole, again) = deflate_symbols(data);
    let Some((plain, starts)) = whole else {
        return;
    };
    let mut last = (0u64, 0u64);
    for (i, &(p, bit, _)) in starts.iter().enumerate() {
        assert!(
            i == 0 || (p >= last.0 && bit > last.1),
            "block starts out of order"
        );
        assert!(bit <= 8 * data.len() as u64, "block start past the input");
        last = (p, bit);
    }
    for end in again {
        assert_eq!(
            end,
            Some(plain),
            "a reader from a block start ends elsewhere"
        );
    }
    let (blocks_plain, ends) = deflate_block_ends(data);
    assert_eq!(
        blocks_plain,
        Some(plain),
        "the cut finder counts another length"
    );
    // (Whether a block ended on a match may differ: an empty block after
    // a match is after a match for this reader, not for the cut finder.)
    let ends: Vec<_> = ends.iter().map(|&(p, bit, _, _)| (p, bit)).collect();
    let starts: Vec<_> = starts[1..].iter().map(|&(p, bit, _)| (p, bit)).collect();
    assert_eq!(starts, ends, "block starts are not the block ends");
});
