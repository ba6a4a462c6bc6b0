//! Decompression bombs in apt indices, on both sides: `Packages.xz` and
//! `Packages.gz` that inflate to 10 GiB of zeros. They are made without
//! writing 10 GiB: 64 MiB of zeros compressed once by the real `xz` or
//! `gzip`, repeated as concatenated streams (both formats allow several
//! streams in one file, and both decoders read them all).

use ferry_e2e::*;
use ferry_protocol::catalog::SourceKind;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a bomb inflates to.
pub const BOMB_BYTES: u64 = 10 << 30;
const PIECE: u64 = 64 << 20;

/// A `.xz` (`tool` = "xz") or `.gz` (`tool` = "gzip") file that inflates to
/// [`BOMB_BYTES`] zeros.
pub fn bomb(tool: &str) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the compressor");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..PIECE >> 20 {
            stdin.write_all(&zeros).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout.repeat((BOMB_BYTES / PIECE) as usize)
}

/// The file name of a bomb made by `tool`.
pub fn index_name(tool: &str) -> &'static str {
    if tool == "xz" {
        "Packages.xz"
    } else {
        "Packages.gz"
    }
}

/// An apt `Release` for suite `stable` listing one index file.
fn release(rel: &str, data: &[u8]) -> String {
    format!(
        "Origin: Bomb\nLabel: Bomb\nSuite: stable\nCodename: stable\nDate: Sat, 01 Jan 2000 00:00:00 UTC\nArchitectures: amd64\nComponents: main\nSHA256:\n {} {} {rel}\n",
        ferry_protocol::id::Sha256::of(data).to_hex(),
        data.len()
    )
}

/// An upstream apt repository whose only index is `bomb` (named
/// `index`), its Release clear-signed with a throwaway key; returns the
/// repository directory and the key file.
pub fn upstream_repo(root: &Path, index: &str, bomb: &[u8]) -> (PathBuf, PathBuf) {
    let repo = root.join("bomb-repo");
    let dists = repo.join("dists/stable");
    let rel = format!("main/binary-amd64/{index}");
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    std::fs::write(dists.join(&rel), bomb).unwrap();
    let (home, _, key) = gpg_key(root, "bomb");
    std::fs::write(dists.join("Release"), release(&rel, bomb)).unwrap();
    let inrelease = dists.join("InRelease");
    gpg(
        &home,
        &[
            "--clearsign",
            "--output",
            inrelease.to_str().unwrap(),
            dists.join("Release").to_str().unwrap(),
        ],
    );
    (repo, key)
}

/// The outside: an export from an upstream whose index is a bomb fails,
/// naming the file and the limit, and writes nothing to the media.
pub fn outside(tool: &str) {
    let env = Env::new();
    let index = index_name(tool);
    let (repo, key) = upstream_repo(env.root(), index, &bomb(tool));
    let up = http_upstream(&repo);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"deb\"\ntype = \"apt\"\nurl = \"{}\"\nsuites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\nkeyring = \"{}\"\n",
            up.url,
            key.display()
        ),
    )
    .unwrap();
    let r = env.export("media");
    let limit = ferry_formats::deb::MAX_INDEX.to_string();
    let r = r.expect_fail(&[
        &format!("dists/stable/main/binary-amd64/{index}"),
        &format!("decompresses to more than {limit} bytes"),
    ]);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    eprintln!("{tool} bomb outside: {}", r.stderr.trim());
    let media = env.root().join("media");
    assert!(
        dir_names(&media).is_empty(),
        "the failed export left {:?} on the media",
        dir_names(&media)
    );
}

/// The inside: a bundle signed with the trusted key (crafted, so it passes
/// every signature check) whose apt source carries a bomb as its index is
/// refused, naming the file and the limit, and nothing is applied.
pub fn inside(tool: &str) {
    let env = Env::new();
    let index = index_name(tool);
    let bomb = bomb(tool);
    let rel = format!("main/binary-amd64/{index}");
    let release = release(&rel, &bomb);
    let bomb_path = format!("dists/stable/{rel}");
    craft_bundle(
        &env,
        "media",
        &[
            (
                "deb",
                SourceKind::Apt,
                "dists/stable/Release",
                release.as_bytes(),
            ),
            ("deb", SourceKind::Apt, &bomb_path, &bomb),
        ],
    );
    let r = env.import("media");
    let limit = ferry_formats::deb::MAX_INDEX.to_string();
    let r = r.expect_fail(&[index, &format!("decompresses to more than {limit} bytes")]);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    eprintln!("{tool} bomb inside: {}", r.stderr.trim());
    let st = status_of(&env.in_state);
    assert_eq!(st.applied_sequence, 0, "nothing applied");
    assert_eq!(st.serving_generation, None, "nothing served");
    assert!(
        dir_names(&env.in_state.join("store/gens")).is_empty(),
        "a generation was left: {:?}",
        dir_names(&env.in_state.join("store/gens"))
    );
}
