//! Compressed metadata files, told apart by their file name: `.gz` (gzip,
//! several members allowed), `.xz` (several streams allowed), `.zst`, or
//! anything else read as it is.
//!
//! Repository indices are upstream's (or a bundle's) bytes, so the output is
//! bounded: a small file that inflates past `limit` is refused, not read
//! into memory whole.

use std::io::Read;
use thiserror::Error;

/// Why a compressed file could not be read.
#[derive(Debug, Error)]
pub enum DecompressError {
    /// The content inflates past the limit the caller set.
    #[error("{name}: decompresses to more than {limit} bytes")]
    TooLarge {
        /// The file name.
        name: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The bytes are not valid for the format the name says (or are cut
    /// short).
    #[error("cannot decompress {name}")]
    Corrupt {
        /// The file name.
        name: String,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
}

/// The most memory the .xz decoder may use: `xz -9` needs 65 MiB to
/// decode, so any real index fits; a header asking for more is refused.
const XZ_MEMLIMIT: u64 = 128 << 20;

/// Whether `name` ends with an extension [`decompress`] inflates.
pub fn is_compressed(name: &str) -> bool {
    [".gz", ".xz", ".zst"].iter().any(|e| name.ends_with(e))
}

/// The content of `data`, a file named `name`, decompressed by its
/// extension; at most `limit` bytes.
pub fn decompress(name: &str, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |source| DecompressError::Corrupt {
        name: name.to_string(),
        source,
    };
    let reader: Box<dyn Read + '_> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(data))
    } else if name.ends_with(".xz") {
        // The .xz format only (not liblzma's auto-detected legacy .lzma,
        // whose header alone can ask for a 4 GiB dictionary), several
        // streams allowed, and the decoder's own memory bounded.
        let stream =
            liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, liblzma::stream::CONCATENATED)
                .map_err(|e| corrupt(std::io::Error::other(e)))?;
        Box::new(liblzma::read::XzDecoder::new_stream(data, stream))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(data).map_err(corrupt)?)
    } else {
        Box::new(data)
    };
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() as u64 > limit {
        return Err(DecompressError::TooLarge {
            name: name.to_string(),
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Found by the `decompress` fuzz target: a 74-byte legacy .lzma header
    /// declaring a 4 GiB dictionary, named `.xz`, made the decoder allocate
    /// 4 GiB before reading a byte of content.
    #[test]
    fn an_lzma_header_asking_for_4_gib_is_refused_without_allocating() {
        let mut bomb = vec![0x00];
        bomb.extend([0xff; 63]);
        bomb.extend([0x1e, 0x4e, 0xb5, 0xe4, 0x0a, 0x29, 0x82, 0xa9, 0x80, 0x28]);
        assert_eq!(bomb.len(), 74);
        assert!(matches!(
            decompress("Packages.xz", &bomb, 1 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
    }

    /// What that bomb relied on: a legacy .lzma file was read as `.xz`.
    /// Only the .xz format is read now, whose decoder memory is bounded.
    #[test]
    fn a_legacy_lzma_file_is_not_read_as_xz() {
        let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        let alone = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), alone);
        enc.write_all(b"Package: a\n").unwrap();
        let lzma = enc.finish().unwrap();
        assert!(matches!(
            decompress("Packages.xz", &lzma, 1 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
    }

    #[test]
    fn every_format_and_the_bound() {
        let text = b"Package: a\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        for (name, data) in [("P.gz", &gz), ("P.zst", &zst), ("P", &text.to_vec())] {
            assert_eq!(decompress(name, data, 1 << 20).unwrap(), text, "{name}");
            let e = decompress(name, data, 100).unwrap_err();
            assert!(
                matches!(&e, DecompressError::TooLarge { name: n, limit: 100 } if n == name),
                "{name}: {e}"
            );
        }
        assert!(matches!(
            decompress("P.gz", &text, 1 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
        assert!(matches!(
            decompress("P.zst", &gz, 1 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
        assert!(is_compressed("a.xz") && !is_compressed("a.xml"));
    }
}
