//! What bfgg reads of a JMeter test plan (`.jmx`) without JMeter: the files
//! its CSV Data Set Configs name (shipped to agents with the plan, divided
//! by `partition`) and whether it reads a property (`${__P(threads)}`), for
//! `bfgg check`'s warnings. A text scan, not an XML parse: JMeter itself
//! loads the plan before a run ([`super::prepare`]).

/// A CSV Data Set Config of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDataSet {
    /// Its `filename` as written (XML entities decoded).
    pub filename: String,
    /// Whether its file's first line is not data: no `variableNames` (the
    /// first line names the columns) or `ignoreFirstLine`.
    pub header: bool,
    /// Where the escaped `filename` value lies in the plan's text.
    pub at: std::ops::Range<usize>,
}

/// Every CSV Data Set Config of `jmx`, in plan order.
pub fn csv_data_sets(jmx: &str) -> Vec<CsvDataSet> {
    const FILENAME: &str = "<stringProp name=\"filename\">";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = jmx[from..].find("testclass=\"CSVDataSet\"") {
        let start = from + found;
        let end = jmx[start..]
            .find("</CSVDataSet>")
            .map_or(jmx.len(), |e| start + e);
        from = end;
        let element = &jmx[start..end];
        let Some(open) = element.find(FILENAME) else {
            continue;
        };
        let value_at = start + open + FILENAME.len();
        let Some(close) = jmx[value_at..end].find("</stringProp>") else {
            continue;
        };
        let prop = |name: &str| {
            let tag = format!("<stringProp name=\"{name}\">");
            element.find(&tag).and_then(|i| {
                let v = &element[i + tag.len()..];
                v.find("</stringProp>").map(|e| v[..e].trim().to_owned())
            })
        };
        let bool_prop =
            |name: &str| element.contains(&format!("<boolProp name=\"{name}\">true</boolProp>"));
        let header =
            prop("variableNames").unwrap_or_default().is_empty() || bool_prop("ignoreFirstLine");
        out.push(CsvDataSet {
            filename: unescape(jmx[value_at..value_at + close].trim()),
            header,
            at: value_at..value_at + close,
        });
    }
    out
}

/// The `filename` of every CSV Data Set Config in `jmx`, in plan order, each
/// once; names holding a JMeter expression (`${...}`) are left out: they
/// are known only when the plan runs.
pub fn csv_files(jmx: &str) -> Vec<String> {
    let mut out = Vec::new();
    for set in csv_data_sets(jmx) {
        if !set.filename.is_empty() && !set.filename.contains("${") && !out.contains(&set.filename)
        {
            out.push(set.filename);
        }
    }
    out
}

/// `jmx` with each CSV Data Set Config's `filename` replaced by what `to`
/// makes of it (`None`: kept).
pub fn rewrite_csv_files(jmx: &str, mut to: impl FnMut(&CsvDataSet) -> Option<String>) -> String {
    let mut out = String::with_capacity(jmx.len());
    let mut last = 0;
    for set in csv_data_sets(jmx) {
        if let Some(name) = to(&set) {
            out.push_str(&jmx[last..set.at.start]);
            out.push_str(&escape(&name));
            last = set.at.end;
        }
    }
    out.push_str(&jmx[last..]);
    out
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether `jmx` reads the property `name` with `__P` or `__property`
/// (`${__P(threads)}`, `${__P(threads,10)}`, `${__property(threads)}`).
pub fn reads_property(jmx: &str, name: &str) -> bool {
    ["__P(", "__property("].iter().any(|f| {
        jmx.match_indices(f).any(|(at, _)| {
            let args = &jmx[at + f.len()..];
            args.strip_prefix(name)
                .is_some_and(|after| after.starts_with([',', ')']))
        })
    })
}

/// `text` with XML's predefined entities decoded.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_data_sets_are_found_and_expressions_left_out() {
        let jmx = r#"<hashTree>
<CSVDataSet guiclass="TestBeanGUI" testclass="CSVDataSet" testname="users" enabled="true">
  <stringProp name="delimiter">,</stringProp>
  <stringProp name="filename">data/users &amp; co.csv</stringProp>
</CSVDataSet>
<CSVDataSet guiclass="TestBeanGUI" testclass="CSVDataSet" testname="dynamic" enabled="true">
  <stringProp name="filename">${__P(file)}</stringProp>
</CSVDataSet>
<HTTPSamplerProxy testclass="HTTPSamplerProxy"><stringProp name="filename">x</stringProp></HTTPSamplerProxy>
</hashTree>"#;
        assert_eq!(csv_files(jmx), vec!["data/users & co.csv"]);
        assert!(csv_data_sets(jmx)[0].header);
        let moved = rewrite_csv_files(jmx, |s| {
            (s.filename.ends_with(".csv")).then(|| "/w/a&b.csv".to_owned())
        });
        assert_eq!(csv_files(&moved), vec!["/w/a&b.csv"]);
        assert!(moved.contains("<stringProp name=\"filename\">${__P(file)}</stringProp>"));
    }

    #[test]
    fn property_reads_are_found_by_whole_name() {
        let jmx = r#"<stringProp name="ThreadGroup.num_threads">${__P(threads,2)}</stringProp>
<stringProp name="x">${__property(rate)}</stringProp>"#;
        assert!(reads_property(jmx, "threads"));
        assert!(reads_property(jmx, "rate"));
        assert!(!reads_property(jmx, "thread"));
        assert!(!reads_property(jmx, "throughput"));
    }
}
