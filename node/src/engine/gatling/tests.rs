//! Unit tests of the Gatling engine's pure parts: request names, records
//! into intervals, system properties.
