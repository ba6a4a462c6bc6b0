//! `ferry-in client-config`: ready-to-use configuration that points ordinary
//! clients at this agent's registry instead of the upstream one.
//!
//! Repositories are served under their upstream path (`nvcr.io/nvidia/driver`
//! is `HOST:PORT/nvidia/driver`), so a client keeps its image names and only
//! needs a mirror entry (containerd, podman, cri-o), or, for charts that take
//! a repository prefix (NVIDIA's GPU Operator), a values override.

use std::fmt::Write;

/// What to print configuration for.
pub struct ClientConfig {
    /// The inside registry's base URL, such as `http://10.0.0.5:8080`.
    pub url: String,
    /// The upstream registries the images came from, such as `nvcr.io`.
    pub upstreams: Vec<String>,
    /// The repository prefix of the GPU Operator's images upstream (`nvidia`).
    pub gpu_operator_path: String,
}

impl ClientConfig {
    fn host(&self) -> &str {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
    }

    fn insecure(&self) -> bool {
        self.url.starts_with("http://")
    }

    /// containerd: one `hosts.toml` per upstream, with its path.
    pub fn containerd(&self) -> Vec<(String, String)> {
        self.upstreams
            .iter()
            .map(|u| {
                let mut t = String::new();
                let _ = writeln!(t, "server = \"https://{u}\"");
                let _ = writeln!(t);
                let _ = writeln!(t, "[host.\"{}\"]", self.url.trim_end_matches('/'));
                let _ = writeln!(t, "  capabilities = [\"pull\", \"resolve\"]");
                (format!("/etc/containerd/certs.d/{u}/hosts.toml"), t)
            })
            .collect()
    }

    /// podman and cri-o: `/etc/containers/registries.conf.d/ferry.conf`.
    pub fn registries_conf(&self) -> String {
        let mut t = String::new();
        for u in &self.upstreams {
            let _ = writeln!(t, "[[registry]]");
            let _ = writeln!(t, "prefix = \"{u}\"");
            let _ = writeln!(t, "location = \"{u}\"");
            let _ = writeln!(t);
            let _ = writeln!(t, "[[registry.mirror]]");
            let _ = writeln!(t, "location = \"{}\"", self.host());
            let _ = writeln!(t, "insecure = {}", self.insecure());
            let _ = writeln!(t);
        }
        t
    }

    /// A GPU Operator `values.yaml` override pointing every image at this registry.
    pub fn gpu_operator_values(&self) -> String {
        let repo = format!(
            "{}/{}",
            self.host(),
            self.gpu_operator_path.trim_matches('/')
        );
        let mut t = String::new();
        let _ = writeln!(t, "# GPU Operator values override: every image from {repo}");
        for key in [
            "operator",
            "validator",
            "driver",
            "toolkit",
            "devicePlugin",
            "dcgmExporter",
            "gfd",
            "nodeStatusExporter",
            "migManager",
        ] {
            let _ = writeln!(t, "{key}:");
            let _ = writeln!(t, "  repository: {repo}");
            match key {
                "operator" => {
                    let _ = writeln!(t, "  initContainer:\n    repository: {repo}");
                }
                "driver" => {
                    let _ = writeln!(t, "  manager:\n    repository: {repo}");
                }
                _ => {}
            }
        }
        let _ = writeln!(t, "node-feature-discovery:");
        let _ = writeln!(t, "  image:");
        let _ = writeln!(
            t,
            "    repository: {}/nfd/node-feature-discovery",
            self.host()
        );
        t
    }

    /// Everything, for people.
    pub fn render(&self) -> String {
        let mut t = String::new();
        for (path, body) in self.containerd() {
            let _ = writeln!(t, "# containerd: {path}\n{body}");
        }
        let _ = writeln!(
            t,
            "# podman / cri-o: /etc/containers/registries.conf.d/ferry.conf\n{}",
            self.registries_conf()
        );
        let _ = writeln!(
            t,
            "# NVIDIA GPU Operator: helm install ... -f ferry-values.yaml\n{}",
            self.gpu_operator_values()
        );
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClientConfig {
        ClientConfig {
            url: "http://10.0.0.5:8080".into(),
            upstreams: vec!["nvcr.io".into(), "docker.io".into()],
            gpu_operator_path: "nvidia".into(),
        }
    }

    #[test]
    fn configs_parse_and_point_inside() {
        let c = cfg();
        for (path, body) in c.containerd() {
            let v: toml::Value = toml::from_str(&body).unwrap();
            assert!(path.ends_with("/hosts.toml"));
            assert!(
                v["host"]["http://10.0.0.5:8080"]["capabilities"]
                    .as_array()
                    .unwrap()
                    .len()
                    == 2
            );
        }
        let v: toml::Value = toml::from_str(&c.registries_conf()).unwrap();
        let regs = v["registry"].as_array().unwrap();
        assert_eq!(regs.len(), 2);
        assert_eq!(
            regs[0]["mirror"][0]["location"].as_str(),
            Some("10.0.0.5:8080")
        );
        assert_eq!(regs[0]["mirror"][0]["insecure"].as_bool(), Some(true));
        let values = c.gpu_operator_values();
        assert_eq!(
            values.matches("repository: 10.0.0.5:8080/nvidia").count(),
            11
        );
        assert!(values.contains("driver:\n  repository: 10.0.0.5:8080/nvidia\n  manager:"));
    }
}
