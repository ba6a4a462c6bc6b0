//! The cut finder's deflate block reader (`ferry_recipe::cuts::blocks`) reads
//! upstream streams, which are hostile: on any input it ends without a
//! panic, its block ends are in order and inside the input, and on every
//! stream an inflater decodes it counts the same plain length (the cuts it
//! proposes are only as good as that count).
#![no_main]
use ferry_recipe::fuzzing::deflate_block_ends;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (plain, ends) = deflate_block_ends(data);
    let mut last = (0u64, 0u64);
    for &(p, bit, partial, _) in &ends {
        assert!(p >= last.0, "block ends out of order");
        assert!(bit > last.1, "block ends at or before the previous one");
        assert!(bit <= 8 * data.len() as u64, "block end past the input");
        let byte = data.get((bit / 8) as usize).copied().unwrap_or(0);
        assert_eq!(partial, byte & ((1u8 << (bit % 8)) - 1), "partial byte");
        last = (p, bit);
    }
    if let Some(p) = plain {
        assert!(ends.last().is_none_or(|e| e.0 <= p), "last block ends past the plain length");
    }
    // What an inflater decodes, the block reader counts.
    let mut d = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    let mut total = 0u64;
    loop {
        out.clear();
        let before = (d.total_in(), d.total_out());
        let input = &data[d.total_in() as usize..];
        match d.decompress_vec(input, &mut out, flate2::FlushDecompress::None) {
            Ok(flate2::Status::StreamEnd) => {
                total += d.total_out() - before.1;
                assert_eq!(plain, Some(total), "inflate decodes {total} plain bytes");
                return;
            }
            Ok(_) if (d.total_in(), d.total_out()) != before && total < 64 << 20 => {
                total += d.total_out() - before.1;
            }
            _ => return,
        }
    }
});
