//! The Grafana dashboard (`deploy/grafana/caje.json`) cannot drift from the
//! code: every metric its PromQL names is one a real node exports, every
//! query filters on the dashboard's app / region / instance variables, and
//! (with promtool installed) every query parses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::helpers::{spawn_app_in, spawn_origin, HOST, TOKEN};

const DASHBOARD: &str = "deploy/grafana/caje.json";

fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every query of the dashboard: the panels' targets (rows' nested panels
/// too), as (panel title, PromQL).
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The PromQL of the template variables' queries: `label_values(expr, label)`
/// gives `expr`, `query_result(expr)` gives `expr`.
fn variable_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let name = format!("${}", var["name"].as_str().unwrap_or("?"));
        let query = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str())
            .unwrap_or_else(|| panic!("{name} has no query"));
        let inner = |f: &str| {
            query
                .trim()
                .strip_prefix(f)
                .and_then(|q| q.strip_suffix(')'))
                .map(str::to_owned)
        };
        let expr = if let Some(args) = inner("label_values(") {
            match args.rsplit_once(',') {
                Some((expr, _label)) => expr.to_owned(),
                None => continue, // label_values(label): no metric named
            }
        } else if let Some(expr) = inner("query_result(") {
            expr
        } else {
            query.to_owned()
        };
        out.push((name, expr));
    }
    out
}

/// Words after which a parenthesised list holds label names, not series.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Aggregations, which may come before their `by (…)` instead of a `(`.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// PromQL words that are neither functions nor metrics.
const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];

/// The metric names a PromQL expression selects: identifiers outside
/// strings, label matchers `{…}`, ranges `[…]` and grouping lists `by (…)`,
/// that are not function calls, keywords or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Strings, label matchers and ranges removed.
    let mut plain = String::new();
    let (mut quote, mut escaped, mut depth) = (None, false, 0i32);
    for c in expr.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth > 0 => {}
            _ => plain.push(c),
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' || c.is_ascii_digit() || c == '.' {
            // A variable or a number (`0.99`, `1e3`, `5m`): skipped whole.
            i += 1;
            while i < chars.len() && (word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && word(chars[i]) {
            i += 1;
        }
        let ident: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        let call = chars.get(next) == Some(&'(');
        if GROUPING.contains(&ident.as_str()) {
            if call {
                // Skip the label list up to its closing parenthesis.
                i = next;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
            }
            continue;
        }
        let lower = ident.to_ascii_lowercase();
        if call || KEYWORDS.contains(&lower.as_str()) || AGGREGATIONS.contains(&lower.as_str()) {
            continue;
        }
        names.insert(ident);
    }
    names
}

/// The families of a Prometheus text exposition, by name, with their type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// The names of `used` that no family of `exported` provides (a histogram's
/// `_bucket`, `_sum` and `_count` series count as its family).
fn missing(used: &BTreeSet<String>, exported: &BTreeMap<String, String>) -> Vec<String> {
    used.iter()
        .filter(|name| {
            if exported.contains_key(name.as_str()) {
                return false;
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix));
            !family.is_some_and(|f| {
                exported
                    .get(f)
                    .is_some_and(|kind| kind == "histogram" || kind == "summary")
            })
        })
        .cloned()
        .collect()
}

#[test]
fn the_extractor_finds_metrics_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (le, origin) (rate(caje_origin_seconds_bucket{app=~"$app", status!="x y"}[$__rate_interval])))
        / on (instance) group_left (region) sum without (le) (caje_a_total offset 5m) * 1e3
        + time() - max(caje_b{role="primary"}) > bool 0 or vector(0) and caje_c"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        [
            "caje_a_total",
            "caje_b",
            "caje_c",
            "caje_origin_seconds_bucket"
        ]
    );
    let exported = families(
        "# TYPE caje_origin_seconds histogram\n# TYPE caje_a_total counter\n# TYPE caje_b gauge\n",
    );
    let used = metric_names(expr);
    assert_eq!(missing(&used, &exported), ["caje_c"]);
    // A counter's `_count` is no series of its own.
    let counted: BTreeSet<String> = ["caje_a_total_count".to_owned()].into();
    assert_eq!(missing(&counted, &exported), ["caje_a_total_count"]);
}

