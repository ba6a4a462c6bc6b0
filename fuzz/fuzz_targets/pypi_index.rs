//! A PyPI project index (the JSON form ferry stores per project) and the
//! path and name rules applied to what it names.
#![no_main]
use ferry_formats::pypi::{self, ProjectIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = serde_json::from_slice::<ProjectIndex>(data) {
        let _ = serde_json::to_vec(&index);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pypi::parse_path(text);
        let n = pypi::normalize(text);
        assert_eq!(
            pypi::normalize(&n),
            n,
            "PEP 503 normalization is idempotent"
        );
    }
});
