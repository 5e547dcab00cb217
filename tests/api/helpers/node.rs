//! A caje node inside the test process: `Application` on port 0 over its own
//! temp directory, with handles on its actors for what the test inspects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caje::actors::cache_store::{CacheStore, GetCacheStats};
use caje::actors::manifest::{ListPages, Manifest, Page};
use caje::actors::populator::Populator;
use caje::actors::Mailbox;
use caje::config::{Origin, Settings};
use caje::startup::Application;
use tempfile::TempDir;

use super::{admin_request, eventually, init_logging, request, test_client, Reply, TestOrigin};

/// A caje node on port 0, with its own cache directory and database.
pub struct TestApp {
    pub port: u16,
    /// The private metrics listener's port, when `metrics_listen` is set.
    pub metrics_port: Option<u16>,
    /// Shared with any node restarted over the same directory.
    pub dir: Arc<TempDir>,
    origins: Vec<Origin>,
    pub cache: Mailbox<CacheStore>,
    pub manifest: Mailbox<Manifest>,
    pub populator: Mailbox<Populator>,
    pub metrics: Arc<caje::metrics::Metrics>,
    pub client: awc::Client,
}

/// The host name tests use for the main test origin.
pub const HOST: &str = "site.test";

/// caje in front of `origin` for [`HOST`].
pub async fn spawn_app(origin: &TestOrigin) -> TestApp {
    spawn_app_with(vec![(HOST, origin.url(), Duration::from_secs(10))]).await
}

/// caje with the given (host, upstream, timeout) origins.
pub async fn spawn_app_with(origins: Vec<(&str, String, Duration)>) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let origins = origins
        .into_iter()
        .map(|(host, upstream, timeout)| Origin {
            timeout,
            ..Origin::new(host, upstream)
        })
        .collect();
    spawn_node(origins, dir, |_| {}).await
}

/// caje in front of the given origins, configured in full by the test.
/// and settings adjusted by `adjust`.
pub async fn spawn_app_for(origins: Vec<Origin>, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_node(origins, dir, adjust).await
}

/// caje in front of `origin` for [`HOST`], over a directory prepared by the
/// test, with settings adjusted by `adjust`.
pub async fn spawn_app_in(
    origin: &TestOrigin,
    dir: Arc<TempDir>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let origins = vec![Origin {
        timeout: Duration::from_secs(10),
        ..Origin::new(HOST, origin.url())
    }];
    spawn_node(origins, dir, adjust).await
}

async fn spawn_node(
    origins: Vec<Origin>,
    dir: Arc<TempDir>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    init_logging();
    let mut settings = Settings::with_origins(origins.clone());
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.cache_dir = dir.path().join("cache");
    settings.database = dir.path().join("manifest.db");
    settings.litefs = caje::config::LiteFsMode::Off;
    settings.workers = Some(2);
    // The populator runs only when a test asks: a run at a random moment
    // would fetch pages behind the test's back.
    settings.populate_interval = Duration::from_secs(3600);
    // Likewise change-driven sync: tests of it turn it on.
    settings.sync_interval = Duration::ZERO;
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("caje starts");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let cache = app.cache();
    let manifest = app.manifest();
    let populator = app.populator();
    let metrics = app.metrics();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        metrics_port,
        dir,
        origins,
        cache,
        manifest,
        populator,
        metrics,
        client: test_client(),
    }
}

/// The admin token of nodes started by [`spawn_admin_app`].
pub const TOKEN: &str = "test-admin-token-0123456789";

/// caje in front of `origin` with the admin token [`TOKEN`] set.
pub async fn spawn_admin_app(origin: &TestOrigin) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(origin, dir, |s| s.admin_token = Some(TOKEN.to_owned())).await
}
impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Another node started over this node's cache directory and database,
    /// as after a restart.
    pub async fn restarted(&self) -> TestApp {
        spawn_node(self.origins.clone(), self.dir.clone(), |_| {}).await
    }

    /// Where the entry for `path` on [`HOST`] (no `Vary`) lives.
    pub fn entry_path(&self, path: &str) -> PathBuf {
        let key = caje::cache::CacheKey::new("GET", HOST, path);
        let name = caje::cache::VariantKey::new(&key, &vec![]).file_name();
        self.cache_dir().join(&name[..2]).join(name)
    }

    /// GET `path` for [`HOST`] with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", HOST, path, headers).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[]).await
    }

    /// An admin request: `token` as a bearer token, `json` as the body.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<serde_json::Value>,
    ) -> Reply {
        admin_request(&self.client, &self.url(path), method, token, json).await
    }

    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        request(&self.client, &self.url(path), method, host, headers).await
    }

    /// Waits until the store has committed `n` entries in all.
    pub async fn stored(&self, n: u64) {
        eventually(|| async {
            let stats = self.cache.send(GetCacheStats).await.expect("cache store");
            (stats.stored >= n).then_some(())
        })
        .await
    }

    /// Waits until the manifest holds `n` pages, and returns them.
    pub async fn pages(&self, n: usize) -> Vec<Page> {
        eventually(|| async {
            match self.manifest.send(ListPages::all()).await {
                Ok(Ok(list)) if list.pages.len() >= n => Some(list.pages),
                _ => None,
            }
        })
        .await
    }
}
