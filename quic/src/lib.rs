//! Ferry's two-way link: QUIC (quinn) with TLS 1.3 (rustls), both ends
//! authenticated.
//!
//! Each agent has an identity (`STATE/quic.crt`, `STATE/quic.key`) made by
//! its `cert` subcommand. A peer is accepted when its certificate is one of
//! the pinned certificates (the SHA-256 of its DER encoding is compared), or,
//! in CA mode, when it chains to the operator's private CA. Anything else is
//! refused during the handshake; nothing of the conversation happens.
//!
//! Messages (`ferry_protocol::push`) travel as frames on one bidirectional
//! stream: [`write_msg`] and [`read_msg`].

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::{de::DeserializeOwned, Serialize};
use sha2::Digest;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of an agent's certificate in its state directory.
pub const CERT_FILE: &str = "quic.crt";
/// File name of an agent's private key in its state directory.
pub const KEY_FILE: &str = "quic.key";

/// SHA-256 fingerprint of a DER certificate, as hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(der))
}

/// File names of a private CA in its directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// See [`CA_CERT_FILE`].
pub const CA_KEY_FILE: &str = "ca.key";

/// The CA's parameters: fixed, so the CA key alone (with these) signs
/// certificates whose issuer matches `ca.crt`.
fn ca_params() -> Result<rcgen::CertificateParams> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Ferry private CA");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(p)
}

/// Makes a new identity in `state`; returns the certificate's fingerprint.
///
/// Self-signed (for pinning), or, with `ca_dir`, issued by the private CA
/// kept there, which is created on first use (`ca.crt` to hand to every
/// agent as `--ca`, `ca.key` to keep offline).
pub fn generate_identity(
    state: &Path,
    names: &[String],
    force: bool,
    ca_dir: Option<&Path>,
) -> Result<String> {
    std::fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
    let (cert_path, key_path) = (state.join(CERT_FILE), state.join(KEY_FILE));
    if cert_path.exists() && !force {
        bail!("{} already exists; use --force to replace it (peers must then pin the new certificate)", cert_path.display());
    }
    let mut all = names.to_vec();
    all.push("localhost".into());
    let mut params = rcgen::CertificateParams::new(all).context("certificate names")?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("ferry"),
    );
    let key = rcgen::KeyPair::generate().context("cannot make a key pair")?;
    let cert = match ca_dir {
        None => params
            .self_signed(&key)
            .context("cannot sign the certificate")?,
        Some(dir) => {
            let ca_key = load_or_make_ca(dir)?;
            let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
            params
                .signed_by(&key, &issuer)
                .context("cannot sign the certificate with the CA")?
        }
    };
    ferry_agent_common::fsx::write_private(&key_path, key.serialize_pem().as_bytes())?;
    ferry_agent_common::fsx::write_atomic(&cert_path, cert.pem().as_bytes())?;
    Ok(fingerprint(cert.der()))
}

