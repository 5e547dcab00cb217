//! The HTTP clients of one worker: one per origin, each with its own pool
//! (`max_connections`) and TLS config (`ca_file`, `tls_verify`), and one for
//! peers. `awc::Client` is `!Send`, so every worker builds its own from the
//! shared [`OriginLinks`] of the config in force, and builds an origin's
//! again when a reload changed how that origin is connected to.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::connector::{no_delay, origin_connector};
use super::target::RequestTarget;
use crate::config::{Origin, Settings, Transport};

/// How long establishing a connection (TCP, then TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How one origin is reached: its TLS config and the transport it was
/// built for, and its request target.
pub struct OriginLink {
    transport: Transport,
    /// The `upstream` it was built for.
    upstream: String,
    /// Used only when `upstream` is `https://`.
    config: Arc<ClientConfig>,
    target: Arc<RequestTarget>,
}

/// Each origin's link by host, shared by every worker; built at start and
/// again by each reload.
#[derive(Clone, Default)]
pub struct OriginLinks(HashMap<String, Arc<OriginLink>, foldhash::fast::FixedState>);

impl OriginLinks {
    /// Builds every origin's link; an origin with `tls_verify = false` is
    /// warned about here, once, at start.
    pub fn new(settings: &Settings) -> Self {
        Self::default().rebuilt(settings)
    }

    /// The links for `settings`: an origin reached as before keeps its link
    /// (and so every worker keeps its pool); a new or changed one gets a
    /// new one, warned about if `tls_verify = false`.
    pub fn rebuilt(&self, settings: &Settings) -> Self {
        let configs = settings
            .origins
            .iter()
            .map(|origin| {
                let kept = self.0.get(&origin.host).filter(|link| {
                    link.transport == origin.transport && link.upstream == origin.upstream
                });
                let link = match kept {
                    Some(link) => link.clone(),
                    None => {
                        if !origin.transport.tls_verify {
                            tracing::warn!(
                                origin = %origin.host,
                                upstream = %origin.upstream,
                                "tls_verify = false: the origin's certificate is NOT verified; \
                                 anyone on the path can impersonate it"
                            );
                        }
                        Arc::new(OriginLink {
                            transport: origin.transport.clone(),
                            upstream: origin.upstream.clone(),
                            config: Arc::new(tls_config(origin)),
                            target: Arc::new(RequestTarget::new(origin)),
                        })
                    }
                };
                (origin.host.clone(), link)
            })
            .collect();
        Self(configs)
    }
}

fn tls_config(origin: &Origin) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let mut config = if origin.transport.tls_verify {
        let mut roots = actix_tls::connect::rustls_0_23::webpki_roots_cert_store();
        for cert in &origin.transport.ca_certs {
            if let Err(e) = roots.add(cert.clone()) {
                tracing::warn!(origin = %origin.host, error = %e, "a certificate of ca_file is not a usable CA");
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// An origin's client and the link it was built from.
type BuiltClient = (Arc<OriginLink>, awc::Client);

/// One worker's clients (clones share them).
#[derive(Clone)]
pub struct OriginClients {
    peers: awc::Client,
    /// Each origin's client with the link it was built from: built on
    /// first use, and again once a reload gave its origin another.
    /// Keyed by configured hosts, never a client's: the fast hasher.
    origins: Rc<RefCell<HashMap<String, BuiltClient, foldhash::fast::FixedState>>>,
}

impl Default for OriginClients {
    fn default() -> Self {
        Self::new()
    }
}

impl OriginClients {
    /// A client for peers; origins' clients come as they are asked for.
    pub fn new() -> Self {
        Self {
            peers: client(awc::Connector::new().connector(no_delay()), 0),
            origins: Rc::default(),
        }
    }

    /// The client for `origin`'s requests, as `links` (of the same config
    /// as `origin`) says to connect to it, and where they go.
    pub fn origin(
        &self,
        origin: &Origin,
        links: &OriginLinks,
    ) -> (awc::Client, Arc<RequestTarget>) {
        let Some(wanted) = links.0.get(&origin.host) else {
            return (self.peers.clone(), Arc::new(RequestTarget::new(origin)));
        };
        let target = wanted.target.clone();
        let mut built = self.origins.borrow_mut();
        if let Some((made_for, client)) = built.get(&origin.host) {
            if Arc::ptr_eq(made_for, wanted) {
                return (client.clone(), target);
            }
        }
        let https = wanted.upstream.starts_with("https://");
        let config = https.then(|| wanted.config.clone());
        let connector = awc::Connector::new().connector(origin_connector(config));
        let made = client(connector, wanted.transport.max_connections);
        // Origins a reload removed go, with their pools.
        built.retain(|host, _| links.0.contains_key(host));
        built.insert(origin.host.clone(), (wanted.clone(), made.clone()));
        (made, target)
    }

    /// The client for requests to peer nodes.
    pub fn peers(&self) -> &awc::Client {
        &self.peers
    }
}

/// A client that adds no headers of its own and follows no redirects, so the
/// client sees exactly what the origin said; `limit` 0 keeps awc's default.
fn client<S, Io>(connector: awc::Connector<S>, limit: usize) -> awc::Client
where
    S: actix_service::Service<
            actix_tls::connect::ConnectInfo<awc::http::Uri>,
            Response = actix_tls::connect::Connection<awc::http::Uri, Io>,
            Error = actix_tls::connect::ConnectError,
        > + Clone
        + 'static,
    Io: actix_web::rt::net::ActixStream + std::fmt::Debug + 'static,
{
    let mut connector = connector.timeout(CONNECT_TIMEOUT);
    if limit > 0 {
        connector = connector.limit(limit);
    }
    awc::Client::builder()
        .no_default_headers()
        .disable_redirects()
        .connector(connector)
        .finish()
}

/// `tls_verify = false`: any certificate is accepted, though the handshake's
/// signatures are still checked (so the session is at least encrypted).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
