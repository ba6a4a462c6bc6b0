//! Rebuild throughput of objects whose deflate streams are cut (recipe
//! version 4; 7 for Go's) against their serial form (version 3; 5), in turns: wall time and
//! the process's CPU time (user + system, every thread), MB of upstream bytes
//! per wall second and per CPU second, and what the cuts cost in recipe bytes.
//!
//!     cargo run --release -p ferry-recipe --example cut_rebuild -- [--rounds N] FILE...

use std::time::Instant;

use ferry_recipe::{analyze, rebuild, Options, Recipe, Segment};

/// CPU seconds (user + system) of this process, all threads, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th (clock ticks, 100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 3;
    if args.first().map(String::as_str) == Some("--rounds") {
        rounds = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(3);
        args.drain(..2);
    }
    for path in args {
        let data = std::fs::read(&path).expect("readable");
        let a = analyze(&data, &Options::default());
        let cut = a.recipe.clone();
        let serial = cut.serial();
        let cuts: usize = cut
            .segments
            .iter()
            .map(|s| match s {
                Segment::ZlibCuts { cuts, .. } => cuts.len(),
                _ => 0,
            })
            .sum();
        println!(
            "{path}: {} B, expanded {} B; recipe {} B cut ({} cuts, version {}), {} B serial (version {})",
            data.len(),
            a.expanded.len(),
            cut.to_bytes().len(),
            cuts,
            cut.version(),
            serial.to_bytes().len(),
            serial.version()
        );
        let mb = data.len() as f64 / 1e6;
        for round in 0..rounds {
            for (name, recipe) in [("serial", &serial), ("cut", &cut)] {
                let (w0, c0) = (Instant::now(), cpu_seconds());
                let mut out = Vec::with_capacity(data.len());
                rebuild(recipe, &a.expanded, data.len() as u64, &mut out).expect("rebuild");
                let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
                assert!(out == data, "{name}: rebuilt bytes differ");
                println!(
                    "  round {round} {name:<6} wall {wall:6.2} s ({:6.1} MB/s)  CPU {cpu:6.2} s ({:6.1} MB/s)",
                    mb / wall,
                    mb / cpu.max(0.01)
                );
            }
        }
        let _ = Recipe::from_bytes(&cut.to_bytes()).expect("decodes");
    }
}
