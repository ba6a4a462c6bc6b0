//! What [`analyze`](crate::analyze) found: every compressed stream, and whether
//! it was reproduced or left literal, and why.

/// The container position a stream was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The deflate body of one gzip member (`.gz`, `.tgz`, `.crate`, layers,
    /// `data.tar.gz` in a deb, a gzip RPM payload).
    GzipMember,
    /// The deflate data of one zip local entry (wheels, jars).
    ZipEntry,
    /// One xz stream (a plain `.xz`, a deb member, an RPM payload).
    Xz,
    /// One zstd stream (a plain `.zst`, a deb member, an RPM payload).
    Zstd,
}

/// Why a stream stays literal in the recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiteralReason {
    /// No encoder settings known here reproduce the xz or zstd stream.
    NotModelled,
    /// Reproducing this kind of stream was not tried (`Options::reproduce_xz`).
    Skipped,
    /// preflate-rs could not model the deflate stream (an encoder it does not
    /// predict, such as Zopfli or 7-zip, or a search beyond its chain limit).
    PreflateFailed,
    /// preflate-rs modelled the stream but its rebuild differs from the original.
    NotIdentical,
    /// Decoding would pass `Options::max_expanded`, or the deflate stream is
    /// larger than `Options::max_deflate_plain`.
    TooLarge,
    /// The stream inflates more than `Options::max_ratio` times its size.
    Ratio,
    /// The stream does not decode (corrupt or truncated).
    Corrupt,
    /// The stream's length disagrees with its container (a zip local header's
    /// compressed size).
    Inconsistent,
}

/// What happened to one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The stream is rebuilt from its decoded content (verified byte-identical).
    Reproduced,
    /// The stream's bytes are carried literally.
    Literal(LiteralReason),
}

/// One stream found in the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamReport {
    /// Where it was found.
    pub kind: StreamKind,
    /// Offset of its first compressed byte in the object.
    pub offset: u64,
    /// Its compressed bytes; for a stream that does not decode, the bytes left
    /// literal because of it (up to the end of its container).
    pub compressed_len: u64,
    /// Its decoded size, when it decoded completely; for an xz stream not
    /// decoded ([`LiteralReason::Skipped`]), what its index says.
    pub plain_len: Option<u64>,
    /// Bytes of reproduction data in the recipe (deflate corrections, encoder
    /// parameters); 0 when literal.
    pub recipe_len: u64,
    /// Reproduced or literal, and why.
    pub outcome: Outcome,
}

/// Every stream [`analyze`](crate::analyze) found, in object order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Size of the analysed object.
    pub input_len: u64,
    /// The streams, in object order.
    pub streams: Vec<StreamReport>,
}

impl Report {
    /// Object bytes rebuilt from decoded content (compressed bytes of reproduced streams).
    pub fn reproduced_bytes(&self) -> u64 {
        self.reproduced().map(|s| s.compressed_len).sum()
    }

    /// Object bytes carried literally (container structure and streams left literal).
    pub fn literal_bytes(&self) -> u64 {
        self.input_len.saturating_sub(self.reproduced_bytes())
    }

    /// Compressed bytes of streams that were found but left literal.
    pub fn literal_stream_bytes(&self) -> u64 {
        self.literal().map(|(s, _)| s.compressed_len).sum()
    }

    /// The reproduced streams.
    pub fn reproduced(&self) -> impl Iterator<Item = &StreamReport> {
        self.streams
            .iter()
            .filter(|s| s.outcome == Outcome::Reproduced)
    }

    /// The streams left literal, with the reason.
    pub fn literal(&self) -> impl Iterator<Item = (&StreamReport, LiteralReason)> {
        self.streams.iter().filter_map(|s| match s.outcome {
            Outcome::Literal(why) => Some((s, why)),
            Outcome::Reproduced => None,
        })
    }

    /// Bytes of reproduction data (corrections, parameters) over all streams.
    pub fn recipe_data_bytes(&self) -> u64 {
        self.streams.iter().map(|s| s.recipe_len).sum()
    }
}
