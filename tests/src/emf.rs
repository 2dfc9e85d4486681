//! CloudWatch Embedded Metric Format lines, read back as CloudWatch reads them
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html),
//! out of a function process's output, where they sit among its JSON log lines.

use std::collections::BTreeMap;

use serde_json::Value;
use shared::metrics::DEFAULT_NAMESPACE;

/// The units CloudWatch accepts (`MetricDatum.Unit`).
pub const CLOUDWATCH_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric as a line declared it: name, unit, dimension names and values, values (a count,
/// or a histogram's samples).
#[derive(Debug, Clone)]
pub struct Emitted {
    pub name: String,
    pub unit: String,
    pub dimensions: BTreeMap<String, String>,
    pub values: Vec<f64>,
}

/// Every metric of every EMF line (a line with an `_aws` member) in `output`, each line
/// checked against the specification: the `_aws` block (a millisecond timestamp, the default
/// namespace, dimension sets naming top-level string members, metric definitions naming
/// top-level numbers or arrays of 1 to 100 numbers), and CloudWatch's units. Text after the
/// last newline is a line still being written and is left for the next read; every complete
/// line must parse, so a line cut in two fails here.
pub fn parse(output: &str) -> Vec<Emitted> {
    let complete = output.rfind('\n').map_or("", |end| &output[..end]);
    let mut emitted = Vec::new();
    for line in complete.lines().filter(|l| l.contains("\"_aws\"")) {
        let doc: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let aws = &doc["_aws"];
        let timestamp = aws["Timestamp"]
            .as_u64()
            .unwrap_or_else(|| panic!("no Timestamp: {line}"));
        assert!(
            timestamp > 1_700_000_000_000,
            "milliseconds since the epoch: {timestamp}"
        );
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert!(!directives.is_empty(), "{line}");
        for directive in directives {
            assert_eq!(
                directive["Namespace"].as_str(),
                Some(DEFAULT_NAMESPACE),
                "{line}"
            );
            let sets = directive["Dimensions"].as_array().expect("Dimensions");
            assert!(!sets.is_empty(), "every metric has its dimensions: {line}");
            for set in sets {
                let names: Vec<&str> = set
                    .as_array()
                    .expect("a set")
                    .iter()
                    .map(|n| n.as_str().expect("a name"))
                    .collect();
                assert!(names.len() <= 30, "{line}");
                for definition in directive["Metrics"].as_array().expect("Metrics") {
                    let name = definition["Name"].as_str().expect("Name");
                    let unit = definition["Unit"]
                        .as_str()
                        .expect("every metric says its unit");
                    assert!(CLOUDWATCH_UNITS.contains(&unit), "{unit}");
                    let values = match &doc[name] {
                        Value::Number(n) => vec![n.as_f64().expect("a number")],
                        Value::Array(values) => {
                            assert!(
                                !values.is_empty() && values.len() <= 100,
                                "{name}: 1 to 100 values"
                            );
                            values
                                .iter()
                                .map(|v| v.as_f64().expect("numbers"))
                                .collect()
                        }
                        other => panic!("{name} has no value: {other} in {line}"),
                    };
                    let dimensions = names
                        .iter()
                        .map(|n| {
                            let value = doc[*n]
                                .as_str()
                                .unwrap_or_else(|| panic!("dimension {n} has no value: {line}"));
                            ((*n).to_owned(), value.to_owned())
                        })
                        .collect();
                    emitted.push(Emitted {
                        name: name.to_owned(),
                        unit: unit.to_owned(),
                        dimensions,
                        values,
                    });
                }
            }
        }
    }
    emitted
}

/// Sums and sample counts over parsed metrics, by name and exact dimensions.
pub trait Tally {
    /// The sum of `name`'s values for `function` alone (`route` `None`), or by `route`.
    fn sum(&self, name: &str, function: &str, route: Option<&str>) -> f64;
    /// How many values (a histogram's samples) `name` has for `function` (by `route`).
    fn samples(&self, name: &str, function: &str, route: Option<&str>) -> usize;
    /// The sum of `name`'s values for `function` by cache `kind`.
    fn sum_by_kind(&self, name: &str, function: &str, kind: &str) -> f64;
}

impl Tally for [Emitted] {
    fn sum(&self, name: &str, function: &str, route: Option<&str>) -> f64 {
        matching(self, name, function, route.map(|r| ("Route", r)))
            .flat_map(|m| m.values.iter())
            .sum()
    }

    fn samples(&self, name: &str, function: &str, route: Option<&str>) -> usize {
        matching(self, name, function, route.map(|r| ("Route", r)))
            .map(|m| m.values.len())
            .sum()
    }

    fn sum_by_kind(&self, name: &str, function: &str, kind: &str) -> f64 {
        matching(self, name, function, Some(("Kind", kind)))
            .flat_map(|m| m.values.iter())
            .sum()
    }
}

/// The metrics `name` of `function` whose dimensions are exactly `Function` and, if given, one
/// more (`Route` or `Kind`) with its value.
fn matching<'a>(
    emitted: &'a [Emitted],
    name: &'a str,
    function: &'a str,
    other: Option<(&'a str, &'a str)>,
) -> impl Iterator<Item = &'a Emitted> {
    emitted.iter().filter(move |m| {
        let expected = 1 + usize::from(other.is_some());
        m.name == name
            && m.dimensions.len() == expected
            && m.dimensions.get("Function").map(String::as_str) == Some(function)
            && other
                .is_none_or(|(dim, value)| m.dimensions.get(dim).map(String::as_str) == Some(value))
    })
}
