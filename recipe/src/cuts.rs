//! A deflate stream rebuilt in pieces at once ([`Segment::ZlibCuts`]).
//!
//! Each deflate block depends on the encoder's state after everything
//! before it (its window and hash chains), so a stream is deflated on one
//! core. GNU gzip's lazy matching (levels 4 to 9) inserts every string into
//! its hash chains, and so does Go's `compress/flate` at levels 4 to 9
//! (encoder 3, recipe version 7: `goflate::cut`), so at a block boundary
//! where no match is pending (the block ended on a match) its state is the
//! plain bytes its window reaches back to (32 KiB) and where they sit in
//! the window, plus the bits of the last byte written. The analysis reads such boundaries off the stream's
//! blocks with a decoder ([`blocks`]), one every few MiB of plain bytes
//! ([`find`]); the rebuild deflates the pieces between them each on its
//! own thread, each encoder resumed at its piece's start and stopped at its
//! end, and writes them one after the other: each piece's first byte holds
//! the previous piece's partial bits, recorded in the cut. That a cut works
//! is never assumed: the analysis keeps a cut only if its pieces come out
//! byte for byte (or leaves it to the caller's check of the whole object,
//! which rebuilds it in pieces and compares the digest, when
//! `Options::check_streams` is off), and the rebuild refuses a piece whose
//! encoder does not reach the next cut exactly as recorded.
//!
//! [`Segment::ZlibCuts`]: crate::Segment::ZlibCuts

use std::io::{Read, Write};

pub(crate) mod blocks;
pub(crate) mod symbols;

use crate::deflate::Boundary;
use crate::deflate::{self, Flavour, PieceError};
use crate::recipe::DeflateCut;
use crate::zlib::{ZlibError, ZlibParams, GNU_GZIP_ENCODER, GO_FLATE_ENCODER};

/// Whether streams of `params` can be cut: encoder 2 (GNU gzip's) or 3
/// (Go's) at a lazy level, 4 to 9 (every string hashed, so the chains at
/// a boundary are a function of the window's bytes).
fn cuttable(params: &ZlibParams) -> bool {
    matches!(params.encoder, GNU_GZIP_ENCODER | GO_FLATE_ENCODER) && (4..=9).contains(&params.level)
}

/// Plain bytes before a piece's start its encoder is given (its window's reach).
const BEFORE: u64 = 32 << 10;

/// Plain bytes past a piece's end its encoder is given: the window it
/// reads ahead (64 KiB) and a little more, so that it never sees the input
/// end before the cut.
const AFTER: u64 = (64 << 10) + 1024;

/// The fewest plain bytes a piece may have (cuts closer than this are
/// refused): each piece costs its encoder's start and about 100 KiB of
/// plain bytes read twice, so a hostile recipe's work stays bounded by its
/// stream's length.
const MIN_PIECE: u64 = 64 << 10;

/// The most plain bytes a piece may span, and (with an eighth more) the
/// most compressed bytes it may make: a rebuild holds a few pieces' plain
/// bytes and outputs at once, so a hostile recipe with no cut in a large
/// stream must not make it hold the whole stream. The analysis cuts every
/// [`DEFAULT_PIECE`]; a stream it cannot cut that often is kept serial.
pub(crate) const MAX_PIECE: u64 = 64 << 20;

/// The default plain bytes between cuts ([`crate::Options::deflate_cuts`]).
pub const DEFAULT_PIECE: u64 = 4 << 20;

