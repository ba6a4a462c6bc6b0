//! `ferry-in tls init`: the site's own certificate authority and the server
//! certificate `serve --tls` presents, under `STATE/tls/` (see
//! [`Layout::tls_dir`]): `ca.pem` (what every client trusts), `ca.key`,
//! `server.pem`, `server.key` (keys mode 0600).
//!
//! A CA is made once: `init` refuses to replace one (and the certificates
//! every client trusts with it) unless `--force`. With a CA and no server
//! certificate (removed to issue a new one, for new names), `init` reuses
//! the CA, so clients keep trusting the new server certificate.

use crate::layout::Layout;
use ferry_agent_common::fsx::{write_atomic, write_private};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// How long the site CA is valid, at least.
const CA_DAYS: i64 = 3650;
/// Certificates start this long before now, for clients whose clocks lag.
const BACKDATE: Duration = Duration::hours(1);
/// The CA's name: fixed, so its key alone (with these parameters) issues
/// certificates whose issuer is `ca.pem`'s subject.
const CA_NAME: &str = "Ferry site CA";

/// `ferry-in tls …`.
#[derive(clap::Subcommand)]
pub enum TlsCmd {
    /// Makes a site CA (STATE/tls/ca.pem and ca.key) and a server
    /// certificate issued by it for the names and addresses clients use
    /// (STATE/tls/server.pem and server.key), for `serve --tls`. Clients
    /// trust ca.pem. With a CA and no server certificate, reuses the CA.
    Init {
        /// A DNS name clients reach the server by (repeatable).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// An IP address clients reach the server at (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<IpAddr>,
        /// Days the server certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace an existing CA and server certificate (every client must
        /// then trust the new ca.pem).
        #[arg(long)]
        force: bool,
    },
}

/// Why `tls init` made nothing.
#[derive(Debug, thiserror::Error)]
pub enum TlsInitError {
    /// Neither `--name` nor `--ip`.
    #[error("name the server: give --name NAME or --ip ADDR (repeatable)")]
    NoNames,
    /// A `--name` that is not a DNS name.
    #[error("--name {0:?} is not a DNS name")]
    BadName(String),
    /// `--days 0`.
    #[error("--days must be at least 1")]
    NoDays,
    /// A CA and a server certificate are there already.
    #[error("{} and {} exist; --force replaces both (clients must then trust the new CA), or remove the server certificate to issue a new one from the same CA", ca.display(), cert.display())]
    Exists { ca: PathBuf, cert: PathBuf },
    /// The CA's key cannot be read or used.
    #[error("cannot use the CA key {}: {detail}", path.display())]
    CaKey { path: PathBuf, detail: String },
    /// A file cannot be written.
    #[error("cannot write {}: {detail}", path.display())]
    Write { path: PathBuf, detail: String },
    /// rcgen refuses to make a key or certificate.
    #[error("cannot make the {what}: {source}")]
    Make {
        what: &'static str,
        source: rcgen::Error,
    },
}

/// What `init` made.
#[derive(Debug)]
pub struct Made {
    /// Whether the CA was made now (or reused).
    pub new_ca: bool,
}

