//! The settings a reload cannot change: what the listeners, the actors and
//! the admin session store were built with at start. A reloaded file
//! keeps their running values, and the ones it changed are named so the
//! operator knows a restart is needed. Every other setting (the origins
//! with all their keys, and the per-request limits) is taken from the
//! file as it is, so a key added to the config reloads without a change here.

use crate::config::Settings;

/// Gives `new` the running value of every start-only setting, and names
/// those whose value in `new` differed. `port` is the port the node
/// listens on (a `peer_url` ending in `:0` names it once running).
pub(super) fn keep_start_only(
    running: &Settings,
    new: &mut Settings,
    port: u16,
) -> Vec<&'static str> {
    new.peer_url = new
        .peer_url
        .take()
        .map(|url| crate::startup::with_port(url, port));
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident),+ $(,)?) => {$(
            if new.$field != running.$field {
                changed.push(stringify!($field));
                new.$field = running.$field.clone();
            }
        )+};
    }
    keep!(
        listen,
        metrics_listen,
        cache_dir,
        database,
        litefs,
        workers,
        manifest_batch_window,
        halt_timeout,
        populate_interval,
        sync_interval,
        purge_poll_interval,
        shutdown_timeout,
        populate_concurrency,
        max_size,
        memory_cache_size,
        memory_cache_max_object,
        client_request_timeout,
        admin_session_lifetime,
        client_scheme_header,
        node_name,
        peer_url,
    );
    // Not file settings: what the node was started with stays.
    new.admin_token = running.admin_token.clone();
    new.manifest_page_size = running.manifest_page_size;
    new.populate_pending = running.populate_pending;
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_only_settings_keep_their_running_values_and_are_named() {
        let running = Settings::with_origins(Vec::new());
        let mut new = running.clone();
        new.listen = "127.0.0.1:9999".parse().expect("addr");
        new.cache_dir = "/elsewhere".into();
        new.max_request_body = 1;
        new.admin_token = Some("from-the-environment".to_owned());
        let changed = keep_start_only(&running, &mut new, 3001);
        assert_eq!(changed, ["listen", "cache_dir"]);
        assert_eq!(new.listen, running.listen);
        assert_eq!(new.cache_dir, running.cache_dir);
        assert_eq!(new.admin_token, running.admin_token);
        // A live setting is the file's.
        assert_eq!(new.max_request_body, 1);
    }

    #[test]
    fn a_peer_url_on_port_0_is_the_running_one() {
        let mut running = Settings::with_origins(Vec::new());
        running.peer_url = Some("http://10.0.0.1:4242".to_owned());
        let mut new = running.clone();
        new.peer_url = Some("http://10.0.0.1:0".to_owned());
        assert!(keep_start_only(&running, &mut new, 4242).is_empty());
    }
}