#[actix_web::test]
async fn every_metric_the_dashboard_uses_is_exported_by_a_node() {
    let board = dashboard();
    let mut queries = panel_queries(&board);
    assert!(queries.len() >= 20, "{} panel queries", queries.len());
    // Every panel query can be narrowed to a region and a node.
    for (title, expr) in &queries {
        for filter in [
            "app=~\"$app\"",
            "region=~\"$region\"",
            "instance=~\"$instance\"",
        ] {
            assert!(expr.contains(filter), "{title}: no {filter} in {expr}");
        }
    }
    let variables: BTreeSet<&str> = board["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        variables,
        ["app", "datasource", "instance", "region"].into(),
        "the variables the README names"
    );
    queries.extend(variable_queries(&board));
    let mut used = BTreeSet::new();
    for (_, expr) in &queries {
        used.extend(metric_names(expr));
    }

    // A real node, with traffic enough that the labelled series appear:
    // misses, hits, an origin error, a populator run.
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        s.admin_token = Some(TOKEN.to_owned());
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    app.get("/cache/g").await;
    app.stored(1).await;
    app.get("/cache/g").await;
    app.get("/status/500").await;
    app.pages(1).await;
    let populate = app
        .admin("POST", "/_caje/populate", Some(TOKEN), None)
        .await;
    assert_eq!(populate.status, 200, "{}", populate.body);
    // Labelled families a lone test node never reports, given a series the
    // way the code reporting them does: peer requests (no peers here), the
    // LiteFS role (LiteFS off) and actor errors (none happened).
    let metrics = &app.metrics;
    metrics
        .proxy
        .peer_requests
        .with_label_values(&["used"])
        .inc_by(0);
    metrics.manifest.role.with_label_values(&["primary"]).set(1);
    metrics.actors.meter("grafana_test").error("probe");

    let url = format!(
        "http://127.0.0.1:{}/_caje/metrics",
        app.metrics_port.expect("a metrics listener")
    );
    let scraped = crate::helpers::request(&app.client, &url, "GET", HOST, &[]).await;
    assert_eq!(scraped.status, 200);
    let exported = families(&scraped.body);
    assert!(exported.len() > 20, "{}", scraped.body);

    let missing = missing(&used, &exported);
    assert!(
        missing.is_empty(),
        "{DASHBOARD} uses metrics caje does not export: {missing:?}\nexported: {:?}",
        exported.keys().collect::<Vec<_>>()
    );
    // The dashboard covers what the README promises it shows.
    for name in [
        "caje_requests_total",
        "caje_origin_seconds_bucket",
        "caje_origin_requests_total",
        "caje_body_bytes_total",
        "caje_actor_mailbox_depth",
        "caje_actor_handle_seconds_bucket",
        "caje_actor_errors_total",
        "caje_populator_queued",
        "caje_manifest_batches_total",
        "caje_litefs_halt_wait_seconds_bucket",
        "caje_litefs_halt_hold_seconds_bucket",
        "caje_litefs_lag_seconds",
        "caje_sync_ticks_total",
        "caje_sync_changes_total",
        "caje_peer_requests_total",
    ] {
        assert!(used.contains(name), "no panel shows {name}");
    }
}

/// With promtool installed (`.ci/run` installs it), every query parses as
/// PromQL once Grafana's variables are filled in.
#[test]
fn every_dashboard_query_parses() {
    let board = dashboard();
    let mut queries = panel_queries(&board);
    queries.extend(variable_queries(&board));
    let mut rules = String::from("groups:\n  - name: caje_dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        let filled = expr
            .replace("$__rate_interval", "5m")
            .replace("$app", ".*")
            .replace("$region", ".*")
            .replace("$instance", ".*");
        let quoted = serde_json::to_string(&filled).expect("a JSON string is a YAML string");
        rules.push_str(&format!(
            "      - record: caje_dashboard_query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard_rules.yml");
    std::fs::write(&file, rules).expect("write rules");
    match std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("promtool not run ({e}); .ci/run installs it"),
    }
}
