//! `ferry-out push quic://HOST:PORT`: bundles over a two-way link.
//!
//! The outside asks the inside what it has applied, then offers every later
//! bundle it keeps, in order; for each, the inside answers with the chunks it
//! lacks and only those are sent. A dropped connection costs nothing already
//! delivered: pushing again resumes, because the inside keeps what arrived.
//! A bundle the inside applied is recorded as delivered in the ledger.
//!
//! What a medium carries beside the bundles goes too: the pending root
//! revocations first, then with each offer its co-signatures (from the kept
//! bundle's directory) and, for a bundle near or past its expiry, a fresh
//! validity extension signed with the signing key (as `resend` writes).

use crate::layout::Layout;
use crate::ledger::{Delivery, Ledger};
use anyhow::{anyhow, bail, Context, Result};
use ferry_agent_common::media::MANIFEST_FILE;
use ferry_protocol::push::{ClientMsg, ServerMsg, MAX_TRUST_FILE, VERSION};
use ferry_protocol::{trust, volume};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

/// What a push did.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Bundles applied by the inside.
    pub applied: Vec<u64>,
    /// Bundles the inside already had.
    pub skipped: Vec<u64>,
    /// Chunks sent, and chunks the bundles carry in all.
    pub chunks_sent: u64,
    /// See `chunks_sent`.
    pub chunks_total: u64,
    /// Bytes of chunk data sent.
    pub bytes_sent: u64,
    /// Seconds spent sending chunks (from each offer's answer to `Done`).
    pub transfer_secs: f64,
    /// Wall time.
    pub secs: f64,
}

/// Splits `quic://HOST:PORT` into the host name and a socket address.
pub fn parse_target(url: &str) -> Result<(String, SocketAddr)> {
    let hp = url
        .strip_prefix("quic://")
        .ok_or_else(|| anyhow!("{url} is not a quic://HOST:PORT address"))?
        .trim_end_matches('/');
    let addr = hp
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hp}"))?
        .next()
        .with_context(|| format!("{hp} has no address"))?;
    let host = hp
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(hp)
        .trim_matches(['[', ']'])
        .to_string();
    Ok((host, addr))
}

/// Runs `push`: pushes, then prints what it did.
pub fn run(layout: &Layout, url: &str, peers: ferry_quic::PeerAuth, valid_for: &str) -> Result<()> {
    use ferry_agent_common::units::{human_bytes, parse_duration_secs};
    let valid_for = parse_duration_secs(valid_for).context("--valid-for")?;
    let ledger = Ledger::open(layout)?;
    let st = push(&layout.root, &ledger, url, peers, valid_for)?;
    println!(
        "pushed to {url}: {} applied, {} already there; sent {} of {} chunks ({}) in {:.2}s ({:.1} MB/s), {:.2}s in all with the inside's apply",
        st.applied.len(),
        st.skipped.len(),
        st.chunks_sent,
        st.chunks_total,
        human_bytes(st.bytes_sent),
        st.transfer_secs,
        st.bytes_sent as f64 / 1e6 / st.transfer_secs.max(1e-6),
        st.secs
    );
    Ok(())
}

/// Pushes every kept bundle the inside lacks; a bundle expiring within
/// `valid_for` seconds goes with a validity extension that long.
pub fn push(
    state: &Path,
    ledger: &Ledger,
    url: &str,
    peers: ferry_quic::PeerAuth,
    valid_for: u64,
) -> Result<PushStats> {
    let (host, addr) = parse_target(url)?;
    let id = ferry_quic::load_identity(state)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let endpoint = ferry_quic::client(id, peers, addr)?;
        let conn = endpoint.connect(addr, &host)?.await.with_context(|| {
            format!("cannot connect to {url} (is its certificate pinned here, and ours there?)")
        })?;
        let stats = conversation(state, ledger, &conn, valid_for).await;
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        stats
    })
}

