//! Several listening addresses, each serving all of the store or one part of
//! it at its root, so a site's existing client configuration (one port per
//! repository, as DeepOps lays them out) keeps working.
//!
//! `--listen` takes `ADDR` (everything, the paths of `serve`'s module docs)
//! or `STORE=ADDR` / `STORE/SOURCE=ADDR`:
//!
//! - `registry=ADDR`: only the registry, `/v2/…`;
//! - `yum=ADDR` (any store served as a tree: `files`, `apt`, `yum`, `pypi`,
//!   `helm`, …): that store's tree at the root, `/<source>/<path>` being
//!   `/yum/<source>/<path>`;
//! - `helm/charts=ADDR`: one source at the root, `/<path>` being
//!   `/helm/charts/<path>`.
//!
//! `/healthz` and `/metrics` answer on every listener. Redirects and `Link` headers name the
//! listener's own paths. The preset `deepops` is DeepOps's layout (see
//! [`preset`]).

use super::generation::Server;
use super::response::{href_encode, not_found, text};
use super::routes::tree_route;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use ferry_protocol::catalog::SourceKind;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use tower::ServiceExt as _;

/// What one listening address serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every route.
    All,
    /// Only `/v2/…`.
    Registry,
    /// One store's tree at the root: `/<source>/<path>`.
    Store(SourceKind),
    /// One source at the root: `/<path>`.
    Source(SourceKind, String),
    /// The one source of a store at the root, whatever its name (presets):
    /// none or several are answered `404` naming them.
    Sole(SourceKind),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => write!(f, "every store"),
            Scope::Registry => write!(f, "the registry (/v2/)"),
            Scope::Store(k) => write!(f, "the {} store: /{}/ at /", k.name(), k.name()),
            Scope::Source(k, s) => write!(f, "{} source {s}: /{}/{s}/ at /", k.name(), k.name()),
            Scope::Sole(k) => write!(f, "the one {} source at /", k.name()),
        }
    }
}

/// One `--listen`: an address and what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub scope: Scope,
    /// `host:port`.
    pub addr: String,
}

/// A `--listen` or `--preset` that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenError {
    /// `STORE=` names no store `serve` knows.
    #[error(
        "--listen {spec:?}: no store {store:?}; stores: registry, files, apt, yum, pypi, helm"
    )]
    UnknownStore { spec: String, store: String },
    /// `STORE/SOURCE=` with an empty or unusable source name.
    #[error("--listen {spec:?}: {source_name:?} is not a source name")]
    BadSource { spec: String, source_name: String },
    /// `registry/…`: the registry has no sources to choose from.
    #[error("--listen {spec:?}: the registry serves every image at /v2/; name no source")]
    RegistrySource { spec: String },
    /// No address after `=`.
    #[error("--listen {spec:?}: no address, such as 0.0.0.0:5000")]
    NoAddress { spec: String },
    /// Two listeners on one address.
    #[error("two listeners on {addr}")]
    Duplicate { addr: String },
    /// `--preset` names no preset.
    #[error("no preset {name:?}; presets: deepops")]
    UnknownPreset { name: String },
}

impl FromStr for Listen {
    type Err = ListenError;

    fn from_str(spec: &str) -> Result<Self, ListenError> {
        let Some((what, addr)) = spec.split_once('=') else {
            return Ok(Listen {
                scope: Scope::All,
                addr: spec.to_string(),
            });
        };
        if addr.is_empty() {
            return Err(ListenError::NoAddress { spec: spec.into() });
        }
        let (store, source) = match what.split_once('/') {
            Some((st, so)) => (st, Some(so)),
            None => (what, None),
        };
        let scope = if store == "registry" {
            if source.is_some() {
                return Err(ListenError::RegistrySource { spec: spec.into() });
            }
            Scope::Registry
        } else {
            let Some((kind, _)) = tree_route(&format!("/{store}")) else {
                return Err(ListenError::UnknownStore {
                    spec: spec.into(),
                    store: store.into(),
                });
            };
            match source {
                None => Scope::Store(kind),
                Some(s) if s.is_empty() || s.contains(['/', '\\']) || s == "." || s == ".." => {
                    return Err(ListenError::BadSource {
                        spec: spec.into(),
                        source_name: s.into(),
                    })
                }
                Some(s) => Scope::Source(kind, s.to_string()),
            }
        };
        Ok(Listen {
            scope,
            addr: addr.to_string(),
        })
    }
}

