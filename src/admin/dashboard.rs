//! The HTML of `/_caje/list`: a small dashboard whose buttons call the admin
//! endpoints with the session cookie and the session's CSRF token. maud
//! escapes every value, so a URL from the manifest cannot inject markup;
//! the page's CSP runs only its own nonce-marked script, which attaches the
//! buttons' handlers (no inline `onclick`).

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::list::ListView;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f4f4f4}.stale,.missing{color:#a40}.fresh,.here{color:#070}\
button{margin-right:.5em}#result{background:#f8f8f8;padding:.5em;min-height:1.5em}";

/// Posts to an admin endpoint with the CSRF token from the page's `<meta>`
/// and shows its answer in `#result` (reload the page to see the tables
/// change); a network failure is shown too.
const SCRIPT: &str = r#"
async function act(path, body) {
  const out = document.getElementById('result');
  out.textContent = 'working…';
  delete out.dataset.done;
  const csrf = document.querySelector('meta[name="caje-csrf"]').content;
  const init = { method: 'POST', credentials: 'same-origin', headers: { 'X-Caje-Csrf': csrf } };
  if (body) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  try {
    const res = await fetch(path, init);
    const text = await res.text();
    let shown = text;
    try {
      const data = JSON.parse(text);
      if (path.endsWith('/populate')) {
        shown = 'queued ' + data.queued.length + ' page(s)' + (data.queued.length ? ': ' + data.queued.join(' ') : '');
      } else { shown = JSON.stringify(data); }
    } catch (e) {}
    out.textContent = res.status + ' ' + shown;
  } catch (e) {
    out.textContent = 'failed: ' + e;
  }
  out.dataset.done = '1';
}
document.addEventListener('DOMContentLoaded', () => {
  for (const button of document.querySelectorAll('button[data-action]')) {
    button.addEventListener('click', () => {
      if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
      act(button.dataset.action);
    });
  }
  document.getElementById('purge').addEventListener('click', () => {
    const url = document.getElementById('purge-url').value;
    if (url) act('/_caje/purge', { url });
  });
});
"#;

/// `csrf`: the session's token, for the buttons and the logout form;
/// `nonce`: the one the page's CSP names.
pub fn render(view: &ListView, csrf: &str, nonce: &str) -> String {
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // No favicon: the browser would ask the proxy for one.
                link rel="icon" href="data:,";
                meta name="caje-csrf" content=(csrf);
                title { "caje: " (view.node.role.role) }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
                script nonce=(nonce) { (PreEscaped(SCRIPT)) }
            }
            body {
                h1 { "caje " small { (view.node.version) } }
                p { a id="to-overview" href="/_caje/" { "Overview: charts and regions" } }
                form method="post" action="/_caje/logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    button id="logout" type="submit" { "Log out" }
                }
                p id="node" {
                    "Role: " strong id="role" { (view.node.role.role) }
                    @if let Some(primary) = &view.node.role.primary { " (primary: " (primary) ")" }
                    " · up " (view.node.uptime_seconds) " s"
                }
                h2 { "Populator" }
                p id="populator" {
                    "queued " span id="queued" { (view.populator.queued) }
                    " · in flight " (view.populator.in_flight)
                    " · fetched " span id="fetched" { (view.populator.fetched) }
                    " · failed " (view.populator.failed)
                    " · deferred " (view.populator.deferred)
                    " · runs " (view.populator.runs)
                    " · last run " (view.populator.last_run.as_deref().unwrap_or("never"))
                }
                p {
                    button id="populate" type="button" data-action="/_caje/populate" { "Populate now" }
                    button id="clear-fs" type="button" data-action="/_caje/clear_fs" data-confirm="Empty this node's file cache?" { "Clear file cache" }
                    button id="clear-db" type="button" data-action="/_caje/clear_db" data-confirm="Empty the manifest of every region?" { "Clear manifest" }
                    input id="purge-url" type="url" placeholder="http://host/path" size="40";
                    button id="purge" type="button" { "Purge URL" }
                }
                pre id="result" {}
                h2 { "File cache (" span id="cache-total" { (view.cache.total) } " entries)" }
                table id="entries" {
                    tr { th { "host" } th { "path" } th { "size" } th { "stored" } th { "ttl" } th { "state" } }
                    @for e in &view.cache.entries {
                        tr {
                            td { (e.host) } td.path { (e.path) } td { (e.size) } td { (e.stored_at) } td { (e.ttl) " s" }
                            @if e.fresh { td.fresh { "fresh" } } @else { td.stale { "stale" } }
                        }
                    }
                }
                h2 { "Manifest (" span id="manifest-total" { (view.manifest.total) } " pages, shared by every region)" }
                table id="pages" {
                    tr { th { "method" } th { "host" } th { "path" } th { "first seen" } th { "last seen" } th { "stored" } th { "here" } }
                    @for p in &view.manifest.pages {
                        tr {
                            td { (p.method) } td { (p.host) } td.path { (p.path) } td { (p.first_seen) } td { (p.last_seen) } td { (p.times_stored) }
                            @if p.here { td.here { "yes" } } @else { td.missing { "missing" } }
                        }
                    }
                }
                p {
                    @if view.page > 1 {
                        a href={ "?page=" (view.page - 1) "&per_page=" (view.per_page) } { "← previous" } " "
                    }
                    "page " (view.page) " "
                    @if view.page * view.per_page < view.cache.total.max(view.manifest.total) {
                        a href={ "?page=" (view.page + 1) "&per_page=" (view.per_page) } { "next →" }
                    }
                }
            }
        }
    };
    markup.into_string()
}
