//! The Gatling engine (issue 9): real Gatling from Maven Central, run
//! unchanged, its requests read back from the `simulation.log` it writes.
//! So far only the groundwork is here: `log` decodes that file as it grows.
//! The engine itself (Maven prepare, the JVM at the start instant, tailing
//! into interval snapshots, stop) follows the steps of [`super::external`].

// Nothing outside the tests uses the decoder until the engine is wired.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod log;
