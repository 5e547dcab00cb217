//! The node's JSON answers as tables and sentences for people. Only the
//! fields shown are read; `--json` prints the answer as the node sent it.

use serde::Deserialize;
use serde_json::Value;

use super::error::CliError;

#[derive(Deserialize)]
struct Health {
    status: String,
    version: String,
    uptime_seconds: u64,
    role: Option<String>,
    primary: Option<String>,
    manifest: Option<String>,
    manifest_waiting_for: Option<String>,
    #[serde(default)]
    not_answering: Vec<String>,
}

#[derive(Deserialize)]
struct List {
    node: Node,
    page: usize,
    per_page: usize,
    cache: Cache,
    manifest: Manifest,
    populator: Populator,
}

#[derive(Deserialize)]
struct Node {
    role: String,
    manifest: String,
    version: String,
    uptime_seconds: u64,
}

#[derive(Deserialize)]
struct Cache {
    total: usize,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    host: String,
    path: String,
    size: u64,
    stored_at: String,
    ttl: u64,
    fresh: bool,
}

#[derive(Deserialize)]
struct Manifest {
    total: usize,
    pages: Vec<Page>,
}

#[derive(Deserialize)]
struct Page {
    method: String,
    host: String,
    path: String,
    last_seen: String,
    times_stored: i64,
    here: bool,
}

#[derive(Deserialize)]
struct Populator {
    queued: i64,
    in_flight: i64,
    fetched: u64,
    failed: u64,
    last_run: Option<String>,
}

#[derive(Deserialize)]
struct Purged {
    url: Option<String>,
    tag: Option<String>,
    soft: bool,
    purged: u64,
    logged: bool,
}

#[derive(Deserialize)]
struct Populated {
    queued: Vec<String>,
    already_in_flight: usize,
    cache_full: bool,
}

#[derive(Deserialize)]
struct Cleared {
    removed_entries: u64,
}

#[derive(Deserialize)]
struct Reloaded {
    file: String,
    origins: usize,
    restart_needed: Vec<String>,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, answer: &Value) -> Result<T, CliError> {
    T::deserialize(answer).map_err(|e| CliError::BadAnswer(format!("{what}: {e}")))
}

pub fn health(answer: &Value) -> Result<String, CliError> {
    let h: Health = parse("health", answer)?;
    let mut out = format!(
        "status    {}\nversion   {}\nuptime    {}\n",
        h.status,
        h.version,
        uptime(h.uptime_seconds)
    );
    if let Some(role) = h.role {
        out += &format!("role      {role}");
        if let Some(primary) = h.primary {
            out += &format!(" (primary: {primary})");
        }
        out.push('\n');
    }
    if let Some(manifest) = h.manifest {
        out += &format!("manifest  {manifest}");
        if let Some(waiting) = h.manifest_waiting_for {
            out += &format!(" ({waiting})");
        }
        out.push('\n');
    }
    if !h.not_answering.is_empty() {
        out += &format!("not answering: {}\n", h.not_answering.join(", "));
    }
    Ok(out)
}

pub fn list(answer: &Value) -> Result<String, CliError> {
    let l: List = parse("list", answer)?;
    let n = &l.node;
    let mut out = format!(
        "node: {} (manifest {}), caje {}, up {}\n\n",
        n.role,
        n.manifest,
        n.version,
        uptime(n.uptime_seconds)
    );
    out += &format!(
        "cache: {} entr{} (page {}, {} per page)\n",
        l.cache.total,
        if l.cache.total == 1 { "y" } else { "ies" },
        l.page,
        l.per_page
    );
    let rows = l.cache.entries.iter().map(|e| {
        vec![
            e.host.clone(),
            e.path.clone(),
            e.size.to_string(),
            e.stored_at.clone(),
            format!("{}s", e.ttl),
            if e.fresh { "fresh" } else { "stale" }.to_owned(),
        ]
    });
    out += &table(&["HOST", "PATH", "SIZE", "STORED", "TTL", "STATE"], rows);
    out += &format!("\nmanifest: {} page(s)\n", l.manifest.total);
    let rows = l.manifest.pages.iter().map(|p| {
        vec![
            p.method.clone(),
            p.host.clone(),
            p.path.clone(),
            p.times_stored.to_string(),
            p.last_seen.clone(),
            if p.here { "yes" } else { "no" }.to_owned(),
        ]
    });
    out += &table(
        &["METHOD", "HOST", "PATH", "STORED", "LAST SEEN", "HERE"],
        rows,
    );
    let p = &l.populator;
    out += &format!(
        "\npopulator: {} queued, {} in flight, {} fetched, {} failed, last run {}\n",
        p.queued,
        p.in_flight,
        p.fetched,
        p.failed,
        p.last_run.as_deref().unwrap_or("never")
    );
    Ok(out)
}

pub fn purge(answer: &Value) -> Result<String, CliError> {
    let p: Purged = parse("purge", answer)?;
    let target = match (p.url, p.tag) {
        (Some(url), _) => url,
        (None, Some(tag)) => format!("tag {tag}"),
        (None, None) => "?".to_owned(),
    };
    let how = if p.soft {
        "soft-purged (marked for revalidation)"
    } else {
        "purged"
    };
    let logged = if p.logged {
        "logged for every node"
    } else {
        "NOT logged for the other nodes"
    };
    Ok(format!(
        "{how} {} stored response(s) for {target}; {logged}\n",
        p.purged
    ))
}

pub fn populate(answer: &Value) -> Result<String, CliError> {
    let p: Populated = parse("populate", answer)?;
    let mut out = format!(
        "queued {} page(s), {} already in flight\n",
        p.queued.len(),
        p.already_in_flight
    );
    for url in &p.queued {
        out += &format!("  {url}\n");
    }
    if p.cache_full {
        out += "the cache is nearly full: nothing more was queued\n";
    }
    Ok(out)
}

pub fn clear_cache(answer: &Value) -> Result<String, CliError> {
    let c: Cleared = parse("clear-cache", answer)?;
    Ok(format!(
        "removed {} entr{} from the node's file cache\n",
        c.removed_entries,
        if c.removed_entries == 1 { "y" } else { "ies" }
    ))
}

pub fn reload(answer: &Value) -> Result<String, CliError> {
    let r: Reloaded = parse("reload", answer)?;
    let mut out = format!(
        "reloaded {}: {} origin(s); new requests use it\n",
        r.file, r.origins
    );
    if !r.restart_needed.is_empty() {
        out += &format!(
            "changed, but kept until a restart: {}\n",
            r.restart_needed.join(", ")
        );
    }
    Ok(out)
}

fn uptime(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

/// Left-aligned columns two spaces apart; `(none)` for no rows.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    if rows.is_empty() {
        return "  (none)\n".to_owned();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["a.test".to_owned(), "/long/path".to_owned()],
            vec!["b".to_owned(), "/".to_owned()],
        ];
        assert_eq!(
            table(&["HOST", "PATH"], rows.into_iter()),
            "HOST    PATH\na.test  /long/path\nb       /\n"
        );
        assert_eq!(table(&["HOST"], std::iter::empty()), "  (none)\n");
    }

    #[test]
    fn an_answer_missing_a_field_is_a_bad_answer() {
        let error = purge(&serde_json::json!({ "purged": 1 })).unwrap_err();
        assert_eq!(error.exit_code(), super::super::error::exit::NODE_FAILED);
    }
}
