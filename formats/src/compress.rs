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
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(data))
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