/// Why a cut stream did not rebuild.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// The encoder or level cannot be cut, or does not give its known answers.
    #[error("{0}")]
    Encoder(#[source] ZlibError),
    /// A cut is not where cuts can be (out of order, outside the stream, a
    /// window position or partial byte that cannot be).
    #[error("cut {cut} is malformed: {why}")]
    Malformed {
        /// Index of the cut.
        cut: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A cut stream without cuts, or a piece longer than [`MAX_PIECE`].
    #[error(
        "piece {piece} of {pieces} spans {plain} plain bytes and {compressed} compressed bytes; \
         a piece may span at most {MAX_PIECE} plain bytes and an eighth more compressed"
    )]
    TooLong {
        /// Index of the piece.
        piece: usize,
        /// How many pieces the cuts make.
        pieces: usize,
        /// Its plain bytes.
        plain: u64,
        /// Its compressed bytes.
        compressed: u64,
    },
    /// A piece's encoder did not rebuild it as its cuts record.
    #[error("piece {piece} of the stream: {source}")]
    Piece {
        /// Index of the piece (0: before the first cut).
        piece: usize,
        /// Why.
        source: PieceError,
    },
    /// A piece came out longer or shorter than its cuts say.
    #[error(
        "piece {piece} of the stream came out {produced} bytes, not the {declared} its cuts say"
    )]
    PieceLen {
        /// Index of the piece.
        piece: usize,
        /// The length its cuts say.
        declared: u64,
        /// What it made.
        produced: u64,
    },
    /// Reading the plain bytes failed or ended early.
    #[error("reading the plain bytes failed: {0}")]
    Read(#[source] std::io::Error),
    /// Writing the output failed.
    #[error("writing the rebuilt stream failed: {0}")]
    Write(#[source] std::io::Error),
}

pub(crate) fn boundary(c: &DeflateCut) -> Boundary {
    Boundary {
        plain: c.plain,
        bit: c.bit,
        strstart: c.window,
        partial: c.partial,
        clean: true,
    }
}

/// The plain range piece `i` (0 to `cuts.len()`) is given: from its
/// window's reach before its start to [`AFTER`] past its end.
pub(crate) fn text_range(cuts: &[DeflateCut], i: usize, plain_len: u64) -> (u64, u64) {
    let start = match i.checked_sub(1).map(|j| &cuts[j]) {
        Some(c) => c.plain - BEFORE.min(u64::from(c.window)),
        None => 0,
    };
    let end = match cuts.get(i) {
        Some(c) => c.plain.saturating_add(AFTER).min(plain_len),
        None => plain_len,
    };
    (start, end)
}

/// The output range (bytes) piece `i` makes.
pub(crate) fn out_range(cuts: &[DeflateCut], i: usize, compressed_len: u64) -> (u64, u64) {
    let start = i.checked_sub(1).map_or(0, |j| cuts[j].bit / 8);
    let end = cuts.get(i).map_or(compressed_len, |c| c.bit / 8);
    (start, end)
}

/// Checks what can be checked of hostile cuts before anything runs.
fn validate(
    params: &ZlibParams,
    cuts: &[DeflateCut],
    plain_len: u64,
    compressed_len: u64,
) -> Result<(), CutError> {
    if !cuttable(params) {
        return Err(CutError::Encoder(ZlibError::Zlib(format!(
            "a cut stream needs encoder {GNU_GZIP_ENCODER} or {GO_FLATE_ENCODER} at level 4 to 9, not encoder {} at level {}",
            params.encoder, params.level
        ))));
    }
    if !crate::zlib::encoder_ok(params.encoder) {
        return Err(CutError::Encoder(ZlibError::EncoderMismatch {
            encoder: params.encoder,
        }));
    }
    let mut last = (0u64, 0u64);
    for (cut, c) in cuts.iter().enumerate() {
        let why = if c.plain < last.0 + MIN_PIECE || c.plain >= plain_len {
            "its plain offset is not 64 KiB or more after the previous cut's (or the stream's start) and inside the stream"
        } else if c.bit <= last.1 || c.bit / 8 >= compressed_len {
            "its bit offset is not after the previous cut's and inside the stream"
        } else if u64::from(c.window) > c.plain || c.window >= 1 << 16 {
            "its window position is past its plain offset or the 64 KiB window"
        } else if u32::from(c.partial) >> (c.bit % 8) != 0 {
            "its partial byte has more bits than its bit offset leaves"
        } else {
            last = (c.plain, c.bit);
            continue;
        };
        return Err(CutError::Malformed { cut, why });
    }
    too_long(cuts, plain_len, compressed_len).map_or(Ok(()), Err)
}

/// The first piece over [`MAX_PIECE`], if any (every piece, when there is
/// no cut: one piece, the whole stream). The cuts are in order (checked
/// before).
fn too_long(cuts: &[DeflateCut], plain_len: u64, compressed_len: u64) -> Option<CutError> {
    let pieces = cuts.len() + 1;
    (0..pieces).find_map(|i| {
        let plain = cuts.get(i).map_or(plain_len, |c| c.plain)
            - i.checked_sub(1).map_or(0, |j| cuts[j].plain);
        let (os, oe) = out_range(cuts, i, compressed_len);
        let compressed = oe - os;
        (cuts.is_empty() || plain > MAX_PIECE || compressed > MAX_PIECE + MAX_PIECE / 8).then_some(
            CutError::TooLong {
                piece: i,
                pieces,
                plain,
                compressed,
            },
        )
    })
}

/// Deflates piece `i` of `text` (the plain bytes from `text_at`) with
/// `params`' encoder (checked by [`validate`] or [`cuttable`]). With a
/// base's `parse` (GNU gzip only), the piece first copies it where it is
/// this stream's ([`crate::reuse`]); a piece that then does not reach its
/// end cut or its length (the base's parse is not this stream's there) is
/// deflated again without it. A copy of the right length but other bytes is
/// for the caller's digest to find.
fn piece(
    params: &ZlibParams,
    (cuts, compressed_len): (&[DeflateCut], u64),
    i: usize,
    (text, text_at): (&[u8], u64),
    parse: Option<&crate::reuse::Base<'_>>,
) -> Result<Vec<u8>, CutError> {
    let from = i.checked_sub(1).map(|j| boundary(&cuts[j]));
    let to = cuts.get(i).map(boundary);
    let mut out = Vec::new();
    let (from, to) = (from.as_ref(), to.as_ref());
    if params.encoder == GO_FLATE_ENCODER {
        crate::goflate::cut::piece(params.level, text, text_at, from, to, &mut out)
    } else {
        let gnu = |out: &mut Vec<u8>, copier| {
            let (level, flavour) = (params.level, Flavour::Gnu);
            deflate::piece_copying(flavour, level, text, text_at, from, to, out, copier)
        };
        if let Some(base) = parse {
            let copied = gnu(
                &mut out,
                Some(crate::reuse::Copier::new(base, text, text_at)),
            );
            let (os, oe) = out_range(cuts, i, compressed_len);
            if let (Ok(stats), true) = (&copied, out.len() as u64 == oe - os) {
                crate::reuse::count_copied(stats.copied);
                return Ok(out);
            }
            out.clear();
        }
        gnu(&mut out, None).map(drop)
    }
    .map_err(|source| CutError::Piece { piece: i, source })?;
    Ok(out)
}

/// How many pieces are deflated at once: the cores (at most 8).
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Rebuilds a [`Segment::ZlibCuts`](crate::Segment::ZlibCuts): reads its
/// `plain_len` bytes from `plain` as the pieces need them, deflates the
/// pieces on [`threads`] workers (`parallel`; else one after another on
/// this thread), each taking the next piece as soon as it is free, and
/// writes them in order to `out`, each checked against its length. At most
/// one piece more than there are workers is read ahead; the plain bytes
/// and outputs of those pieces are held (reserved in the process's
/// [`budget`](crate::budget)), never the whole stream. With a base's
/// `parse`, each piece copies it where it can ([`piece`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rebuild(
    params: &ZlibParams,
    cuts: &[DeflateCut],
    plain_len: u64,
    compressed_len: u64,
    plain: &mut dyn Read,
    out: &mut dyn Write,
    parallel: bool,
    parse: Option<&crate::reuse::Base<'_>>,
) -> Result<(), CutError> {
    validate(params, cuts, plain_len, compressed_len)?;
    let pieces = cuts.len() + 1;
    let workers = if parallel { threads().min(pieces) } else { 1 };
    let mut texts = Texts {
        plain,
        cuts,
        plain_len,
        buf: Vec::new(),
        buf_at: 0,
    };
    let mut permit = crate::budget::reserve(0);
    // What piece `i` holds while it is in flight: its text and its output.
    let held = |i: usize| {
        let (s, e) = text_range(cuts, i, plain_len);
        let (os, oe) = out_range(cuts, i, compressed_len);
        (e - s) + (oe - os)
    };
    let mut write = |i: usize, bytes: Vec<u8>| -> Result<(), CutError> {
        let (s, e) = out_range(cuts, i, compressed_len);
        if bytes.len() as u64 != e - s {
            return Err(CutError::PieceLen {
                piece: i,
                declared: e - s,
                produced: bytes.len() as u64,
            });
        }
        out.write_all(&bytes).map_err(CutError::Write)
    };
    if workers == 1 {
        for i in 0..pieces {
            permit.resize(held(i));
            let (text, at) = texts.next(i)?;
            let bytes = piece(params, (cuts, compressed_len), i, (&text, at), parse)?;
            write(i, bytes)?;
        }
        return Ok(());
    }
    type Done = (usize, std::thread::Result<Result<Vec<u8>, CutError>>);
    let (job_tx, job_rx) = std::sync::mpsc::channel::<(usize, Vec<u8>, u64)>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Done>();
    let job_rx = std::sync::Mutex::new(job_rx);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            s.spawn(move || loop {
                let job = job_rx.lock().map_or(None, |rx| rx.recv().ok());
                let Some((i, text, at)) = job else {
                    return;
                };
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    piece(params, (cuts, compressed_len), i, (&text, at), parse)
                }));
                if done_tx.send((i, made)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        // Dropping `job_tx` (returning, on an error too) lets the workers end.
        let job_tx = job_tx;
        let mut done = std::collections::BTreeMap::new();
        let (mut sent, mut written) = (0usize, 0usize);
        while written < pieces {
            while sent < pieces && sent - written <= workers {
                permit.grow(held(sent));
                let (text, at) = texts.next(sent)?;
                if job_tx.send((sent, text, at)).is_err() {
                    break;
                }
                sent += 1;
            }
            while !done.contains_key(&written) {
                let Ok((i, made)) = done_rx.recv() else {
                    return Err(CutError::Piece {
                        piece: written,
                        source: PieceError::Lost,
                    });
                };
                done.insert(i, made);
            }
            let made = done.remove(&written).expect("just found");
            let bytes = made.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            write(written, bytes)?;
            permit.shrink(permit.bytes().saturating_sub(held(written)));
            written += 1;
        }
        Ok(())
    })
}

