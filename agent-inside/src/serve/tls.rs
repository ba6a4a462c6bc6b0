//! TLS for `serve`: a certificate chain and its private key (PEM files)
//! loaded into a rustls server configuration, and loaded again for new
//! connections when either file changes on disk.
//!
//! The files are looked at (modification time, size, inode) at most once a
//! second, when a connection is accepted. A changed pair is loaded and used
//! for every connection accepted after it; connections already open keep the
//! pair they started with. A pair that does not load (unreadable, not PEM,
//! no certificate, no key, a key that is not the certificate's) is reported
//! on stderr, once per change, and the pair in use is kept.

use super::response::tell;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The least time between two looks at the certificate files.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where `serve` reads its certificate chain and key (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate first, then any intermediate certificates.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{} is not valid PEM: {detail}", path.display())]
    BadPem { path: PathBuf, detail: String },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    /// The key file holds no private key block.
    #[error("{} holds no PEM private key", path.display())]
    NoKey { path: PathBuf },
    /// rustls refuses the pair: the key is not the certificate's, or cannot sign.
    #[error("the key {} does not fit the certificate {}: {source}", key.display(), cert.display())]
    Refused {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// Loads `files` into a server configuration offering HTTP/1.1.
pub fn load(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let bad = |path: &Path, e: pem::Error| TlsError::BadPem {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let cert_pem = read(&files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        e => bad(&files.key, e),
    })?;
    let refused = |source| TlsError::Refused {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(refused)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What identifies a version of the files on disk.
type Stamp = Option<[(SystemTime, u64, u64); 2]>;

fn stamp(files: &TlsFiles) -> Stamp {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len(), m.ino()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

/// The configuration new connections get, reloaded when the files change.
pub(super) struct Reloading {
    files: TlsFiles,
    state: Mutex<State>,
}

struct State {
    config: Arc<ServerConfig>,
    /// The files as last looked at (loaded, or found bad).
    stamp: Stamp,
    checked: Instant,
}

impl Reloading {
    /// Loads `files` once; an error here stops `serve` from starting.
    pub(super) fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let stamp = stamp(&files);
        let config = Arc::new(load(&files)?);
        Ok(Reloading {
            files,
            state: Mutex::new(State {
                config,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration for a connection accepted now: the files are looked
    /// at again if a second has passed, and loaded again if they changed.
    pub(super) fn current(&self) -> Arc<ServerConfig> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.checked.elapsed() >= CHECK_EVERY {
            s.checked = Instant::now();
            let now = stamp(&self.files);
            if now != s.stamp {
                s.stamp = now;
                match load(&self.files) {
                    Ok(c) => {
                        s.config = Arc::new(c);
                        tell(format_args!(
                            "loaded the new certificate {} for new connections",
                            self.files.cert.display()
                        ));
                    }
                    Err(e) => tell(format_args!(
                        "keeping the certificate in use: the new one does not load: {e}"
                    )),
                }
            }
        }
        s.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, c.cert.pem()).unwrap();
        std::fs::write(&files.key, c.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_each_bad_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        let a = pair(d.path(), "a");
        let b = pair(d.path(), "b");
        load(&a).unwrap();
        let mismatched = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(load(&mismatched), Err(TlsError::Refused { .. })));
        let swapped = TlsFiles {
            cert: a.key.clone(),
            key: a.cert.clone(),
        };
        assert!(matches!(
            load(&swapped),
            Err(TlsError::NoCertificate { .. })
        ));
        let no_key = TlsFiles {
            cert: a.cert.clone(),
            key: a.cert.clone(),
        };
        assert!(matches!(load(&no_key), Err(TlsError::NoKey { .. })));
        let missing = TlsFiles {
            cert: d.path().join("none.pem"),
            key: a.key.clone(),
        };
        assert!(matches!(load(&missing), Err(TlsError::Read { .. })));
        std::fs::write(
            d.path().join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\n!!\n",
        )
        .unwrap();
        let bad = TlsFiles {
            cert: d.path().join("bad.pem"),
            key: a.key.clone(),
        };
        assert!(matches!(load(&bad), Err(TlsError::BadPem { .. })));
    }

    #[test]
    fn a_changed_pair_is_loaded_and_a_bad_one_keeps_the_old() {
        let d = tempfile::tempdir().unwrap();
        let a = pair(d.path(), "a");
        let r = Reloading::new(a.clone()).unwrap();
        let first = r.current();
        let b = pair(d.path(), "b");
        std::fs::copy(&b.cert, &a.cert).unwrap();
        std::fs::copy(&b.key, &a.key).unwrap();
        // Not looked at again within a second.
        assert!(Arc::ptr_eq(&first, &r.current()));
        r.state.lock().unwrap().checked -= CHECK_EVERY;
        let second = r.current();
        assert!(!Arc::ptr_eq(&first, &second), "the new pair is loaded");
        std::fs::write(&a.key, "garbage\n").unwrap();
        r.state.lock().unwrap().checked -= CHECK_EVERY;
        assert!(
            Arc::ptr_eq(&second, &r.current()),
            "a bad pair keeps the old"
        );
    }
}
