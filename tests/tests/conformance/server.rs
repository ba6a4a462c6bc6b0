//! A static upstream on loopback, over HTTP or HTTPS, that can misbehave on
//! purpose: answer 503 once, or cut a download half-way once. It serves a
//! directory (changeable between exports), answers `Range: bytes=N-` with
//! 206, and logs every request with its `Range` header.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A fault to inject into the next GET of one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `503 Service Unavailable`.
    Unavailable,
    /// Send the headers and half the body, then close the connection.
    Cut,
}

/// One request seen: path, and the `Range` header if any.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Fault>,
    log: Vec<Seen>,
}

/// A running upstream (its threads end with the test process).
pub struct Upstream {
    /// `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// A private certificate authority and a server certificate it signed for
/// `127.0.0.1`, made with openssl.
pub struct Pki {
    /// The CA certificate (PEM), what `ca_file` names.
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// Makes the CA and the server certificate in `dir` (panics when
    /// openssl fails).
    pub fn make(dir: &Path) -> Pki {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Ferry Test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(&self.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        )
    }
}

impl Upstream {
    /// Serves `root` on a free loopback port, over TLS with `pki`'s server
    /// certificate when given.
    pub fn start(root: &Path, pki: Option<&Pki>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = pki.map(Pki::server_config);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(Mutex::new(State::default()));
        let (root, st) = (root.to_path_buf(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(tcp) = stream else { continue };
                let (root, st, tls) = (root.clone(), st.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = match tls {
                        Some(cfg) => {
                            let conn = rustls::ServerConnection::new(cfg).unwrap();
                            let s = rustls::StreamOwned::new(conn, tcp);
                            handle(s, &root, &st)
                        }
                        None => handle(tcp, &root, &st),
                    };
                });
            }
        });
        Upstream {
            url: format!("{scheme}://127.0.0.1:{port}"),
            state,
        }
    }

    /// Makes the next GET of `path` (relative to the root) misbehave.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), fault);
    }

    /// Every request of `path` so far.
    pub fn requests_of(&self, path: &str) -> Vec<Seen> {
        let st = self.state.lock().unwrap();
        st.log.iter().filter(|s| s.path == path).cloned().collect()
    }
}

/// Answers one request (every answer closes the connection).
fn handle<S: Read + Write>(s: S, root: &Path, st: &Mutex<State>) -> std::io::Result<()> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let fault = {
        let mut st = st.lock().unwrap();
        st.log.push(Seen {
            path: path.clone(),
            range: range.clone(),
        });
        st.faults.remove(&path)
    };
    let mut s = r.into_inner();
    if fault == Some(Fault::Unavailable) {
        s.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return s.flush();
    }
    let mut file = root.join(&path);
    if file.is_dir() {
        file = file.join("index.html"); // a simple index's project page
    }
    let body = match (path.contains(".."), std::fs::read(&file)) {
        (false, Ok(b)) if file.is_file() => b,
        _ => {
            s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return s.flush();
        }
    };
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let len = body.len();
    let (head, part) = match from {
        Some(n) if n < len => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                len - 1,
                len - n
            ),
            &body[n..],
        ),
        Some(_) => (
            format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            &body[..0],
        ),
        None => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"),
            &body[..],
        ),
    };
    s.write_all(head.as_bytes())?;
    if fault == Some(Fault::Cut) {
        s.write_all(&part[..part.len() / 2])?;
        s.flush()?;
        // Dropped without a TLS close_notify or the rest: a broken connection.
        return Ok(());
    }
    s.write_all(part)?;
    s.flush()
}