/// The plain bytes each piece is given, read from the stream's plain bytes
/// as the pieces come (in order: each piece's range starts at or after the
/// one before's), holding only what the next piece still needs.
struct Texts<'a> {
    plain: &'a mut dyn Read,
    cuts: &'a [DeflateCut],
    plain_len: u64,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    buf_at: u64,
}

impl Texts<'_> {
    /// Piece `i`'s plain bytes ([`text_range`]) and where they start.
    fn next(&mut self, i: usize) -> Result<(Vec<u8>, u64), CutError> {
        let (s, e) = text_range(self.cuts, i, self.plain_len);
        let drop = (s.saturating_sub(self.buf_at) as usize).min(self.buf.len());
        self.buf.drain(..drop);
        self.buf_at += drop as u64;
        let held = self.buf_at + self.buf.len() as u64;
        if e > held {
            let more = e - held;
            let got = (&mut *self.plain)
                .take(more)
                .read_to_end(&mut self.buf)
                .map_err(CutError::Read)? as u64;
            if got != more {
                return Err(CutError::Read(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the plain bytes ended {} bytes early", more - got),
                )));
            }
        }
        let from = (s - self.buf_at) as usize;
        Ok((self.buf[from..(e - self.buf_at) as usize].to_vec(), s))
    }
}

