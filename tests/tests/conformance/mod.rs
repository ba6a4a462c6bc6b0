//! The conformance suite every source type runs (restic's backend test
//! suite is the model): the same behavioural tests against a local upstream
//! on loopback ([`server::Upstream`]) holding a repository built with the
//! ecosystem's own tools ([`fixtures`]):
//!
//! - a private CA given as `ca_file` is honoured over TLS (and without it
//!   the export fails naming the URL);
//! - a transient 503 is retried, and the export goes through;
//! - a download cut half-way is resumed with `Range`;
//! - a checksum mismatch fails the export naming the artifact, with nothing
//!   written to media.
//!
//! A source type joins with a fixture builder and one `conformance!` line.

mod fixtures;
mod server;

use ferry_e2e::{dir_names, skip, Env};
use fixtures::Fixture;
use server::{Fault, Pki, Upstream};
use std::path::Path;
use std::process::Command;

/// Builds a source type's upstream in a directory; `None` when a tool is
/// missing (after [`ferry_e2e::skip`]).
type Build = fn(&Path, &str) -> Option<Fixture>;

fn setup(build: Build, test: &str) -> Option<(Env, Fixture)> {
    let env = Env::new();
    let dir = env.root().to_path_buf();
    let fx = build(&dir, test)?;
    Some((env, fx))
}

/// Writes a config with the fixture's one source, `name = "up"`.
fn configure(env: &Env, fx: &Fixture, url: &str, extra: &str) {
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"up\"\ntype = \"{}\"\n{}{extra}",
            fx.kind,
            (fx.table)(url)
        ),
    )
    .unwrap();
}

fn media_is_empty(env: &Env, media: &str) -> bool {
    dir_names(&env.root().join(media)).is_empty()
}

/// The upstream is served over TLS with a certificate of a private CA: the
/// export fails without `ca_file` (naming the URL) and succeeds with it.
fn private_ca_is_honoured(build: Build, test: &str) {
    let Some((env, fx)) = setup(build, test) else {
        return;
    };
    if Command::new("openssl").arg("version").output().is_err() {
        skip(
            test,
            "openssl is not installed (scripts/test.sh installs it)",
        );
        return;
    }
    let pki_dir = env.root().join("pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = Pki::make(&pki_dir);
    let up = Upstream::start(&fx.root, Some(&pki));
    configure(&env, &fx, &up.url, "retries = 0\n");
    env.export("untrusted")
        .expect_fail(&["cannot reach", &up.url, "source \"up\""]);
    assert!(media_is_empty(&env, "untrusted"));
    configure(
        &env,
        &fx,
        &up.url,
        &format!("ca_file = \"{}\"\n", pki.ca.display()),
    );
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    assert!(!up.requests_of(&fx.artifact).is_empty());
}

/// The artifact's first GET answers 503: the export retries and succeeds.
fn transient_503_is_retried(build: Build, test: &str) {
    let Some((env, fx)) = setup(build, test) else {
        return;
    };
    let up = Upstream::start(&fx.root, None);
    up.fault(&fx.artifact, Fault::Unavailable);
    configure(&env, &fx, &up.url, "");
    let run = env.export("m").expect_ok();
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
    env.import("m").expect_ok();
    let seen = up.requests_of(&fx.artifact);
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// The artifact's first GET is cut half-way: the next asks for the rest
/// with `Range`, and what the inside gets is whole (import checks SHA-256).
fn cut_download_resumes_with_range(build: Build, test: &str) {
    let Some((env, fx)) = setup(build, test) else {
        return;
    };
    let up = Upstream::start(&fx.root, None);
    up.fault(&fx.artifact, Fault::Cut);
    configure(&env, &fx, &up.url, "");
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    let seen = up.requests_of(&fx.artifact);
    let size = std::fs::metadata(fx.root.join(&fx.artifact)).unwrap().len();
    let resumed_from: Vec<u64> = seen
        .iter()
        .filter_map(|s| {
            s.range
                .as_deref()?
                .strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        resumed_from.len() == 1 && resumed_from[0] > 0 && resumed_from[0] < size,
        "expected one Range request from the middle of {size} bytes: {seen:?}"
    );
}

/// The artifact's bytes change upstream (same size) while the metadata
/// still promises the old checksum: the export fails naming it, and
/// nothing reaches the media.
fn checksum_mismatch_fails_naming_the_artifact(build: Build, test: &str) {
    let Some((env, fx)) = setup(build, test) else {
        return;
    };
    let file = fx.root.join(&fx.artifact);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let up = Upstream::start(&fx.root, None);
    configure(&env, &fx, &up.url, "");
    env.export("m")
        .expect_fail(&["source \"up\"", &fx.artifact, "checksum mismatch"]);
    assert!(media_is_empty(&env, "m"));
    let st = env.out(&["status"]).expect_ok();
    assert!(st.stdout.contains("0 exported"), "{}", st.stdout);
}

/// The suite for one source type, as a module of tests.
macro_rules! conformance {
    ($kind:ident) => {
        mod $kind {
            #[test]
            fn private_ca_is_honoured() {
                super::private_ca_is_honoured(
                    super::fixtures::$kind,
                    concat!(stringify!($kind), "::private_ca_is_honoured"),
                );
            }
            #[test]
            fn transient_503_is_retried() {
                super::transient_503_is_retried(
                    super::fixtures::$kind,
                    concat!(stringify!($kind), "::transient_503_is_retried"),
                );
            }
            #[test]
            fn cut_download_resumes_with_range() {
                super::cut_download_resumes_with_range(
                    super::fixtures::$kind,
                    concat!(stringify!($kind), "::cut_download_resumes_with_range"),
                );
            }
            #[test]
            fn checksum_mismatch_fails_naming_the_artifact() {
                super::checksum_mismatch_fails_naming_the_artifact(
                    super::fixtures::$kind,
                    concat!(
                        stringify!($kind),
                        "::checksum_mismatch_fails_naming_the_artifact"
                    ),
                );
            }
        }
    };
}

conformance!(files);
conformance!(helm);
conformance!(yum);
conformance!(apt);
conformance!(pypi);
conformance!(oci);
conformance!(cargo);
conformance!(npm);
conformance!(go);
