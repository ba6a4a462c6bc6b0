//! The volume writer of an export: the scan's new chunks, gathered in
//! batches, encoded on every core and appended to the bundle's volumes in
//! the order they came.

use anyhow::{anyhow, Context, Result};
use ferry_protocol::builder::{BuildError, BundleBuilder};
use ferry_protocol::codec::{self, Codec};
use ferry_protocol::id::ChunkId;
use std::collections::VecDeque;
use std::sync::mpsc;

use super::super::VolumeFiles;

/// Chunk bytes the scan gathers before handing them to the volume writer in
/// one message (a chunk larger than the rest of a batch still joins it): a
/// tree of small files sends one message, and the writer starts one
/// encoding job, per batch, not per chunk.
const BATCH_BYTES: usize = 1 << 20;

/// Batches on their way to the volume writer, at most: with
/// [`BATCH_BYTES`] and chunks of at most 256 KiB, 10 MiB.
pub(super) const BATCHES_QUEUED: usize = 8;

/// New chunks, in the order the bundle stores them.
pub(super) type Batch = Vec<(ChunkId, Vec<u8>)>;

/// The chunks the scan has not handed to the volume writer yet, and the way
/// to it.
pub(super) struct Outbox {
    pub(super) tx: mpsc::SyncSender<Batch>,
    pub(super) batch: Batch,
    pub(super) bytes: usize,
}

impl Outbox {
    /// Adds a chunk; sends the batch once it holds [`BATCH_BYTES`].
    pub(super) fn post(&mut self, id: ChunkId, data: Vec<u8>) -> Result<()> {
        self.bytes += data.len();
        self.batch.push((id, data));
        if self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is gathered.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .send(batch)
            .map_err(|_| anyhow!("the volume writer stopped"))
    }
}

/// Starts the thread that packs the scan's batches of new chunks into
/// volumes (their zstd on a pool of every core); it gives the builder back.
pub(super) fn start_writer(
    rx: mpsc::Receiver<Batch>,
    mut builder: BundleBuilder<VolumeFiles>,
    level: i32,
    packed: indicatif::ProgressBar,
) -> Result<std::thread::JoinHandle<Result<BundleBuilder<VolumeFiles>, BuildError>>> {
    let packers = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("ferry-pack-{i}"))
        .build()
        .context("cannot start the packing threads")?;
    Ok(std::thread::spawn(move || {
        pack_chunks(rx, &mut builder, &packers, level, &packed)?;
        Ok(builder)
    }))
}

/// A batch on its way into a volume: each chunk's id and raw length, and
/// their stored forms once a packing thread has encoded them.
type Packing = (Vec<(ChunkId, u32)>, mpsc::Receiver<Vec<(Codec, Vec<u8>)>>);

/// The volume writer: encodes the batches of chunks `rx` brings on every
/// core of `packers` (zstd at `level`, or raw; one job a batch), and appends
/// the chunks to the builder's volumes in the order they came, so the
/// bundle's bytes are those of a serial [`BundleBuilder::add_chunk`] of
/// each. At most a few batches per thread are in flight.
fn pack_chunks(
    rx: mpsc::Receiver<Batch>,
    builder: &mut BundleBuilder<VolumeFiles>,
    packers: &rayon::ThreadPool,
    level: i32,
    pb: &indicatif::ProgressBar,
) -> Result<(), BuildError> {
    let most = 2 * packers.current_num_threads();
    let mut inflight: VecDeque<Packing> = VecDeque::with_capacity(most + 1);
    let append = |builder: &mut BundleBuilder<VolumeFiles>, (ids, rx): Packing| {
        let stored = rx.recv().map_err(|_| {
            BuildError::Read(std::io::Error::other(format!(
                "the encoding of chunk {} stopped",
                ids[0].0
            )))
        })?;
        for ((id, raw_len), (codec, stored)) in ids.into_iter().zip(stored) {
            builder.add_stored(id, raw_len, codec, &stored)?;
            pb.inc(u64::from(raw_len));
        }
        Ok::<_, BuildError>(())
    };
    for batch in rx {
        if batch.is_empty() {
            continue;
        }
        let (tx, encoded) = mpsc::sync_channel(1);
        let ids = batch.iter().map(|(id, d)| (*id, d.len() as u32)).collect();
        packers.spawn(move || {
            let stored = batch
                .into_iter()
                .map(|(_, data)| codec::encode_owned(data, level))
                .collect();
            let _ = tx.send(stored);
        });
        inflight.push_back((ids, encoded));
        while inflight.len() > most {
            let next = inflight.pop_front().expect("not empty");
            append(builder, next)?;
        }
    }
    while let Some(next) = inflight.pop_front() {
        append(builder, next)?;
    }
    Ok(())
}
