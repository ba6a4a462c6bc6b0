//! A manifest file from hostile media: `open` (signature first) and the
//! unverified peek that `status` uses must refuse garbage without panicking,
//! and a decoded body's consistency check must hold whatever the body says.
//! The same bytes as an unsigned manifest (what `ferry-out sign` reads from
//! the export host) must parse or be refused, and sign into a manifest that
//! opens. The same bytes as trust statements (a manifest extension, or a
//! validity file beside a bundle) and as co-signatures must decode or be
//! refused, and decoded signatures checked without panicking.
#![no_main]
use ferry_protocol::keys::SecretKey;
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::manifest::{peek_unverified, strip_signature, Manifest, UnsignedManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReceiverLimits::default();
    let trusted = [SecretKey::from_seed([7; 32]).public()];
    let _ = Manifest::open(data, &trusted, &limits);
    if let Ok((_, manifest)) = peek_unverified(data) {
        let _ = manifest.check(&limits);
    }
    let _ = strip_signature(data);
    let _ = ferry_protocol::trust::cosigners(&ferry_protocol::id::ManifestHash([0; 32]), data);
    if let Ok(list) = ferry_protocol::trust::decode(data) {
        for s in &list {
            let _ = s.authority(&trusted, &trusted);
        }
    }
    let mut unsigned = data.to_vec();
    if unsigned.len() >= 8 {
        unsigned[..8].copy_from_slice(ferry_protocol::manifest::UNSIGNED_MAGIC);
    }
    if let Ok(u) = UnsignedManifest::parse(&unsigned, &limits) {
        let key = SecretKey::from_seed([7; 32]);
        // A version-4 body with id-less chunks is signed only once named.
        if let Ok(signed) = u.sign(&key) {
            if signed.len() as u64 <= limits.max_manifest_bytes {
                assert!(Manifest::open(&signed, &trusted, &limits).is_ok());
            }
        }
    }
});
