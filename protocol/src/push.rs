//! The two-way push protocol's messages (carried over QUIC by the agents).
//!
//! One bidirectional stream per connection; each message is a frame: a
//! 4-byte little-endian length, then the message in postcard. The outside
//! (client) speaks first:
//!
//! ```text
//! client: Hello{version}            server: Welcome{stream, applied}
//! client: Revocations{file}         (only when the outside has root revocations)
//! client: Offer{manifest, cosignatures, validity}
//!                                   server: Need{indices} | Skip{reason} | Refuse{reason}
//! client: Chunk{index, stored} ...  (only the chunks in Need)
//! client: Done                      server: Outcome{applied, sequence, message}
//! (Offer … Outcome again for the next bundle)
//! client: Bye
//! ```
//!
//! `Need` lists, by index into the manifest's chunk list, the chunks the
//! inside holds neither in its store nor from an earlier, interrupted push of
//! the same bundle; so a dropped connection resumes where it stopped.
//! Everything the inside receives is verified exactly as a bundle from media:
//! the manifest's signature and place in the chain, each chunk against its id.

use crate::id::StreamId;
use serde::{Deserialize, Serialize};

/// ALPN protocol id.
pub const ALPN: &[u8] = b"ferry/1";
/// Protocol version in `Hello`. Version 2 added the co-signatures and the
/// validity extension to `Offer`, and `Revocations`.
pub const VERSION: u32 = 2;
/// The most bytes of each trust file a message carries (`cosignatures`,
/// `validity`, `Revocations::file`), as read from media.
pub const MAX_TRUST_FILE: usize = 64 << 10;

/// From the outside to the inside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Opens the conversation.
    Hello {
        /// Protocol version.
        version: u32,
    },
    /// Offers a bundle: its manifest file, with what a medium carries
    /// beside it (bundle-format §16).
    Offer {
        /// The manifest file's bytes.
        manifest: Vec<u8>,
        /// Its `cosignatures.ferry`, if any (a stream needing m of n keys).
        cosignatures: Option<Vec<u8>>,
        /// Its `validity.ferry`, if any (a later expiry, signed).
        validity: Option<Vec<u8>>,
    },
    /// A chunk the inside asked for, as stored in the bundle's volume.
    Chunk {
        /// Index into the manifest's chunk list.
        index: u32,
        /// The stored bytes.
        stored: Vec<u8>,
    },
    /// Every needed chunk has been sent.
    Done,
    /// Ends the conversation.
    Bye,
    /// The outside's pending root revocations, as `revocations.ferry` on a
    /// medium (bundle-format §16.7): applied before any bundle is offered.
    Revocations {
        /// The file's bytes.
        file: Vec<u8>,
    },
}

/// From the inside to the outside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Answers `Hello`: what the inside follows and has applied.
    Welcome {
        /// Stream followed, if any bundle was applied yet.
        stream: Option<StreamId>,
        /// Last sequence applied.
        applied: u64,
    },
    /// The chunks of the offered bundle the inside lacks.
    Need {
        /// Indices into the manifest's chunk list.
        indices: Vec<u32>,
    },
    /// The offered bundle is already applied; nothing to send.
    Skip {
        /// Why.
        reason: String,
    },
    /// The offered bundle is refused.
    Refuse {
        /// Why.
        reason: String,
    },
    /// The result of applying the bundle.
    Outcome {
        /// Whether it was applied.
        applied: bool,
        /// Its sequence.
        sequence: u64,
        /// What happened, for people.
        message: String,
    },
}

/// Encodes a message as a frame.
pub fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(msg).expect("messages always serialize");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let m = ClientMsg::Chunk {
            index: 7,
            stored: vec![1, 2, 3],
        };
        let f = frame(&m);
        assert_eq!(
            u32::from_le_bytes(f[..4].try_into().unwrap()) as usize,
            f.len() - 4
        );
        assert_eq!(postcard::from_bytes::<ClientMsg>(&f[4..]).unwrap(), m);
    }
}
