//! A reader with a look-ahead, for the walks that read an object as it
//! goes ([`crate::stream_zip`], [`crate::stream_pkg`]): headers are parsed
//! from what is buffered, and the bytes between them pass through.

use std::io::{Read, Write};

use crate::stream_expand::StreamExpandError;

/// A reader with a look-ahead: headers are parsed from what is buffered,
/// entries' bytes pass through.
pub(crate) struct Ahead<R> {
    inner: R,
    buf: Vec<u8>,
    /// The first byte of `buf` not yet consumed.
    at: usize,
    /// The object offset of `buf[at]`.
    pub(crate) pos: u64,
}

impl<R: Read> Ahead<R> {
    /// A look-ahead over `inner`, at its offset 0.
    pub(crate) fn new(inner: R) -> Ahead<R> {
        Ahead {
            inner,
            buf: Vec::new(),
            at: 0,
            pos: 0,
        }
    }

    /// Passes over the next `n` bytes, which [`Ahead::peek`] gave.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.buf.len() - self.at);
        self.at += n;
        self.pos += n as u64;
    }

    /// At least `n` bytes from the position (fewer at the object's end).
    pub(crate) fn peek(&mut self, n: usize) -> std::io::Result<&[u8]> {
        if self.buf.len() - self.at < n {
            self.buf.drain(..self.at);
            self.at = 0;
            // Read straight into the buffer, a MiB (or `n`) at a time.
            let want = n.max(1 << 20);
            while self.buf.len() < n {
                let filled = self.buf.len();
                self.buf.resize(filled + want, 0);
                let got = self.inner.read(&mut self.buf[filled..]);
                self.buf.truncate(filled + *got.as_ref().unwrap_or(&0));
                if got? == 0 {
                    break;
                }
            }
        }
        let end = (self.at + n).min(self.buf.len());
        Ok(&self.buf[self.at..end])
    }

    /// Copies the next `n` bytes to `out`; an error if the object ends first.
    pub(crate) fn copy(&mut self, n: u64, out: &mut impl Write) -> Result<(), StreamExpandError> {
        let mut left = n;
        while left > 0 {
            let have = self.peek((left.min(1 << 20)) as usize)?;
            if have.is_empty() {
                return Err(StreamExpandError::NotOneMember("the object ends early"));
            }
            let k = have.len().min(left as usize);
            out.write_all(&have[..k])?;
            self.at += k;
            self.pos += k as u64;
            left -= k as u64;
        }
        Ok(())
    }

    /// Copies everything left to `out`.
    pub(crate) fn copy_rest(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&self.buf[self.at..])?;
        self.pos += (self.buf.len() - self.at) as u64;
        self.buf.clear();
        self.at = 0;
        self.pos += std::io::copy(&mut self.inner, out)?;
        Ok(())
    }

    /// A reader of the next `n` bytes (buffered ones first).
    pub(crate) fn take(&mut self, n: u64) -> Region<'_, R> {
        Region {
            from: self,
            left: n,
        }
    }
}

/// The next bytes of an [`Ahead`], at most `left`.
pub(crate) struct Region<'a, R> {
    from: &'a mut Ahead<R>,
    pub(crate) left: u64,
}

impl<R: Read> Read for Region<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let want = (out.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let a = &mut *self.from;
        let n = if a.at < a.buf.len() {
            let n = want.min(a.buf.len() - a.at);
            out[..n].copy_from_slice(&a.buf[a.at..a.at + n]);
            a.at += n;
            n
        } else {
            a.inner.read(&mut out[..want])?
        };
        a.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}
