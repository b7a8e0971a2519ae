//! `engine = "jmeter"`: the `[jmeter]` table into a [`JmeterSpec`] (the CSV
//! files the plan reads found and shipped) and its errors with their
//! positions. Fixture files are under `testdata/jmeter/`.

use super::*;

/// Lines 1-7: a JMeter scenario without its [jmeter] table; append one
/// from line 8.
const JMETER: &str = r#"[scenario]
engine = "jmeter"
[target]
base_url = "http://127.0.0.1:8080"
[load]
duration = "10s"
[jmeter]
"#;

#[test]
fn a_jmeter_scenario_builds_its_spec_with_the_files_the_plan_reads() {
    let s = ok(&format!(
        "{JMETER}plan = \"jmeter/plan.jmx\"\nfiles = [\"jmeter/extra.txt\"]\n\
         partition = [\"jmeter/users.csv\"]\njava_opts = [\"-Xmx2g\"]\n\
         properties = {{ ramp = 2, name = \"x\" }}\nsplit = {{ threads = 120, throughput = 600 }}\n"
    ));
    assert_eq!(s.engine, EngineKind::Jmeter);
    assert!(matches!(s.load.model, LoadModel::Scripted));
    let dir = testdata().join("jmeter");
    assert_eq!(
        s.jmeter,
        Some(JmeterSpec {
            plan: dir.join("plan.jmx"),
            files: vec![dir.join("users.csv"), dir.join("extra.txt")],
            partition: vec![dir.join("users.csv")],
            java_opts: vec!["-Xmx2g".into()],
            properties: vec![("ramp".into(), "2".into()), ("name".into(), "x".into())],
            split: vec![("threads".into(), 120.0), ("throughput".into(), 600.0)],
        })
    );
    // Shares add up to the whole, as Gatling's do.
    let shares: Vec<String> = (0..7).map(|i| split_share(120.0, i, 7)).collect();
    let sum: u64 = shares
        .iter()
        .map(|s| s.parse::<u64>().expect("whole"))
        .sum();
    assert_eq!(sum, 120);
}

#[test]
fn jmeter_errors_name_their_place() {
    let found = errors(&format!(
        "{JMETER}plan = \"jmeter/nope.jmx\"\nsplit = {{ \"jmeter.save.saveservice.output_format\" = 1, \"bfgg.x\" = 2 }}\n\
         properties = {{ \"sampleresult.timestamp.start\" = false }}\nfiles = [\"jmeter/gone.txt\"]\n"
    ));
    let looked = |f: &str| testdata().join(f).display().to_string();
    let forced = "would change the results file bfgg reads: bfgg sets the jmeter.save.saveservice.* and sampleresult.* properties itself";
    assert_eq!(
        found,
        [
            format!(
                "8:8 jmeter.plan: file not found: `jmeter/nope.jmx` (looked for {})",
                looked("jmeter/nope.jmx")
            ),
            format!(
                "9:11 jmeter.split.\"jmeter.save.saveservice.output_format\": `jmeter.save.saveservice.output_format` {forced}"
            ),
            "9:56 jmeter.split.\"bfgg.x\": `bfgg.x` is set by bfgg (bfgg.agent.index, bfgg.agent.count, bfgg.duration)".to_owned(),
            format!(
                "10:16 jmeter.properties.\"sampleresult.timestamp.start\": `sampleresult.timestamp.start` {forced}"
            ),
            format!(
                "11:10 jmeter.files[0]: file not found: `jmeter/gone.txt` (looked for {})",
                looked("jmeter/gone.txt")
            ),
        ]
    );
}

#[test]
fn a_csv_the_plan_reads_must_be_there_and_partition_must_be_one() {
    let found = errors(&format!("{JMETER}plan = \"jmeter/missing-csv.jmx\"\n"));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "8:8 jmeter.plan: the plan's CSV Data Set Config reads `absent.csv`, which is not there"
        ),
        "{found:#?}"
    );
    let (summary, _) = single(&format!(
        "{JMETER}plan = \"jmeter/plan.jmx\"\npartition = [\"jmeter/extra.txt\"]\n"
    ));
    assert_eq!(
        summary,
        "9:14 jmeter.partition[0]: `jmeter/extra.txt` is not a file the plan's CSV Data Set Configs read, nor one of `files`"
    );
}

#[test]
fn jmeter_tables_refuse_what_they_do_not_have() {
    let (summary, _) = single(&format!(
        "{JMETER}plan = \"jmeter/plan.jmx\"\nthreads = 3\n"
    ));
    assert!(summary.starts_with("9:1 jmeter"), "{summary}");
    assert!(summary.contains("unknown"), "{summary}");
    let (summary, help) = single(
        "[scenario]\nengine = \"jmeter\"\n[target]\nbase_url = \"http://127.0.0.1:8080\"\n[load]\nduration = \"10s\"\n",
    );
    assert_eq!(
        summary,
        "2:10 jmeter.plan: engine = \"jmeter\" needs a test plan, and there is no [jmeter] table"
    );
    assert!(help.is_some_and(|h| h.contains("plan = \"checkout.jmx\"")));
    let (summary, _) = single(&format!(
        "{JMETER}plan = \"jmeter/plan.jmx\"\n[[request]]\npath = \"/\"\n"
    ));
    assert_eq!(
        summary,
        "9:1 request[0]: a JMeter scenario has no [[request]] tables: its test plan defines what threads do"
    );
    let (summary, _) = single(&format!("{JMETER}plan = \"jmeter/plan.jmx\"\n[load]\n"));
    assert!(!summary.is_empty());
}
