//! Where clients reach each store: `serve`'s default paths under one base
//! URL, or a listener per store or source (`--listen-url`, `--preset`), as
//! `serve --listen` lays them out.

use super::ClientConfigError;
use ferry_protocol::catalog::SourceKind;

/// The URL of the base (`scheme://host:port`, no path, no trailing slash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Base {
    /// `http` or `https`.
    pub(super) scheme: String,
    /// `host` or `host:port`.
    pub(super) authority: String,
}

impl Base {
    /// `url` as `[http[s]://]host[:port][/]`; a bare host takes `default_scheme`.
    pub(super) fn parse(url: &str, default_scheme: &str) -> Result<Base, ClientConfigError> {
        let bad = |why: &str| ClientConfigError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = match url.split_once("://") {
            Some((s @ ("http" | "https"), r)) => (s, r),
            Some(_) => return Err(bad("the scheme must be http or https")),
            None => (default_scheme, url),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad(
                "give scheme, host and port only, such as https://mirror.site:8443",
            ));
        }
        if let Some((_, port)) = authority.rsplit_once(':') {
            if !authority.ends_with(']') && port.parse::<u16>().is_err() {
                return Err(bad("the port is not a number"));
            }
        }
        Ok(Base {
            scheme: scheme.to_string(),
            authority: authority.to_string(),
        })
    }

    /// `scheme://authority`.
    pub(super) fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The host name or address, without the port.
    pub(super) fn host(&self) -> &str {
        if self.authority.starts_with('[') {
            return self
                .authority
                .split_once(']')
                .map_or(&self.authority, |(h, _)| &h[1..]);
        }
        self.authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h)
    }

    /// The same host on another port.
    fn with_port(&self, port: u16) -> Base {
        let host = if self.authority.starts_with('[') {
            format!("[{}]", self.host())
        } else {
            self.host().to_string()
        };
        Base {
            scheme: self.scheme.clone(),
            authority: format!("{host}:{port}"),
        }
    }
}

/// What one listener URL serves, as `serve --listen` scopes it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    /// One store's tree at the root: `URL/<source>/`.
    Store(SourceKind),
    /// One source at the root: `URL/`.
    Source(SourceKind, String),
    /// The one source of a store at the root, whatever its name (presets).
    Sole(SourceKind),
}

/// Where every store is reached.
#[derive(Clone, Debug)]
pub(super) struct Urls {
    base: Base,
    registry: Base,
    listeners: Vec<(Scope, Base)>,
}

/// The stores `--listen-url` may name, with the path `serve` gives them.
const STORES: [SourceKind; 5] = [
    SourceKind::Files,
    SourceKind::Apt,
    SourceKind::Yum,
    SourceKind::Pypi,
    SourceKind::Helm,
];

impl Urls {
    /// From `--url`, `--preset` and every `--listen-url SPEC=URL`.
    pub(super) fn new(
        base: Base,
        preset: Option<&str>,
        listen: &[String],
    ) -> Result<Urls, ClientConfigError> {
        let mut urls = Urls {
            registry: base.clone(),
            base,
            listeners: Vec::new(),
        };
        match preset {
            None => {}
            Some("deepops") => urls.deepops(),
            Some(other) => {
                return Err(ClientConfigError::UnknownPreset {
                    name: other.to_string(),
                })
            }
        }
        for spec in listen {
            urls.listen(spec)?;
        }
        Ok(urls)
    }

    /// DeepOps's offline mirrors (`serve --preset deepops`): the registry on
    /// 5000, yum on 8001 (`/<repo>/`), Helm on 8002, PyPI on 8003 and files
    /// on 8004 (each the one source at the root).
    fn deepops(&mut self) {
        self.registry = self.base.with_port(5000);
        let b = &self.base;
        self.listeners = vec![
            (Scope::Store(SourceKind::Yum), b.with_port(8001)),
            (Scope::Sole(SourceKind::Helm), b.with_port(8002)),
            (Scope::Sole(SourceKind::Pypi), b.with_port(8003)),
            (Scope::Sole(SourceKind::Files), b.with_port(8004)),
        ];
    }

    /// One `--listen-url`: `registry=URL`, `STORE=URL` or `STORE/SOURCE=URL`;
    /// it replaces what the preset says for the same store.
    fn listen(&mut self, spec: &str) -> Result<(), ClientConfigError> {
        let bad = || ClientConfigError::BadListen {
            spec: spec.to_string(),
        };
        let (what, url) = spec.split_once('=').ok_or_else(bad)?;
        let url = Base::parse(url, &self.base.scheme)?;
        if what == "registry" {
            self.registry = url;
            return Ok(());
        }
        let (store, source) = match what.split_once('/') {
            Some((st, so)) => (st, Some(so)),
            None => (what, None),
        };
        let kind = STORES
            .into_iter()
            .find(|k| k.name() == store)
            .ok_or_else(|| ClientConfigError::UnknownStore {
                spec: spec.to_string(),
                store: store.to_string(),
            })?;
        let scope = match source {
            None => Scope::Store(kind),
            Some(s) if s.is_empty() || s.contains('/') => return Err(bad()),
            Some(s) => Scope::Source(kind, s.to_string()),
        };
        self.listeners.retain(|(sc, _)| match (&scope, sc) {
            (Scope::Source(..), _) => sc != &scope,
            (_, Scope::Store(k) | Scope::Sole(k) | Scope::Source(k, _)) => *k != kind,
        });
        self.listeners.push((scope, url));
        Ok(())
    }

