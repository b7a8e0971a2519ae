//! `[load]`: the open and closed models, stages and step load, checked
//! into a [`Load`] (Locust scenarios: the closed model only; Gatling
//! scenarios: only the longest duration, their load is code).

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::scenario::diagnostic::closest;
use crate::scenario::model::{EngineKind, Load, LoadModel, Profile, Stage};
use crate::scenario::raw::RawLoad;

/// Default `load.graceful_stop`.
const GRACEFUL_STOP: Duration = Duration::from_secs(5);
/// Default `load.max_in_flight`.
const MAX_IN_FLIGHT: usize = 10_000;

impl Validator<'_, '_> {
    // ---- [load] -----------------------------------------------------------

    /// `[load]`; Locust runs only the closed model.
    pub(super) fn load(
        &mut self,
        load: Option<&Spanned<RawLoad>>,
        engine: EngineKind,
    ) -> Option<Load> {
        let locust = engine == EngineKind::Locust;
        let Some(load) = load else {
            let help = if locust {
                "add [load] with model = \"closed\", users = 10, spawn_rate = 5, duration = \"30s\""
            } else if engine == EngineKind::Gatling || engine == EngineKind::Jmeter {
                "add [load] with duration = \"5m\": the longest the test may run"
            } else {
                "add [load] with model = \"open\", rate = 10, duration = \"30s\""
            };
            self.sink.error(None, "", "missing [load] table").help(help);
            return None;
        };
        let span = load.span();
        let raw = load.get_ref();
        if engine == EngineKind::Gatling || engine == EngineKind::Jmeter {
            return self.scripted(raw, span, engine);
        }
        let duration = self.opt_positive_duration(raw.duration.as_ref(), "load.duration");
        let graceful_stop = match &raw.graceful_stop {
            Some(g) => self.duration(g, "load.graceful_stop"),
            None => Some(GRACEFUL_STOP),
        };
        let stages = self.stages(raw);
        let model = match &raw.model {
            None => {
                let help = if locust {
                    "add model = \"closed\" (virtual users: the model Locust runs)"
                } else {
                    "add model = \"open\" (arrivals per second) or model = \"closed\" (virtual users)"
                };
                self.sink
                    .error(Some(span.clone()), "load", "missing `model`")
                    .help(help);
                None
            }
            Some(m) if m.get_ref() == "open" && locust => {
                self.sink
                    .error(
                        Some(m.span()),
                        "load.model",
                        "engine = \"locust\" runs virtual users (the closed model), not arrivals per second (the open model)",
                    )
                    .help("write model = \"closed\" with `users` (or `stages`) and `spawn_rate`; for arrivals per second, use engine = \"native\"");
                None
            }
            Some(m) if m.get_ref() == "open" => self.open(raw, stages.as_deref()),
            Some(m) if m.get_ref() == "closed" => self.closed(raw, span.clone(), stages.as_deref()),
            Some(m) => {
                let d = self.sink.error(
                    Some(m.span()),
                    "load.model",
                    format!("unknown load model `{}`", m.get_ref()),
                );
                match closest(m.get_ref(), &["open", "closed"]) {
                    Some(c) => d.help(format!("did you mean \"{c}\"?")),
                    None => d.help(
                        "expected \"open\" (arrivals per second) or \"closed\" (virtual users)",
                    ),
                };
                None
            }
        };
        let implied =
            raw.stages.is_some() || raw.step_users.is_some() || raw.step_duration.is_some();
        if raw.duration.is_none() && !implied {
            self.sink
                .error(Some(span), "load", "missing `duration`")
                .help("add e.g. duration = \"30s\" (with `stages`, it defaults to their total)");
            return None;
        }
        let (model, profile_duration) = model?;
        let duration = match raw.duration {
            // Reported above when it did not parse.
            Some(_) => duration?,
            None => profile_duration?,
        };
        Some(Load {
            model,
            duration,
            graceful_stop: graceful_stop?,
        })
    }

