//! `ferry-in listen --quic`: the inside end of a two-way link.
//!
//! The outside offers bundles in order; for each, the inside checks the
//! manifest (trusted signer, place in the chain) and answers with the chunks
//! it lacks, counting those an interrupted earlier push already delivered.
//! Received chunks are checked against their ids as they arrive and kept in
//! `STATE/incoming/<bundle>/`, so a dropped connection resumes where it
//! stopped. When the outside says it is done, the bundle is applied exactly
//! as one from media (`apply::apply`). One conversation at a time.
//!
//! What a medium carries beside a bundle comes with the offer (its
//! co-signatures and validity extension) or before it (root revocations),
//! and is checked as from media. Refusals are recorded as import's are
//! (`failures`), so the next receipt carries them.

use crate::apply::{self, ApplyOptions};
use crate::bundle::{Bundle, Payload};
use crate::chunkstore::ChunkStore;
use crate::db::Db;
use crate::failures;
use crate::import::{self, Decision};
use crate::layout::Layout;
use anyhow::{bail, Context, Result};
use ferry_agent_common::{fsx, media};
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::manifest::{Manifest, Name};
use ferry_protocol::push::{ClientMsg, ServerMsg, MAX_TRUST_FILE, VERSION};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of the listener.
pub struct ListenOptions {
    /// Address to listen on.
    pub listen: String,
    /// Who may connect.
    pub peers: ferry_quic::PeerAuth,
    /// Limits on what is received.
    pub limits: ReceiverLimits,
    /// How bundles are applied.
    pub apply: ApplyOptions,
    /// What follows each applied bundle (`[push]`, `[publish]` in the
    /// config).
    pub after: crate::after_import::AfterImport,
}

/// Where the chunks of an offered bundle are collected.
fn incoming_dir(layout: &Layout, m: &Manifest) -> PathBuf {
    layout
        .incoming()
        .join(media::bundle_dir_name(m.stream, m.sequence))
}

/// Runs the listener until interrupted.
pub fn run(layout: &Layout, opts: ListenOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(layout.clone(), opts))
}

async fn serve(layout: Layout, opts: ListenOptions) -> Result<()> {
    let addr = opts
        .listen
        .parse()
        .with_context(|| format!("cannot read address {}", opts.listen))?;
    let id = ferry_quic::load_identity(&layout.root)?;
    let endpoint = ferry_quic::server(addr, id, opts.peers.clone())?;
    eprintln!("ferry-in: listening on quic://{}", endpoint.local_addr()?);
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let opts = Arc::new(opts);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let (layout, opts, lock) = (layout.clone(), opts.clone(), one_at_a_time.clone());
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    let conn = match incoming.await {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("ferry-in: refused a connection from {remote}: {e}");
                            return;
                        }
                    };
                    let _guard = lock.lock().await;
                    if let Err(e) = conversation(&layout, &opts, conn).await {
                        eprintln!("ferry-in: push from {remote} ended: {}", ferry_agent_common::one_line(&e));
                    }
                });
            }
        }
    }
    endpoint.close(0u32.into(), b"shutting down");
    Ok(())
}

/// The state of one offered bundle.
struct Offered {
    bundle: Bundle,
    received: ChunkStore,
    need: HashSet<u32>,
}

async fn conversation(
    layout: &Layout,
    opts: &ListenOptions,
    conn: quinn::Connection,
) -> Result<()> {
    let (mut send, mut recv) = conn.accept_bi().await.context("no stream opened")?;
    let max = (opts.limits.max_manifest_bytes as u32)
        .saturating_add(1 << 16)
        .saturating_add(2 * MAX_TRUST_FILE as u32)
        .max(opts.limits.max_chunk_bytes * 2 + 1024);
    match ferry_quic::read_msg::<ClientMsg>(&mut recv, max).await? {
        ClientMsg::Hello { version } if version == VERSION => {}
        ClientMsg::Hello { version } => {
            bail!("peer speaks protocol version {version}, this is version {VERSION}")
        }
        other => bail!("peer opened with {other:?} instead of Hello"),
    }
    let (stream, applied) = block(|| {
        let a = Db::open(&layout.db())?.applied()?;
        Ok((a.stream, a.sequence))
    })?;
    ferry_quic::write_msg(&mut send, &ServerMsg::Welcome { stream, applied }).await?;
    let mut offered: Option<Offered> = None;
    loop {
        match ferry_quic::read_msg::<ClientMsg>(&mut recv, max).await? {
            ClientMsg::Revocations { file } => {
                block(|| {
                    let db = Db::open(&layout.db())?;
                    crate::trust::revocations::apply_bytes(&db, &file, "the revocations pushed")
                })?;
            }
            ClientMsg::Offer {
                manifest,
                cosignatures,
                validity,
            } => {
                let extras = Extras {
                    cosignatures,
                    validity,
                };
                let (reply, o) = block(|| offer(layout, opts, manifest, extras))?;
                offered = o;
                ferry_quic::write_msg(&mut send, &reply).await?;
            }
            ClientMsg::Chunk { index, stored } => {
                let Some(o) = offered.as_mut() else {
                    bail!("peer sent a chunk before offering a bundle")
                };
                block(|| take_chunk(o, index, &stored))?;
            }
            ClientMsg::Done => {
                let Some(o) = offered.take() else {
                    bail!("peer said Done before offering a bundle")
                };
                let reply = block(|| finish(layout, opts, o))?;
                ferry_quic::write_msg(&mut send, &reply).await?;
            }
            ClientMsg::Bye => break,
            ClientMsg::Hello { .. } => bail!("peer said Hello twice"),
        }
    }
    send.finish().ok();
    let _ = send.stopped().await;
    Ok(())
}

