//! The config in force, read by every request and swapped whole by a
//! reload: a request (or a populator fetch) takes one [`Snapshot`] and
//! keeps it to its end, so it never mixes two configs.

use std::sync::{Arc, Mutex};

use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwap;

use crate::config::Settings;
use crate::upstream::OriginLinks;

/// One config: the settings, how each of their origins is reached, and
/// what every origin request carries, made once rather than per request.
pub struct Snapshot {
    pub settings: Arc<Settings>,
    pub links: OriginLinks,
    /// This node's `CDN-Loop` member (`Settings::cdn_loop`).
    pub cdn_loop: HeaderValue,
}

impl Snapshot {
    fn new(settings: Arc<Settings>, links: OriginLinks) -> Self {
        Self {
            cdn_loop: settings.cdn_loop(),
            settings,
            links,
        }
    }
}

/// The handle on the config in force; clones share it.
#[derive(Clone)]
pub struct LiveConfig {
    current: Arc<ArcSwap<Snapshot>>,
    /// Held while a new snapshot is built from the one in force, so two
    /// reloads at once never build from the same one.
    replacing: Arc<Mutex<()>>,
}

impl LiveConfig {
    pub fn new(settings: Arc<Settings>) -> Self {
        let links = OriginLinks::new(&settings);
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::new(settings, links))),
            replacing: Arc::default(),
        }
    }

    /// The config in force now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.current.load().settings.clone()
    }

    /// Puts the settings `change` makes of the ones in force in their
    /// place; requests that start afterwards use them.
    pub(super) fn replace<T>(&self, change: impl FnOnce(&Settings) -> (Settings, T)) -> T {
        // A panic elsewhere cannot leave the `()` inconsistent.
        let _one_at_a_time = self
            .replacing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let running = self.current.load_full();
        let (settings, answer) = change(&running.settings);
        let links = running.links.rebuilt(&settings);
        self.current
            .store(Arc::new(Snapshot::new(Arc::new(settings), links)));
        answer
    }
}
