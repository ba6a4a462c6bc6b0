//! Go's stream in pieces: the lazy matcher (levels 4 to 9) resumed at a
//! block boundary that ended on a match, for [`crate::cuts`].
//!
//! At levels 4 to 9 Go's `compressor.deflate` hashes every position it
//! passes (a match's positions too: `fastSkipHashing` is `skipNever`), so
//! its hash chains at a position are those of the window's bytes before
//! it, whatever was matched. A block is written when its 16,384th token is
//! added: after a match (then nothing is pending: `byteAvailable` false,
//! `length` reset) or after the literal before a position whose match is
//! pending (not a cut). So at a boundary after a match the encoder's state
//! is: the 32 KiB of plain bytes before it, where it sits in the window
//! (`d.index`: it decides where the next slide falls, and with
//! `d.blockStart`, equal to it there, whether the next blocks may be
//! stored), the window filled as far as the input goes (always full but
//! near the stream's end, where no cut is), and the bit writer's pending
//! bits. `hashOffset` only shifts the chains' values; a resumed matcher
//! starts it afresh and walks the same chains (positions that left the
//! window are never walked, before or after).

use super::huffman::BlockWriter;
use super::lazy::{Lazy, Mark};
use crate::deflate::{text_offset, Boundary, PieceError};

/// The lazy matcher run from where it is over `input`: stepped, filled as
/// Go's `write` fills its window, until it stops at its `stop_at`
/// boundary or the input ends (then closed, as Go's `Close` does). Its
/// output is appended to `out`; every boundary it records is given to
/// `mark` with `out_len` counted from the start of `out`. Gives the
/// boundary it stopped at, if any.
fn run(
    m: &mut Lazy,
    w: &mut BlockWriter,
    mut input: &[u8],
    out: &mut Vec<u8>,
    mark: &mut dyn FnMut(Mark),
) -> Option<Mark> {
    let mut hand = |m: &mut Lazy, w: &mut BlockWriter, out: &mut Vec<u8>| {
        let at = out.len();
        if let Some(marks) = &mut m.marks {
            for mut k in marks.drain(..) {
                k.out_len += at;
                mark(k);
            }
        }
        let stopped = m.stopped.as_mut().map(|k| {
            k.out_len += at;
            *k
        });
        out.append(&mut w.out);
        stopped
    };
    loop {
        m.step(false, w);
        if let Some(k) = hand(m, w, out) {
            return Some(k);
        }
        if input.is_empty() {
            break;
        }
        loop {
            let n = m.fill(input);
            input = &input[n..];
            if m.full() || input.is_empty() {
                break;
            }
        }
    }
    m.step(true, w);
    let stopped = hand(m, w, out);
    if stopped.is_none() {
        w.finish();
        out.append(&mut w.out);
    }
    stopped
}

/// Deflates one piece of a Go stream at `level` (4 to 9) cut at block
/// boundaries that ended on a match, as [`crate::deflate::piece`] does for
/// GNU gzip's: from `from` (the stream's start when `None`, then `text`
/// starts there) to `to` (the stream's end when `None`), appending the
/// stream's bytes from `from.bit / 8` to `to.bit / 8` to `out`. `text` is
/// the plain bytes from offset `text_at`: from 32 KiB (or `from`'s window
/// position, if less) before `from` to at least 64 KiB past `to`. The
/// encoder must end a block on a match at `to` exactly as recorded (plain
/// offset, bit offset, window position, partial bits).
pub(crate) fn piece(
    level: u8,
    text: &[u8],
    text_at: u64,
    from: Option<&Boundary>,
    to: Option<&Boundary>,
    out: &mut Vec<u8>,
) -> Result<(), PieceError> {
    let start = text_offset(text, text_at, from.map_or(0, |b| b.plain))?;
    let stop_at = to.map_or(u64::MAX, |b| b.plain);
    let mut w = BlockWriter::new();
    let (mut m, took) = match from {
        Some(b) => {
            w.resume(b.partial, (b.bit % 8) as u32);
            Lazy::resume(
                level,
                &text[..start],
                &text[start..],
                (b.plain, b.strstart),
                stop_at,
            )
        }
        None => (Lazy::stopping(level, stop_at, false), 0),
    };
    let first = out.len();
    let reached = run(&mut m, &mut w, &text[start + took..], out, &mut |_| {});
    let Some(to) = to else {
        return Ok(());
    };
    let start_bit = from.map_or(0, |b| b.bit / 8 * 8);
    let bit_of = |k: &Mark| start_bit + 8 * (k.out_len - first) as u64 + u64::from(k.nbits);
    let found = match reached {
        Some(k)
            if k.clean && (k.plain, bit_of(&k), k.window) == (to.plain, to.bit, to.strstart) =>
        {
            None
        }
        Some(k) => Some(format!(
            "plain offset {}, bit {}, window position {} (recorded: {}){}",
            k.plain,
            bit_of(&k),
            k.window,
            to.strstart,
            if k.clean { "" } else { ", after a literal" }
        )),
        None => Some("none: the stream ended".to_string()),
    };
    if let Some(found) = found {
        return Err(PieceError::NotReached {
            plain: to.plain,
            bit: to.bit,
            found,
        });
    }
    let (bits, n) = w.whole_bytes();
    debug_assert_eq!(reached.map(|k| k.partial), Some(bits));
    out.append(&mut w.out);
    if u64::from(n) != to.bit % 8 || bits != to.partial {
        return Err(PieceError::Partial(to.plain));
    }
    Ok(())
}

/// The stream Go makes of `plain` at `level` (4 to 9), and every block
/// boundary in it (the last block's end excluded), each `clean` when the
/// block ended on a match: what the tests cut at.
#[cfg(test)]
pub(crate) fn boundaries(level: u8, plain: &[u8]) -> (Vec<u8>, Vec<Boundary>) {
    let mut m = Lazy::stopping(level, u64::MAX, true);
    let mut w = BlockWriter::new();
    let (mut out, mut marks) = (Vec::new(), Vec::new());
    run(&mut m, &mut w, plain, &mut out, &mut |k| marks.push(k));
    let all = marks
        .iter()
        .map(|k| Boundary {
            plain: k.plain,
            bit: 8 * k.out_len as u64 + u64::from(k.nbits),
            strstart: k.window,
            partial: k.partial,
            clean: k.clean,
        })
        .filter(|b| b.plain < plain.len() as u64)
        .collect();
    (out, all)
}
