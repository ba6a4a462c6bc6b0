//! The checksum database (`sum.golang.org` and servers like it): verifier
//! keys, signed notes (golang.org/x/mod/sumdb/note: ed25519) and `/lookup`
//! answers (golang.org/x/mod/sumdb/tlog's record format).
//!
//! What is checked here: the note's signature by the configured key, that
//! the note is a tree head (`go.sum database tree`, size, root hash), that
//! the record's id lies inside that tree, and that the record's lines are
//! `go.sum` lines of exactly the module version asked for. The record's
//! inclusion under the root hash is [`super::tlog::prove_inclusion`].

use super::gomod::{parse_gosum, SumLine};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The largest `/lookup` answer read.
pub const MAX_LOOKUP: u64 = 64 << 10;

/// Why a key, note or record is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SumdbError {
    /// Not `<name>+<hash>+<base64 key>` of an ed25519 key whose hash matches.
    #[error("{key:?} is not a checksum database verifier key: {reason}")]
    BadKey {
        /// The text.
        key: String,
        /// Which rule.
        reason: &'static str,
    },
    /// A note that is not one (no signature block, bad signature lines).
    #[error("malformed signed note: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// No signature by the key verifies.
    #[error("the note carries no valid signature by {name}")]
    Unverified {
        /// The key's name.
        name: String,
    },
    /// A `/lookup` answer that is not `<id>\n<record>\n<note>`, a record
    /// outside the signed tree, or whose lines are not of the version
    /// asked for.
    #[error("bad lookup record: {reason}")]
    BadRecord {
        /// What is wrong.
        reason: String,
    },
}

/// A verifier key (`sum.golang.org+033de0ae+Ac4z…`).
#[derive(Debug, Clone)]
pub struct VerifierKey {
    /// The database's name (`sum.golang.org`).
    pub name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

fn key_hash(name: &str, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl VerifierKey {
    /// Parses `<name>+<8 hex digits>+<base64 of 0x01 and the 32-byte key>`.
    pub fn parse(text: &str) -> Result<VerifierKey, SumdbError> {
        let bad = |reason| SumdbError::BadKey {
            key: text.to_string(),
            reason,
        };
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(h), Some(k)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not three +-separated parts"));
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("a bad name"));
        }
        let hash: [u8; 4] = hex::decode(h)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("the key hash is not 8 hex digits"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(k)
            .map_err(|_| bad("the key is not base64"))?;
        let [1, rest @ ..] = raw.as_slice() else {
            return Err(bad("not an ed25519 key (algorithm 1)"));
        };
        let bytes: [u8; 32] = rest.try_into().map_err(|_| bad("not 32 key bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an ed25519 point"))?;
        if key_hash(name, &raw) != hash {
            return Err(bad("the key hash does not match the name and key"));
        }
        Ok(VerifierKey {
            name: name.to_string(),
            hash,
            key,
        })
    }

    /// The key as `GOSUMDB` takes it (`<name>+<hash>+<base64 key>`).
    pub fn text(&self) -> String {
        let mut raw = vec![1u8];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// `<name>+<hash hex>`: names the key (for caches of what it verified).
    pub fn tag(&self) -> String {
        format!("{}+{}", self.name, hex::encode(self.hash))
    }

    /// Verifies a signed note; returns its text (up to and with the last
    /// newline before the signatures).
    pub fn open<'a>(&self, note: &'a [u8]) -> Result<&'a str, SumdbError> {
        let bad = |reason: &str| SumdbError::Malformed {
            reason: reason.to_string(),
        };
        let s = std::str::from_utf8(note).map_err(|_| bad("not UTF-8"))?;
        if s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad("control characters"));
        }
        let split = s.rfind("\n\n").ok_or_else(|| bad("no signature block"))?;
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(bad("an empty or unterminated signature block"));
        }
        let mut verified = false;
        for line in sigs.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line not starting with an em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line without name and signature"))?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature that is not base64"))?;
            if sig.len() < 5 {
                return Err(bad("a signature too short"));
            }
            if name != self.name || sig[..4] != self.hash {
                continue;
            }
            let sig =
                Signature::from_slice(&sig[4..]).map_err(|_| bad("not an ed25519 signature"))?;
            verified |= self.key.verify(text.as_bytes(), &sig).is_ok();
        }
        if verified {
            Ok(text)
        } else {
            Err(SumdbError::Unverified {
                name: self.name.clone(),
            })
        }
    }
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Records in the tree.
    pub size: u64,
    /// The root hash.
    pub hash: [u8; 32],
}

/// Parses a tree note's text (`go.sum database tree\n<size>\n<hash>\n…`).
pub fn parse_tree(text: &str) -> Result<Tree, SumdbError> {
    let bad = |reason: &str| SumdbError::Malformed {
        reason: format!("tree note: {reason}"),
    };
    let mut lines = text.lines();
    if lines.next() != Some("go.sum database tree") {
        return Err(bad("not a go.sum database tree"));
    }
    let size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| bad("no size"))?;
    let hash = lines.next().ok_or_else(|| bad("no root hash"))?;
    let hash: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
    Ok(Tree { size, hash })
}

/// A verified `/lookup` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The record's id.
    pub id: u64,
    /// Its `go.sum` lines (the zip's and the `go.mod`'s).
    pub lines: Vec<SumLine>,
    /// The record as the log holds it (for [`super::tlog::prove_inclusion`]).
    pub record: String,
    /// The signed tree it claims to be in.
    pub tree: Tree,
}

