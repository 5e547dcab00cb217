//! Security promises, each against a real origin and a real caje: never an
//! open proxy; no cache poisoning through a client's forwarding or override
//! headers; one user's cookies and authorised answers never handed to
//! another; admin endpoints that refuse (and do nothing) without the token,
//! are never forwarded to an origin, and never write the token to the logs.
//!
//! One file per theme: `open_proxy`, `poisoning`, `private_answers` (cookies
//! and authorised answers), `admin_token`, `admin_paths`, `logs`; `origin`
//! holds the gullible origin some of them share.

mod admin_paths;
mod admin_token;
mod logs;
mod open_proxy;
mod origin;
mod poisoning;
mod private_answers;
