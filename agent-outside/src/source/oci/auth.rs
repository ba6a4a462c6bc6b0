//! The bearer-token challenge (`WWW-Authenticate: Bearer realm=…`). The
//! credentials themselves (basic, bearer, a docker `config.json`) are the
//! shared network settings' (`crate::upstream`).

use std::collections::HashMap;

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
        assert_eq!(c["scope"], "repository:library/ubuntu:pull");
        let c = parse_challenge("realm=plain, service=\"s\"");
        assert_eq!((c["realm"].as_str(), c["service"].as_str()), ("plain", "s"));
    }

    /// The docker `config.json` lookups a registry source relies on.
    #[test]
    fn docker_config_json() {
        use crate::upstream::docker_config_auth;
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
