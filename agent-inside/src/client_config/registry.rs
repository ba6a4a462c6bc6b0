//! Container clients: containerd's `hosts.toml`, containers-registries.conf
//! (podman, cri-o, skopeo), and NVIDIA's GPU Operator (values.yaml and the
//! `repoConfig` and `certConfig` ConfigMaps).

use super::packages::{apt_list, dnf_repo};
use super::{ClientFile, Ctx};
use anyhow::Result;
use serde_norway::{Mapping, Value};
use std::collections::BTreeSet;

/// The ConfigMap `driver.repoConfig.configMapName` names.
pub(super) const REPO_CONFIG: &str = "repo-config";
/// The ConfigMap `driver.certConfig.name` names.
pub(super) const CERT_CONFIG: &str = "cert-config";
/// The file names the driver container reads its repositories from
/// (gpu-operator-air-gapped.rst): mounted into `/etc/apt/sources.list.d/`
/// on Ubuntu and `/etc/yum.repos.d/` on RHEL.
const UBUNTU_LIST: &str = "custom-repo.list";
const RHEL_REPO: &str = "custom-repo.repo";
/// The key of the CA in the `certConfig` ConfigMap.
const CA_KEY: &str = "ferry-ca.crt";

/// containerd: `hosts.toml` for the registry itself (so `HOST:PORT/repo`
/// pulls trust its CA), and one per upstream (`--upstream`) that makes the
/// registry its mirror.
pub(super) fn containerd(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let reg = cx.urls.registry();
    let mut out = Vec::new();
    let mut hosts: Vec<(String, String)> = vec![(reg.authority.clone(), reg.url())];
    for u in cx.upstreams {
        let server = match u.as_str() {
            "docker.io" => "https://registry-1.docker.io".to_string(),
            _ => format!("https://{u}"),
        };
        hosts.push((u.clone(), server));
    }
    for (dir, server) in hosts {
        let mut host = toml::Table::new();
        host.insert(
            "capabilities".into(),
            toml::Value::Array(vec!["pull".into(), "resolve".into()]),
        );
        if let Some(p) = cx.ca_path(reg) {
            host.insert("ca".into(), p.into());
        }
        let mut hosts_t = toml::Table::new();
        hosts_t.insert(reg.url(), toml::Value::Table(host));
        let mut t = toml::Table::new();
        t.insert("server".into(), server.into());
        t.insert("host".into(), toml::Value::Table(hosts_t));
        out.push(ClientFile {
            path: format!("containerd/{dir}/hosts.toml"),
            dest: format!("containerd: /etc/containerd/certs.d/{dir}/hosts.toml"),
            body: toml::to_string(&t)?,
        });
    }
    Ok(out)
}

/// podman, cri-o, skopeo: `/etc/containers/registries.conf.d/ferry.conf`
/// (the registry itself, and a mirror entry per upstream), and its CA in
/// `/etc/containers/certs.d/HOST:PORT/ca.crt`.
pub(super) fn containers(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let reg = cx.urls.registry();
    let insecure = reg.scheme == "http";
    let mut regs = Vec::new();
    let mut own = toml::Table::new();
    own.insert("location".into(), reg.authority.clone().into());
    own.insert("insecure".into(), insecure.into());
    regs.push(toml::Value::Table(own));
    for u in cx.upstreams {
        let mut mirror = toml::Table::new();
        mirror.insert("location".into(), reg.authority.clone().into());
        mirror.insert("insecure".into(), insecure.into());
        let mut r = toml::Table::new();
        r.insert("prefix".into(), u.clone().into());
        r.insert("location".into(), u.clone().into());
        r.insert(
            "mirror".into(),
            toml::Value::Array(vec![toml::Value::Table(mirror)]),
        );
        regs.push(toml::Value::Table(r));
    }
    let mut t = toml::Table::new();
    t.insert("registry".into(), toml::Value::Array(regs));
    let mut out = Vec::new();
    if let (Some(ca), Some(_)) = (cx.ca, cx.ca_path(reg)) {
        out.push(ClientFile {
            path: format!("containers/certs.d/{}/ca.crt", reg.authority),
            dest: format!(
                "podman / cri-o CA: /etc/containers/certs.d/{}/ca.crt",
                reg.authority
            ),
            body: ca.to_string(),
        });
    }
    out.push(ClientFile {
        path: "containers/registries.conf".into(),
        dest: "podman / cri-o: /etc/containers/registries.conf.d/ferry.conf".into(),
        body: toml::to_string(&t)?,
    });
    Ok(out)
}

