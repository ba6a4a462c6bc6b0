//! The HTTP client every source uses, built once per source from its
//! [`NetSettings`].

use super::auth::{auth_header, origin_of};
use super::error::UpstreamError;
use super::settings::{read_ca_file, NetSettings};
use anyhow::{Context, Result};
use std::io::Read;
use std::time::Duration;

/// The first wait before a retry; doubled on each retry, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts (also caps `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Retries when the source does not say.
const DEFAULT_RETRIES: u32 = 3;

/// An HTTP client for one source: cheap to clone (openers take a clone).
///
/// Every request is a GET. A request that fails to connect, breaks, or gets
/// 429 or a 5xx is tried again after an exponentially growing wait, up to
/// `retries` more times; any other status is returned at once as
/// [`UpstreamError::Status`].
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    retries: u32,
    /// The `Authorization` header and the origin (`scheme://host:port`) it
    /// is sent to.
    auth: Option<(String, String)>,
    /// ` (through the proxy …)` or empty, said in connection errors.
    via: String,
}

/// What one attempt ended with, for [`Client::retrying`].
pub(super) enum Attempt<T> {
    /// Done (or failed for good).
    Done(std::result::Result<T, UpstreamError>),
    /// Failed in a way another attempt may fix.
    Transient(UpstreamError),
}

