//! Shared by the recipe tests: the round-trip check, tool lookup, fixture text.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use ferry_recipe::{analyze, expand, rebuild, Analysis, Options, Outcome, Recipe, StreamKind};

/// Analyses `data`, and checks that the recipe survives its encoding, rebuilds
/// `data` bit for bit from the expanded form, and that `expand` is
/// deterministic (and equals the analysis' expanded form when every stream was
/// reproduced).
pub fn roundtrip(name: &str, data: &[u8]) -> Analysis {
    let opts = Options::default();
    let a = analyze(data, &opts);
    let decoded = Recipe::from_bytes(&a.recipe.to_bytes()).expect("recipe decodes");
    assert_eq!(decoded, a.recipe, "{name}: recipe encoding round trip");
    assert_eq!(a.recipe.expanded_len(), a.expanded.len() as u64, "{name}");
    assert_eq!(a.recipe.output_len(), Some(data.len() as u64), "{name}");
    let mut out = Vec::new();
    rebuild(&decoded, &a.expanded, data.len() as u64, &mut out).expect("rebuild");
    assert!(
        out == data,
        "{name}: rebuilt bytes differ from the original"
    );
    let e1 = expand(data, &opts).expect("expand");
    let e2 = expand(data, &opts).expect("expand");
    assert!(e1 == e2, "{name}: expand is not deterministic");
    if a.report.literal().next().is_none() {
        assert!(
            e1 == a.expanded,
            "{name}: reference form differs from analysis"
        );
    }
    a
}

/// Asserts that at least `min` streams of `kind` were found and all reproduced.
pub fn assert_reproduced(name: &str, a: &Analysis, kind: StreamKind, min: usize) {
    let of_kind: Vec<_> = a.report.streams.iter().filter(|s| s.kind == kind).collect();
    assert!(
        of_kind.len() >= min,
        "{name}: {} {kind:?} streams found, expected at least {min}: {:?}",
        of_kind.len(),
        a.report.streams
    );
    for s in &of_kind {
        assert_eq!(s.outcome, Outcome::Reproduced, "{name}: {s:?}");
        assert!(
            s.recipe_len > 0,
            "{name}: reproduced without corrections: {s:?}"
        );
    }
    assert!(!a.recipe.is_identity(), "{name}: recipe reproduces nothing");
    assert!(a.report.reproduced_bytes() > 0);
}

/// True if `tool` runs; otherwise says the test is skipped.
pub fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {test}: {tool} is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// Runs `cmd`, panicking with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Deterministic text with repeats and variety: what source and metadata look like.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn", "let", "mut", "self", "return", "match", "impl", "struct", "pub", "use", "data",
        "len", "value", "error", "Some", "None", "Ok", "Err", "=>", "{", "}", "(", ")", ";", "\n",
        "    ", "if", "else", "for", "in", "0x", "42", "name",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.push(if x & 0x300 == 0 { b'_' } else { b' ' });
        if x & 0xf000 == 0 {
            out.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Writes a file of `text` under `dir`, making parent directories.
pub fn write(dir: &Path, rel: &str, contents: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

/// A Go program of `tests/<dir>` built once per test binary with the `go`
/// on the PATH and `env` (no network: `GOPROXY=off`, a private build cache),
/// or why not (go missing). A failing build panics.
pub fn go_build(
    dir: &str,
    env: &[(&str, &str)],
) -> Result<(tempfile::TempDir, std::path::PathBuf), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = tmp.path().join(dir);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(src)
        .env("GOPROXY", "off")
        .env("GOCACHE", tmp.path().join("cache"))
        .envs(env.iter().copied())
        .status();
    match built {
        Ok(s) if s.success() => Ok((tmp, exe)),
        Ok(s) => panic!("go build of tests/{dir} failed: {s}"),
        Err(e) => Err(format!("go is not installed ({e})")),
    }
}

/// What `exe args` writes to stdout when fed `input` on stdin (which a
/// thread writes, so large inputs and outputs do not deadlock); it must
/// exit successfully.
pub fn piped(exe: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{} {args:?} failed", exe.display());
    out.stdout
}
