//! How an origin connection is made: TCP (with `TCP_NODELAY`), TLS over it
//! for an `https://` origin, and [`OriginIo`] over both, so that what awc
//! reads is the plain HTTP/1.1 it can parse. caje makes the TLS connection
//! itself rather than letting awc do it, because awc would put its TLS
//! above any reader it is given; awc is then asked in `http://` terms
//! (see `target`) on a connection that is TLS underneath.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_service::{Service, ServiceExt};
use actix_tls::connect::rustls_0_23::reexports::AsyncTlsStream;
use actix_tls::connect::rustls_0_23::TlsConnector;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use actix_web::http::Uri;
use actix_web::rt::net::{ActixStream, Ready, TcpStream};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::origin_io::OriginIo;

type TcpConnection = Connection<Uri, TcpStream>;

/// An origin connection under [`OriginIo`].
#[derive(Debug)]
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<AsyncTlsStream<TcpStream>>),
}

/// Connections to one origin: TLS with `tls` when it is `https://`.
pub fn origin_connector(
    tls: Option<Arc<ClientConfig>>,
) -> impl Service<
    ConnectInfo<Uri>,
    Response = Connection<Uri, OriginIo<Transport>>,
    Error = ConnectError,
> + Clone {
    no_delay().and_then(actix_service::fn_service(move |tcp: TcpConnection| {
        let tls = tls.clone();
        async move {
            let Some(config) = tls else {
                let (stream, connection) = tcp.replace_io(());
                return Ok(connection
                    .replace_io(OriginIo::new(Transport::Plain(stream)))
                    .1);
            };
            // Its error carries the rustls error, so a failed handshake is
            // reported as a TLS failure.
            let secured = TlsConnector::service(config)
                .call(tcp)
                .await
                .map_err(ConnectError::Io)?;
            let (stream, connection) = secured.replace_io(());
            let transport = Transport::Tls(Box::new(stream));
            Ok(connection.replace_io(OriginIo::new(transport)).1)
        }
    }))
}

/// The TCP connector under every connection, TLS or not: origin connections
/// carry request / answer pairs too, so a streamed request body's small last
/// write must not wait for the origin's delayed ACK.
pub fn no_delay(
) -> impl Service<ConnectInfo<Uri>, Response = TcpConnection, Error = ConnectError> + Clone {
    actix_tls::connect::Connector::new(actix_tls::connect::Resolver::default())
        .service()
        .map(set_no_delay)
}

fn set_no_delay(connection: TcpConnection) -> TcpConnection {
    if let Err(e) = connection.io_ref().set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on an origin connection");
    }
    connection
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl ActixStream for Transport {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        match self {
            Self::Plain(s) => ActixStream::poll_read_ready(s, cx),
            Self::Tls(s) => ActixStream::poll_read_ready(s.get_ref().0, cx),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        match self {
            Self::Plain(s) => ActixStream::poll_write_ready(s, cx),
            Self::Tls(s) => ActixStream::poll_write_ready(s.get_ref().0, cx),
        }
    }
}
