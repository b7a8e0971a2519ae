//! `engine = "locust"`: the `[locust]` table into a [`LocustSpec`], the
//! closed-model forms it accepts, and every error for what a Locust scenario
//! cannot have. Fixture files are under `testdata/locust/`.

use super::*;

/// Lines 1-8: a Locust scenario without its [locust] table; append one (or
/// anything else) from line 9.
const LOCUST: &str = r#"[scenario]
engine = "locust"
[target]
base_url = "http://127.0.0.1:8080"
[load]
model = "closed"
users = 10
duration = "10s"
"#;

/// A valid [locust] table to append.
const TABLE: &str = "[locust]\nfile = \"locust/locustfile.py\"\n";

fn spec(s: &Scenario) -> &LocustSpec {
    s.locust
        .as_ref()
        .expect("a Locust scenario has a LocustSpec")
}

// ---- the model --------------------------------------------------------------

#[test]
fn a_locust_scenario_with_stages_builds_its_spec() {
    let s = ok(r#"[scenario]
name = "shop"
engine = "locust"
thresholds = ["p95 < 300ms", "p95[me] < 200ms"]
[target]
base_url = "http://127.0.0.1:8080/api"
[locust]
file = "locust/locustfile.py"
include = ["locust/helpers/", "users.csv"]
user_classes = ["ApiUser", "_Admin2"]
tags = ["smoke", "checkout"]
exclude_tags = ["slow"]
processes = 2
[load]
model = "closed"
stages = [
    { duration = "10s", target = 10 },
    { duration = "20s", target = 10 },
    { duration = "5s", target = 0 },
]
spawn_rate = 5
"#);
    assert_eq!(s.name, "shop");
    assert_eq!(s.engine, EngineKind::Locust);
    assert_eq!(s.engine.as_str(), "locust");
    assert!(s.journeys.is_empty() && s.pools.is_empty());
    assert_eq!(
        *spec(&s),
        LocustSpec {
            file: testdata().join("locust/locustfile.py"),
            include: vec![
                testdata().join("locust/helpers/"),
                testdata().join("users.csv")
            ],
            user_classes: vec!["ApiUser".into(), "_Admin2".into()],
            tags: vec!["smoke".into(), "checkout".into()],
            exclude_tags: vec!["slow".into()],
            processes: Some(2),
        }
    );
    assert_eq!(s.target.origin, "http://127.0.0.1:8080");
    assert_eq!(s.target.base_path, "/api");
    let LoadModel::Closed { users, spawn_rate } = &s.load.model else {
        panic!("closed");
    };
    assert_eq!(users.peak(), 10.0);
    assert_eq!(users.stages.len(), 3);
    assert_eq!(*spawn_rate, 5.0);
    assert_eq!(s.load.duration, Duration::from_secs(35));
    // Request names come from the locustfile: a scope is kept as written.
    assert_eq!(s.thresholds.len(), 2);
    assert_eq!(s.thresholds[1].scope.as_deref(), Some("me"));
}

#[test]
fn a_minimal_locust_table_runs_everything_on_every_core() {
    let s = ok(&format!("{LOCUST}{TABLE}"));
    assert_eq!(
        *spec(&s),
        LocustSpec {
            file: testdata().join("locust/locustfile.py"),
            include: Vec::new(),
            user_classes: Vec::new(),
            tags: Vec::new(),
            exclude_tags: Vec::new(),
            processes: None,
        }
    );
    // [target] keys Locust does not take keep their defaults.
    assert!(s.target.headers.is_empty() && !s.target.http2 && !s.target.insecure_tls);
    // A native scenario has no LocustSpec.
    assert!(ok(&format!("{HEAD}{REQUEST}")).locust.is_none());
}

#[test]
fn every_closed_model_form_is_valid_for_locust() {
    for load in [
        "model = \"closed\"\nusers = 10\nduration = \"10s\"\n",
        "model = \"closed\"\nusers = 10\nspawn_rate = 2\nduration = \"10s\"\n",
        "model = \"closed\"\nstages = [{ duration = \"5s\", target = 4 }]\n",
        "model = \"closed\"\nusers = 25\nstep_users = 10\nstep_duration = \"10s\"\n",
    ] {
        let s = ok(&format!(
            "[scenario]\nengine = \"locust\"\n{TARGET}{TABLE}[load]\n{load}"
        ));
        assert!(matches!(s.load.model, LoadModel::Closed { .. }), "{load}");
    }
}

// ---- errors -----------------------------------------------------------------

#[test]
fn a_locust_scenario_needs_its_locustfile() {
    let (summary, help) = single(LOCUST);
    assert_eq!(
        summary,
        "2:10 locust.file: engine = \"locust\" needs a locustfile, and there is no [locust] table"
    );
    assert_eq!(
        help.as_deref(),
        Some("write [locust] file = \"locustfile.py\"")
    );
    let (summary, help) = single(&format!("{LOCUST}[locust]\nprocesses = 2\n"));
    assert!(
        summary.starts_with("9:1 locust.file: missing `file`: the locustfile to run"),
        "{summary}"
    );
    assert_eq!(
        help.as_deref(),
        Some("write [locust] file = \"locustfile.py\"")
    );
}

#[test]
fn a_locust_table_needs_engine_locust() {
    for engine in ["", "[scenario]\nengine = \"native\"\n"] {
        let all = diagnostics(&format!("{engine}{HEAD}{REQUEST}{TABLE}"));
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(all[0].field.as_deref(), Some("locust"));
        assert_eq!(
            all[0].message,
            "[locust] only applies to engine = \"locust\", and this scenario runs the native engine"
        );
        assert_eq!(
            all[0].help.as_deref(),
            Some("add engine = \"locust\" to [scenario]")
        );
    }
    // An unknown engine is the one error: the [locust] table says what was
    // meant, so nothing else is blamed on it.
    let (summary, help) = single(&format!(
        "[scenario]\nengine = \"locus\"\n{TARGET}{TABLE}[load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n"
    ));
    assert_eq!(summary, "2:10 scenario.engine: unknown engine `locus`");
    assert_eq!(
        help.as_deref(),
        Some("the engines that exist are: native, locust, gatling, jmeter")
    );
}

#[test]
fn locust_paths_must_exist_and_the_locustfile_be_a_py_file() {
    let (summary, help) = single(&format!("{LOCUST}[locust]\nfile = \"nope.py\"\n"));
    assert_eq!(
        summary,
        format!(
            "10:8 locust.file: locustfile not found: `nope.py` (looked for {})",
            testdata().join("nope.py").display()
        )
    );
    assert_eq!(
        help.as_deref(),
        Some("paths are relative to the scenario file's directory")
    );
    let (summary, help) = single(&format!("{LOCUST}[locust]\nfile = \"locust\"\n"));
    assert_eq!(
        summary,
        format!(
            "10:8 locust.file: `locust` is a directory ({}), not a locustfile",
            testdata().join("locust").display()
        )
    );
    assert_eq!(
        help.as_deref(),
        Some(
            "name the locustfile itself, e.g. file = \"locustfile.py\"; list the files and directories it needs in `include`"
        )
    );
    let (summary, _) = single(&format!("{LOCUST}[locust]\nfile = \"locust/notes.txt\"\n"));
    assert_eq!(
        summary,
        "10:8 locust.file: the locustfile must be a Python file ending in .py, found `locust/notes.txt`"
    );
    let (summary, _) = single(&format!("{LOCUST}[locust]\nfile = \"\"\n"));
    assert_eq!(summary, "10:8 locust.file: the path is empty");

    let got = errors(&format!(
        "{LOCUST}{TABLE}include = [\"locust/helpers\", \"gone/\", \"users.csv\", \"missing.csv\"]\n"
    ));
    assert_eq!(
        got,
        [
            format!(
                "11:30 locust.include[1]: included path not found: `gone/` (looked for {})",
                testdata().join("gone/").display()
            ),
            format!(
                "11:52 locust.include[3]: included path not found: `missing.csv` (looked for {})",
                testdata().join("missing.csv").display()
            ),
        ]
    );
}

#[test]
fn locust_runs_the_closed_model_only() {
    let (summary, help) = single(&format!(
        "[scenario]\nengine = \"locust\"\n{TARGET}{TABLE}[load]\nmodel = \"open\"\nrate = 50\nduration = \"10s\"\n"
    ));
    assert_eq!(
        summary,
        "8:9 load.model: engine = \"locust\" runs virtual users (the closed model), not arrivals per second (the open model)"
    );
    let help = help.expect("help");
    assert_eq!(
        help,
        "write model = \"closed\" with `users` (or `stages`) and `spawn_rate`; for arrivals per second, use engine = \"native\""
    );
    // A missing model suggests the one Locust runs.
    let (_, help) = single(&format!(
        "[scenario]\nengine = \"locust\"\n{TARGET}{TABLE}[load]\nusers = 5\nduration = \"10s\"\n"
    ));
    assert_eq!(
        help.as_deref(),
        Some("add model = \"closed\" (virtual users: the model Locust runs)")
    );
}

#[test]
fn requests_journeys_and_data_pools_belong_to_the_native_engine() {
    let text = format!(
        "{LOCUST}{TABLE}[data.users]\nfile = \"users.csv\"\n[[request]]\npath = \"/\"\n[[request]]\npath = \"/a\"\n[[journey]]\nname = \"j\"\n"
    );
    let all = diagnostics(&text);
    let got: Vec<String> = all.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            "11:7 data.users: data pools are for the native engine: a Locust scenario reads its data in the locustfile",
            "13:1 request[0]: a Locust scenario has no [[request]] tables: its locustfile defines what users do",
            "17:1 journey[0]: a Locust scenario has no [[journey]] tables: its locustfile defines what users do",
        ]
    );
    assert_eq!(
        all[0].help.as_deref(),
        Some(
            "put data files in [locust] include = [\"data/\"] and read them from the locustfile (e.g. with csv)"
        )
    );
    assert_eq!(
        all[1].help.as_deref(),
        Some(
            "write these requests as @task methods of a User class in the locustfile, or set engine = \"native\""
        )
    );
    assert_eq!(
        all[2].help.as_deref(),
        Some(
            "write each journey as a User class (or a SequentialTaskSet) in the locustfile, or set engine = \"native\""
        )
    );
    // A native scenario without requests keeps its error.
    let (summary, _) = single(HEAD);
    assert_eq!(summary, "1:1 : the scenario sends no requests");
}

