//! The TOML-facing shape of a scenario file: serde types that mirror the file
//! one to one, with source positions.
//!
//! Nothing here is checked beyond TOML types and unknown keys: every field
//! that needs a semantic check is `Option<Spanned<_>>`, so the validator can
//! report a missing or wrong value at its line and column, and report several
//! problems at once. Numbers are `f64` on purpose (`users = 2.5` and
//! `users = -1` are reported by the validator, in its words, not by serde).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::scenario::diagnostic::{Sink, kind};

/// A whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    /// `[scenario]`: name, engine, thresholds.
    pub(crate) scenario: Option<Spanned<RawMeta>>,
    /// `[target]`.
    pub(crate) target: Option<Spanned<RawTarget>>,
    /// `[load]`.
    pub(crate) load: Option<Spanned<RawLoad>>,
    /// `[data.<name>]` tables, in file order.
    pub(crate) data: Option<OrderedMap<Spanned<RawPool>>>,
    /// `[[request]]` tables: single-step journeys.
    #[serde(default)]
    pub(crate) request: Vec<Spanned<RawStep>>,
    /// `[[journey]]` tables.
    #[serde(default)]
    pub(crate) journey: Vec<Spanned<RawJourney>>,
    /// Top-level `thresholds = [...]` (only valid before the first header).
    pub(crate) thresholds: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[locust]`: the locustfile and its options (engine = "locust").
    pub(crate) locust: Option<Spanned<RawLocust>>,
    /// `[gatling]`: the Maven project and simulation (engine = "gatling").
    pub(crate) gatling: Option<Spanned<RawGatling>>,
    /// `[jmeter]`: the test plan and its properties (engine = "jmeter").
    pub(crate) jmeter: Option<Spanned<RawJmeter>>,
    /// `[source]`: the git repository the scenario's files are read from.
    pub(crate) source: Option<Spanned<RawSource>>,
}

/// `[source]`: `git` (a URL git can clone), `rev` (branch, tag or commit),
/// `path` (a directory of the repository that relative paths start from).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub(crate) git: Option<Spanned<String>>,
    pub(crate) rev: Option<Spanned<String>>,
    pub(crate) path: Option<Spanned<String>>,
}

/// `[scenario]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMeta {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) engine: Option<Spanned<String>>,
    pub(crate) thresholds: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub(crate) base_url: Option<Spanned<String>>,
    pub(crate) headers: Option<Spanned<OrderedMap<Spanned<String>>>>,
    pub(crate) connect_timeout: Option<Spanned<String>>,
    pub(crate) request_timeout: Option<Spanned<String>>,
    pub(crate) insecure_tls: Option<Spanned<bool>>,
    pub(crate) http2: Option<Spanned<bool>>,
}

/// `[load]`: the keys of both models; the validator rejects the other model's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    pub(crate) model: Option<Spanned<String>>,
    pub(crate) duration: Option<Spanned<String>>,
    pub(crate) graceful_stop: Option<Spanned<String>>,
    pub(crate) stages: Option<Spanned<Vec<Spanned<RawStage>>>>,
    // Open model.
    pub(crate) rate: Option<Spanned<f64>>,
    pub(crate) start_rate: Option<Spanned<f64>>,
    pub(crate) max_in_flight: Option<Spanned<f64>>,
    // Closed model.
    pub(crate) users: Option<Spanned<f64>>,
    pub(crate) spawn_rate: Option<Spanned<f64>>,
    pub(crate) step_users: Option<Spanned<f64>>,
    pub(crate) step_duration: Option<Spanned<String>>,
}

/// One `{ duration, target }` of `load.stages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub(crate) duration: Option<Spanned<String>>,
    pub(crate) target: Option<Spanned<f64>>,
}

/// `[locust]`. Paths are relative to the scenario file's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocust {
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) include: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) user_classes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) tags: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) exclude_tags: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) processes: Option<Spanned<f64>>,
}

/// `[gatling]`. `project` is relative to the scenario file's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGatling {
    pub(crate) project: Option<Spanned<String>>,
    pub(crate) simulation: Option<Spanned<String>>,
    pub(crate) java_opts: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) properties: Option<Spanned<OrderedMap<Spanned<RawValue>>>>,
    pub(crate) split: Option<Spanned<OrderedMap<Spanned<f64>>>>,
    pub(crate) keep_native_report: Option<Spanned<bool>>,
}

/// `[jmeter]`. Paths are relative to the scenario file's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJmeter {
    pub(crate) plan: Option<Spanned<String>>,
    pub(crate) files: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) partition: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) java_opts: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) properties: Option<Spanned<OrderedMap<Spanned<RawValue>>>>,
    pub(crate) split: Option<Spanned<OrderedMap<Spanned<f64>>>>,
}

