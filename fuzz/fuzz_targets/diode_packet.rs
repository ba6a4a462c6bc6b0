//! One UDP datagram from the diode network, which anyone on it can forge.
#![no_main]
use ferry_protocol::diode::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::from_bytes(data) {
        // What parses must encode back to a packet that parses the same.
        let again = Packet::from_bytes(&p.to_bytes()).expect("re-encoded packet parses");
        assert_eq!(again.to_bytes(), p.to_bytes());
    }
});
