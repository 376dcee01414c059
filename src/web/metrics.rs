//! `/statistics`: Tahoe's counters and stats as JSON (`?t=json`), OpenMetrics
//! (`?t=openmetrics`) or a page, plus this node's own: memory budget, commit journal, servers,
//! and latency histograms of uploads, downloads, publishes and retrieves.
//!
//! Tahoe's OpenMetrics output has no `# TYPE` lines and keeps `-` in names, which Prometheus
//! refuses; here every family has `# HELP` and `# TYPE`, names use only `[a-z0-9_]`, and
//! Tahoe's counters keep Tahoe's names (typed `gauge`, since an OpenMetrics counter's samples
//! must end in `_total`, which would rename them).

use std::collections::BTreeMap;
use std::fmt::Write;

use hyper::Response;

use crate::web::WebState;
use crate::web::activity::LATENCY_BUCKETS;
use crate::web::args::Args;
use crate::web::body::{WebBody, full, html, respond, text};
use crate::web::errors::WebError;
use crate::web::json::Json;
use crate::web::pages::{escape, layout};

/// Tahoe's `stats` dict for this node, plus ours (all numbers).
fn stats(state: &WebState) -> BTreeMap<String, f64> {
    let mut stats = BTreeMap::new();
    stats.insert("node.uptime".into(), state.activity.uptime());
    let budget = state.grid.memory_budget();
    stats.insert("lafs.memory_budget.total_bytes".into(), budget.total() as f64);
    stats.insert("lafs.memory_budget.in_use_bytes".into(), budget.in_use() as f64);
    stats.insert("lafs.memory_budget.waits".into(), budget.waits() as f64);
    let pending = state.grid.commit_queue().map_or(0, |q| q.pending_count());
    stats.insert("lafs.journal.pending_links".into(), pending as f64);
    stats.insert("lafs.servers.configured".into(), state.grid.servers().len() as f64);
    let (active, _) = state.activity.operations();
    stats.insert("lafs.operations.active".into(), active.len() as f64);
    stats
}

/// `GET|POST /statistics[?t=json|openmetrics]`.
pub fn page(state: &WebState, args: &Args) -> Result<Response<WebBody>, WebError> {
    let counters = state.activity.counters();
    let stats = stats(state);
    let json = || {
        Json::object()
            .with(
                "counters",
                Json::Object(counters.iter().map(|(k, v)| (k.clone(), Json::from(*v))).collect()),
            )
            .with(
                "stats",
                Json::Object(stats.iter().map(|(k, v)| (k.clone(), Json::from(*v))).collect()),
            )
    };
    match args.t() {
        "json" => Ok(text(json().pretty() + "\n")),
        "openmetrics" => Ok(respond(
            hyper::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            full(openmetrics(state, &counters, &stats)),
        )),
        _ => {
            let mut rows = String::new();
            for (k, v) in &counters {
                let _ = write!(rows, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
            }
            for (k, v) in &stats {
                let _ = write!(rows, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
            }
            let body = format!(
                "<h1>Node Statistics</h1><table><tr><th>name</th><th>value</th></tr>{rows}</table>\
                 <p><a href=\"statistics?t=json\">JSON</a> · <a href=\"statistics?t=openmetrics\">OpenMetrics</a></p>\
                 <h2>Raw stats:</h2><pre>{}</pre>",
                escape(&json().pretty())
            );
            Ok(html(layout("Operational Statistics", "", &body)))
        }
    }
}

/// A metric name from a Tahoe key: `prefix_` + the key with every other character as `_`.
fn metric_name(prefix: &str, key: &str) -> String {
    let mut name = String::from(prefix);
    name.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    name
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The OpenMetrics text.
pub fn openmetrics(state: &WebState, counters: &BTreeMap<String, u64>, stats: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    for (key, value) in counters {
        let name = metric_name("tahoe_counters_", key);
        let _ = write!(
            out,
            "# HELP {name} Tahoe's counter {key} (since the node started).\n# TYPE {name} gauge\n{name} {value}\n"
        );
    }
    for (key, value) in stats {
        let prefix = if key.starts_with("lafs.") { "" } else { "tahoe_stats_" };
        let name = metric_name(prefix, key);
        let _ = write!(
            out,
            "# HELP {name} {key}\n# TYPE {name} gauge\n{name} {}\n",
            number(*value)
        );
    }
    let latencies = state.activity.latencies();
    let name = "lafs_operation_duration_seconds";
    let _ = write!(
        out,
        "# HELP {name} Time from start to end of uploads, downloads, publishes and retrieves.\n# TYPE {name} histogram\n"
    );
    for kind in ["upload", "download", "publish", "retrieve"] {
        let histogram = latencies.get(kind).cloned().unwrap_or_default();
        for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}", histogram.count);
        let _ = writeln!(out, "{name}_sum{{kind=\"{kind}\"}} {}", histogram.sum);
        let _ = writeln!(out, "{name}_count{{kind=\"{kind}\"}} {}", histogram.count);
    }
    out.push_str("# EOF\n");
    out
}
