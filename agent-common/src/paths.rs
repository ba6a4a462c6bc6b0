//! Default state directories: `/var/lib/NAME` for root, the XDG state
//! directory (`$XDG_STATE_HOME/NAME`, or `~/.local/state/NAME`) otherwise.

use std::path::PathBuf;

/// The default state directory of the agent called `name`.
pub fn default_state_dir(name: &str) -> PathBuf {
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::env::var("HOME").map(|h| h == "/root").unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib").join(name);
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join(name);
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state").join(name),
        None => PathBuf::from(".").join(name),
    }
}
