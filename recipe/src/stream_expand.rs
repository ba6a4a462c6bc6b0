//! The reference form of a large gzip object made as it is read, never
//! held: `expand` reads an object whole and returns its form whole, which
//! for a layer of a few hundred MB is more than an agent may hold.

use std::io::{Read, Write};

use crate::DeflatedStream;

/// Bytes read from the object at a time.
const READ: usize = 1 << 20;

/// Why [`expand_gzip_member`] gave no form.
#[derive(Debug, thiserror::Error)]
pub enum StreamExpandError {
    /// Reading the object or writing the form failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The object is not one gzip member whose deflate stream decodes and
    /// ends just before its 8-byte trailer at the object's end (the caller
    /// expands it whole, as [`crate::expand`] does).
    #[error("not one gzip member: {0}")]
    NotOneMember(&'static str),
}

/// Writes to `out` the reference form of the object read from `object`
/// (`len` bytes) when it is one gzip member: its header, its plain bytes and
/// its trailer, which is what [`crate::expand`] makes of such an object
/// within its bounds (`max_expanded`, `max_ratio` of
/// [`crate::Options::default`]). Reads and inflates the object a MiB at a
/// time. Gives where its deflate stream is, in the object and in the form.
///
/// A caller that knows the form to expect (its length and BLAKE3) checks
/// what was written and, if it differs, expands the object whole: an
/// object `expand` lays out otherwise (a stream past its bounds stays
/// literal there) is not told apart here.
pub fn expand_gzip_member(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
) -> Result<DeflatedStream, StreamExpandError> {
    let opts = crate::Options::default();
    let mut buf = vec![0u8; READ];
    // The header: within the first read (its optional fields are short).
    let mut filled = 0usize;
    while filled < buf.len() && (filled as u64) < len {
        let n = object.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = &buf[..filled];
    let body = crate::containers::gzip_header_end(head, 0, head.len())
        .ok_or(StreamExpandError::NotOneMember("no gzip header"))?;
    out.write_all(&head[..body])?;
    let mut inflate = zlib_rs::Inflate::new(false, 15);
    let mut plain = vec![0u8; READ];
    let (mut at, mut read) = (body, filled as u64);
    let mut plain_len = 0u64;
    loop {
        if at == filled {
            if read >= len {
                return Err(StreamExpandError::NotOneMember(
                    "the deflate stream does not end",
                ));
            }
            filled = object.read(&mut buf)?;
            if filled == 0 {
                return Err(StreamExpandError::NotOneMember("the object ends early"));
            }
            read += filled as u64;
            at = 0;
        }
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status =
            inflate.decompress(&buf[at..filled], &mut plain, zlib_rs::InflateFlush::NoFlush);
        let used = (inflate.total_in() - in_before) as usize;
        let made = (inflate.total_out() - out_before) as usize;
        at += used;
        out.write_all(&plain[..made])?;
        plain_len += made as u64;
        let status =
            status.map_err(|_| StreamExpandError::NotOneMember("the deflate stream is corrupt"))?;
        if plain_len > opts.max_expanded
            || plain_len > inflate.total_in().saturating_mul(opts.max_ratio) + (1 << 20)
        {
            return Err(StreamExpandError::NotOneMember(
                "past the expansion's bounds",
            ));
        }
        if status == zlib_rs::Status::StreamEnd {
            break;
        }
        if used == 0 && made == 0 && at < filled {
            return Err(StreamExpandError::NotOneMember(
                "the deflate stream is corrupt",
            ));
        }
    }
    let compressed_len = inflate.total_in() as usize;
    // The trailer: the object's last 8 bytes, nothing after them.
    let mut tail = buf[at..filled].to_vec();
    let mut more = vec![0u8; 64];
    loop {
        let n = object.read(&mut more)?;
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&more[..n]);
        if tail.len() > 8 {
            break;
        }
    }
    if tail.len() != 8 {
        return Err(StreamExpandError::NotOneMember(
            "more than a trailer after the stream",
        ));
    }
    out.write_all(&tail)?;
    Ok(DeflatedStream {
        compressed: (body, body + compressed_len),
        plain: (body, body + plain_len as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(plain: &[u8], level: u32, name: Option<&str>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut e, plain).unwrap();
        e.finish().unwrap()
    }

    /// A reader that gives at most `n` bytes a call.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// One gzip member (with and without a name in its header, read in
    /// pieces of any size) is laid out as `expand` lays it out, with its
    /// stream's place; anything else is refused, never a panic.
    #[test]
    fn one_gzip_member_is_laid_out_as_expand_does_and_others_are_refused() {
        let text = crate::zlib::sample();
        let plain: Vec<u8> = text.iter().copied().cycle().take(3 << 20).collect();
        let opts = crate::Options::default();
        for (gz, trickle) in [
            (gzip(&plain, 6, None), 1 << 20),
            (gzip(&plain, 1, Some("layer.tar")), 7777),
            (gzip(b"", 6, None), 3),
        ] {
            let (expanded, streams) = crate::expand_deflated(&gz, &opts).unwrap();
            let mut out = Vec::new();
            let place = expand_gzip_member(&mut Trickle(&gz, trickle), gz.len() as u64, &mut out)
                .expect("one member");
            assert!(out == expanded, "the form differs from expand's");
            assert_eq!(streams, vec![place]);
        }
        let gz = gzip(&plain, 6, None);
        let mut two = gz.clone();
        two.extend_from_slice(&gzip(b"second", 6, None));
        let mut trailing = gz.clone();
        trailing.push(0);
        let mut corrupt = gz.clone();
        corrupt[gz.len() / 2] ^= 0xff;
        let cases: [(&str, &[u8]); 5] = [
            ("two members", &two),
            ("a byte after the trailer", &trailing),
            ("truncated", &gz[..gz.len() - 20]),
            ("not gzip", &plain[..1000]),
            ("corrupt", &corrupt),
        ];
        for (what, bytes) in cases {
            let mut out = Vec::new();
            let r = expand_gzip_member(&mut &bytes[..], bytes.len() as u64, &mut out);
            // A corrupt stream may still decode (to other bytes): the
            // caller's check of the form finds it.
            if what == "corrupt" && r.is_ok() {
                assert!(out != crate::expand(&gz, &opts).unwrap());
                continue;
            }
            assert!(
                matches!(r, Err(StreamExpandError::NotOneMember(_))),
                "{what}: {r:?}"
            );
        }
    }
}
