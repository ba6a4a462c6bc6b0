//! Registry credentials: a docker `config.json`, HTTP basic authentication
//! and the bearer-token challenge (`WWW-Authenticate: Bearer realm=…`).

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The host (and port) of a registry setting, as docker config.json keys it.
fn registry_host(registry: &str) -> &str {
    let r = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    r.split('/').next().unwrap_or(r)
}

/// Credentials for `registry` from a docker `config.json`.
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
            "{}: auths.{host} has only an identitytoken (an OAuth refresh token), which this source does not use; \
             log in with a password or token instead",
            file.display()
        );
    }
    bail!(
        "{}: auths.{host} has no auth or username/password",
        file.display()
    )
}

pub(super) fn basic_header(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `realm="…",service="…"` into a map.
pub(super) fn parse_challenge(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let v = v.trim_start();
        let (value, after) = if let Some(q) = v.strip_prefix('"') {
            match q.split_once('"') {
                Some((val, after)) => (val.to_string(), after),
                None => (q.to_string(), ""),
            }
        } else {
            match v.split_once(',') {
                Some((val, after)) => (val.trim().to_string(), after),
                None => (v.trim().to_string(), ""),
            }
        };
        out.insert(k, value);
        rest = after.trim_start_matches(',');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_basic_auth() {
        let c = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        );
        assert_eq!(c["realm"], "https://auth.docker.io/token");
        assert_eq!(c["service"], "registry.docker.io");
        assert_eq!(
            basic_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_header("a", "b"), "Basic YTpi");
    }

    #[test]
    fn docker_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"auths":{"reg.example:5000":{"auth":"dXNlcjpwYTpzcw=="},"https://index.docker.io/v1/":{"username":"d","password":"p"},"tok.example":{"identitytoken":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(
            docker_config_auth(&f, "https://reg.example:5000").unwrap(),
            ("user".to_string(), "pa:ss".to_string())
        );
        assert_eq!(
            docker_config_auth(&f, "docker.io").unwrap(),
            ("d".to_string(), "p".to_string())
        );
        let e = format!("{:#}", docker_config_auth(&f, "tok.example").unwrap_err());
        assert!(e.contains("identitytoken"), "{e}");
        let e = format!("{:#}", docker_config_auth(&f, "other.example").unwrap_err());
        assert!(e.contains("no entry for other.example"), "{e}");
    }
}
