//! The two-way push protocol's messages, as a peer may send them.
#![no_main]
use ferry_protocol::push::{ClientMsg, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = postcard::from_bytes::<ClientMsg>(data);
    let _ = postcard::from_bytes::<ServerMsg>(data);
});
