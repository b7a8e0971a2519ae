//! The one integration-test binary: drives the built `bfgg` binary in child
//! processes against `bfgg target` on 127.0.0.1 (never anything else).
//!
//! Modules: `harness` (child processes, temp scenarios, the Python venv),
//! `cli` (arguments, validation errors, exit codes), `local_run` (runs and
//! their results), `tls` (HTTPS against `bfgg target --tls`, self-signed
//! and `insecure_tls`), `tidy` (architecture invariants checked by grep).

mod cli;
mod harness;
mod local_run;
mod tidy;
mod tls;
