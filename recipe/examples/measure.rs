//! Prints what analysis and rebuild achieve on real objects: throughput (per
//! CPU-second of the process, every thread, so a loaded machine does not skew it),
//! expanded and recipe sizes, the share of bytes reproduced, and why streams
//! stayed literal.
//!
//!     cargo run --release -p ferry-recipe --example measure -- FILE_OR_DIR...
//!
//! Each argument is a group (a directory's files, or one file). For the corpus
//! of tests/bench/corpus.py: `measure /tmp/ferry-corpus/new/{wheels,crates,debs,layer}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_recipe::{analyze, expand, rebuild, Options};

#[derive(Default)]
struct Totals {
    objects: usize,
    input: u64,
    expanded: u64,
    recipe: u64,
    reproduced: u64,
    analyze: Duration,
    expand: Duration,
    rebuild: Duration,
}

/// CPU time this process has used, every thread's (user and system, from
/// /proc/self/stat, in clock ticks of 10 ms): the rebuild of a zip deflates
/// its members on worker threads, and a loaded, shared machine makes wall
/// time useless, so throughput is per CPU second of the process.
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // After the command name, in parentheses: fields 14 and 15 of
            // the line are the 12th and 13th after it.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(Duration::from_millis(ticks * 10))
        })
        .unwrap_or(Duration::ZERO)
}

/// Times `f` in CPU time of this process.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = cpu_time();
    let r = f();
    (r, cpu_time().saturating_sub(start))
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn files(arg: &Path) -> Vec<PathBuf> {
    if arg.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(arg)
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![arg.to_path_buf()]
    }
}

fn measure(path: &Path, opts: &Options, t: &mut Totals, why: &mut BTreeMap<String, (u64, u64)>) {
    let data = std::fs::read(path).expect("read");
    let (a, analyze_time) = timed(|| analyze(&data, opts));
    let (reference, expand_time) = timed(|| expand(&data, opts).expect("expand"));
    let recipe = a.recipe.to_bytes();
    let mut out = Vec::with_capacity(data.len());
    let ((), rebuild_time) =
        timed(|| rebuild(&a.recipe, &a.expanded, data.len() as u64, &mut out).expect("rebuild"));
    assert!(out == data, "{}: rebuilt bytes differ", path.display());
    let n = data.len() as u64;
    let reproduced = a.report.reproduced_bytes();
    for (s, reason) in a.report.literal() {
        let e = why.entry(format!("{:?} {reason:?}", s.kind)).or_default();
        e.0 += 1;
        e.1 += s.compressed_len;
    }
    println!(
        "  {:<48} {:>9} B  expanded {:>10} (ref {:>10})  recipe {:>7} B  reproduced {:>5.1}%  analyze {:>6.1} MB/s  expand {:>6.1} MB/s  rebuild {:>6.1} MB/s  streams {}/{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        n,
        a.expanded.len(),
        reference.len(),
        recipe.len(),
        100.0 * reproduced as f64 / n.max(1) as f64,
        mbps(n, analyze_time),
        mbps(n, expand_time),
        mbps(n, rebuild_time),
        a.report.reproduced().count(),
        a.report.streams.len(),
    );
    t.objects += 1;
    t.input += n;
    t.expanded += a.expanded.len() as u64;
    t.recipe += recipe.len() as u64;
    t.reproduced += reproduced;
    t.analyze += analyze_time;
    t.expand += expand_time;
    t.rebuild += rebuild_time;
}

fn print_totals(label: &str, t: &Totals) {
    println!(
        "{label}: {} objects, {:.1} MB in, expanded {:.1} MB, recipes {:.1} KB ({:.3}% of input), reproduced {:.1}% of bytes; analyze {:.1} MB/s, expand {:.1} MB/s, rebuild {:.1} MB/s (MB of upstream bytes per CPU-second)",
        t.objects,
        t.input as f64 / 1e6,
        t.expanded as f64 / 1e6,
        t.recipe as f64 / 1e3,
        100.0 * t.recipe as f64 / t.input.max(1) as f64,
        100.0 * t.reproduced as f64 / t.input.max(1) as f64,
        mbps(t.input, t.analyze),
        mbps(t.input, t.expand),
        mbps(t.input, t.rebuild),
    );
}

fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!("usage: measure FILE_OR_DIR...");
        std::process::exit(2);
    }
    let opts = Options::default();
    let mut all = Totals::default();
    let mut why = BTreeMap::new();
    for arg in &args {
        println!("{}", arg.display());
        let mut t = Totals::default();
        for f in files(arg) {
            measure(&f, &opts, &mut t, &mut why);
        }
        print_totals(&format!("= {}", arg.display()), &t);
        all.objects += t.objects;
        all.input += t.input;
        all.expanded += t.expanded;
        all.recipe += t.recipe;
        all.reproduced += t.reproduced;
        all.analyze += t.analyze;
        all.expand += t.expand;
        all.rebuild += t.rebuild;
    }
    print_totals("= total", &all);
    for (k, (n, bytes)) in &why {
        println!("literal: {k}: {n} streams, {:.1} MB", *bytes as f64 / 1e6);
    }
    if let Some(rss) = peak_rss_mib() {
        println!("peak RSS: {rss} MiB");
    }
}
