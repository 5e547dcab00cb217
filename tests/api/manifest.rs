//! Every stored response records or touches its row in the manifest.

use caje::actors::manifest;
use diesel::prelude::*;

use crate::helpers::{spawn_app, spawn_origin, HOST};

#[actix_web::test]
async fn stored_pages_are_recorded_in_the_sqlite_file() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    app.get("/cache/m1").await;
    app.get("/cache/m2?q=1").await;
    app.get("/no-store").await;

    let pages = app.pages(2).await;
    let mut urls: Vec<&str> = pages.iter().map(|p| p.path_and_query.as_str()).collect();
    urls.sort();
    assert_eq!(urls, ["/cache/m1", "/cache/m2?q=1"]);
    assert!(pages.iter().all(|p| p.host == HOST && p.method == "GET"));
    assert!(pages.iter().all(|p| p.times_stored == 1));

    // Read the file itself, through a connection of our own.
    let mut conn = manifest::connect(&app.dir.path().join("manifest.db")).expect("open");
    let (count, tables): (i64, i64) = (
        caje::schema::pages::table
            .count()
            .get_result(&mut conn)
            .expect("count"),
        diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "SELECT count(*) FROM sqlite_master WHERE name = '__diesel_schema_migrations'",
        )
        .get_result(&mut conn)
        .expect("migrations table"),
    );
    assert_eq!((count, tables), (2, 1));
}

#[actix_web::test]
async fn storing_again_touches_the_row() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    app.get("/max-age/1/again").await;
    let first = app.pages(1).await;
    crate::helpers::eventually(|| async {
        let reply = app.get("/max-age/1/again").await;
        reply.cache_status().contains("fwd=stale").then_some(())
    })
    .await;
    let touched = crate::helpers::eventually(|| async {
        let pages = app.pages(1).await;
        (pages[0].times_stored == 2).then_some(pages)
    })
    .await;
    assert_eq!(touched.len(), 1);
    assert_eq!(touched[0].first_seen, first[0].first_seen);
    assert!(touched[0].last_seen >= first[0].last_seen);
}

#[test]
fn nodes_preparing_a_fresh_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("manifest.db");
    let litefs = manifest::LiteFsWrites::new(
        caje::config::LiteFsMode::Off,
        &database,
        std::time::Duration::from_secs(1),
    );
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    manifest::prepare(&database, &litefs)
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .expect("no panic")
                .expect("every node finds the database ready");
        }
    });
}
