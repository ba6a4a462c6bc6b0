//! Ferry's end-to-end tests, in one test binary (`cargo test -p ferry-e2e`):
//! one module per topic, each driving the real `ferry-out` and `ferry-in`
//! as an operator would. The shared helpers live in the `ferry_e2e` library
//! (tests/lib.rs). One binary links the world once instead of once per file.

mod adopt;
mod apt;
mod bad_input;
mod campaign;
mod cargo;
mod client_config;
mod conformance;
mod cosign;
mod crash;
mod delta_clients;
mod delta_size;
mod deploy;
mod diode;
mod examples;
mod full_disk;
mod go;
mod helm;
mod metrics;
mod npm;
mod oci;
mod oci_registry;
mod packaging;
mod pipeline;
mod progress;
mod publish;
mod pypi;
mod quic;
mod rebase;
mod receipts;
mod reship;
mod roundtrip;
mod scrub;
mod serve;
mod signing;
mod tls;
mod trust;
mod urls;
mod watch;
mod yum;
