//! A large upstream object is expanded and analysed as it is read when it
//! is a gzip member, a zip, a deb or an RPM (`ferry_recipe::stream_expand`): on any input
//! that ends without a panic, and whatever it makes is exactly what the
//! whole walk makes (`expand`'s form, `analyze`'s recipe, report and
//! form), since the other agent may make it the other way and compares
//! BLAKE3 digests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(why) = ferry_recipe::fuzzing::streamed_differs(data) {
        panic!("{why}");
    }
});
