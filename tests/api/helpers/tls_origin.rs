//! An HTTPS origin on loopback: a certificate made by a test CA (`rcgen`),
//! served with rustls; it counts the TCP connections it accepts and keeps
//! the SNI name and request head of each request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority made for one test, written as a PEM file.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "caje test CA");
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write CA");
        Self { cert, key, dir }
    }

    /// The CA's certificate as a PEM file, for `ca_file`.
    pub fn pem_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `name`, signed by this CA.
    fn issue(&self, name: &str) -> CertifiedKey {
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))
            .expect("signing key");
        CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signing)
    }
}

/// Serves one certificate whatever the name asked, noting each name.
#[derive(Debug)]
struct SniRecorder {
    key: Arc<CertifiedKey>,
    names: Arc<Mutex<Vec<Option<String>>>>,
}

impl ResolvesServerCert for SniRecorder {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.names
            .lock()
            .expect("sni lock")
            .push(hello.server_name().map(str::to_owned));
        Some(self.key.clone())
    }
}

pub struct TlsOrigin {
    pub port: u16,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// The SNI name of each TLS handshake (`None`: no SNI sent).
    pub sni: Arc<Mutex<Vec<Option<String>>>>,
    /// The head of each request received over TLS.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// Each answer waits for a permit here when the origin is gated.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl TlsOrigin {
    /// The upstream URL by name (`localhost`), so that SNI is sent.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads lock").clone()
    }
}

/// An HTTPS origin with a certificate for `name` from `ca`; it answers each
/// request (kept alive) with `hello`, cacheable for a minute.
pub async fn spawn_tls_origin(ca: &TestCa, name: &str) -> TlsOrigin {
    spawn(ca, name, None, HELLO).await
}

/// The same, but each answer waits for a permit the test adds to `gate`.
pub async fn spawn_gated_tls_origin(ca: &TestCa, name: &str) -> TlsOrigin {
    spawn(
        ca,
        name,
        Some(Arc::new(tokio::sync::Semaphore::new(0))),
        HELLO,
    )
    .await
}

/// The same, answering each request with the exact bytes of `answer`.
pub async fn spawn_tls_origin_answering(
    ca: &TestCa,
    name: &str,
    answer: &'static [u8],
) -> TlsOrigin {
    spawn(ca, name, None, answer).await
}

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\
                       Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

async fn spawn(
    ca: &TestCa,
    name: &str,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    answer: &'static [u8],
) -> TlsOrigin {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let sni = Arc::new(Mutex::new(Vec::new()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniRecorder {
            key: Arc::new(ca.issue(name)),
            names: sni.clone(),
        }));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind TLS origin");
    let port = listener.local_addr().expect("addr").port();
    let (connections, heads) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let (accepted, seen, gated) = (connections.clone(), heads.clone(), gate.clone());
    actix_web::rt::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, seen, gated) = (acceptor.clone(), seen.clone(), gated.clone());
            actix_web::rt::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                loop {
                    let head = read_head(&mut tls).await;
                    if head.is_empty() {
                        return;
                    }
                    seen.lock().expect("heads lock").push(head);
                    if let Some(gate) = &gated {
                        gate.acquire().await.expect("gate open").forget();
                    }
                    if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    TlsOrigin {
        port,
        connections,
        sni,
        heads,
        gate,
    }
}

async fn read_head<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return String::new(),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