/// Runs blocking work (file I/O, the database) off the async threads.
fn block<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    tokio::task::block_in_place(f)
}

/// What came with an offer besides the manifest (on a medium, the files
/// beside the bundle).
struct Extras {
    cosignatures: Option<Vec<u8>>,
    validity: Option<Vec<u8>>,
}

fn offer(
    layout: &Layout,
    opts: &ListenOptions,
    manifest: Vec<u8>,
    extras: Extras,
) -> Result<(ServerMsg, Option<Offered>)> {
    let db = Db::open(&layout.db())?;
    let trusted = db.trusted()?;
    let verified = match crate::trust::open_manifest(&manifest, &trusted, &opts.limits) {
        Ok(v) => v,
        Err(e) => {
            let name = match e {
                ferry_protocol::Error::UntrustedKey(_) => "UntrustedKey",
                _ => "BadManifest",
            };
            failures::record_unopened(layout, Some(&manifest), name.to_string());
            return Ok((
                ServerMsg::Refuse {
                    reason: format!("manifest refused: {e}"),
                },
                None,
            ));
        }
    };
    let seq = verified.head().sequence;
    let dir = incoming_dir(layout, verified.head());
    let mut bundle = Bundle {
        dir: dir.clone(),
        payload: Payload::Chunks(dir.join("chunks")),
        manifest_bytes: manifest.len() as u64,
        verified,
        extended_until: None,
        cosigners: vec![],
        volumes_verified: false,
        checked_by_naming: vec![],
    };
    let now = ferry_agent_common::now_unix();
    crate::trust::extend_offered(
        &db,
        &mut bundle,
        extras.cosignatures.as_deref(),
        extras.validity.as_deref(),
        &opts.apply.policy,
        now,
    )?;
    let applied = db.applied()?;
    let refuse = |reason: String, name: &str| {
        failures::record_bundle(layout, &bundle, name.to_string());
        Ok((ServerMsg::Refuse { reason }, None))
    };
    match import::decide(&db, &applied, &bundle, opts.apply, now)? {
        Decision::Skip => {
            return Ok((
                ServerMsg::Skip {
                    reason: format!("bundle {seq} is already applied"),
                },
                None,
            ));
        }
        Decision::Refuse(why) => {
            return refuse(format!("bundle {seq} is refused: {why}"), why.name())
        }
        Decision::Hold { waiting_for } => {
            // Not a refusal of the bundle: the outside offers in order.
            let applied = applied.sequence;
            let reason = format!(
                "bundle {seq} does not follow the applied bundle {applied}; send bundle {waiting_for} first"
            );
            return Ok((ServerMsg::Refuse { reason }, None));
        }
        Decision::Apply => {}
    }
    if let Err(why) = apply::check_follows(&bundle, &applied, opts.apply, now) {
        return refuse(why.to_string(), why.name());
    }
    // Keep what an earlier push of this very bundle delivered; start over otherwise.
    let mpath = dir.join(media::MANIFEST_FILE);
    if std::fs::read(&mpath).ok().as_deref() != Some(&manifest[..]) {
        fsx::remove_dir_if_exists(&dir)?;
        std::fs::create_dir_all(dir.join("chunks"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        fsx::write_atomic(&mpath, &manifest)?;
    }
    let store = apply::chunk_store(layout, &opts.limits);
    let received = ChunkStore::new(&dir.join("chunks"), opts.limits.max_chunk_bytes);
    let need = needed(&bundle, &store, &received, &dir);
    let mut indices: Vec<u32> = need.iter().copied().collect();
    indices.sort_unstable();
    eprintln!(
        "ferry-in: bundle {seq} offered: {} of {} chunks needed",
        indices.len(),
        bundle.verified.chunk_count()
    );
    Ok((
        ServerMsg::Need { indices },
        Some(Offered {
            bundle,
            received,
            need,
        }),
    ))
}

/// The chunks of `bundle` (by index) neither the store nor an earlier
/// connection holds. A chunk listed without its id (version 4) is needed
/// unless an earlier connection delivered it (its computed id is recorded
/// by index).
fn needed(
    bundle: &Bundle,
    store: &ChunkStore,
    received: &ChunkStore,
    dir: &std::path::Path,
) -> HashSet<u32> {
    let unnamed = crate::bundle::unnamed_dir(&dir.join("chunks"));
    bundle
        .verified
        .entries()
        .enumerate()
        .filter(|(i, (name, _))| match name {
            Name::Id(id) => !store.holds_intact(id) && !received.contains(id),
            Name::Whole(_) => !received_unnamed(&unnamed, received, *i as u32),
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// Whether the chunk listed without an id at `index` was received already:
/// its computed id is recorded and the received chunks hold it.
fn received_unnamed(unnamed: &std::path::Path, received: &ChunkStore, index: u32) -> bool {
    std::fs::read(unnamed.join(index.to_string()))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .is_some_and(|id| received.contains(&ferry_protocol::id::ChunkId(id)))
}

fn take_chunk(o: &mut Offered, index: u32, stored: &[u8]) -> Result<()> {
    if !o.need.remove(&index) {
        bail!("peer sent chunk #{index}, which was not asked for");
    }
    let (name, c) =
        o.bundle.verified.entry(index as usize).with_context(|| {
            format!("peer sent chunk #{index}, which the manifest does not list")
        })?;
    if stored.len() != c.stored_len as usize {
        bail!(
            "chunk #{index} arrived with {} bytes, the manifest says {}",
            stored.len(),
            c.stored_len
        );
    }
    match name {
        Name::Id(id) => {
            ferry_protocol::codec::decode(&id, c.codec, stored, c.raw_len)?;
            o.received.put(&id, c.codec, c.raw_len, stored)
        }
        Name::Whole(sha256) => {
            // Its id is the BLAKE3 of its bytes, which must be the whole of
            // the object it is listed for.
            let (id, _) = ferry_protocol::codec::decode_whole(
                &sha256,
                &format_args!("listed for chunk #{index}"),
                c.codec,
                stored,
                c.raw_len,
            )?;
            o.received.put(&id, c.codec, c.raw_len, stored)?;
            let Payload::Chunks(chunks) = &o.bundle.payload else {
                bail!("a bundle received over QUIC has no chunk directory");
            };
            let dir = crate::bundle::unnamed_dir(chunks);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            fsx::write_atomic(&dir.join(index.to_string()), &id.0)
        }
    }
}

fn finish(layout: &Layout, opts: &ListenOptions, mut o: Offered) -> Result<ServerMsg> {
    let seq = o.bundle.sequence();
    if !o.need.is_empty() {
        return Ok(ServerMsg::Outcome {
            applied: false,
            sequence: seq,
            message: format!("{} needed chunks never arrived", o.need.len()),
        });
    }
    let db = Db::open(&layout.db())?;
    apply::recover(layout, &db, &opts.limits, &opts.apply.policy)?;
    Ok(
        match apply::apply(layout, &db, &mut o.bundle, &opts.limits, opts.apply) {
            Ok(out) => {
                fsx::remove_dir_if_exists(&o.bundle.dir)?;
                let message = format!(
                    "applied bundle {seq}: {} added, {} changed, {} removed; generation {}",
                    out.added, out.changed, out.removed, out.generation
                );
                eprintln!("ferry-in: {message}");
                opts.after.run(layout, 1);
                ServerMsg::Outcome {
                    applied: true,
                    sequence: seq,
                    message,
                }
            }
            Err(e) => {
                failures::record_bundle(layout, &o.bundle, failures::name_of(&e));
                let message = ferry_agent_common::one_line(&e);
                eprintln!("ferry-in: error: {message}");
                ServerMsg::Outcome {
                    applied: false,
                    sequence: seq,
                    message,
                }
            }
        },
    )
}