/// `[data.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) strategy: Option<Spanned<String>>,
    pub(crate) on_exhausted: Option<Spanned<String>>,
}

/// `[[journey]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJourney {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) step: Vec<Spanned<RawStep>>,
}

/// `[[request]]` or `[[journey.step]]`. `weight` is only valid on requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<f64>>,
    pub(crate) method: Option<Spanned<String>>,
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) headers: Option<OrderedMap<Spanned<String>>>,
    pub(crate) json: Option<Spanned<RawValue>>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) body_file: Option<Spanned<String>>,
    pub(crate) check: Option<Spanned<RawCheck>>,
    pub(crate) extract: Option<OrderedMap<Spanned<RawExtract>>>,
    pub(crate) think_time: Option<Spanned<String>>,
}

/// `check = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    /// A code or an array of codes.
    pub(crate) status: Option<Spanned<RawValue>>,
    pub(crate) body_contains: Option<Spanned<String>>,
    /// JSON pointer -> expected value.
    pub(crate) json: Option<OrderedMap<Spanned<RawValue>>>,
    /// A header name or an array of them.
    pub(crate) headers_present: Option<Spanned<RawValue>>,
}

/// One `name = { json = "/ptr" }` of `extract`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtract {
    pub(crate) json: Option<Spanned<String>>,
    pub(crate) header: Option<Spanned<String>>,
    pub(crate) regex: Option<Spanned<String>>,
}

/// A table whose entries keep their file order (the `toml` crate sorts keys)
/// and their key positions.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub(crate) Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Spanned<String>, V)> = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                entries.sort_by_key(|(k, _)| k.span().start);
                Ok(OrderedMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Any TOML value, with positions all the way down and tables in file order.
/// Used where a field takes several shapes (`status = 200` or `[200, 201]`)
/// and for JSON bodies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Array(Vec<Spanned<RawValue>>),
    Table(Vec<(Spanned<String>, Spanned<RawValue>)>),
}

