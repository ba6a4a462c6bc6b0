//! The files `ferry-in client-config` writes, each used alone by its real
//! client with its default settings against `ferry-in serve`: apt-get with
//! only the `.sources` file (both views), dnf with only the `.repo` file
//! (signed packages and metadata, `gpgcheck=1`, `repo_gpgcheck=1`), pip with
//! only `pip.conf`.

mod apt;
mod dnf;
mod pip;
