//! A manifest database read from outside caje, as an operator would.

use std::path::Path;

#[derive(diesel::QueryableByName)]
struct IntegrityRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

#[derive(diesel::QueryableByName)]
struct PathRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    path_and_query: String,
}

/// Opens a SQLite database from outside caje, as an operator would.
fn open_db(db: &Path) -> diesel::SqliteConnection {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string())
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut conn)
        .expect("busy_timeout");
    conn
}

/// SQLite's `PRAGMA integrity_check` of a database: `"ok"` when sound.
pub fn integrity_check(db: &Path) -> String {
    use diesel::RunQueryDsl;
    let rows: Vec<IntegrityRow> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut open_db(db))
        .expect("integrity_check runs");
    rows.into_iter()
        .map(|r| r.integrity_check)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The paths (with query) of every page of a manifest database.
pub fn manifest_paths(db: &Path) -> std::collections::HashSet<String> {
    use diesel::RunQueryDsl;
    let rows: Vec<PathRow> = diesel::sql_query("SELECT path_and_query FROM pages")
        .load(&mut open_db(db))
        .expect("pages readable");
    rows.into_iter().map(|r| r.path_and_query).collect()
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The id of the newest purge logged in a manifest database (0 when none).
pub fn last_purge_id(db: &Path) -> i64 {
    newest_purge(&mut open_db(db))
}

fn newest_purge(conn: &mut diesel::SqliteConnection) -> i64 {
    use diesel::RunQueryDsl;
    let row: IdRow = diesel::sql_query("SELECT coalesce(max(id), 0) AS id FROM purges")
        .get_result(conn)
        .expect("purges readable");
    row.id
}

/// Logs a purge of `path` on `host` in a manifest database, as another
/// node does (or as LiteFS lands another region's); answers its id.
pub fn log_purge_as_another_node(db: &Path, host: &str, path: &str) -> i64 {
    use diesel::RunQueryDsl;
    let mut conn = open_db(db);
    diesel::sql_query(
        "INSERT INTO purges (kind, host, target, soft, created_at) VALUES ('url', ?, ?, 0, 0)",
    )
    .bind::<diesel::sql_types::Text, _>(host)
    .bind::<diesel::sql_types::Text, _>(path)
    .execute(&mut conn)
    .expect("purge logged");
    newest_purge(&mut conn)
}

/// Lists a page of `host` in a manifest database as stored by another
/// node (as LiteFS lands another region's rows).
pub fn store_page_as_another_node(db: &Path, host: &str, path: &str, node: &str) {
    use diesel::RunQueryDsl;
    let mut conn = open_db(db);
    diesel::sql_query(
        "INSERT INTO pages (method, host, path_and_query, first_seen, last_seen, times_stored, seq, stored_by) \
         VALUES ('GET', ?, ?, 0, 0, 1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pages), ?)",
    )
    .bind::<diesel::sql_types::Text, _>(host)
    .bind::<diesel::sql_types::Text, _>(path)
    .bind::<diesel::sql_types::Text, _>(node)
    .execute(&mut conn)
    .expect("page listed");
}