#[test]
fn target_keys_for_the_native_client_are_rejected() {
    let text = format!(
        r#"[scenario]
engine = "locust"
[target]
base_url = "http://127.0.0.1:8080"
headers = {{ accept = "application/json" }}
connect_timeout = "1s"
request_timeout = "5s"
insecure_tls = true
http2 = false
{TABLE}[load]
model = "closed"
users = 1
duration = "1s"
"#
    );
    let all = diagnostics(&text);
    let got: Vec<String> = all.iter().map(summary).collect();
    let tail = "applies to the native engine; with engine = \"locust\", the locustfile sets this on its own client";
    assert_eq!(
        got,
        [
            format!("5:11 target.headers: `headers` {tail}"),
            format!("6:19 target.connect_timeout: `connect_timeout` {tail}"),
            format!("7:19 target.request_timeout: `request_timeout` {tail}"),
            format!("8:16 target.insecure_tls: `insecure_tls` {tail}"),
            format!("9:9 target.http2: `http2` {tail}"),
        ]
    );
    assert_eq!(
        all[0].help.as_deref(),
        Some(
            "set them in on_start, e.g. self.client.headers.update({\"accept\": \"application/json\"})"
        )
    );
    // base_url is still required: it is Locust's --host.
    let (summary, _) = single(&format!(
        "[scenario]\nengine = \"locust\"\n[target]\n{TABLE}[load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n"
    ));
    assert!(summary.ends_with("target: missing `base_url`"), "{summary}");
}