/// The GPU Operator's image settings: values key path -> upstream image name.
const GPU_OPERATOR_IMAGES: [(&str, &str); 19] = [
    ("operator", "gpu-operator"),
    ("operator.initContainer", "cuda"),
    ("validator", "gpu-operator-validator"),
    ("driver", "driver"),
    ("driver.manager", "k8s-driver-manager"),
    ("toolkit", "container-toolkit"),
    ("devicePlugin", "k8s-device-plugin"),
    ("dcgm", "dcgm"),
    ("dcgmExporter", "dcgm-exporter"),
    ("gfd", "gpu-feature-discovery"),
    ("nodeStatusExporter", "gpu-operator-validator"),
    ("migManager", "k8s-mig-manager"),
    ("gds", "nvidia-fs"),
    ("gdrcopy", "gdrdrv"),
    ("vgpuManager", "vgpu-manager"),
    ("vgpuDeviceManager", "vgpu-device-manager"),
    ("sandboxDevicePlugin", "kubevirt-gpu-device-plugin"),
    ("ccManager", "k8s-cc-manager"),
    ("kataManager", "k8s-kata-manager"),
];

/// The operating-system suffixes of driver tags (`550.54.15-ubuntu22.04`):
/// the chart's `driver.version` is the tag without it.
const OS_SUFFIXES: [&str; 5] = ["-ubuntu", "-rhel", "-rhcos", "-centos", "-sles"];

/// The held repository whose last component is `image`, and its tags.
fn held_image<'h>(cx: &'h Ctx<'_>, image: &str) -> Option<(&'h str, &'h BTreeSet<String>)> {
    cx.held
        .images
        .iter()
        .find(|(repo, _)| repo.rsplit('/').next() == Some(image))
        .map(|(r, t)| (r.as_str(), t))
}

/// The version to set: the highest held tag (the driver's without its OS
/// suffix), by a numeric-aware order.
fn version_of(key: &str, tags: &BTreeSet<String>) -> Option<String> {
    let strip = |t: &str| -> String {
        if key != "driver" {
            return t.to_string();
        }
        OS_SUFFIXES
            .iter()
            .find_map(|s| t.find(s).map(|i| t[..i].to_string()))
            .unwrap_or_else(|| t.to_string())
    };
    tags.iter()
        .filter(|t| !t.starts_with("sha256-"))
        .map(|t| strip(t))
        .max_by(|a, b| natural(a).cmp(&natural(b)))
}

/// `a` as runs of digits (compared as numbers) and of other bytes.
fn natural(a: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut rest = a;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push((rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let other = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
            out.push((0, rest[..other].to_string()));
            rest = &rest[other..];
        }
    }
    out
}

/// A mapping from `(key, value)` pairs.
fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.into()), v);
    }
    Value::Mapping(m)
}

