//! The integration tests: one binary, one module per area. They run the real
//! `kubectl-qualys_respond` binary (and the library where a test needs to
//! load a component of its own), never a mock.

mod apiserver;
mod blast;
mod cli;
mod cluster;
mod defaults;
mod deploy;
mod determinism;
mod fake_abuseipdb;
mod fake_kube;
mod fake_qualys;
mod golden;
mod hostile;
mod krew;
mod kube_fake;
mod kubectl;
mod lint;
mod loopback;
mod oracle;
mod plugins;
mod proxy;
mod real_cluster;
mod release;
mod scaffold;
mod selective;
mod serve;
mod server;
mod support;
mod sync_api;
mod sync_cluster;
mod tls;