/// Parses and verifies the answer to `/lookup/<module>@<version>`.
pub fn parse_lookup(
    answer: &[u8],
    key: &VerifierKey,
    module: &str,
    version: &str,
) -> Result<Lookup, SumdbError> {
    let bad = |reason: String| SumdbError::BadRecord { reason };
    let s = std::str::from_utf8(answer).map_err(|_| bad("not UTF-8".into()))?;
    let (id, rest) = s.split_once('\n').ok_or_else(|| bad("no id line".into()))?;
    let id: u64 = id.parse().map_err(|_| bad(format!("id {id:?}")))?;
    let end = rest
        .find("\n\n")
        .ok_or_else(|| bad("no blank line after the record".into()))?;
    let (record, note) = (&rest[..end + 1], &rest[end + 2..]);
    let tree = parse_tree(key.open(note.as_bytes())?)?;
    if id >= tree.size {
        return Err(bad(format!(
            "id {id} is outside the signed tree of {} records",
            tree.size
        )));
    }
    let lines = record_lines(record, module, version)?;
    Ok(Lookup {
        id,
        lines,
        record: record.to_string(),
        tree,
    })
}

/// The `go.sum` lines of a record, which must be one zip and one `go.mod`
/// line of `module` `version`.
pub fn record_lines(record: &str, module: &str, version: &str) -> Result<Vec<SumLine>, SumdbError> {
    let bad = |reason: String| SumdbError::BadRecord { reason };
    let lines = parse_gosum(record.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let zip = lines.iter().filter(|l| !l.go_mod).count();
    let go_mod = lines.iter().filter(|l| l.go_mod).count();
    if lines
        .iter()
        .any(|l| l.module != module || l.version != version)
        || zip != 1
        || go_mod != 1
    {
        return Err(bad(format!(
            "the record is not one zip and one go.mod line of {module} {version}"
        )));
    }
    Ok(lines)
}

/// A record as a go source carries it (`sumdb/<name>/records/…`): its id
/// in the log, a newline, and the record (the lines of a `/lookup`
/// answer before its blank line).
pub fn stored_record(id: u64, record: &str) -> String {
    format!("{id}\n{record}")
}

/// Parses [`stored_record`]'s form for `module` `version`: the id and the
/// record.
pub fn parse_stored_record(
    bytes: &[u8],
    module: &str,
    version: &str,
) -> Result<(u64, String), SumdbError> {
    let bad = |reason: String| SumdbError::BadRecord { reason };
    let s = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    let (id, record) = s.split_once('\n').ok_or_else(|| bad("no id line".into()))?;
    let id: u64 = id.parse().map_err(|_| bad(format!("id {id:?}")))?;
    record_lines(record, module, version)?;
    Ok((id, record.to_string()))
}

/// Whether `name` (a verifier key's name) can be one path element of a
/// go source's `sumdb/<name>/`: letters, digits, `.-_`, not starting with a dot.
pub fn is_path_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(sk: &SigningKey, name: &str, text: &str) -> (String, String) {
        let mut raw = vec![1u8];
        raw.extend_from_slice(sk.verifying_key().as_bytes());
        let h = key_hash(name, &raw);
        let b64 = base64::engine::general_purpose::STANDARD;
        let vkey = format!("{name}+{}+{}", hex::encode(h), b64.encode(&raw));
        let mut sig = h.to_vec();
        sig.extend_from_slice(&sk.sign(text.as_bytes()).to_bytes());
        (
            vkey,
            format!("{text}\n\u{2014} {name} {}\n", b64.encode(sig)),
        )
    }

    #[test]
    fn the_real_sum_golang_org_key_parses() {
        let k = VerifierKey::parse(
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
        )
        .unwrap();
        assert_eq!(k.name, "sum.golang.org");
        assert_eq!(
            k.text(),
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
        );
        assert!(VerifierKey::parse(
            "sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
        )
        .is_err());
    }

    #[test]
    fn lookups_are_verified() {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let root = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        let (vkey, note) = signed(
            &sk,
            "db.test",
            &format!("go.sum database tree\n5\n{root}\n"),
        );
        let key = VerifierKey::parse(&vkey).unwrap();
        let h = format!("h1:{}=", "A".repeat(43));
        let rec = format!("a.com/m v1.0.0 {h}\na.com/m v1.0.0/go.mod {h}\n");
        let ans = format!("3\n{rec}\n{note}");
        let l = parse_lookup(ans.as_bytes(), &key, "a.com/m", "v1.0.0").unwrap();
        assert_eq!((l.id, l.tree.size, l.lines.len()), (3, 5, 2));
        let other = format!("7\n{rec}\n{note}");
        assert!(matches!(
            parse_lookup(other.as_bytes(), &key, "a.com/m", "v1.0.0"),
            Err(SumdbError::BadRecord { .. })
        ));
        assert!(matches!(
            parse_lookup(ans.as_bytes(), &key, "a.com/m", "v1.0.1"),
            Err(SumdbError::BadRecord { .. })
        ));
        let forged = ans.replace("\n5\n", "\n6\n");
        assert!(matches!(
            parse_lookup(forged.as_bytes(), &key, "a.com/m", "v1.0.0"),
            Err(SumdbError::Unverified { .. })
        ));
    }
}
