//! Credentials: basic, bearer, or a docker `config.json` entry.

use super::settings::{NetSettings, TokenScheme};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The `Authorization` header the settings give for upstream `url`, if any.
/// Errors name the key at fault.
pub(super) fn auth_header(net: &NetSettings, url: &str) -> Result<Option<String>> {
    let bare = match (net.token_scheme, &net.token_file) {
        (None | Some(TokenScheme::Bearer), _) => false,
        (Some(TokenScheme::Bare), Some(_)) => true,
        (Some(TokenScheme::Bare), None) => bail!("`token_scheme` needs `token_file`"),
    };
    match (
        &net.username,
        &net.password_file,
        &net.token_file,
        &net.auth_file,
    ) {
        (None, None, None, None) => Ok(None),
        (Some(u), Some(f), None, None) => {
            let p = std::fs::read_to_string(f)
                .with_context(|| format!("password_file: cannot read {}", f.display()))?;
            Ok(Some(basic_header(u, p.trim_end())))
        }
        (None, None, Some(f), None) => {
            let t = std::fs::read_to_string(f)
                .with_context(|| format!("token_file: cannot read {}", f.display()))?;
            let t = t.trim();
            if t.is_empty() {
                bail!("token_file: {} is empty", f.display());
            }
            Ok(Some(match bare {
                true => t.to_string(),
                false => format!("Bearer {t}"),
            }))
        }
        (None, None, None, Some(f)) => {
            let (u, p) = docker_config_auth(f, url).context("auth_file")?;
            Ok(Some(basic_header(&u, &p)))
        }
        (Some(_), None, None, None) | (None, Some(_), None, None) => {
            bail!("give both `username` and `password_file`, or neither")
        }
        _ => bail!(
            "give one of `username` with `password_file`, `token_file` or `auth_file`, not several"
        ),
    }
}

/// `Basic base64(user:password)`.
fn basic_header(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `scheme://host[:port]` of a URL (lower-case scheme and host), the unit
/// credentials are scoped to.
pub(super) fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

/// The host (and port) of a registry or URL, as docker config.json keys it.
fn registry_host(registry: &str) -> &str {
    let r = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    r.split('/').next().unwrap_or(r)
}

/// User and password for `registry` (a host, or a URL on it) from a docker
/// `config.json`: `auths.<host>.auth` (base64 `user:password`) or
/// `username`/`password`. Docker Hub's several spellings are all tried.
pub fn docker_config_auth(file: &Path, registry: &str) -> Result<(String, String)> {
    #[derive(Deserialize)]
    struct DockerConfig {
        #[serde(default)]
        auths: HashMap<String, DockerAuth>,
    }
    #[derive(Deserialize)]
    struct DockerAuth {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
        identitytoken: Option<String>,
    }
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cfg: DockerConfig = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a docker config.json", file.display()))?;
    let host = registry_host(registry);
    let wanted: Vec<String> = if host == "docker.io" || host == "registry-1.docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![host.to_string()]
    };
    let entry = cfg
        .auths
        .iter()
        .find(|(k, _)| wanted.iter().any(|w| registry_host(k) == w || *k == w))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            anyhow!(
                "{}: no entry for {host} under \"auths\" (it has: {})",
                file.display(),
                cfg.auths.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
    if let Some(a) = &entry.auth {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .with_context(|| format!("{}: auths.{host}.auth is not base64", file.display()))?;
        let raw = String::from_utf8(raw)
            .with_context(|| format!("{}: auths.{host}.auth is not UTF-8", file.display()))?;
        let (u, p) = raw.split_once(':').ok_or_else(|| {
            anyhow!(
                "{}: auths.{host}.auth is not base64 of user:password",
                file.display()
            )
        })?;
        return Ok((u.to_string(), p.to_string()));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok((u.clone(), p.clone()));
    }
    if entry.identitytoken.is_some() {
        bail!(
            "{}: auths.{host} has only an identitytoken (an OAuth refresh token), which ferry does not use; \
             log in with a password or token instead",
            file.display()
        );
    }
    bail!(
        "{}: auths.{host} has no auth or username/password",
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_scoped_to_one_origin() {
        assert_eq!(origin_of("https://H.example/a/b"), "https://h.example:443");
        assert_eq!(origin_of("http://h:8080/x"), "http://h:8080");
        assert_ne!(origin_of("https://h/x"), origin_of("http://h/x"));
    }

    #[test]
    fn auth_headers_from_each_kind_of_setting() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "s3cret\n").unwrap();
        let net = NetSettings {
            username: Some("u".into()),
            password_file: Some(pass.clone()),
            ..Default::default()
        };
        assert_eq!(
            auth_header(&net, "https://h/").unwrap().unwrap(),
            basic_header("u", "s3cret")
        );
        let net = NetSettings {
            token_file: Some(pass.clone()),
            ..Default::default()
        };
        assert_eq!(
            auth_header(&net, "https://h/").unwrap().unwrap(),
            "Bearer s3cret"
        );
        // cargo's scheme: the token is the whole header value.
        let bare = |scheme: TokenScheme, token: bool| NetSettings {
            token_file: token.then(|| pass.clone()),
            token_scheme: Some(scheme),
            ..Default::default()
        };
        assert_eq!(
            auth_header(&bare(TokenScheme::Bare, true), "https://h/")
                .unwrap()
                .unwrap(),
            "s3cret"
        );
        assert_eq!(
            auth_header(&bare(TokenScheme::Bearer, true), "https://h/")
                .unwrap()
                .unwrap(),
            "Bearer s3cret"
        );
        assert!(auth_header(&bare(TokenScheme::Bare, false), "https://h/").is_err());
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"auths":{"reg.example:5000":{"auth":"dXNlcjpwYTpzcw=="}}}"#,
        )
        .unwrap();
        let net = NetSettings {
            auth_file: Some(cfg),
            ..Default::default()
        };
        assert_eq!(
            auth_header(&net, "https://reg.example:5000/v2/")
                .unwrap()
                .unwrap(),
            basic_header("user", "pa:ss")
        );
        assert!(auth_header(&net, "https://other.example/").is_err());
        let both = NetSettings {
            username: Some("u".into()),
            password_file: Some(pass.clone()),
            token_file: Some(pass),
            ..Default::default()
        };
        assert!(auth_header(&both, "https://h/").is_err());
        assert_eq!(
            auth_header(&NetSettings::default(), "https://h/").unwrap(),
            None
        );
    }
}