/// The cuts of a stream that encoder 2 or 3 at `params.level` (4 to 9)
/// rebuilds from `plain` into `compressed`: block boundaries about every
/// `step` plain bytes, none in the last half step, each where a block
/// ended on a match (GNU gzip's and Go's lazy matchers then have nothing
/// pending: see [`blocks`] and `goflate::cut`). They are read off the stream's blocks by a decoder, not by
/// deflating it, so finding them costs a fraction of one deflate pass.
/// `None` when the stream is under two steps, the encoder is not one that
/// can be cut, no boundary fits, or `compressed` does not decode to
/// `plain`'s length. Without `check` the caller must show that they work
/// (rebuild the object and compare its digest: with cuts, that rebuild is
/// the pieces on every core). With `check`, every piece is rebuilt as the
/// rebuild does and compared ([`checked`]), and the cuts are given only if
/// they all work once the failing ones are dropped.
pub(crate) fn find(
    params: &ZlibParams,
    plain: &[u8],
    compressed: &[u8],
    step: u64,
    check: bool,
    ahead: Option<blocks::Ahead>,
) -> Option<Vec<DeflateCut>> {
    // The ends read ahead of the stream (on another thread, while it was
    // inflated) are the ones read here when no bit past its end was taken.
    let ahead = match ahead {
        Some(a) if a.end_bit <= 8 * compressed.len() as u64 => Some(a),
        _ if !may_cut(params, plain.len() as u64, step) => return None,
        _ => blocks::read_ahead(compressed),
    };
    let cuts = find_at_ends(params, plain.len() as u64, step, &ahead?)?;
    let cuts = if check {
        checked(params, plain, compressed, cuts)?
    } else {
        cuts
    };
    // A stream with too few boundaries that fit, or cuts dropped by the
    // check, would make pieces the rebuild refuses: kept serial.
    too_long(&cuts, plain.len() as u64, compressed.len() as u64)
        .is_none()
        .then_some(cuts)
}