    /// `[load]` of a Gatling scenario: the simulation's injection profile is
    /// its code, so only `duration` (the longest the run may last) and
    /// `graceful_stop` apply.
    fn scripted(&mut self, raw: &RawLoad, span: Range<usize>, engine: EngineKind) -> Option<Load> {
        let (sets, help) = match engine {
            EngineKind::Jmeter => (
                "the test plan's thread groups set its load",
                "pass numbers to the plan with [jmeter] split = { threads = 120, throughput = 600 } (each agent gets its share, read as ${__P(threads)}) or properties = { ... }",
            ),
            _ => (
                "the simulation's setUp(...) sets its load",
                "pass numbers to the simulation with [gatling] split = { users = 300, rate = 90 } (each agent gets its share) or properties = { ... }",
            ),
        };
        let of_f64 = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        let foreign = [
            ("model", raw.model.as_ref().map(Spanned::span)),
            ("stages", raw.stages.as_ref().map(Spanned::span)),
            ("rate", of_f64(&raw.rate)),
            ("start_rate", of_f64(&raw.start_rate)),
            ("max_in_flight", of_f64(&raw.max_in_flight)),
            ("users", of_f64(&raw.users)),
            ("spawn_rate", of_f64(&raw.spawn_rate)),
            ("step_users", of_f64(&raw.step_users)),
            (
                "step_duration",
                raw.step_duration.as_ref().map(Spanned::span),
            ),
        ];
        for (key, at) in foreign {
            if let Some(at) = at {
                self.sink
                    .error(
                        Some(at),
                        &format!("load.{key}"),
                        format!(
                            "`{key}` does not apply to engine = \"{}\": {sets}",
                            engine.as_str()
                        ),
                    )
                    .help(help);
            }
        }
        let graceful_stop = match &raw.graceful_stop {
            Some(g) => self.duration(g, "load.graceful_stop"),
            None => Some(GRACEFUL_STOP),
        };
        let Some(duration) = &raw.duration else {
            self.sink
                .error(Some(span), "load", "missing `duration`")
                .help("add e.g. duration = \"5m\": the longest the simulation may run (it ends earlier when its injection and users are done)");
            return None;
        };
        let duration = self.positive_duration(duration, "load.duration");
        Some(Load {
            model: LoadModel::Scripted,
            duration: duration?,
            graceful_stop: graceful_stop?,
        })
    }

