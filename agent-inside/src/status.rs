//! `ferry-in status`: what is applied, what is held and why, store sizes.

use crate::apply;
use crate::db::Db;
use crate::layout::Layout;
use anyhow::Result;
use ferry_agent_common::format_time;
use ferry_agent_common::units::human_bytes;
use ferry_protocol::limits::ReceiverLimits;
use serde_json::json;

/// Gathers the status as JSON; `policy` gives `[trust] warn_after`.
pub fn gather(
    layout: &Layout,
    limits: &ReceiverLimits,
    policy: &crate::policy::Policy,
) -> Result<serde_json::Value> {
    let db = Db::open(&layout.db())?;
    let applied = db.applied()?;
    let catalog = db.catalog()?;
    let history = db.history()?;
    let held = db.held()?;
    let signers: Vec<Option<String>> = history
        .iter()
        .map(|(seq, _)| Ok(db.signer(*seq)?.map(|k| k.to_text())))
        .collect::<Result<_>>()?;
    let (chunks, chunk_bytes) = apply::chunk_store(layout, limits).usage();
    // One entry per store kind ("files", "oci"), each with its sources.
    let mut stores = serde_json::Map::new();
    for (name, kind) in &catalog.sources {
        let (mut n, mut bytes) = (0u64, 0u64);
        for (k, o) in &catalog.objects {
            if &k.source == name {
                n += 1;
                if let ferry_protocol::catalog::Object::File(f) = o {
                    bytes += f.size;
                }
            }
        }
        let kind = format!("{kind:?}").to_lowercase();
        let store = stores
            .entry(kind)
            .or_insert_with(|| json!({"objects": 0, "bytes": 0, "sources": {}}));
        store["objects"] = json!(store["objects"].as_u64().unwrap_or(0) + n);
        store["bytes"] = json!(store["bytes"].as_u64().unwrap_or(0) + bytes);
        store["sources"][name] = json!({"objects": n, "bytes": bytes});
    }
    stores.insert(
        "chunks".into(),
        json!({"count": chunks, "bytes": chunk_bytes}),
    );
    let last = history.last().map(|(_, h)| h.clone());
    let diode: serde_json::Value = std::fs::read(layout.root.join(crate::diode::STATUS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let freshness = crate::freshness::assess(
        last.as_ref().map(|h| h.created),
        ferry_agent_common::now_unix(),
        policy.warn_after_secs,
    );
    let suspects = crate::trust::signed_after_revocation(&db, &db.view()?, &applied)?;
    Ok(json!({
        "state": layout.root.display().to_string(),
        "freshness": freshness,
        "provenance": crate::upstream::provenance::status_json(layout),
        "signed_after_revocation": suspects.iter().map(|(seq, k)| json!({"sequence": seq, "key": k.to_text()})).collect::<Vec<_>>(),
        "stream": applied.stream.map(|s| s.to_hex()),
        "applied_sequence": applied.sequence,
        "applied_hash": applied.hash.map(|h| h.to_hex()),
        "applied_at": last.as_ref().map(|h| h.applied_at),
        "generation": applied.generation,
        "serving_generation": layout.current_gen_name(),
        "trusted_keys": db.trusted()?.iter().map(|k| k.to_text()).collect::<Vec<_>>(),
        "key_streams": db.trusted_bindings()?.iter().map(|(k, b)| json!({
            "key": k.to_text(),
            "streams": b.streams.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            "first_use": b.first_use && b.streams.is_empty(),
        })).collect::<Vec<_>>(),
        "applied_signer": signers.last().cloned().flatten(),
        "held": held.iter().map(|(seq, h)| json!({"sequence": seq, "dir": h.dir_name, "reason": h.reason})).collect::<Vec<_>>(),
        "refused": crate::failures::load(layout)?.iter().map(|f| json!({"sequence": f.sequence, "hash": f.hash.map(|h| h.to_hex()), "refusal": f.refusal, "at": f.at})).collect::<Vec<_>>(),
        "stores": stores,
        "diode": diode,
        "history": history.iter().zip(&signers).map(|((seq, h), signer)| json!({
            "sequence": seq, "hash": h.hash.to_hex(), "signer": signer, "created": h.created, "applied_at": h.applied_at,
            "bundle_bytes": h.bundle_bytes, "added": h.added, "changed": h.changed, "removed": h.removed,
        })).collect::<Vec<_>>(),
    }))
}

/// Prints the status for people.
pub fn print(v: &serde_json::Value) {
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    println!("state:      {}", v["state"].as_str().unwrap_or(""));
    println!("stream:     {}", v["stream"].as_str().unwrap_or("none yet"));
    match v["applied_at"].as_u64() {
        Some(t) => println!(
            "applied:    bundle {} at {}",
            u("applied_sequence"),
            format_time(t)
        ),
        None => println!("applied:    nothing yet"),
    }
    println!(
        "generation: {}",
        v["serving_generation"].as_str().unwrap_or("none")
    );
    if let Some(k) = v["applied_signer"].as_str() {
        println!("signed by:  {k}");
    }
    print_freshness(&v["freshness"]);
    crate::upstream::provenance::print(&v["provenance"]);
    for s in v["signed_after_revocation"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "WARNING:    bundle {} was signed by {} at or after its revocation point",
            s["sequence"],
            s["key"].as_str().unwrap_or("")
        );
    }
    let keys = v["key_streams"].as_array().cloned().unwrap_or_default();
    println!("trusted:    {} key(s)", keys.len());
    for k in keys {
        let streams: Vec<&str> = k["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect();
        let bound = if k["first_use"].as_bool() == Some(true) {
            "first use (not bound yet)".to_string()
        } else {
            streams.join(", ")
        };
        println!("  {} for stream {bound}", k["key"].as_str().unwrap_or(""));
    }
    let held = v["held"].as_array().cloned().unwrap_or_default();
    if held.is_empty() {
        println!("held:       none");
    }
    for h in held {
        println!(
            "held:       bundle {}: {}",
            h["sequence"],
            h["reason"].as_str().unwrap_or("")
        );
    }
    for f in v["refused"].as_array().into_iter().flatten() {
        println!(
            "refused:    bundle {} ({}): {}",
            f["sequence"],
            f["hash"].as_str().map_or("?", |h| &h[..16.min(h.len())]),
            f["refusal"].as_str().unwrap_or("")
        );
    }
    for (kind, f) in v["stores"].as_object().into_iter().flatten() {
        if kind == "chunks" {
            continue;
        }
        println!(
            "{:<11} {} objects, {}",
            format!("{kind}:"),
            f["objects"],
            human_bytes(f["bytes"].as_u64().unwrap_or(0))
        );
        for (name, s) in f["sources"].as_object().into_iter().flatten() {
            println!(
                "  {name}: {} objects, {}",
                s["objects"],
                human_bytes(s["bytes"].as_u64().unwrap_or(0))
            );
        }
    }
    print_history(v);
    let c = &v["stores"]["chunks"];
    println!(
        "chunks:     {} held, {}",
        c["count"],
        human_bytes(c["bytes"].as_u64().unwrap_or(0))
    );
    for line in diode_lines(&v["diode"]) {
        println!("{line}");
    }
}

/// What `ferry-in receive` last wrote of the bundles it is receiving (the
/// JSON status's `diode`), for people: each partial bundle's segments.
fn diode_lines(d: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let receiving = d["receiving"].as_array().cloned().unwrap_or_default();
    if d.is_null() {
        return out;
    }
    let updated = d["updated"].as_u64().map(format_time).unwrap_or_default();
    if receiving.is_empty() {
        out.push(format!(
            "diode:      nothing half received (as of {updated})"
        ));
    }
    for b in receiving {
        let u = |k: &str| b[k].as_u64().unwrap_or(0);
        out.push(format!(
            "diode:      bundle {} half received (as of {updated}): {} segment(s) rebuilt, \
             {} partial, {} with nothing yet; {} of {} file(s) seen",
            u("sequence"),
            u("segments_received"),
            u("segments_recoverable"),
            u("segments_missing"),
            u("files_seen"),
            u("files"),
        ));
    }
    out
}

fn print_freshness(f: &serde_json::Value) {
    let warn = crate::freshness::human_age(f["warn_after_secs"].as_u64().unwrap_or(0));
    match (f["newest_created"].as_u64(), f["age_secs"].as_u64()) {
        (Some(c), Some(age)) => {
            let age = crate::freshness::human_age(age);
            println!("newest:     made {} ({age} ago)", format_time(c));
            if f["stale"].as_bool() == Some(true) {
                println!("WARNING:    the newest bundle is {age} old, past [trust] warn_after ({warn}): bundles may be withheld (a freeze); check the media flow");
            }
        }
        _ => println!("newest:     no bundle applied yet"),
    }
}

/// The last applied bundles, each with the key that signed it.
fn print_history(v: &serde_json::Value) {
    let history = v["history"].as_array().cloned().unwrap_or_default();
    let skip = history.len().saturating_sub(10);
    if !history.is_empty() {
        println!("history:    (last {})", history.len() - skip);
    }
    for h in &history[skip..] {
        let signer = h["signer"]
            .as_str()
            .and_then(|k| ferry_protocol::keys::PublicKey::from_text(k).ok())
            .map_or_else(|| "an unrecorded key".to_string(), |k| k.short());
        println!(
            "  bundle {} signed by {signer}, made {}, applied {}",
            h["sequence"],
            format_time(h["created"].as_u64().unwrap_or(0)),
            format_time(h["applied_at"].as_u64().unwrap_or(0))
        );
    }
}

#[cfg(test)]
mod diode_tests {
    use super::diode_lines;
    use serde_json::json;

    #[test]
    fn a_half_received_bundle_is_shown_with_its_segments() {
        assert!(diode_lines(&serde_json::Value::Null).is_empty());
        let d = json!({"updated": 0, "receiving": [{
            "stream": "ab", "sequence": 7, "files": 3, "files_seen": 2,
            "segments_received": 5, "segments_recoverable": 2, "segments_missing": 4,
            "symbols_pending": 10, "span_symbols": 0, "span_lost": 0,
        }]});
        let lines = diode_lines(&d);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("bundle 7 half received")
                && lines[0].contains("5 segment(s) rebuilt, 2 partial, 4 with nothing yet")
                && lines[0].contains("2 of 3 file(s) seen"),
            "{}",
            lines[0]
        );
        let idle = diode_lines(&json!({"updated": 0, "receiving": []}));
        assert!(idle[0].contains("nothing half received"), "{idle:?}");
    }
}