/// Whether a stream of `params` and `plain_len` plain bytes may be cut into
/// pieces of about `step`.
pub(crate) fn may_cut(params: &ZlibParams, plain_len: u64, step: u64) -> bool {
    let step = step.max(1 << 20);
    cuttable(params) && plain_len >= 2 * step && crate::zlib::encoder_ok(params.encoder)
}

/// [`find`] without the pieces' check, for a stream of `(plain_len,
/// compressed_len)` bytes whose block ends were read already (`ahead`, of
/// the whole stream): what a caller that does not hold the stream (it
/// rebuilds and checks the whole object) cuts it at.
pub(crate) fn find_unchecked(
    params: &ZlibParams,
    (plain_len, compressed_len): (u64, u64),
    step: u64,
    ahead: &blocks::Ahead,
) -> Option<Vec<DeflateCut>> {
    if ahead.end_bit > 8 * compressed_len {
        return None;
    }
    let cuts = find_at_ends(params, plain_len, step, ahead)?;
    too_long(&cuts, plain_len, compressed_len)
        .is_none()
        .then_some(cuts)
}

/// The cuts at the block ends of `ahead` of a stream of `plain_len` bytes,
/// one every `step` plain bytes or so, unchecked; `None` if the stream is
/// not cut (see [`may_cut`]) or its ends do not add up to its length.
fn find_at_ends(
    params: &ZlibParams,
    plain_len: u64,
    step: u64,
    ahead: &blocks::Ahead,
) -> Option<Vec<DeflateCut>> {
    if !may_cut(params, plain_len, step) || ahead.plain != plain_len {
        return None;
    }
    let step = step.max(1 << 20);
    let mut cuts = Vec::new();
    let mut next = step;
    for e in &ahead.ends {
        if !e.after_match || e.plain < next || e.plain + step / 2 > plain_len {
            continue;
        }
        if let Some(window) = window_at(params.encoder, e.plain) {
            cuts.push(DeflateCut {
                plain: e.plain,
                bit: e.bit,
                window,
                partial: e.partial,
            });
            next = e.plain + step;
        }
    }
    (!cuts.is_empty()).then_some(cuts)
}