#[test]
fn processes_classes_and_tags_are_checked() {
    let got = errors(&format!(
        "{LOCUST}{TABLE}processes = 0\nuser_classes = [\"Api User\"]\ntags = [\"\", \"-x\", \"ok\"]\nexclude_tags = [\"a b\"]\n"
    ));
    assert_eq!(
        got,
        [
            "11:13 locust.processes: `processes` must be at least 1, found 0",
            "12:17 locust.user_classes[0]: `Api User` is not a Python class name",
            "13:9 locust.tags[0]: invalid tag ``",
            "13:13 locust.tags[1]: invalid tag `-x`",
            "14:17 locust.exclude_tags[0]: invalid tag `a b`",
        ]
    );
    for (value, message) in [
        ("-2", "`processes` must be at least 1, found -2"),
        ("2.5", "`processes` must be a whole number, found 2.5"),
    ] {
        let (summary, help) = single(&format!("{LOCUST}{TABLE}processes = {value}\n"));
        assert_eq!(summary, format!("11:13 locust.processes: {message}"));
        assert_eq!(
            help.as_deref(),
            Some("write e.g. processes = 4 (or remove it for one per core)")
        );
    }
    let (summary, help) = single(&format!("{LOCUST}{TABLE}processes = \"four\"\n"));
    assert_eq!(
        summary,
        "11:13 locust.processes: expected a whole number of processes, found a string"
    );
    assert_eq!(help.as_deref(), Some("write e.g. processes = 4"));
    let (summary, help) = single(&format!("{LOCUST}{TABLE}include = \"helpers/\"\n"));
    assert_eq!(
        summary,
        "11:11 locust.include: expected an array of paths, found a string"
    );
    assert_eq!(
        help.as_deref(),
        Some("write e.g. include = [\"helpers/\", \"data/users.csv\"]")
    );
}

#[test]
fn unknown_keys_in_the_locust_table_get_hints() {
    let (summary, help) = single(&format!("{LOCUST}[locust]\nfle = \"locustfile.py\"\n"));
    assert_eq!(summary, "10:1 locust.fle: unknown key");
    assert_eq!(help.as_deref(), Some("did you mean `file`?"));
    let (_, help) = single(&format!("{LOCUST}{TABLE}user_class = [\"A\"]\n"));
    assert_eq!(help.as_deref(), Some("did you mean `user_classes`?"));
    let (summary, help) = single(&format!("{LOCUST}{TABLE}spawn_rate = 5\n"));
    assert_eq!(summary, "11:1 locust.spawn_rate: unknown key");
    assert_eq!(
        help.as_deref(),
        Some(
            "`spawn_rate` belongs in [load]; TOML puts every key after a [header] into that table, so this one landed in [locust]"
        )
    );
    let (_, help) = single(&format!("{LOCUST}{TABLE}bogus = 1\n"));
    assert_eq!(
        help.as_deref(),
        Some("expected one of: file, include, user_classes, tags, exclude_tags, processes")
    );
    let (summary, help) = single(&format!("{LOCUST}[[locust]]\nfile = \"x.py\"\n"));
    assert_eq!(summary, "9:3 locust: expected a table, found an array");
    assert_eq!(
        help.as_deref(),
        Some("write [locust] (one table), not [[locust]] (an array of tables)")
    );
}
