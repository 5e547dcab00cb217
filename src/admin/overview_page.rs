//! The HTML of `GET /_caje/`: the history's samples travel in a `data-`
//! attribute (maud escapes it) and the page's own nonce-marked script
//! draws them as inline SVG charts. Nothing is loaded from anywhere else:
//! the page's CSP would refuse it, and an operator's browser may have no
//! route to the internet anyway.

use std::time::{Duration, UNIX_EPOCH};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::overview::OverviewView;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f4f4f4}td.num{text-align:right}.here{color:#070}\
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1em 2em}\
figure{margin:0}figcaption{font-weight:600;margin-bottom:.25em}\
svg.chart{width:100%;height:auto;background:#fafafa;border:1px solid #ddd}";

/// Draws each chart from `#history`'s samples. A sample's missing value
/// (no request, no origin answer in its interval) breaks the line instead
/// of drawing a zero. Each chart says what it drew in `data-points` (values
/// plotted) and `data-max` (the largest value), for tests and people alike.
const SCRIPT: &str = r#"
const NS = 'http://www.w3.org/2000/svg';
const NAMED = { hit: '#1e8449', 'uri-miss': '#c0392b', miss: '#e67e22', 'vary-miss': '#8e44ad', stale: '#d68910', collapsed: '#2874a6', 'mean ms': '#2874a6', 'p95 ms': '#c0392b', 'hit ratio %': '#1e8449' };
const PALETTE = ['#7d3c98', '#17a589', '#566573', '#b9770e', '#cb4335', '#1f618d', '#af7ac5', '#45b39d'];
const W = 640, H = 200, L = 50, R = 12, B = 22;
/// The time axis spans at least this much, so the first samples do not
/// stretch across the whole chart.
const MIN_SPAN_MS = 120000;

function add(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  parent.appendChild(e);
  return e;
}
function label(svg, x, y, text, anchor, fill) {
  add('text', { x, y, 'text-anchor': anchor, 'font-size': 11, 'font-family': 'sans-serif', fill: fill || '#555' }, svg).textContent = text;
}
function fmt(v) {
  return v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
function span(ms) {
  return ms >= 120000 ? Math.round(ms / 60000) + ' min ago' : Math.round(ms / 1000) + ' s ago';
}
/// The smallest 1, 2 or 5 × 10^k at or above `v`.
function nice(v) {
  const step = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 5, 10].map((m) => m * step).find((n) => n >= v);
}

function draw(svg, series, fixedMax) {
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const colors = series.map((s, i) => NAMED[s.name] || PALETTE[i % PALETTE.length]);
  // The legend first: its rows decide where the plot starts.
  let legendX = L, legendY = 14;
  series.forEach((s, i) => {
    const width = 24 + s.name.length * 6.5;
    if (legendX > L && legendX + width > W - R) {
      legendX = L;
      legendY += 15;
    }
    add('rect', { x: legendX, y: legendY - 9, width: 10, height: 10, fill: colors[i] }, svg);
    label(svg, legendX + 14, legendY, s.name, 'start', '#222');
    legendX += width;
  });
  const T = legendY + 14;
  const times = series.flatMap((s) => s.points.map((p) => p[0]));
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
  const top = values.length ? Math.max(...values) : 0;
  const max = fixedMax || (top > 0 ? nice(top) : 1);
  const t1 = Math.max(...times), t0 = Math.min(Math.min(...times), t1 - MIN_SPAN_MS);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - T - B);
  add('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999' }, svg);
  add('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }, svg);
  add('line', { x1: L, y1: T, x2: W - R, y2: T, stroke: '#e4e4e4' }, svg);
  label(svg, L - 6, T + 4, fmt(max), 'end');
  label(svg, L - 6, H - B + 4, '0', 'end');
  if (times.length) {
    label(svg, L, H - 6, span(t1 - t0), 'start');
    label(svg, W - R, H - 6, 'now', 'end');
  }
  let drawn = 0;
  series.forEach((s, i) => {
    let run = [];
    const flush = () => {
      if (run.length === 1) {
        const [cx, cy] = run[0].split(',');
        add('circle', { cx, cy, r: 2.5, fill: colors[i] }, svg);
      } else if (run.length > 1) {
        add('polyline', { points: run.join(' '), fill: 'none', stroke: colors[i], 'stroke-width': 1.8 }, svg);
      }
      run = [];
    };
    for (const [t, v] of s.points) {
      if (v === null) {
        flush();
      } else {
        run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
        drawn += 1;
      }
    }
    flush();
  });
  if (!values.length) label(svg, W / 2, (T + H - B) / 2, 'no data yet', 'middle');
  svg.dataset.points = String(drawn);
  svg.dataset.max = String(top);
}

