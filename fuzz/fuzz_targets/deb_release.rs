//! A Debian Release file and deb822 paragraphs from an upstream mirror.
#![no_main]
use ferry_formats::deb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = deb::Release::parse(text);
        for p in deb::paragraphs(text) {
            let _ = deb::fields(p);
        }
    }
});
