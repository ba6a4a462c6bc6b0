//! Progress bars: drawn on a terminal (a pseudo-terminal from `script`),
//! absent when stderr is a pipe, as in every other test and in logs.

use ferry_e2e::*;
use std::process::Command;

/// The bar names a run drew on a pseudo-terminal.
fn on_terminal(cmd: &str) -> String {
    let o = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{cmd}:\n{text}");
    text
}

const BARS: [&str; 7] = [
    "scanning",
    "packing",
    "copying",
    "verifying",
    "extracting",
    "applying",
    "[====",
];

#[test]
fn bars_on_a_terminal_and_none_on_a_pipe() {
    if !have_tools(&current_test(), &["script"]) {
        return;
    }
    let env = Env::new();
    write_random_file(&env.src.join("big.bin"), 24 << 20, 9);
    let m = env.root().join("m1");
    let export = format!(
        "{} --state {} export --config {} --to {}",
        bin("ferry-out").display(),
        env.out_state.display(),
        env.config.display(),
        m.display()
    );
    let shown = on_terminal(&export);
    // The media's copy is written as the bundle is packed: no copy after.
    for bar in ["scanning", "packing"] {
        assert!(shown.contains(bar), "no {bar} bar on a terminal:\n{shown}");
    }
    // A copy after the build (resend) draws its own bar.
    let again = env.root().join("m1-again");
    let resend = format!(
        "{} --state {} resend --from 1 --to {}",
        bin("ferry-out").display(),
        env.out_state.display(),
        again.display()
    );
    let shown = on_terminal(&resend);
    assert!(
        shown.contains("copying"),
        "no copying bar on a terminal:\n{shown}"
    );
    let import = format!(
        "{} --state {} import {}",
        bin("ferry-in").display(),
        env.in_state.display(),
        m.display()
    );
    let shown = on_terminal(&import);
    assert!(
        ["verifying", "extracting", "applying"]
            .iter()
            .any(|b| shown.contains(b)),
        "no import bar on a terminal:\n{shown}"
    );

    // On a pipe: the summaries only.
    env.write_src("big.bin", &random_bytes(3 << 20, 10));
    let r = env.export("m2").expect_ok();
    let i = env.import("m2").expect_ok();
    for text in [r.all(), i.all()] {
        for bar in BARS {
            assert!(!text.contains(bar), "{bar} drawn on a pipe:\n{text}");
        }
        assert!(!text.contains('\r'), "a bar redrawn on a pipe:\n{text}");
    }
}

/// The seconds of each of an import's "took" lines (one a bundle), the
/// whole first: `took Ts: verify Vs, extract Xs, build Bs, commit Cs`.
fn step_seconds(stdout: &str) -> Vec<Vec<f64>> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("took "))
        .map(|l| {
            l.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .filter(|w| !w.is_empty() && *w != "-")
                .map(|w| {
                    w.parse::<f64>()
                        .unwrap_or_else(|e| panic!("{w:?} in {l:?}: {e}"))
                })
                .collect()
        })
        .collect()
}

/// Each step's time is the time between two marks of one clock: none is
/// negative (a first import once printed "build -10.2s": the chunk naming's
/// time was taken off the build).
#[test]
fn the_import_step_times_are_not_negative() {
    let env = Env::new();
    for i in 0..200 {
        env.write_src(&format!("d/f{i:03}.txt"), format!("file {i}\n").as_bytes());
    }
    write_random_file(&env.src.join("big.bin"), 8 << 20, 11);
    env.export("m1").expect_ok();
    env.write_src("d/f000.txt", b"changed\n");
    env.export("m2").expect_ok();
    for m in ["m1", "m2"] {
        let out = env.import(m).expect_ok().stdout;
        let lines = step_seconds(&out);
        assert_eq!(lines.len(), 1, "one took line for {m}:\n{out}");
        assert_eq!(
            lines[0].len(),
            5,
            "the whole and four steps for {m}:\n{out}"
        );
        assert!(
            lines[0].iter().all(|s| *s >= 0.0),
            "a negative step time for {m}:\n{out}"
        );
    }
}