async fn conversation(
    state: &Path,
    ledger: &Ledger,
    conn: &quinn::Connection,
    valid_for: u64,
) -> Result<PushStats> {
    let t0 = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.context("cannot open a stream")?;
    ferry_quic::write_msg(&mut send, &ClientMsg::Hello { version: VERSION }).await?;
    let max = 1 << 20;
    let (stream, applied) = match ferry_quic::read_msg::<ServerMsg>(&mut recv, max).await? {
        ServerMsg::Welcome { stream, applied } => (stream, applied),
        other => bail!("the inside answered {other:?} instead of Welcome"),
    };
    let ours = ledger.stream()?;
    if stream.is_some_and(|s| s != ours) {
        bail!(
            "the inside follows stream {}, but this outside's stream is {ours}",
            stream.map(|s| s.to_hex()).unwrap_or_default()
        );
    }
    let layout = Layout::new(state);
    if let Some(file) = crate::keys::revocations_file(&layout)? {
        eprintln!("ferry-out: sending the pending root revocations");
        ferry_quic::write_msg(&mut send, &ClientMsg::Revocations { file }).await?;
    }
    let mut stats = PushStats::default();
    let todo: Vec<_> = ledger
        .bundles()?
        .into_iter()
        .filter(|r| r.sequence > applied)
        .collect();
    if todo.is_empty() {
        eprintln!("ferry-out: the inside has applied bundle {applied}; nothing to push");
    }
    for r in todo {
        let dir = layout.bundle(&r.dir_name);
        let (offer, m) = offer_of(&layout, ledger, &r, &dir, valid_for)?;
        ferry_quic::write_msg(&mut send, &offer).await?;
        let indices = match ferry_quic::read_msg::<ServerMsg>(&mut recv, 64 << 20).await? {
            ServerMsg::Need { indices } => indices,
            ServerMsg::Skip { reason } => {
                // The inside already applied this very bundle: delivered.
                eprintln!("ferry-out: {reason}");
                ledger.mark_delivered(r.sequence, &delivered_now())?;
                stats.skipped.push(r.sequence);
                continue;
            }
            ServerMsg::Refuse { reason } => {
                bail!("the inside refused bundle {}: {reason}", r.sequence)
            }
            other => bail!("the inside answered {other:?} to an offer"),
        };
        stats.chunks_total += m.chunk_count() as u64;
        let total: u64 = indices
            .iter()
            .filter_map(|&i| m.entry(i as usize))
            .map(|(_, c)| c.stored_len as u64)
            .sum();
        eprintln!(
            "ferry-out: bundle {}: the inside needs {} of {} chunks ({})",
            r.sequence,
            indices.len(),
            m.chunk_count(),
            ferry_agent_common::units::human_bytes(total)
        );
        let pb = ferry_agent_common::progress::bytes(total, "pushing");
        let t_send = Instant::now();
        send_chunks(&mut send, &dir, r.sequence, &m, indices, &pb, &mut stats).await?;
        pb.finish_and_clear();
        ferry_quic::write_msg(&mut send, &ClientMsg::Done).await?;
        stats.transfer_secs += t_send.elapsed().as_secs_f64();
        match ferry_quic::read_msg::<ServerMsg>(&mut recv, 1 << 20).await? {
            ServerMsg::Outcome {
                applied: true,
                message,
                ..
            } => {
                eprintln!("ferry-out: inside: {message}");
                ledger.mark_written(r.sequence)?;
                ledger.mark_delivered(r.sequence, &delivered_now())?;
                stats.applied.push(r.sequence);
            }
            ServerMsg::Outcome { message, .. } => {
                bail!("the inside did not apply bundle {}: {message}", r.sequence)
            }
            other => bail!("the inside answered {other:?} to Done"),
        }
    }
    ferry_quic::write_msg(&mut send, &ClientMsg::Bye).await?;
    send.finish().ok();
    let _ = recv.read_to_end(0).await;
    stats.secs = t0.elapsed().as_secs_f64();
    Ok(stats)
}

/// The offer of kept bundle `r` (in `dir`): its manifest, co-signatures
/// and, when it expires within `valid_for` seconds, a validity extension.
fn offer_of(
    layout: &Layout,
    ledger: &Ledger,
    r: &crate::ledger::BundleRecord,
    dir: &Path,
    valid_for: u64,
) -> Result<(ClientMsg, ferry_protocol::manifest::Decoded)> {
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).with_context(|| {
        format!(
            "bundle {} is no longer kept in {} (pruned?); ship it from media",
            r.sequence,
            dir.display()
        )
    })?;
    let (_, m) = ferry_protocol::manifest::peek_unverified(&manifest)?;
    let now = ferry_agent_common::now_unix();
    let validity = crate::keys::extension_for(ledger, r, &layout.signing_key(), valid_for, now)?
        .map(|(bytes, until)| {
            eprintln!(
                "ferry-out: bundle {} goes with a validity extension until {}",
                r.sequence,
                ferry_agent_common::format_time(until)
            );
            bytes
        });
    let offer = ClientMsg::Offer {
        manifest,
        cosignatures: cosignatures_of(dir)?,
        validity,
    };
    Ok((offer, m))
}

/// The co-signatures kept beside the bundle in `dir` (`ferry-out cosign`
/// run on STATE/bundles), if any.
fn cosignatures_of(dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = dir.join(trust::COSIGN_FILE);
    match std::fs::read(&path) {
        Ok(b) if b.len() > MAX_TRUST_FILE => {
            bail!("{} is longer than {MAX_TRUST_FILE} bytes", path.display())
        }
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A delivery the inside confirmed over this QUIC link, now.
fn delivered_now() -> Delivery {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Delivery {
        at,
        via: "quic".into(),
    }
}

/// Sends the chunks the inside asked for (`indices` into `m`'s chunk table), read
/// from the kept bundle's volume files in `dir`.
async fn send_chunks(
    send: &mut quinn::SendStream,
    dir: &Path,
    sequence: u64,
    m: &ferry_protocol::manifest::Decoded,
    indices: Vec<u32>,
    pb: &indicatif::ProgressBar,
    stats: &mut PushStats,
) -> Result<()> {
    let mut files: Vec<Option<std::fs::File>> = (0..m.head().volumes.len()).map(|_| None).collect();
    for i in indices {
        let (_, c) = m.entry(i as usize).ok_or_else(|| {
            anyhow!("the inside asked for chunk #{i}, which bundle {sequence} does not have")
        })?;
        let f = match &mut files[c.volume as usize] {
            Some(f) => f,
            slot => {
                let p = dir.join(volume::file_name(c.volume));
                slot.insert(
                    std::fs::File::open(&p)
                        .with_context(|| format!("cannot open {}", p.display()))?,
                )
            }
        };
        let mut stored = vec![0u8; c.stored_len as usize];
        f.read_exact_at(&mut stored, c.offset)
            .with_context(|| format!("cannot read chunk #{i} of bundle {sequence}"))?;
        stats.bytes_sent += stored.len() as u64;
        stats.chunks_sent += 1;
        pb.inc(stored.len() as u64);
        ferry_quic::write_msg(send, &ClientMsg::Chunk { index: i, stored }).await?;
    }
    Ok(())
}