document.addEventListener('DOMContentLoaded', () => {
  const box = document.getElementById('history');
  const samples = JSON.parse(box.dataset.samples);
  const interval = Number(box.dataset.interval) || 1;
  const keys = (pick) => [...new Set(samples.flatMap((s) => Object.keys(pick(s))))].sort();
  const over = (value) => samples.map((s) => [s.at_ms, value(s)]);
  draw(document.getElementById('chart-requests'),
    keys((s) => s.requests).map((k) => ({ name: k, points: over((s) => (s.requests[k] || 0) / interval) })));
  draw(document.getElementById('chart-hit-ratio'),
    [{ name: 'hit ratio %', points: over((s) => (s.hit_ratio === null ? null : s.hit_ratio * 100)) }], 100);
  draw(document.getElementById('chart-latency'), [
    { name: 'mean ms', points: over((s) => (s.origin_ms ? s.origin_ms.mean : null)) },
    { name: 'p95 ms', points: over((s) => (s.origin_ms ? s.origin_ms.p95 : null)) },
  ]);
  draw(document.getElementById('chart-mailbox'),
    keys((s) => s.mailbox).map((k) => ({ name: k, points: over((s) => s.mailbox[k] ?? 0) })));
});
"#;

fn http_date(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

/// `refresh`: reload the page every so many seconds (a navigation, as the
/// admin endpoints' reads must be).
pub fn render(view: &OverviewView, refresh: Option<u64>, nonce: &str) -> String {
    let samples = serde_json::to_string(&view.samples).unwrap_or_else(|_| "[]".to_owned());
    let minutes = (view.samples.len() as u64 * view.interval_seconds).div_ceil(60);
    let regions = &view.regions;
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // No favicon: the browser would ask the proxy for one.
                link rel="icon" href="data:,";
                @if let Some(seconds) = refresh { meta http-equiv="refresh" content=(seconds); }
                title { "caje: overview" }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
                script nonce=(nonce) { (PreEscaped(SCRIPT)) }
            }
            body {
                h1 { "caje " small { (view.node.version) } }
                p {
                    a id="to-list" href="/_caje/list" { "Cache, manifest and actions" }
                    " · "
                    @if refresh.is_some() {
                        a href="/_caje/" { "Stop refreshing" }
                    } @else {
                        a id="auto-refresh" href="/_caje/?refresh=10" { "Refresh every 10 s" }
                    }
                }
                p id="node" {
                    "Role: " strong id="role" { (view.node.role.role) }
                    @if let Some(primary) = &view.node.role.primary { " (primary: " (primary) ")" }
                    " · up " (view.node.uptime_seconds) " s"
                }
                // The charts span two minutes at least (MIN_SPAN_MS).
                h2 { "The last " (minutes.max(2)) " minutes" }
                p {
                    "One sample every " (view.interval_seconds) " s; "
                    span id="sample-count" { (view.samples.len()) }
                    @if view.samples.len() == 1 { " sample" } @else { " samples" }
                    " so far. Reload to see newer ones."
                }
                div id="history" data-samples=(samples) data-interval=(view.interval_seconds) {}
                div.charts {
                    figure {
                        figcaption { "Requests per second, by cache status" }
                        svg.chart id="chart-requests" role="img" aria-label="requests per second by cache status" {}
                    }
                    figure {
                        figcaption { "Hit ratio (%)" }
                        svg.chart id="chart-hit-ratio" role="img" aria-label="hit ratio" {}
                    }
                    figure {
                        figcaption { "Origin latency to the response head (ms)" }
                        svg.chart id="chart-latency" role="img" aria-label="origin latency" {}
                    }
                    figure {
                        figcaption { "Mailbox depth, by actor" }
                        svg.chart id="chart-mailbox" role="img" aria-label="mailbox depth by actor" {}
                    }
                }
                h2 { "Actors" }
                table id="actors" {
                    tr { th { "actor" } th { "messages waiting now" } }
                    @for (actor, depth) in &view.actors {
                        tr { td { (actor) } td.num { (depth) } }
                    }
                }
                h2 { "Regions" }
                p id="lag" {
                    @match regions.lag_seconds {
                        None => { "This node is standalone (no LiteFS): nothing to replicate." }
                        Some(lag) if lag < 0.0 => { "This node's initial replication has not finished." }
                        Some(lag) => { "This node's replication lag: " strong { (format!("{lag:.3}")) " s" } }
                    }
                }
                p {
                    "Nodes by the pages of the shared manifest they stored last; "
                    "recent: stored in the last " (regions.recent_seconds / 60) " minutes."
                }
                table id="regions" {
                    tr { th { "node" } th { "pages" } th { "recent" } th { "last stored" } }
                    @for node in &regions.nodes {
                        @let name = node.stored_by.as_deref().unwrap_or("(unrecorded)");
                        tr {
                            @if node.stored_by.as_deref() == Some(regions.this_node.as_str()) {
                                td.node.here { (name) " (this node)" }
                            } @else {
                                td.node { (name) }
                            }
                            td.num.pages { (node.pages) }
                            td.num.recent { (node.recent) }
                            td { (http_date(node.last_stored_ms)) }
                        }
                    }
                }
            }
        }
    };
    markup.into_string()
}
