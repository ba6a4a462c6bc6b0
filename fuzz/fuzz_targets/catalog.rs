//! A catalog and a delta from hostile bytes: decoding, validation and apply
//! refuse what breaks a rule and never panic; an applied delta validates.
#![no_main]
use ferry_protocol::catalog::{Catalog, Change, SourceKind};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Catalog::from_bytes(data) {
        let _ = c.validate();
    }
    if let Ok((sources, changes)) =
        postcard::from_bytes::<(BTreeMap<String, SourceKind>, Vec<Change>)>(data)
    {
        if let Ok(next) = Catalog::default().apply(&sources, &changes) {
            next.validate().expect("apply returns only valid catalogs");
        }
    }
});
