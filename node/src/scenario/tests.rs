//! tests
use std::path::Path;

#[test]
fn dump() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for f in [
        "demo.toml",
        "open-model.toml",
        "closed-model.toml",
        "step-load.toml",
    ] {
        match super::load(&dir.join(f)) {
            Ok(s) => println!(
                "OK {f}: {} journeys {:?} load {:?}",
                s.journeys.len(),
                s.journeys
                    .iter()
                    .map(|j| (
                        &j.name,
                        j.steps
                            .iter()
                            .map(|s| (
                                &s.name,
                                s.headers
                                    .iter()
                                    .map(|(n, t)| format!("{n}={}", t.source()))
                                    .collect::<Vec<_>>(),
                                s.body.as_ref().map(|b| format!("{b:?}"))
                            ))
                            .collect::<Vec<_>>()
                    ))
                    .collect::<Vec<_>>(),
                s.load
            ),
            Err(e) => println!("ERR {f}:\n{e}"),
        }
    }
    let base = "[target]\nbase_url = \"http://127.0.0.1:8080\"\n[load]\nmodel = \"open\"\nrate = 5\nduration = \"10s\"\n[[request]]\npath = \"/\"\n";
    for text in [
        "[load]\nrat = 5\n",
        "[load]\nrate = \"fast\"\n",
        "[[journey]]\nname=\"x\"\nthresholds = [\"a\"]\n",
        "[target]\nrate = 5\n",
        "name = 'x'\n",
        "[load\nrate = 5\nx = = 3\n",
        "[load]\nmodel = 'open'\n[load]\nrate = 5\n",
        "[load]\nduration = 30\n",
        "[load]\nmodel = open\n",
        "[[load]]\nmodel = 'open'\n",
        "[request]\npath = '/'\n",
        "[[request]]\npath = '/'\njson = { when = 1979-05-27 }\n",
        "[[request]]\npath = '/'\ncheck = { status = 'ok' }\n",
        "[target]\nbase_url = 'http://x'\nheaders = { a = 5 }\n",
    ] {
        println!("=== {text}");
        match super::parse(&format!("{text}"), Path::new("t.toml"), Path::new(".")) {
            Ok(_) => println!("OK"),
            Err(e) => println!("{e}"),
        }
    }
    let _ = base;
}