impl RawValue {
    /// "a string", "an integer", ...: for "found ..." in messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RawValue::String(_) => "a string",
            RawValue::Integer(_) => "an integer",
            RawValue::Float(_) => "a float",
            RawValue::Boolean(_) => "a boolean",
            RawValue::Array(_) => "an array",
            RawValue::Table(_) => "a table",
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = RawValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any TOML value")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue::Boolean(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue::Integer(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
                i64::try_from(v)
                    .map(RawValue::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue::Float(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue::String(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
                Ok(RawValue::String(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawValue::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
                let mut entries: Vec<(Spanned<String>, Spanned<RawValue>)> = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                entries.sort_by_key(|(k, _)| k.span().start);
                Ok(RawValue::Table(entries))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Reports tables written with the wrong brackets (`[[load]]`, `[request]`,
/// `load = 5`) before serde sees them, since serde's messages for those are
/// confusing. True when the shape is fine.
pub(crate) fn check_shape(root: &DeTable<'_>, sink: &mut Sink<'_>) -> bool {
    let mut ok = true;
    for (key, value) in root.iter() {
        let name = key.get_ref().as_ref();
        let found = kind(value.get_ref());
        match name {
            "scenario" | "target" | "load" | "locust" | "gatling" | "jmeter" | "source"
                if found != "a table" =>
            {
                let help = if found == "an array" {
                    format!("write [{name}] (one table), not [[{name}]] (an array of tables)")
                } else {
                    format!("write it as a table: a [{name}] header followed by its keys")
                };
                sink.error(
                    Some(key.span()),
                    name,
                    format!("expected a table, found {found}"),
                )
                .help(help);
                ok = false;
            }
            "data" if found != "a table" => {
                sink.error(
                    Some(key.span()),
                    name,
                    format!("expected a table, found {found}"),
                )
                .help("declare each pool as [data.<name>] with file = \"....csv\"");
                ok = false;
            }
            "request" | "journey" if found != "an array" => {
                sink.error(
                    Some(key.span()),
                    name,
                    format!("expected [[{name}]] tables, found {found}"),
                )
                .help(format!(
                    "write [[{name}]] with double brackets: each one adds an entry"
                ));
                ok = false;
            }
            _ => {}
        }
    }
    let journeys = root.iter().find(|(k, _)| k.get_ref() == "journey");
    if let Some((_, journeys)) = journeys
        && let DeValue::Array(items) = journeys.get_ref()
    {
        for (i, journey) in items.iter().enumerate() {
            let DeValue::Table(journey) = journey.get_ref() else {
                continue;
            };
            for (key, value) in journey.iter() {
                if key.get_ref() == "step" && !matches!(value.get_ref(), DeValue::Array(_)) {
                    sink.error(
                        Some(key.span()),
                        &format!("journey[{i}].step"),
                        format!(
                            "expected [[journey.step]] tables, found {}",
                            kind(value.get_ref())
                        ),
                    )
                    .help("write [[journey.step]] with double brackets: each one adds a step");
                    ok = false;
                }
            }
        }
    }
    ok
}

/// Every key each table accepts, for "did you mean" and "belongs in" hints.
/// Keep in sync with the structs above (a test checks a few).
pub(crate) const SECTIONS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "scenario",
            "target",
            "load",
            "data",
            "request",
            "journey",
            "thresholds",
            "locust",
            "gatling",
            "jmeter",
        ],
    ),
    ("scenario", &["name", "engine", "thresholds"]),
    (
        "target",
        &[
            "base_url",
            "headers",
            "connect_timeout",
            "request_timeout",
            "insecure_tls",
            "http2",
        ],
    ),
    (
        "load",
        &[
            "model",
            "duration",
            "graceful_stop",
            "stages",
            "rate",
            "start_rate",
            "max_in_flight",
            "users",
            "spawn_rate",
            "step_users",
            "step_duration",
        ],
    ),
    ("load.stages", &["duration", "target"]),
    ("data.*", &["file", "strategy", "on_exhausted"]),
    (
        "locust",
        &[
            "file",
            "include",
            "user_classes",
            "tags",
            "exclude_tags",
            "processes",
        ],
    ),
    (
        "gatling",
        &[
            "project",
            "simulation",
            "java_opts",
            "properties",
            "split",
            "keep_native_report",
        ],
    ),
    (
        "jmeter",
        &[
            "plan",
            "files",
            "partition",
            "java_opts",
            "properties",
            "split",
        ],
    ),
    (
        "request",
        &[
            "name",
            "weight",
            "method",
            "path",
            "headers",
            "json",
            "body",
            "body_file",
            "check",
            "extract",
            "think_time",
        ],
    ),
    ("journey", &["name", "weight", "step"]),
    (
        "journey.step",
        &[
            "name",
            "method",
            "path",
            "headers",
            "json",
            "body",
            "body_file",
            "check",
            "extract",
            "think_time",
        ],
    ),
    (
        "check",
        &["status", "body_contains", "json", "headers_present"],
    ),
    ("extract.*", &["json", "header", "regex"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_map_and_raw_value_keep_file_order() {
        let raw: RawStep = toml::from_str(
            "path = '/'\nheaders = { zeta = 'z', alpha = 'a' }\njson = { b = 1, a = [true, 1.5, 'x'] }\n",
        )
        .expect("parses");
        let headers = raw.headers.expect("headers");
        let keys: Vec<&str> = headers
            .0
            .iter()
            .map(|(k, _)| k.get_ref().as_str())
            .collect();
        assert_eq!(keys, ["zeta", "alpha"]);
        let RawValue::Table(entries) = raw.json.expect("json").into_inner() else {
            panic!("not a table");
        };
        assert_eq!(entries[0].0.get_ref(), "b");
        assert_eq!(entries[1].0.get_ref(), "a");
        let RawValue::Array(items) = entries[1].1.get_ref() else {
            panic!("not an array");
        };
        assert_eq!(items[0].get_ref(), &RawValue::Boolean(true));
        assert_eq!(items[1].get_ref(), &RawValue::Float(1.5));
        assert_eq!(items[2].get_ref(), &RawValue::String("x".into()));
    }

    #[test]
    fn sections_list_the_struct_fields() {
        // A typo'd key must be rejected by serde and known here, so the
        // suggestion logic and the structs agree.
        let keys = |section: &str| {
            SECTIONS
                .iter()
                .find(|(name, _)| *name == section)
                .map(|(_, keys)| keys.to_vec())
                .unwrap_or_default()
        };
        for key in keys("load") {
            let text = format!("[load]\n{key} = 1\n");
            let err = toml::from_str::<RawScenario>(&text)
                .err()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "{key}: {err}");
        }
        for key in keys("locust") {
            let text = format!("[locust]\n{key} = 1\n");
            let err = toml::from_str::<RawScenario>(&text)
                .err()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "{key}: {err}");
        }
        for key in keys("gatling") {
            let text = format!("[gatling]\n{key} = 1\n");
            let err = toml::from_str::<RawScenario>(&text)
                .err()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "{key}: {err}");
        }
        for key in keys("jmeter") {
            let text = format!("[jmeter]\n{key} = 1\n");
            let err = toml::from_str::<RawScenario>(&text)
                .err()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "{key}: {err}");
        }
        for key in keys("journey.step") {
            let text = format!("[[journey]]\n[[journey.step]]\n{key} = 1\n");
            let err = toml::from_str::<RawScenario>(&text)
                .err()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "{key}: {err}");
        }
    }
}
