//! Delta size: changing 1 MiB inside a large tree and exporting again gives
//! a bundle of a few MiB at most, and inserting bytes at the start of a large
//! file does not re-ship the file.
//!
//! The tree is 256 MiB in the test suite (the change is 1/256 of it);
//! `FERRY_DELTA_SIZE_FULL=1` makes it 1 GiB, as `scripts/campaign.sh size`
//! runs it. The bounds asserted are the same at both sizes.

use ferry_e2e::*;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Sizes of the large random files `big/b0.bin`, `big/b1.bin`, … in the
/// suite's tree; [`scale`] times these for the full one. `b0` gets the
/// insertion at its start, `b1` the overwrite in its middle, `b2` the append.
const BIG_FILES: [u64; 6] = [64 * MIB, 48 * MIB, 32 * MIB, 64 * MIB, 24 * MIB, 16 * MIB];

/// 4 with `FERRY_DELTA_SIZE_FULL=1` (a 1 GiB tree), else 1.
fn scale() -> u64 {
    if std::env::var_os("FERRY_DELTA_SIZE_FULL").is_some_and(|v| v == "1") {
        4
    } else {
        1
    }
}

/// Number of 1 MiB text files in the suite's tree (times [`scale`]).
const TEXTS: u64 = 8;

fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / MIB as f64)
}

/// Writes `data` at the start of `path`, before its old content (a new file renamed over it).
fn insert_at_start(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("inserting");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
        out.write_all(data).unwrap();
        std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut out).unwrap();
        out.flush().unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn one_mib_changed_in_a_large_tree_ships_a_few_mib() {
    let _heavy = heavy();
    let t_all = Instant::now();
    let mut t = Instant::now();
    let mut lap = |what: &str| {
        eprintln!("{what}: {:.1}s", t.elapsed().as_secs_f64());
        t = Instant::now();
    };

    let env = Env::new();
    let big: Vec<u64> = BIG_FILES.iter().map(|s| s * scale()).collect();
    for (i, &size) in big.iter().enumerate() {
        write_random_file(
            &env.src.join(format!("big/b{i}.bin")),
            size,
            1000 + i as u64,
        );
    }
    for i in 0..TEXTS * scale() {
        env.write_src(
            &format!("text/t{i:02}.txt"),
            &text_bytes(MIB as usize, 2000 + i),
        );
    }
    std::os::unix::fs::symlink("big/b0.bin", env.src.join("latest")).unwrap();
    let total = dir_bytes(&env.src);
    eprintln!(
        "tree: {} in {} large files and {} text files",
        mib(total),
        big.len(),
        TEXTS * scale()
    );
    lap("write the tree");

    env.export("media1").expect_ok();
    let b1 = dir_bytes(&env.only_bundle("media1"));
    eprintln!("bundle 1: {}", mib(b1));
    lap("export bundle 1");
    env.import("media1").expect_ok();
    lap("import bundle 1");
    assert_eq!(tree_digest(&env.src), env.served_digest("tools"));
    lap("compare trees");

    // Only an insertion of 4 KiB at the start of the first large file, on a
    // copy of the outside state (the main chain gets all the changes at once).
    let insert_only = env.root().join("out-insert-only");
    copy_tree(&env.out_state, &insert_only);
    insert_at_start(
        &env.src.join("big/b0.bin"),
        &random_bytes(4 * KIB as usize, 3000),
    );
    let media_ins = env.root().join("media-insert");
    ferry_out(
        &insert_only,
        &[
            "export",
            "--config",
            env.config.to_str().unwrap(),
            "--to",
            media_ins.to_str().unwrap(),
        ],
    )
    .expect_ok();
    let ins = dir_bytes(&env.only_bundle("media-insert"));
    eprintln!(
        "4 KiB inserted at the start of a {} file: bundle of {}",
        mib(big[0]),
        mib(ins)
    );
    assert!(
        ins < MIB,
        "inserting 4 KiB at the start of a {} file shipped {}",
        mib(big[0]),
        mib(ins)
    );
    std::fs::remove_dir_all(&insert_only).unwrap();
    lap("export the insertion alone");

    // The rest of the 1 MiB: 256 KiB overwritten in the middle of the second
    // file, 512 KiB appended to the third, a new 250 KiB file.
    let b1_path = env.src.join("big/b1.bin");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&b1_path)
        .unwrap();
    f.write_at(&random_bytes(256 * KIB as usize, 3001), big[1] / 2)
        .unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(env.src.join("big/b2.bin"))
        .unwrap();
    f.write_all(&random_bytes(512 * KIB as usize, 3002))
        .unwrap();
    drop(f);
    env.write_src("new/small.bin", &random_bytes(250 * KIB as usize, 3003));
    let changed = 4 * KIB + 256 * KIB + 512 * KIB + 250 * KIB;

    env.export("media2").expect_ok();
    let b2 = dir_bytes(&env.only_bundle("media2"));
    eprintln!(
        "{} changed in a {} tree: bundle 2 of {}",
        mib(changed),
        mib(total),
        mib(b2)
    );
    assert!(
        b2 < 4 * MIB,
        "changing {} of a {} tree shipped {}",
        mib(changed),
        mib(total),
        mib(b2)
    );
    lap("export bundle 2");

    env.import("media2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    lap("import bundle 2");
    assert_eq!(tree_digest(&env.src), env.served_digest("tools"));
    lap("compare trees");
    eprintln!("total: {:.1}s", t_all.elapsed().as_secs_f64());
}