/// Runs a `tls` subcommand.
pub fn run(layout: &Layout, cmd: TlsCmd) -> anyhow::Result<i32> {
    match cmd {
        TlsCmd::Init {
            names,
            ips,
            days,
            force,
        } => {
            let made = init(layout, &names, &ips, days, force)?;
            let ca = layout.tls_ca();
            if made.new_ca {
                println!("made the site CA {}", ca.display());
            } else {
                println!("reused the site CA {}", ca.display());
            }
            println!(
                "made the server certificate {} for {}\nclients trust {}; serve it with `ferry-in serve --tls`",
                layout.tls_cert().display(),
                names
                    .iter()
                    .cloned()
                    .chain(ips.iter().map(IpAddr::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                ca.display()
            );
            Ok(0)
        }
    }
}

fn ca_params(now: OffsetDateTime, days: u32) -> Result<rcgen::CertificateParams, TlsInitError> {
    let make = |source| TlsInitError::Make {
        what: "CA certificate",
        source,
    };
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(make)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(CA_DAYS.max(i64::from(days)));
    Ok(p)
}

/// Makes (or, with a CA and no server certificate, reuses) the site CA and
/// issues a server certificate for `names` and `ips`, valid `days`.
pub fn init(
    layout: &Layout,
    names: &[String],
    ips: &[IpAddr],
    days: u32,
    force: bool,
) -> Result<Made, TlsInitError> {
    if names.is_empty() && ips.is_empty() {
        return Err(TlsInitError::NoNames);
    }
    if days == 0 {
        return Err(TlsInitError::NoDays);
    }
    let mut sans = Vec::with_capacity(names.len() + ips.len());
    for n in names {
        let ok = !n.is_empty()
            && n.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    || l == "*"
            });
        let dns = ok
            .then(|| rcgen::string::Ia5String::try_from(n.as_str()).ok())
            .flatten()
            .ok_or_else(|| TlsInitError::BadName(n.clone()))?;
        sans.push(rcgen::SanType::DnsName(dns));
    }
    sans.extend(ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    let (ca, cert) = (layout.tls_ca(), layout.tls_cert());
    let have_ca = ca.exists() && layout.tls_ca_key().exists();
    if have_ca && cert.exists() && !force {
        return Err(TlsInitError::Exists { ca, cert });
    }
    let dir = layout.tls_dir();
    std::fs::create_dir_all(&dir).map_err(|e| TlsInitError::Write {
        path: dir.clone(),
        detail: e.to_string(),
    })?;
    let now = OffsetDateTime::now_utc();
    let new_ca = !have_ca || force;
    let ca_key = if new_ca {
        make_ca(layout, now, days)?
    } else {
        read_ca_key(&layout.tls_ca_key())?
    };
    let issuer = rcgen::Issuer::new(ca_params(now, days)?, ca_key);
    let make = |source| TlsInitError::Make {
        what: "server certificate",
        source,
    };
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(make)?;
    p.subject_alt_names = sans;
    p.distinguished_name
        .push(rcgen::DnType::CommonName, first_name(names, ips));
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(i64::from(days));
    let key = rcgen::KeyPair::generate().map_err(make)?;
    let cert_pem = p.signed_by(&key, &issuer).map_err(make)?.pem();
    // The key first: a `serve` reloading between the two writes finds a
    // mismatched pair, keeps the old one, and loads the new one once the
    // certificate follows.
    write(&layout.tls_key(), key.serialize_pem().as_bytes(), true)?;
    write(&cert, cert_pem.as_bytes(), false)?;
    Ok(Made { new_ca })
}

fn first_name(names: &[String], ips: &[IpAddr]) -> String {
    names
        .first()
        .cloned()
        .or_else(|| ips.first().map(IpAddr::to_string))
        .unwrap_or_default()
}

fn make_ca(
    layout: &Layout,
    now: OffsetDateTime,
    days: u32,
) -> Result<rcgen::KeyPair, TlsInitError> {
    let make = |source| TlsInitError::Make {
        what: "CA certificate",
        source,
    };
    let key = rcgen::KeyPair::generate().map_err(make)?;
    let cert = ca_params(now, days)?.self_signed(&key).map_err(make)?;
    write(&layout.tls_ca_key(), key.serialize_pem().as_bytes(), true)?;
    write(&layout.tls_ca(), cert.pem().as_bytes(), false)?;
    Ok(key)
}

fn read_ca_key(path: &Path) -> Result<rcgen::KeyPair, TlsInitError> {
    let bad = |detail: String| TlsInitError::CaKey {
        path: path.to_path_buf(),
        detail,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    rcgen::KeyPair::from_pem(&pem).map_err(|e| bad(e.to_string()))
}

fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsInitError> {
    let r = if private {
        write_private(path, bytes)
    } else {
        write_atomic(path, bytes)
    };
    r.map_err(|e| TlsInitError::Write {
        path: path.to_path_buf(),
        detail: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn init_makes_a_ca_once_and_reuses_it_for_a_new_server_certificate() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let names = ["localhost".to_string()];
        assert!(matches!(
            init(&l, &[], &[], 30, false),
            Err(TlsInitError::NoNames)
        ));
        assert!(matches!(
            init(&l, &["bad name".into()], &[], 30, false),
            Err(TlsInitError::BadName(_))
        ));
        assert!(init(&l, &names, &[ip], 30, false).unwrap().new_ca);
        for key in [l.tls_key(), l.tls_ca_key()] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        let ca = std::fs::read(l.tls_ca()).unwrap();
        assert!(matches!(
            init(&l, &names, &[ip], 30, false),
            Err(TlsInitError::Exists { .. })
        ));
        std::fs::remove_file(l.tls_cert()).unwrap();
        assert!(!init(&l, &names, &[ip], 30, false).unwrap().new_ca);
        assert_eq!(std::fs::read(l.tls_ca()).unwrap(), ca, "the CA is kept");
        // The new pair loads, and chains to the kept CA.
        crate::serve::load_tls(&crate::serve::TlsFiles {
            cert: l.tls_cert(),
            key: l.tls_key(),
        })
        .unwrap();
        assert!(init(&l, &names, &[ip], 30, true).unwrap().new_ca);
        assert_ne!(
            std::fs::read(l.tls_ca()).unwrap(),
            ca,
            "--force replaces it"
        );
    }
}
