//! The one integration-test binary: drives the built `bfgg` binary in child
//! processes against `bfgg target` on 127.0.0.1 (never anything else).
//!
//! Modules: `harness` (child processes, temp scenarios, the Python venv),
//! `cli` (arguments, validation errors, exit codes, completions, man pages),
//! `config` (config.toml, `BFGG_*` variables and flags in that order), `cluster` (`bfgg node`
//! processes joined on 127.0.0.1: distributed runs, stop, agent and
//! coordinator loss, keys), `netns` (mDNS, a cluster run and a partition
//! across network namespaces, as root), `local_run` (runs and
//! their results), `locust` (the Locust engine with real Locust), `gatling` (the Gatling
//! engine with real Gatling through Maven), `tls` (HTTPS against `bfgg target --tls`, self-signed
//! and `insecure_tls`), `report` (`report.html` in headless Chromium with
//! networking off, `junit.xml` against the JUnit schema), `source` (test code from a
//! git repository), `metrics` (`bfgg node --metrics-addr` scraped during and
//! after a run, parsed by PyPI's `prometheus-client`), `tidy` (architecture invariants checked by grep).

mod cli;
mod cluster;
mod config;
mod gatling;
mod harness;
mod jmeter;
mod local_run;
mod locust;
mod metrics;
mod netns;
mod observers;
mod report;
mod runs;
mod s3;
mod source;
mod tidy;
mod tls;
mod tui;