/// The listeners of a preset on `host` (such as `0.0.0.0`).
///
/// `deepops`: DeepOps's offline mirrors (`roles/offline-repo-mirrors`):
/// the registry on 5000 (`/v2/`); the yum repositories on 8001, each at
/// `/<repo>/` as its nginx serves them (a ferry yum source per repository,
/// named as the repository); the Helm chart repository on 8002 at the root
/// (`/index.yaml`), as ChartMuseum serves it; the PyPI index on 8003
/// (`/simple/`), as pypiserver serves it; the plain files on 8004 at the
/// root, as its nginx serves them. 8002-8004 serve the one helm, pypi and
/// files source there is; with several, add `--listen helm/NAME=HOST:8002`,
/// which replaces the preset's listener on that address.
pub fn preset(name: &str, host: &str) -> Result<Vec<Listen>, ListenError> {
    match name {
        "deepops" => Ok(vec![
            Listen {
                scope: Scope::Registry,
                addr: format!("{host}:5000"),
            },
            Listen {
                scope: Scope::Store(SourceKind::Yum),
                addr: format!("{host}:8001"),
            },
            Listen {
                scope: Scope::Sole(SourceKind::Helm),
                addr: format!("{host}:8002"),
            },
            Listen {
                scope: Scope::Sole(SourceKind::Pypi),
                addr: format!("{host}:8003"),
            },
            Listen {
                scope: Scope::Sole(SourceKind::Files),
                addr: format!("{host}:8004"),
            },
        ]),
        _ => Err(ListenError::UnknownPreset { name: name.into() }),
    }
}

/// The preset's listeners, then `explicit` ones (one on a preset's address
/// replaces it); two explicit listeners on one address are refused (port 0,
/// a port the system picks, is never the same address twice).
pub fn combine(preset: Vec<Listen>, explicit: Vec<Listen>) -> Result<Vec<Listen>, ListenError> {
    let same = |a: &Listen, b: &Listen| a.addr == b.addr && !a.addr.ends_with(":0");
    let mut out: Vec<Listen> = preset
        .into_iter()
        .filter(|p| !explicit.iter().any(|e| same(e, p)))
        .collect();
    for e in explicit {
        if out.iter().any(|o| same(o, &e)) {
            return Err(ListenError::Duplicate { addr: e.addr });
        }
        out.push(e);
    }
    Ok(out)
}

struct Scoped {
    inner: Router,
    scope: Scope,
    server: Arc<Server>,
}

/// `inner` (every route) seen through `scope`.
pub(super) fn scoped(inner: Router, scope: Scope, server: Arc<Server>) -> Router {
    if scope == Scope::All {
        return inner;
    }
    let s = Arc::new(Scoped {
        inner,
        scope,
        server,
    });
    Router::new().fallback(handle).with_state(s)
}

async fn handle(State(s): State<Arc<Scoped>>, mut req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path == "/healthz" || path == "/metrics" {
        return answer(&s.inner, req).await;
    }
    let prefix = match &s.scope {
        Scope::All => String::new(),
        Scope::Registry if path == "/v2" || path.starts_with("/v2/") => String::new(),
        Scope::Registry => {
            return text(
                StatusCode::NOT_FOUND,
                format!("not found: {path} (this address serves the registry, /v2/, only)"),
            )
        }
        Scope::Store(k) => format!("/{}", k.name()),
        Scope::Source(k, name) => format!("/{}/{}", k.name(), href_encode(name)),
        Scope::Sole(k) => match sole(&s.server, *k).await {
            Ok(name) => format!("/{}/{}", k.name(), href_encode(&name)),
            Err(r) => return r,
        },
    };
    let target = match req.uri().query() {
        Some(q) => format!("{prefix}{path}?{q}"),
        None => format!("{prefix}{path}"),
    };
    match target.parse::<Uri>() {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return not_found(&path),
    }
    let mut r = answer(&s.inner, req).await;
    if !prefix.is_empty() {
        outside_paths(&mut r, &prefix);
    }
    r
}

