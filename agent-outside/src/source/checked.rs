//! Streaming checks of downloaded content against what upstream's metadata
//! promises, for checksums other than the SHA-256 the exporter checks itself
//! (`ItemKind::File::expected_sha256`), or where a size is promised too.

use ferry_formats::rpm::{Checksum, Hasher};
use std::io::Read;

/// A reader that checks size and checksum as the content streams through and
/// fails at the end (before EOF is reported) when either is wrong, with a
/// message naming `what` (source and file), expected and actual values.
pub struct Checked {
    inner: Box<dyn Read>,
    hasher: Option<Hasher>,
    want: Checksum,
    size: Option<u64>,
    read: u64,
    what: String,
}

impl Checked {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Read>, want: Checksum, size: Option<u64>, what: String) -> Checked {
        Checked {
            inner,
            hasher: Some(Hasher::new(&want.kind)),
            want,
            size,
            read: 0,
            what,
        }
    }
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(size) = self.size {
            if self.read > size {
                return Err(std::io::Error::other(format!(
                    "{}: upstream sent more than the {size} bytes the metadata gives",
                    self.what
                )));
            }
        }
        match (n, self.hasher.take()) {
            (0, Some(h)) => {
                if let Some(size) = self.size.filter(|&s| s != self.read) {
                    return Err(std::io::Error::other(format!(
                        "{}: size mismatch: expected {size} bytes, got {}",
                        self.what, self.read
                    )));
                }
                let actual = h.finish();
                if actual != self.want.hex {
                    return Err(std::io::Error::other(format!(
                        "{}: checksum mismatch: expected {}, got {}:{actual}",
                        self.what, self.want, self.want.kind
                    )));
                }
            }
            (_, Some(mut h)) => {
                h.update(&buf[..n]);
                self.hasher = Some(h);
            }
            (_, None) => {}
        }
        Ok(n)
    }
}