/// Where plain offset `plain` (64 KiB or more into the stream) sits in the
/// window of `encoder` (GNU gzip's or Go's) at a block boundary (gzip's
/// `strstart`, Go's `d.index`). The window slides by 32 KiB, so that is
/// `plain` modulo 32 KiB, in its upper half: a block ends before the
/// window slides, and the slide comes once the position has passed
/// `2 * 32 KiB - MIN_LOOKAHEAD` (gzip: 262 bytes before the window's end;
/// Go: once it is 261 bytes or fewer from it, at 65,275 or past), leaving
/// it that far or less before the middle. In those last bytes of each 32
/// KiB a boundary may be before or after its slide: `None` (no cut there).
fn window_at(encoder: u8, plain: u64) -> Option<u32> {
    const WSIZE: u64 = 32 << 10;
    let near = if encoder == GO_FLATE_ENCODER {
        // Go slides when `d.index >= 65,274` as it fills, which it does
        // once fewer than 262 bytes are ahead (`d.index >= 65,275`).
        4 + 258 - 1
    } else {
        258 + 3 + 1
    };
    let r = plain % WSIZE;
    (plain >= 2 * WSIZE && r < WSIZE - near).then(|| (r + WSIZE) as u32)
}

/// The cuts whose pieces rebuild `compressed` byte for byte, each piece
/// rebuilt on its own thread, up to [`threads`] at once. A piece that
/// differs loses its starting cut (piece 0, its end cut): it is joined to
/// the piece before, and the joined pieces are checked again, once. `None`
/// if a joined piece fails too: then the cuts are not a matter of one
/// boundary (the stream is not the encoder's, or the model is wrong), and
/// the stream is better rebuilt whole than searched piece by piece.
fn checked(
    params: &ZlibParams,
    plain: &[u8],
    compressed: &[u8],
    mut cuts: Vec<DeflateCut>,
) -> Option<Vec<DeflateCut>> {
    let (plain_len, compressed_len) = (plain.len() as u64, compressed.len() as u64);
    let mut todo: Vec<usize> = (0..=cuts.len()).collect();
    for round in 0..2 {
        let good = |cuts: &[DeflateCut], i: usize| {
            let (s, e) = text_range(cuts, i, plain_len);
            let (os, oe) = out_range(cuts, i, compressed_len);
            piece(
                params,
                (cuts, compressed_len),
                i,
                (&plain[s as usize..e as usize], s),
                None,
            )
            .is_ok_and(|b| b[..] == compressed[os as usize..oe as usize])
        };
        let mut failed = Vec::new();
        for group in todo.chunks(threads()) {
            let cuts = &cuts[..];
            let results: Vec<bool> = std::thread::scope(|s| {
                let running: Vec<_> = group
                    .iter()
                    .map(|&i| s.spawn(move || good(cuts, i)))
                    .collect();
                running
                    .into_iter()
                    .map(|h| h.join().unwrap_or(false))
                    .collect()
            });
            failed.extend(group.iter().zip(results).filter(|r| !r.1).map(|r| *r.0));
        }
        if failed.is_empty() {
            return Some(cuts);
        }
        if round == 1 || cuts.is_empty() {
            return None;
        }
        // Piece i starts at cut i - 1; piece 0 gives up its end, cut 0.
        let mut drop: Vec<usize> = failed.iter().map(|&i| i.saturating_sub(1)).collect();
        drop.dedup();
        // The joined pieces, numbered after the drops: the piece that now
        // ends where cut d + 1 is (or the stream's end).
        todo = drop
            .iter()
            .enumerate()
            .map(|(removed, &d)| d - removed)
            .collect();
        todo.dedup();
        let mut at = 0;
        cuts.retain(|_| {
            at += 1;
            !drop.contains(&(at - 1))
        });
        if cuts.is_empty() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod go_tests;
#[cfg(test)]
pub(crate) mod tests;
