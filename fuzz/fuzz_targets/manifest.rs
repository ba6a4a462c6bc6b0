//! A manifest file from hostile media: `open` (signature first) and the
//! unverified peek that `status` uses must refuse garbage without panicking,
//! and a decoded body's consistency check must hold whatever the body says.
#![no_main]
use ferry_protocol::keys::SecretKey;
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::manifest::{peek_unverified, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReceiverLimits::default();
    let trusted = [SecretKey::from_seed([7; 32]).public()];
    let _ = Manifest::open(data, &trusted, &limits);
    if let Ok((_, manifest)) = peek_unverified(data) {
        let _ = manifest.check(&limits);
    }
});
