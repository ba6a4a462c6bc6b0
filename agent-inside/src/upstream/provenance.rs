//! What upstream vouched for each object, as the outside recorded it in the
//! latest applied bundle (bundle-format §19, non-critical extension kind 3):
//! kept in `STATE/provenance.json` after each apply, shown by `ferry-in
//! status` (all sources) and `ferry-in status --object SOURCE/PATH`.

use crate::bundle::Bundle;
use crate::layout::Layout;
use anyhow::{bail, Context, Result};
use ferry_protocol::provenance::{provenance, Provenance, Vouch};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The file under the state directory.
pub const FILE: &str = "provenance.json";

/// The latest applied bundle's record.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// The bundle it came with.
    pub sequence: u64,
    /// Whether the bundle carried one (an older outside writes none).
    pub carried: bool,
    /// Its entries.
    pub vouches: Vec<Vouch>,
}

/// Keeps bundle `b`'s record (after its apply committed). It is
/// informational: a failure only warns, and an unreadable record is named.
pub fn record(layout: &Layout, b: &Bundle) {
    let (carried, vouches) = match provenance(b.head()) {
        Ok(Some(p)) => (true, p.vouches),
        Ok(None) => (false, Vec::new()),
        Err(e) => {
            eprintln!(
                "ferry-in: warning: bundle {}: its provenance record is ignored: {e}",
                b.sequence()
            );
            (false, Vec::new())
        }
    };
    let r = Record {
        sequence: b.sequence(),
        carried,
        vouches,
    };
    let write = serde_json::to_vec(&r)
        .map_err(anyhow::Error::from)
        .and_then(|j| ferry_agent_common::fsx::write_atomic(&layout.root.join(FILE), &j));
    if let Err(e) = write {
        eprintln!("ferry-in: warning: cannot write the provenance record: {e:#}");
    }
}

/// Reads the record; none before the first apply that wrote one.
pub fn read(layout: &Layout) -> Option<Record> {
    let b = std::fs::read(layout.root.join(FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn vouch_json(v: &Vouch) -> serde_json::Value {
    json!({
        "source": v.source,
        "object": v.object,
        "method": v.method.name(),
        "key": v.key,
        "detail": v.detail,
    })
}

/// The `provenance` member of `status --json`: `null` before any record.
pub fn status_json(layout: &Layout) -> serde_json::Value {
    match read(layout) {
        None => serde_json::Value::Null,
        Some(r) => json!({
            "sequence": r.sequence,
            "carried": r.carried,
            "vouches": r.vouches.iter().map(vouch_json).collect::<Vec<_>>(),
        }),
    }
}

/// One line per entry, under `upstream:` in `status`.
pub fn print(v: &serde_json::Value) {
    if v.is_null() {
        return;
    }
    if v["carried"] != json!(true) {
        println!(
            "upstream:   bundle {} carried no provenance record",
            v["sequence"]
        );
        return;
    }
    println!("upstream:   as recorded by bundle {}", v["sequence"]);
    for e in v["vouches"].as_array().into_iter().flatten() {
        let what = match e["object"].as_str() {
            Some(o) => format!("{}/{o}", e["source"].as_str().unwrap_or("")),
            None => format!("source {}", e["source"].as_str().unwrap_or("")),
        };
        println!(
            "  {what}: {} ({})",
            e["detail"].as_str().unwrap_or(""),
            e["method"].as_str().unwrap_or("")
        );
    }
}

/// `ferry-in status --object SOURCE/PATH`: what vouched for one object of
/// the current catalog.
pub fn object_cmd(layout: &Layout, object: &str, as_json: bool) -> Result<i32> {
    let Some((source, path)) = object.split_once('/') else {
        bail!("--object {object:?}: give SOURCE/PATH, as status and the served trees name it");
    };
    let db = crate::db::Db::open(&layout.db())?;
    let catalog = db.catalog()?;
    let key = ferry_protocol::path::ObjectKey {
        source: source.to_string(),
        path: path.to_string(),
    };
    let Some(obj) = catalog.objects.get(&key) else {
        bail!("--object {object:?}: the current catalog holds no such object");
    };
    let r = read(layout).context("no provenance record yet (no bundle with one applied)")?;
    let p = Provenance { vouches: r.vouches };
    let found = p.lookup(source, path);
    let sha256 = match obj {
        ferry_protocol::catalog::Object::File(f) => Some(f.sha256.to_string()),
        _ => None,
    };
    if as_json {
        let v = json!({
            "object": object,
            "sha256": sha256,
            "sequence": r.sequence,
            "vouch": found.map(vouch_json),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("object:     {object}");
        if let Some(s) = sha256 {
            println!("sha256:     {s}");
        }
        match found {
            Some(v) => {
                println!("vouched:    {} ({})", v.detail, v.method.name());
                if let Some(k) = &v.key {
                    println!("key:        {k}");
                }
            }
            None => println!("vouched:    nothing recorded for its source"),
        }
    }
    Ok(0)
}
