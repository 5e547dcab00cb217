//! `peer_fetch = "all"`: an ordinary miss asks the node that stored the
//! page last (the manifest's `peer_url`) before the origin. Never for a
//! request that already passed through a caje node (its `CDN-Loop` names
//! caje: one hop, no loops), nor for one with preconditions or a range
//! (the origin answers those as today). The manifest lookup and the peer
//! together take at most `peer_timeout`.

use actix_web::http::header::{self, HeaderName};
use actix_web::http::Method;

use super::exchange::Exchange;
use crate::actors::manifest::PageHolder;
use crate::config::{PeerFetch, CDN_LOOP_ID};
use crate::upstream::headers;
use crate::upstream::peer::{self, Peer};

/// Fields a peer's whole stored answer cannot serve as the origin would.
const OWN_TERMS: [HeaderName; 6] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
];

/// Whether this miss may be asked of a peer at all.
pub fn may_ask(x: &Exchange<'_>) -> bool {
    x.live.settings.peer_fetch == PeerFetch::All
        && *x.req.method() == Method::GET
        && !headers::looped(x.req.headers(), CDN_LOOP_ID)
        && !OWN_TERMS.iter().any(|name| x.seen.contains_key(name))
}

/// The peer's usable stored answer to a miss that [`may_ask`], when there
/// is one.
pub async fn ask(x: &Exchange<'_>) -> Option<awc::ClientResponse> {
    let settings = &x.live.settings;
    let asked = async {
        let holder = x
            .state
            .manifest
            .send(PageHolder(x.key.clone()))
            .await
            .ok()?
            .ok()??;
        let url = holder
            .peer_url
            .filter(|url| !settings.is_own_peer_url(url))?;
        let peer = Peer {
            url: &url,
            client: x.client.peers(),
            timeout: settings.peer_timeout,
            cdn_loop: &x.live.cdn_loop,
            metrics: &x.state.metrics,
        };
        peer::ask(&peer, x.key, x.seen, x.origin.admit_rules())
            .await
            .ok()
    };
    actix_web::rt::time::timeout(settings.peer_timeout, asked)
        .await
        .ok()
        .flatten()
}
