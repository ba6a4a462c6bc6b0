//! Rebuild CPU of a GNU gzip stream (one gzip member) with and without its
//! base's parse copied (`ferry_recipe::reuse`): serial, and in the pieces
//! the analysis cuts (on `--workers` threads, 2 unless given), in turns.
//! Prints the process's CPU time (user + system, every thread) and wall time
//! per rebuild, what the base's indexing costs, and how much was copied;
//! each rebuilt stream is compared with the original.
//!
//!     cargo run --release -p ferry-recipe --example reuse_rebuild -- \
//!         [--rounds N] [--workers N] [--level L] OLD.gz NEW.gz

use std::io::Read;
use std::time::Instant;

use ferry_recipe::reuse::{deflate_gnu, deflate_gnu_each_piece, Base, CopyStats};
use ferry_recipe::{analyze, Options, Segment};

/// CPU seconds (user + system) of this process, all threads, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The raw deflate bytes of a one-member gzip file (header and trailer
/// cut off) and what they decode to.
fn member(gz: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let flg = gz[3];
    let mut p = 10;
    if flg & 4 != 0 {
        p += 2 + usize::from(u16::from_le_bytes([gz[p], gz[p + 1]]));
    }
    for bit in [8u8, 16] {
        if flg & bit != 0 {
            while gz[p] != 0 {
                p += 1;
            }
            p += 1;
        }
    }
    if flg & 2 != 0 {
        p += 2;
    }
    let raw = gz[p..gz.len() - 8].to_vec();
    let mut plain = Vec::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_end(&mut plain)
        .expect("inflates");
    (raw, plain)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let (mut rounds, mut workers, mut level) = (2usize, 2usize, 6u8);
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let v = args
            .get(1)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        match args[0].as_str() {
            "--rounds" => rounds = v,
            "--workers" => workers = v,
            "--level" => level = v as u8,
            other => panic!("unknown option {other}"),
        }
        args.drain(..2);
    }
    let (old, new) = (
        std::fs::read(&args[0]).expect("OLD"),
        std::fs::read(&args[1]).expect("NEW"),
    );
    let (old_raw, old_plain) = member(&old);
    let (new_raw, new_plain) = member(&new);
    println!(
        "base {} B ({} plain), new {} B ({} plain), level {level}",
        old.len(),
        old_plain.len(),
        new.len(),
        new_plain.len()
    );
    let only = std::env::var("REUSE_ONLY").ok();
    let a = analyze(
        &new[..if only.is_some() { 0 } else { new.len() }],
        &Options::default(),
    );
    let cuts = a
        .recipe
        .segments
        .iter()
        .find_map(|s| match s {
            Segment::ZlibCuts { cuts, .. } => Some(cuts.clone()),
            _ => None,
        })
        .unwrap_or_default();
    println!("{} cuts", cuts.len());
    let mb = new.len() as f64 / 1e6;
    for round in 0..rounds {
        let (w0, c0) = (Instant::now(), cpu_seconds());
        let base = Base::new(&old_raw, &old_plain).expect("base indexed");
        let (iw, ic) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        println!("  round {round} base index: wall {iw:.2} s, CPU {ic:.2} s");
        for (name, b) in [("serial", None), ("serial+reuse", Some(&base))] {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let (w0, c0) = (Instant::now(), cpu_seconds());
            let (out, stats) = deflate_gnu(level, &new_plain, b);
            let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
            let same = out == new_raw;
            println!(
                "  round {round} {name:<13} wall {wall:6.2} s  CPU {cpu:6.2} s ({:5.1} MB/CPU s)  copied {:.1}% in {} copies, {} stretches of {:.1}%, same bytes: {same}",
                mb / cpu.max(0.01),
                100.0 * stats.copied as f64 / new_plain.len() as f64,
                stats.copies,
                stats.stretches,
                100.0 * stats.stretch_bytes as f64 / new_plain.len() as f64,
            );
        }
        if cuts.is_empty() || only.is_some() {
            continue;
        }
        // What the outside would send: the base's block starts each piece's
        // copier seeks to; the inside then hashes the base's plain bytes
        // but does not read its whole stream.
        let mut seeds = Vec::new();
        for i in 0..=cuts.len() {
            let s = i.checked_sub(1).map_or(0, |j| {
                cuts[j].plain - (32u64 << 10).min(u64::from(cuts[j].window))
            });
            let e = cuts.get(i).map_or(new_plain.len() as u64, |c| {
                (c.plain + (65 << 10)).min(new_plain.len() as u64)
            });
            seeds.extend(base.seeds_for(&new_plain[s as usize..e as usize], s));
        }
        let (w0, c0) = (Instant::now(), cpu_seconds());
        let seeded = Base::with_starts(&old_raw, &old_plain, seeds.clone());
        let (iw, ic) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        println!(
            "  round {round} base hashed, {} block starts given: wall {iw:.2} s, CPU {ic:.2} s",
            seeds.len()
        );
        for (name, b) in [
            ("pieces", None),
            ("pieces+reuse", Some(&base)),
            ("pieces+seeds", Some(&seeded)),
        ] {
            let (w0, c0) = (Instant::now(), cpu_seconds());
            let r =
                deflate_gnu_each_piece(level, &new_plain, &cuts, new_raw.len() as u64, b, workers);
            let (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
            let mut st = CopyStats::default();
            let mut bad = Vec::new();
            for (i, piece) in r.iter().enumerate() {
                let from = i.checked_sub(1).map_or(0, |j| cuts[j].bit / 8) as usize;
                let to = cuts.get(i).map_or(new_raw.len() as u64, |c| c.bit / 8) as usize;
                match piece {
                    Ok((bytes, s)) if bytes[..] == new_raw[from..to] => st.copied += s.copied,
                    Ok(_) => bad.push(format!("{i}: differs")),
                    Err(e) => bad.push(format!("{i}: {e}")),
                }
            }
            println!(
                "  round {round} {name:<13} wall {wall:6.2} s  CPU {cpu:6.2} s ({:5.1} MB/CPU s)  copied {:.1}% (right pieces); {} of {} pieces wrong {:?}",
                mb / cpu.max(0.01),
                100.0 * st.copied as f64 / new_plain.len() as f64,
                bad.len(),
                r.len(),
                bad
            );
        }
    }
}