fn load_or_make_ca(dir: &Path) -> Result<rcgen::KeyPair> {
    let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
    if key_path.exists() {
        let pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?;
        return rcgen::KeyPair::from_pem(&pem)
            .with_context(|| format!("{} is not a key", key_path.display()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = rcgen::KeyPair::generate().context("cannot make the CA key")?;
    let cert = ca_params()?
        .self_signed(&key)
        .context("cannot make the CA certificate")?;
    ferry_agent_common::fsx::write_private(&key_path, key.serialize_pem().as_bytes())?;
    ferry_agent_common::fsx::write_atomic(&cert_path, cert.pem().as_bytes())?;
    eprintln!(
        "made a private CA in {}: give {} to every agent as --ca, keep {} offline",
        dir.display(),
        cert_path.display(),
        key_path.display()
    );
    Ok(key)
}

/// An agent's certificate and key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Loads the identity in `state`.
pub fn load_identity(state: &Path) -> Result<Identity> {
    let cert_path = state.join(CERT_FILE);
    let key_path = state.join(KEY_FILE);
    let chain = load_certs(&cert_path).with_context(|| {
        format!(
            "no QUIC certificate at {} (make one with the `cert` subcommand)",
            cert_path.display()
        )
    })?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read key {}", key_path.display()))?;
    Ok(Identity { chain, key })
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// How a peer is authenticated.
#[derive(Clone)]
pub enum PeerAuth {
    /// Accept exactly these certificates (by SHA-256 of their DER form).
    Pinned(Vec<[u8; 32]>),
    /// Accept certificates issued by these CAs.
    Ca(Arc<rustls::RootCertStore>),
}

impl PeerAuth {
    /// Pins the certificates in these PEM files.
    pub fn pinned(files: &[PathBuf]) -> Result<PeerAuth> {
        let mut pins = Vec::new();
        for f in files {
            for c in load_certs(f)? {
                pins.push(sha2::Sha256::digest(c.as_ref()).into());
            }
        }
        if pins.is_empty() {
            bail!("no peer certificate to pin: give --peer-cert FILE (or --ca FILE)");
        }
        Ok(PeerAuth::Pinned(pins))
    }

    /// Trusts the CA certificates in a PEM file.
    pub fn ca(file: &Path) -> Result<PeerAuth> {
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(file)? {
            roots
                .add(c)
                .with_context(|| format!("{}: not a usable CA certificate", file.display()))?;
        }
        Ok(PeerAuth::Ca(Arc::new(roots)))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
struct Pinned {
    pins: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let fp: [u8; 32] = sha2::Sha256::digest(cert.as_ref()).into();
        if self.pins.contains(&fp) {
            Ok(())
        } else {
            Err(rustls::Error::General(format!(
                "peer certificate {} is not pinned",
                hex::encode(fp)
            )))
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // Large windows: bulk transfer over links with a large bandwidth-delay product.
    t.stream_receive_window(quinn::VarInt::from_u32(64 << 20));
    t.receive_window(quinn::VarInt::from_u32(128 << 20));
    t.send_window(128 << 20);
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        30_000,
    ))));
    t.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    Arc::new(t)
}

/// A server endpoint (the inside) listening on `addr`.
pub fn server(addr: SocketAddr, id: Identity, peers: PeerAuth) -> Result<quinn::Endpoint> {
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match peers {
        PeerAuth::Pinned(pins) => Arc::new(Pinned {
            pins,
            provider: provider.clone(),
        }),
        PeerAuth::Ca(roots) => {
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .context("cannot build the client verifier")?
        }
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain, id.key)
        .context("the QUIC certificate and key do not match")?;
    tls.alpn_protocols = vec![ferry_protocol::push::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport());
    quinn::Endpoint::server(cfg, addr).with_context(|| format!("cannot listen on {addr}"))
}

/// A client endpoint (the outside) for reaching `target`.
pub fn client(id: Identity, peers: PeerAuth, target: SocketAddr) -> Result<quinn::Endpoint> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match peers {
        PeerAuth::Pinned(pins) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { pins, provider })),
        PeerAuth::Ca(roots) => builder.with_root_certificates(roots),
    };
    let mut tls = builder
        .with_client_auth_cert(id.chain, id.key)
        .context("the QUIC certificate and key do not match")?;
    tls.alpn_protocols = vec![ferry_protocol::push::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport());
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let mut ep = quinn::Endpoint::client(local).context("cannot open a UDP socket")?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// Writes one framed message.
pub async fn write_msg<T: Serialize>(send: &mut quinn::SendStream, msg: &T) -> Result<()> {
    send.write_all(&ferry_protocol::push::frame(msg))
        .await
        .context("the connection dropped while sending")
}

/// Reads one framed message of at most `max` bytes.
pub async fn read_msg<T: DeserializeOwned>(recv: &mut quinn::RecvStream, max: u32) -> Result<T> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .context("the connection dropped while receiving")?;
    let len = u32::from_le_bytes(len);
    if len > max {
        bail!("peer sent a message of {len} bytes, over the limit of {max}");
    }
    let mut body = vec![0u8; len as usize];
    recv.read_exact(&mut body)
        .await
        .context("the connection dropped while receiving")?;
    postcard::from_bytes(&body).context("peer sent a message that does not decode")
}

/// Command-line options that say who the peer may be (both agents use them).
#[derive(clap::Args, Clone, Debug)]
pub struct PeerArgs {
    /// Accept exactly the peer certificate(s) in this PEM file (repeatable):
    /// the peer's `quic.crt`, made by its `cert` subcommand.
    #[arg(long = "peer-cert")]
    pub peer_cert: Vec<PathBuf>,
    /// Accept peers whose certificate is issued by the CA in this PEM file.
    #[arg(long, conflicts_with = "peer_cert")]
    pub ca: Option<PathBuf>,
}

impl PeerArgs {
    /// The authentication these options ask for.
    pub fn auth(&self) -> Result<PeerAuth> {
        match &self.ca {
            Some(ca) => PeerAuth::ca(ca),
            None => PeerAuth::pinned(&self.peer_cert),
        }
    }
}

/// The `cert` subcommand's options (both agents).
#[derive(clap::Args, Clone, Debug)]
pub struct CertArgs {
    /// DNS names or IP addresses to put in the certificate (for CA mode).
    #[arg(long)]
    pub name: Vec<String>,
    /// Replace an existing identity.
    #[arg(long)]
    pub force: bool,
    /// Have the certificate issued by the private CA in this directory
    /// (made on first use) instead of self-signed.
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

impl CertArgs {
    /// Makes the identity in `state`, prints its fingerprint, and says where
    /// the certificate goes (`peer_use`: the peer's command that takes it).
    pub fn run(&self, state: &Path, peer_use: &str) -> Result<()> {
        let fp = generate_identity(state, &self.name, self.force, self.ca_dir.as_deref())?;
        println!("{fp}");
        eprintln!(
            "wrote {} and {}; give the certificate to `{peer_use} --peer-cert` (or use --ca)",
            state.join(CERT_FILE).display(),
            state.join(KEY_FILE).display()
        );
        Ok(())
    }
}
