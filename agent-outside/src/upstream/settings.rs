//! The network keys every `[[source]]` table accepts.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The keys of a `[[source]]` table that [`NetSettings`] reads; the config
/// takes them out of the table before the source's own settings struct
/// (which refuses unknown keys) sees the rest.
pub const NET_KEYS: [&str; 8] = [
    "ca_file",
    "timeout",
    "retries",
    "username",
    "password_file",
    "token_file",
    "token_scheme",
    "auth_file",
];

/// How a source reaches upstream: the same keys for every source type.
///
/// ```toml
/// ca_file = "/etc/ferry/private-ca.pem"  # trust these CAs instead of the system's
/// timeout = "30s"        # connect, and each read (default 30s)
/// retries = 3            # extra attempts on connection errors, 429, 5xx (default 3)
/// username = "mirror"    # basic authentication, with
/// password_file = "/etc/ferry/mirror.pass"
/// # token_file = "/etc/ferry/token"       # or a bearer token
/// # token_scheme = "bare"                 # the token alone, as cargo sends it
/// # auth_file = "/root/.docker/config.json"  # or a docker config.json entry for the host
/// ```
///
/// Credentials are sent only to the host (scheme, host and port) of the
/// source's own URL, never to another host a redirect or an absolute URL in
/// upstream's metadata leads to.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetSettings {
    /// A PEM file of the certificate authorities to trust instead of the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// The connect timeout and the longest wait for any read, such as
    /// `"30s"` or `"2m"`.
    pub timeout: Option<String>,
    /// How many times a failed request is tried again.
    pub retries: Option<u32>,
    /// User name for basic authentication.
    pub username: Option<String>,
    /// File holding the password (or token) for `username`.
    pub password_file: Option<PathBuf>,
    /// File holding a bearer token.
    pub token_file: Option<PathBuf>,
    /// How the token is sent (default `bearer`).
    pub token_scheme: Option<TokenScheme>,
    /// A docker `config.json` whose `auths.<host>` entry gives user and
    /// password.
    pub auth_file: Option<PathBuf>,
}

/// How a token from `token_file` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: <token>`: the token is the whole value, as cargo
    /// sends it to a registry.
    Bare,
}

impl<'de> Deserialize<'de> for TokenScheme {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "bearer" => Ok(TokenScheme::Bearer),
            "bare" => Ok(TokenScheme::Bare),
            s => Err(serde::de::Error::custom(format!(
                "`token_scheme` is \"bearer\" or \"bare\", not {s:?}"
            ))),
        }
    }
}

impl NetSettings {
    /// The CA file every client trusts: `ca_file`, else `$SSL_CERT_FILE`
    /// when set (what curl, git, pip, cargo and npm honour), else none (the
    /// built-in Mozilla roots).
    pub(crate) fn effective_ca_file(&self) -> Option<PathBuf> {
        self.ca_file
            .clone()
            .or_else(|| std::env::var_os("SSL_CERT_FILE").map(PathBuf::from))
    }

    /// The timeout, checked (default 30 s).
    pub(crate) fn timeout(&self) -> Result<std::time::Duration> {
        let secs = match &self.timeout {
            Some(t) => ferry_agent_common::units::parse_duration_secs(t)
                .with_context(|| format!("timeout {t:?}"))?,
            None => 30,
        };
        if secs == 0 {
            bail!("timeout must be at least one second");
        }
        Ok(std::time::Duration::from_secs(secs))
    }

    /// Whether any credential key is set.
    pub(crate) fn has_auth(&self) -> bool {
        self.username.is_some()
            || self.password_file.is_some()
            || self.token_file.is_some()
            || self.auth_file.is_some()
    }
}

/// The certificates of a PEM file; an error when it holds none.
pub fn read_ca_file(file: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.with_context(|| format!("{}: bad PEM", file.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", file.display());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_ca_file_wins_over_the_environment_which_is_the_default() {
        let set = NetSettings {
            ca_file: Some(PathBuf::from("/etc/ferry/private-ca.pem")),
            ..NetSettings::default()
        };
        assert_eq!(
            set.effective_ca_file(),
            Some(PathBuf::from("/etc/ferry/private-ca.pem"))
        );
        // Read, never set here: tests run in parallel in one process.
        assert_eq!(
            NetSettings::default().effective_ca_file(),
            std::env::var_os("SSL_CERT_FILE").map(PathBuf::from)
        );
    }
}