async fn answer(inner: &Router, req: Request) -> Response {
    match inner.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The name of the one source of `kind` in the current generation.
async fn sole(server: &Server, kind: SourceKind) -> Result<String, Response> {
    let g = server.current().await?;
    let names: Vec<&String> = g
        .files
        .sources()
        .iter()
        .filter(|(_, k)| **k == kind)
        .map(|(n, _)| n)
        .collect();
    match names.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(text(
            StatusCode::NOT_FOUND,
            format!("the store holds no {} source", kind.name()),
        )),
        many => Err(text(
            StatusCode::NOT_FOUND,
            format!(
                "the store holds several {} sources ({}); name one with --listen {}/NAME=ADDR",
                kind.name(),
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                kind.name()
            ),
        )),
    }
}

/// Rewrites `Location` and `Link` headers naming paths under `prefix` to
/// the listener's own paths.
fn outside_paths(r: &mut Response<Body>, prefix: &str) {
    let strip = |v: &str| -> Option<String> {
        let (lead, rest) = match v.strip_prefix('<') {
            Some(rest) => ("<", rest),
            None => ("", v),
        };
        let after = rest.strip_prefix(prefix)?;
        after
            .starts_with(['/', '?'])
            .then(|| format!("{lead}{after}"))
    };
    for name in [header::LOCATION, header::LINK] {
        let new = r
            .headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(strip)
            .and_then(|s| HeaderValue::from_str(&s).ok());
        if let Some(v) = new {
            r.headers_mut().insert(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs_parse_or_name_what_is_wrong() {
        let l: Listen = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(l.scope, Scope::All);
        let l: Listen = "registry=0.0.0.0:5000".parse().unwrap();
        assert_eq!(
            (l.scope, l.addr.as_str()),
            (Scope::Registry, "0.0.0.0:5000")
        );
        let l: Listen = "yum=:8001".parse().unwrap();
        assert_eq!(l.scope, Scope::Store(SourceKind::Yum));
        let l: Listen = "helm/charts=h:8002".parse().unwrap();
        assert_eq!(l.scope, Scope::Source(SourceKind::Helm, "charts".into()));
        assert!(matches!(
            "rpm=h:1".parse::<Listen>(),
            Err(ListenError::UnknownStore { .. })
        ));
        assert!(matches!(
            "helm/=h:1".parse::<Listen>(),
            Err(ListenError::BadSource { .. })
        ));
        assert!(matches!(
            "registry/x=h:1".parse::<Listen>(),
            Err(ListenError::RegistrySource { .. })
        ));
        assert!(matches!(
            "yum=".parse::<Listen>(),
            Err(ListenError::NoAddress { .. })
        ));
    }

    #[test]
    fn explicit_listeners_replace_a_presets_on_the_same_address() {
        let p = preset("deepops", "0.0.0.0").unwrap();
        assert_eq!(p.len(), 5);
        let e = vec!["helm/charts=0.0.0.0:8002".parse().unwrap()];
        let all = combine(p, e).unwrap();
        assert_eq!(all.len(), 5);
        assert!(all
            .iter()
            .any(|l| l.scope == Scope::Source(SourceKind::Helm, "charts".into())));
        let any_port = vec!["a:0".parse().unwrap(), "yum=a:0".parse().unwrap()];
        assert_eq!(combine(vec![], any_port).unwrap().len(), 2);
        let twice = vec!["a:1".parse().unwrap(), "yum=a:1".parse().unwrap()];
        assert_eq!(
            combine(vec![], twice),
            Err(ListenError::Duplicate { addr: "a:1".into() })
        );
        assert!(matches!(
            preset("kubespray", "h"),
            Err(ListenError::UnknownPreset { .. })
        ));
    }
}
