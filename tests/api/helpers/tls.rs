//! An https front for a test server. The `oauth2` crate sends RFC 7009 revocations only to https
//! URLs (RFC 7009 §2 requires TLS), as a deployment behind a TLS-terminating proxy would serve
//! them: this front terminates TLS with a fresh self-signed certificate and forwards the bytes to
//! the server's plain port.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TlsFront {
    /// `https://localhost:PORT`
    pub address: String,
    /// The front's certificate, for a client to trust.
    pub certificate: reqwest::Certificate,
}

/// Terminate TLS on a port of the system's choosing and forward each connection to `port`.
pub async fn tls_front(port: u16) -> TlsFront {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a self-signed certificate");
    let der = issued.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_pair.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("a TLS server configuration");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the front");
    let front = listener.local_addr().expect("front address").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(("127.0.0.1", port)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront {
        address: format!("https://localhost:{front}"),
        certificate: reqwest::Certificate::from_der(&der).expect("the front's certificate"),
    }
}