/// `path` (`a.b`) in `root`, created as mappings.
fn entry<'v>(root: &'v mut Mapping, path: &str) -> &'v mut Mapping {
    let mut m = root;
    for part in path.split('.') {
        let v = m
            .entry(Value::String(part.into()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !v.is_mapping() {
            *v = Value::Mapping(Mapping::new());
        }
        m = v.as_mapping_mut().expect("made a mapping");
    }
    m
}

/// The GPU Operator's `values.yaml`: every held image of the chart pointed at
/// the registry, and the driver's `repoConfig` and `certConfig` when there are
/// package repositories or a CA. `None` when no image of the chart is held.
pub(super) fn gpu_operator_values(cx: &Ctx<'_>) -> Result<Option<ClientFile>> {
    let reg = cx.urls.registry();
    let mut root = Mapping::new();
    let mut any = false;
    for (key, image) in GPU_OPERATOR_IMAGES {
        let Some((repo, tags)) = held_image(cx, image) else {
            continue;
        };
        any = true;
        let dir = repo.rsplit_once('/').map_or("", |(d, _)| d);
        let m = entry(&mut root, key);
        let repository = match dir {
            "" => reg.authority.clone(),
            d => format!("{}/{d}", reg.authority),
        };
        m.insert("repository".into(), repository.into());
        m.insert("image".into(), image.into());
        if let Some(v) = version_of(key, tags) {
            m.insert("version".into(), v.into());
        }
    }
    if let Some((repo, tags)) = held_image(cx, "node-feature-discovery") {
        any = true;
        let m = entry(&mut root, "node-feature-discovery.image");
        m.insert(
            "repository".into(),
            format!("{}/{repo}", reg.authority).into(),
        );
        if let Some(v) = version_of("", tags) {
            m.insert("tag".into(), v.into());
        }
    }
    if !any {
        return Ok(None);
    }
    if !cx.held.apt.is_empty() || !cx.held.yum.is_empty() {
        entry(&mut root, "driver.repoConfig").insert("configMapName".into(), REPO_CONFIG.into());
    }
    if cx.ca.is_some() {
        entry(&mut root, "driver.certConfig").insert("name".into(), CERT_CONFIG.into());
    }
    let body = format!(
        "# GPU Operator values: every image held by ferry-in, from {}\n{}",
        reg.authority,
        serde_norway::to_string(&Value::Mapping(root))?
    );
    Ok(Some(ClientFile {
        path: "gpu-operator/values.yaml".into(),
        dest: "NVIDIA GPU Operator: helm install ... -f values.yaml".into(),
        body,
    }))
}

/// A ConfigMap named `name` in the namespace with `data`.
fn config_map(cx: &Ctx<'_>, name: &str, data: &[(&str, String)]) -> Result<String> {
    let mut d = Mapping::new();
    for (k, v) in data {
        d.insert(Value::String(k.to_string()), Value::String(v.clone()));
    }
    let cm = map([
        ("apiVersion", "v1".into()),
        ("kind", "ConfigMap".into()),
        (
            "metadata",
            map([("name", name.into()), ("namespace", cx.namespace.into())]),
        ),
        ("data", Value::Mapping(d)),
    ]);
    Ok(serde_norway::to_string(&cm)?)
}

/// The driver container's `repoConfig` ConfigMaps: the Ubuntu repo list
/// (apt sources, byte-exact view: the container already trusts the
/// distribution's key) and the RHEL `.repo` (yum sources); both named
/// `repo-config`, apply the one for the nodes' OS. And the `certConfig`
/// ConfigMap with the CA.
pub(super) fn gpu_operator_config_maps(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let mut out = Vec::new();
    if !cx.held.apt.is_empty() {
        out.push(ClientFile {
            path: "gpu-operator/repo-config-ubuntu.yaml".into(),
            dest: format!("GPU Operator driver repositories, Ubuntu nodes: kubectl apply -f (ConfigMap {REPO_CONFIG}, {UBUNTU_LIST})"),
            body: config_map(cx, REPO_CONFIG, &[(UBUNTU_LIST, apt_list(cx)?)])?,
        });
    }
    if !cx.held.yum.is_empty() {
        out.push(ClientFile {
            path: "gpu-operator/repo-config-rhel.yaml".into(),
            dest: format!("GPU Operator driver repositories, RHEL nodes: kubectl apply -f (ConfigMap {REPO_CONFIG}, {RHEL_REPO})"),
            body: config_map(cx, REPO_CONFIG, &[(RHEL_REPO, dnf_repo(cx)?)])?,
        });
    }
    if let Some(ca) = cx.ca {
        out.push(ClientFile {
            path: "gpu-operator/cert-config.yaml".into(),
            dest: format!("GPU Operator driver CA: kubectl apply -f (ConfigMap {CERT_CONFIG})"),
            body: config_map(cx, CERT_CONFIG, &[(CA_KEY, ca.to_string())])?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_take_the_highest_tag_and_drop_the_drivers_os() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            version_of(
                "driver",
                &tags(&["550.54.15-ubuntu22.04", "535.161.08-ubuntu22.04"])
            )
            .as_deref(),
            Some("550.54.15")
        );
        assert_eq!(
            version_of("toolkit", &tags(&["v1.9.0", "v1.10.0", "sha256-ab.sig"])).as_deref(),
            Some("v1.10.0")
        );
    }
}