    /// `load.stages`, checked the same way for both models (targets are
    /// checked per model). `None` when absent or broken.
    fn stages(&mut self, raw: &RawLoad) -> Option<Vec<(Stage, Range<usize>)>> {
        let stages = raw.stages.as_ref()?;
        if stages.get_ref().is_empty() {
            self.sink
                .error(Some(stages.span()), "load.stages", "`stages` is empty")
                .help("write e.g. stages = [{ duration = \"10s\", target = 100 }]");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, stage) in stages.get_ref().iter().enumerate() {
            let field = format!("load.stages[{i}]");
            let s = stage.get_ref();
            let duration = match &s.duration {
                Some(d) => self.positive_duration(d, &format!("{field}.duration")),
                None => {
                    self.sink
                        .error(Some(stage.span()), &field, "missing `duration`")
                        .help("write e.g. { duration = \"10s\", target = 100 }");
                    None
                }
            };
            let target = match &s.target {
                Some(t) if !t.get_ref().is_finite() || *t.get_ref() < 0.0 => {
                    self.sink.error(
                        Some(t.span()),
                        &format!("{field}.target"),
                        format!("the target must be 0 or more, found {}", t.get_ref()),
                    );
                    None
                }
                Some(t) => Some((*t.get_ref(), t.span())),
                None => {
                    self.sink
                        .error(Some(stage.span()), &field, "missing `target`")
                        .help("write e.g. { duration = \"10s\", target = 100 }");
                    None
                }
            };
            match (duration, target) {
                (Some(duration), Some((target, span))) => {
                    out.push((Stage { duration, target }, span));
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reports keys of the other model.
    fn foreign_keys(
        &mut self,
        keys: &[(&str, Option<Range<usize>>)],
        model: &str,
        other: &str,
        hint: &str,
    ) {
        for (key, span) in keys {
            if let Some(span) = span {
                self.sink
                    .error(
                        Some(span.clone()),
                        &format!("load.{key}"),
                        format!("`{key}` only applies to the {other} model, but this load has model = \"{model}\""),
                    )
                    .help(hint.to_owned());
            }
        }
    }

    fn open(
        &mut self,
        raw: &RawLoad,
        stages: Option<&[(Stage, Range<usize>)]>,
    ) -> Option<(LoadModel, Option<Duration>)> {
        let span_of = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        self.foreign_keys(
            &[
                ("users", span_of(&raw.users)),
                ("spawn_rate", span_of(&raw.spawn_rate)),
                ("step_users", span_of(&raw.step_users)),
                ("step_duration", raw.step_duration.as_ref().map(Spanned::span)),
            ],
            "open",
            "closed",
            "the open model sets arrivals per second with `rate` or `stages`; to simulate users, use model = \"closed\"",
        );
        let max_in_flight = match &raw.max_in_flight {
            Some(m) => self.whole(m, "load.max_in_flight", 1, "max_in_flight = 1000")? as usize,
            None => MAX_IN_FLIGHT,
        };
        let profile = match (&raw.rate, &raw.stages) {
            (Some(_), Some(stages)) => {
                self.sink
                    .error(
                        Some(stages.span()),
                        "load.stages",
                        "both `rate` and `stages` are set",
                    )
                    .help(
                        "use `rate` for a constant arrival rate, or `stages` for a ramp, not both",
                    );
                return None;
            }
            (None, None) => {
                self.sink
                    .error(
                        raw.model.as_ref().map(Spanned::span),
                        "load",
                        "the open model needs `rate` or `stages`",
                    )
                    .help("write e.g. rate = 100 (arrivals per second)");
                return None;
            }
            (Some(rate), None) => {
                if let Some(start) = &raw.start_rate {
                    self.sink
                        .error(Some(start.span()), "load.start_rate", "`start_rate` only applies with `stages`")
                        .help("remove it, or replace `rate` with stages = [{ duration = \"10s\", target = 100 }]");
                }
                let rate = self.positive(rate, "load.rate", "the rate", "rate = 100")?;
                Profile::constant(rate)
            }
            (None, Some(_)) => {
                let stages = stages?;
                let start = match &raw.start_rate {
                    Some(s) if !s.get_ref().is_finite() || *s.get_ref() < 0.0 => {
                        self.sink.error(
                            Some(s.span()),
                            "load.start_rate",
                            format!("the start rate must be 0 or more, found {}", s.get_ref()),
                        );
                        return None;
                    }
                    Some(s) => *s.get_ref(),
                    None => 0.0,
                };
                let profile = Profile {
                    start,
                    stages: stages.iter().map(|(s, _)| s.clone()).collect(),
                    step: false,
                };
                if profile.peak() <= 0.0 {
                    self.sink
                        .error(
                            raw.stages.as_ref().map(Spanned::span),
                            "load.stages",
                            "the rate never rises above 0",
                        )
                        .help("give at least one stage a target above 0");
                    return None;
                }
                profile
            }
        };
        let total = (!profile.stages.is_empty()).then(|| profile.stages_duration());
        Some((
            LoadModel::Open {
                rate: profile,
                max_in_flight,
            },
            total,
        ))
    }

    fn closed(
        &mut self,
        raw: &RawLoad,
        span: Range<usize>,
        stages: Option<&[(Stage, Range<usize>)]>,
    ) -> Option<(LoadModel, Option<Duration>)> {
        let span_of = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        self.foreign_keys(
            &[
                ("rate", span_of(&raw.rate)),
                ("start_rate", span_of(&raw.start_rate)),
                ("max_in_flight", span_of(&raw.max_in_flight)),
            ],
            "closed",
            "open",
            "the closed model sets virtual users with `users`, `stages` or step_users/step_duration; for arrivals per second, use model = \"open\"",
        );
        let spawn_rate = match &raw.spawn_rate {
            Some(s) => {
                Some(self.positive(s, "load.spawn_rate", "the spawn rate", "spawn_rate = 10")?)
            }
            None => None,
        };
        let step = raw.step_users.is_some() || raw.step_duration.is_some();
        match (&raw.users, &raw.stages, step) {
            (Some(_), Some(stages), _) => {
                self.sink
                    .error(Some(stages.span()), "load.stages", "both `users` and `stages` are set")
                    .help("use `users` for a constant number of users, or `stages` for a ramp, not both");
                None
            }
            (None, Some(stages_raw), true) => {
                let at = raw
                    .step_users
                    .as_ref()
                    .map(Spanned::span)
                    .or_else(|| raw.step_duration.as_ref().map(Spanned::span))
                    .unwrap_or_else(|| stages_raw.span());
                self.sink
                    .error(Some(at), "load", "step load (`step_users`, `step_duration`) cannot be combined with `stages`")
                    .help("for steps, set users, step_users and step_duration; for ramps, use stages");
                None
            }
            (None, None, _) => {
                self.sink
                    .error(
                        Some(span),
                        "load",
                        "the closed model needs `users` or `stages`",
                    )
                    .help("write e.g. users = 50");
                None
            }
            (None, Some(_), false) => {
                let stages = stages?;
                let mut ok = true;
                for (i, (stage, span)) in stages.iter().enumerate() {
                    if stage.target.fract() != 0.0 {
                        self.sink.error(
                            Some(span.clone()),
                            &format!("load.stages[{i}].target"),
                            format!("users must be a whole number, found {}", stage.target),
                        );
                        ok = false;
                    }
                }
                let profile = Profile {
                    start: 0.0,
                    stages: stages.iter().map(|(s, _)| s.clone()).collect(),
                    step: false,
                };
                if ok && profile.peak() <= 0.0 {
                    self.sink
                        .error(
                            raw.stages.as_ref().map(Spanned::span),
                            "load.stages",
                            "the number of users never rises above 0",
                        )
                        .help("give at least one stage a target above 0");
                    ok = false;
                }
                if !ok {
                    return None;
                }
                let total = profile.stages_duration();
                let spawn_rate = spawn_rate.unwrap_or(profile.peak());
                Some((
                    LoadModel::Closed {
                        users: profile,
                        spawn_rate,
                    },
                    Some(total),
                ))
            }
            (Some(users), None, false) => {
                let users = self.whole(users, "load.users", 1, "users = 50")? as f64;
                Some((
                    LoadModel::Closed {
                        users: Profile::constant(users),
                        spawn_rate: spawn_rate.unwrap_or(users),
                    },
                    None,
                ))
            }
            (Some(users_raw), None, true) => {
                let users = self.whole(users_raw, "load.users", 1, "users = 50");
                let step_users = match &raw.step_users {
                    Some(s) => self.whole(s, "load.step_users", 1, "step_users = 10"),
                    None => {
                        self.sink
                            .error(
                                raw.step_duration.as_ref().map(Spanned::span),
                                "load.step_duration",
                                "`step_duration` needs `step_users`",
                            )
                            .help("add e.g. step_users = 10 (users added at each step)");
                        None
                    }
                };
                let step_duration = match &raw.step_duration {
                    Some(d) => self.positive_duration(d, "load.step_duration"),
                    None => {
                        self.sink
                            .error(
                                raw.step_users.as_ref().map(Spanned::span),
                                "load.step_users",
                                "`step_users` needs `step_duration`",
                            )
                            .help("add e.g. step_duration = \"10s\" (how long each step lasts)");
                        None
                    }
                };
                let (users, step_users, step_duration) = (users?, step_users?, step_duration?);
                if step_users > users {
                    self.sink
                        .error(raw.step_users.as_ref().map(Spanned::span), "load.step_users", format!("step_users ({step_users}) is above users ({users})"))
                        .help("`users` is the final number of users; each step adds step_users until it is reached");
                    return None;
                }
                let mut stages = Vec::new();
                let mut level = 0;
                while level < users {
                    level = (level + step_users).min(users);
                    stages.push(Stage {
                        duration: step_duration,
                        target: level as f64,
                    });
                }
                let profile = Profile {
                    start: step_users as f64,
                    stages,
                    step: true,
                };
                let total = profile.stages_duration();
                Some((
                    LoadModel::Closed {
                        users: profile,
                        spawn_rate: spawn_rate.unwrap_or(step_users as f64),
                    },
                    Some(total),
                ))
            }
        }
    }
}