    /// The base everything else is served under.
    pub(super) fn base(&self) -> &Base {
        &self.base
    }

    /// The registry (`/v2/` at its root).
    pub(super) fn registry(&self) -> &Base {
        &self.registry
    }

    /// Every host clients reach, for their CA settings.
    pub(super) fn hosts(&self) -> Vec<&Base> {
        let mut out = vec![&self.base, &self.registry];
        out.extend(self.listeners.iter().map(|(_, b)| b));
        out.sort_by(|a, b| a.authority.cmp(&b.authority));
        out.dedup();
        out
    }

    /// The URL (ending in `/`) of `source`, one of `held` sources of `kind`.
    pub(super) fn source(
        &self,
        kind: SourceKind,
        source: &str,
        held: &[&str],
    ) -> Result<String, ClientConfigError> {
        let find = |want: &dyn Fn(&Scope) -> bool| {
            self.listeners
                .iter()
                .find(|(sc, _)| want(sc))
                .map(|(_, b)| b.url())
        };
        if let Some(u) = find(&|sc| matches!(sc, Scope::Source(k, s) if *k == kind && s == source))
        {
            return Ok(format!("{u}/"));
        }
        if let Some(u) = find(&|sc| *sc == Scope::Store(kind)) {
            return Ok(format!("{u}/{source}/"));
        }
        if let Some(u) = find(&|sc| *sc == Scope::Sole(kind)) {
            if held.len() != 1 {
                return Err(ClientConfigError::SeveralSources {
                    store: kind.name().to_string(),
                    sources: held.iter().map(|s| s.to_string()).collect(),
                });
            }
            return Ok(format!("{u}/"));
        }
        Ok(format!("{}/{}/{source}/", self.base.url(), kind.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_listeners() {
        let b = Base::parse("mirror.site", "https").unwrap();
        assert_eq!(b.url(), "https://mirror.site");
        let u = Urls::new(b, Some("deepops"), &[]).unwrap();
        assert_eq!(u.registry().authority, "mirror.site:5000");
        assert_eq!(
            u.source(SourceKind::Yum, "cuda", &["cuda", "epel"])
                .unwrap(),
            "https://mirror.site:8001/cuda/"
        );
        assert_eq!(
            u.source(SourceKind::Pypi, "py", &["py"]).unwrap(),
            "https://mirror.site:8003/"
        );
        assert!(matches!(
            u.source(SourceKind::Helm, "a", &["a", "b"]),
            Err(ClientConfigError::SeveralSources { .. })
        ));
        assert_eq!(
            u.source(SourceKind::Apt, "deb", &["deb"]).unwrap(),
            "https://mirror.site/apt/deb/"
        );
        let u = Urls::new(
            Base::parse("http://10.0.0.5:8080/", "https").unwrap(),
            Some("deepops"),
            &["helm/b=http://10.0.0.5:9000".into()],
        )
        .unwrap();
        assert_eq!(
            u.source(SourceKind::Helm, "b", &["a", "b"]).unwrap(),
            "http://10.0.0.5:9000/"
        );
        assert_eq!(u.hosts().len(), 7);
    }

    #[test]
    fn bad_urls_and_specs_are_named() {
        for (url, ok) in [
            ("ftp://x", false),
            ("http://x/path", false),
            ("http://x:port", false),
            ("http://", false),
            ("https://[::1]:8443", true),
            ("10.0.0.5:8080", true),
        ] {
            assert_eq!(Base::parse(url, "http").is_ok(), ok, "{url}");
        }
        assert_eq!(Base::parse("[::1]:8443", "http").unwrap().host(), "::1");
        let b = Base::parse("h", "http").unwrap();
        assert!(matches!(
            Urls::new(b.clone(), Some("kubespray"), &[]),
            Err(ClientConfigError::UnknownPreset { .. })
        ));
        assert!(matches!(
            Urls::new(b.clone(), None, &["npm=http://h:1".into()]),
            Err(ClientConfigError::UnknownStore { .. })
        ));
        assert!(matches!(
            Urls::new(b, None, &["yum".into()]),
            Err(ClientConfigError::BadListen { .. })
        ));
    }
}