impl Client {
    /// Builds the client of a source whose URLs live under `origin_url` (the
    /// source's `url`/`baseurl`; `None` when a source has no single host,
    /// and then no credentials are allowed). Errors are configuration errors:
    /// an unreadable CA file or password file, a bad timeout, credentials
    /// given twice.
    pub fn new(net: &NetSettings, origin_url: Option<&str>) -> Result<Client> {
        let timeout = net.timeout()?;
        let auth = match origin_url {
            Some(u) => auth_header(net, u)?.map(|h| (h, origin_of(u))),
            None if net.has_auth() => anyhow::bail!(
                "credentials (username, password_file, token_file, auth_file) need a source with one upstream host"
            ),
            None => None,
        };
        let proxy = ureq::Proxy::try_from_env();
        let via = match &proxy {
            Some(p) => format!(
                " (through the proxy {}://{}:{} unless NO_PROXY exempts it)",
                p.protocol().to_string().to_lowercase(),
                p.host(),
                p.port()
            ),
            None => String::new(),
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(proxy)
            .timeout_connect(Some(timeout))
            .timeout_resolve(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_recv_response(Some(timeout));
        if let Some(file) = net.effective_ca_file() {
            let certs = read_ca_file(&file).context("ca_file")?;
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Client {
            agent: config.build().into(),
            retries: net.retries.unwrap_or(DEFAULT_RETRIES),
            auth,
            via,
        })
    }

    /// GETs a whole small file into memory (metadata: a `Release`,
    /// `repomd.xml`, `index.yaml`). `Ok(None)` when upstream says 404 or 410;
    /// [`UpstreamError::TooLarge`] past `limit` bytes.
    pub fn get_small(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, UpstreamError> {
        let got = self.retrying(|| {
            let resp = match self.send(url, &[]) {
                Ok(r) => r,
                Err(t) => return t,
            };
            let mut buf = Vec::new();
            let read = resp
                .into_body()
                .into_with_config()
                .limit(u64::MAX)
                .reader()
                .take(limit + 1)
                .read_to_end(&mut buf);
            match read {
                Err(e) => Attempt::Transient(self.connection(url, format!("reading: {e}"))),
                Ok(_) if buf.len() as u64 > limit => Attempt::Done(Err(UpstreamError::TooLarge {
                    url: url.to_string(),
                    limit,
                })),
                Ok(_) => Attempt::Done(Ok(buf)),
            }
        });
        match got {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs `url` with `headers`, retrying connection errors, 429 and 5xx
    /// like every request; any other answer, whatever its status, is
    /// returned for the caller to read: for protocols that act on statuses
    /// themselves (the OCI distribution API's auth challenge, its referrers
    /// 404). An `Authorization` among `headers` replaces the source's own.
    pub fn get_response(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, UpstreamError> {
        self.retrying(|| match self.call(url, headers) {
            Err(e) => Attempt::Transient(e),
            Ok(resp) => {
                let status = resp.status();
                if status.as_u16() == 429 || status.is_server_error() {
                    Attempt::Transient(UpstreamError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                    })
                } else {
                    Attempt::Done(Ok(resp))
                }
            }
        })
    }

    /// The `Authorization` header the source's settings give (sent by
    /// itself only to the source's own host), for a caller that must present
    /// the credentials elsewhere, such as an OCI registry's token service.
    pub fn authorization(&self) -> Option<&str> {
        self.auth.as_ref().map(|(h, _)| h.as_str())
    }

    /// One GET with `headers` and, when `url` is on the source's host and
    /// `headers` carry none, the source's credentials; a connection error
    /// is returned as such, every status as a response.
    fn call(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, UpstreamError> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let own_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let Some((header, origin)) = self.auth.as_ref().filter(|_| !own_auth) {
            if origin_of(url) == *origin {
                req = req.header("Authorization", header);
            }
        }
        req.call().map_err(|e| self.connection(url, e.to_string()))
    }

    /// Sends one GET with `headers` (and the credentials when `url` is on
    /// the source's host). A success status is returned; a status worth
    /// retrying or a connection error is `Err(Transient)`, any other status
    /// `Err(Done(Err(Status)))`.
    pub(super) fn send<T>(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, Attempt<T>> {
        let resp = self.call(url, headers).map_err(Attempt::Transient)?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let err = UpstreamError::Status {
            url: url.to_string(),
            status,
        };
        if status == 429 || resp.status().is_server_error() {
            return Err(Attempt::Transient(err));
        }
        Err(Attempt::Done(Err(err)))
    }

    /// A connection error for `url` (attempts filled in by [`Client::retrying`]).
    pub(super) fn connection(&self, url: &str, reason: String) -> UpstreamError {
        UpstreamError::Connection {
            url: url.to_string(),
            via: self.via.clone(),
            attempts: 0,
            reason,
        }
    }

    /// Runs `attempt` until it is done or has failed transiently `retries + 1`
    /// times, waiting 0.5 s, 1 s, 2 s, … (at most 30 s) in between.
    pub(super) fn retrying<T>(
        &self,
        mut attempt: impl FnMut() -> Attempt<T>,
    ) -> std::result::Result<T, UpstreamError> {
        let mut wait = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt() {
                Attempt::Done(r) => return r,
                Attempt::Transient(mut e) if tries > self.retries => {
                    if let UpstreamError::Connection { attempts, .. } = &mut e {
                        *attempts = tries;
                    }
                    return Err(e);
                }
                Attempt::Transient(e) => {
                    eprintln!(
                        "ferry-out: warning: {e}; trying again in {:.1} s ({tries} of {})",
                        wait.as_secs_f32(),
                        self.retries + 1
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::{Arc, Mutex};

    /// Answers every request with `status` and records the request heads.
    fn serve(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                    head.push_str(&l);
                }
                log.lock().unwrap().push(head);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        (url, seen)
    }

    fn net(retries: u32) -> NetSettings {
        NetSettings {
            retries: Some(retries),
            ..Default::default()
        }
    }

    #[test]
    fn server_errors_are_retried_then_reported() {
        let (url, seen) = serve(503);
        let c = Client::new(&net(1), None).unwrap();
        let e = c.get_small(&format!("{url}/f"), 10).unwrap_err();
        assert!(
            matches!(e, UpstreamError::Status { status: 503, .. }),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn not_found_is_none_and_not_retried() {
        let (url, seen) = serve(404);
        let c = Client::new(&net(3), None).unwrap();
        assert_eq!(c.get_small(&format!("{url}/f"), 10).unwrap(), None);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn limits_and_refused_connections_are_typed() {
        let (url, _) = serve(200);
        let c = Client::new(&net(0), None).unwrap();
        assert!(matches!(
            c.get_small(&format!("{url}/f"), 1),
            Err(UpstreamError::TooLarge { limit: 1, .. })
        ));
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = c
            .get_small(&format!("http://127.0.0.1:{port}/f"), 10)
            .unwrap_err();
        assert!(
            matches!(&e, UpstreamError::Connection { attempts: 1, url, .. } if url.ends_with("/f")),
            "{e}"
        );
    }

    #[test]
    fn credentials_go_to_the_source_host_only() {
        let (url, seen) = serve(200);
        let (other, other_seen) = serve(200);
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let settings = NetSettings {
            token_file: Some(token),
            ..net(0)
        };
        let c = Client::new(&settings, Some(&format!("{url}/repo/"))).unwrap();
        c.get_small(&format!("{url}/repo/a"), 10).unwrap();
        c.get_small(&format!("{other}/b"), 10).unwrap();
        let auth = |log: &Mutex<Vec<String>>| {
            log.lock().unwrap()[0]
                .to_ascii_lowercase()
                .contains("authorization: bearer t0ken")
        };
        assert!(auth(&seen));
        assert!(!auth(&other_seen));
        assert!(Client::new(&settings, None).is_err());
        // cargo's bare scheme: the header value is the token alone.
        let (url, seen) = serve(200);
        let bare = NetSettings {
            token_scheme: Some(crate::upstream::settings::TokenScheme::Bare),
            ..settings
        };
        let c = Client::new(&bare, Some(&format!("{url}/index/"))).unwrap();
        c.get_small(&format!("{url}/index/config.json"), 10)
            .unwrap();
        assert!(seen.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("authorization: t0ken\r\n"));
    }
}
