//! Recipes and upstream objects are hostile: a recipe from arbitrary bytes
//! rebuilds within its declared lengths or fails with a typed error, and any
//! object analysed rebuilds bit for bit.
//!
//! preflate-rs 0.7.6 is not hardened against hostile corrections (it panics on
//! some, e.g. arithmetic overflow); ferry-recipe turns a panic inside it into a
//! typed error. libfuzzer-sys's panic hook would abort on those caught panics,
//! so this target installs a hook that keeps quiet about panics located in
//! preflate-rs and does not abort: a panic anywhere else still unwinds to
//! libfuzzer-sys, which reports it as a crash.
//!
//! Known issue: on some crafted corrections preflate-rs 0.7.6 never ends (it
//! emits empty deflate blocks, growing memory, once the corrections run out;
//! input in fuzz/known-hangs/). Nothing outside preflate-rs can bound that call,
//! so crafted recipes with a deflate segment are parsed but not rebuilt here;
//! deflate rebuild is fuzzed through analysis (upstream bytes → corrections →
//! rebuild). Recipes must come from an authenticated source (a signed bundle).
#![no_main]
use ferry_recipe::{analyze, rebuild, Options, Recipe, Segment};
use libfuzzer_sys::fuzz_target;

/// A writer that refuses to go past the length rebuild was given.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        assert!(
            self.out.len() + buf.len() <= self.limit,
            "rebuild wrote past out_len"
        );
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if !info
                .location()
                .is_some_and(|l| l.file().contains("preflate-rs"))
            {
                eprintln!("{info}");
            }
        }))
    });
    // A recipe (its first `split` bytes) and the expanded form it is given.
    if data.len() >= 2 {
        let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        let (recipe, expanded) = data[2..].split_at(split);
        let parsed = Recipe::from_bytes(recipe).ok();
        let endless = |r: &Recipe| {
            r.segments
                .iter()
                .any(|s| matches!(s, Segment::Deflate { .. }))
        };
        if let Some(recipe) = parsed.filter(|r| !endless(r)) {
            let out_len = recipe.output_len().unwrap_or(0).min(1 << 24);
            let mut w = Bounded {
                out: Vec::new(),
                limit: out_len as usize,
            };
            if rebuild(&recipe, expanded, out_len, &mut w).is_ok() {
                assert_eq!(w.out.len() as u64, out_len);
            }
        }
    }
    // The input as an upstream object: analysis rebuilds it exactly.
    let opts = Options {
        max_expanded: 16 << 20,
        ..Options::default()
    };
    let a = analyze(data, &opts);
    let mut out = Vec::new();
    rebuild(&a.recipe, &a.expanded, data.len() as u64, &mut out).expect("analysed recipe rebuilds");
    assert!(out == data, "analysed recipe rebuilt other bytes");
});
