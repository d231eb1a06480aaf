//! The adapters' WebSocket client: which endpoints may be reached, and
//! the connection to one.
//!
//! An endpoint is an application's URL (`ws://` or `wss://`); the server
//! opens the connection, so the URL must not point it at itself or at its
//! host's private side: names are resolved here, and an endpoint with any
//! address on loopback, link-local, unspecified, multicast or one of the
//! server's own addresses is refused (`websocket_localhost_not_allowed`)
//! unless local endpoints are allowed (`--adapters-allow-local-endpoints`,
//! or the embedded dev app). The connection goes to an address that was
//! checked (no second lookup). TLS uses the system's roots; redirects are
//! not followed (a 3xx is a failed handshake); no custom headers.
//!
//! Where it sits: the adapter tasks call [`connect`] when an adapter opens
//! (and egress again when it reconnects); everything runs on the adapter
//! runtime.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::client::ItemError;
use super::packet::MAX_MESSAGE;

/// An open adapter WebSocket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TCP connect, per address tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Resolving, connecting and handshakes together, at most.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(12);
/// The kernel's send buffer of an adapter's TCP connection (bytes).
pub const SEND_BUFFER: usize = 256 * 1024;
/// TLS and WebSocket handshakes together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// An endpoint URL the API accepted: `ws://` or `wss://`, a host, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given.
    pub url: String,
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses an endpoint; `None` unless it is `ws://` or `wss://` with a
    /// host (calls-api.md: `^wss?://`, else 406 `invalid_params`).
    pub fn parse(url: &str) -> Option<Endpoint> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else {
            (false, url.strip_prefix("ws://")?)
        };
        if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return None; // no credentials in the authority
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port(tls),
                None => return None,
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().ok()?),
                None => (authority.to_owned(), default_port(tls)),
            }
        };
        if host.is_empty() || port == 0 {
            return None;
        }
        Some(Endpoint {
            url: url.to_owned(),
            host,
            port,
        })
    }
}

fn default_port(tls: bool) -> u16 {
    if tls { 443 } else { 80 }
}

/// Which addresses an endpoint may have.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Loopback, link-local and the server's own addresses are allowed.
    pub allow_local: bool,
    /// The server's own addresses (bound and announced).
    pub own: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Whether the server may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        if self.allow_local {
            return true;
        }
        let local = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        !local && !self.own.contains(&ip)
    }
}

/// Resolves the endpoint and checks every address it has.
pub async fn resolve(
    endpoint: &Endpoint,
    policy: &AddressPolicy,
) -> Result<Vec<SocketAddr>, ItemError> {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::lookup_host((host, endpoint.port)),
    )
    .await
    {
        Ok(Ok(a)) => a.take(16).collect(),
        Ok(Err(e)) => {
            return Err(ItemError::new(
                "websocket_handshake_failed",
                format!("cannot resolve {host}: {e}"),
            ));
        }
        Err(_) => {
            return Err(ItemError::new(
                "websocket_connection_timeout",
                format!("resolving {host} timed out"),
            ));
        }
    };
    if addrs.is_empty() {
        return Err(ItemError::new(
            "websocket_handshake_failed",
            format!("{host} has no address"),
        ));
    }
    if let Some(bad) = addrs.iter().find(|a| !policy.permits(a.ip())) {
        return Err(ItemError::new(
            "websocket_localhost_not_allowed",
            format!("{} is a local address of this server", bad.ip()),
        ));
    }
    Ok(addrs)
}

/// The TLS configuration: the system's roots, aws-lc-rs.
fn tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::aws_lc_rs::default_provider(),
                    ))
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .expect("TLS 1.3 is supported by aws-lc-rs")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
                });
            Arc::new(config)
        })
        .clone()
}

/// The frame and message limits of an adapter socket.
fn limits() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .max_write_buffer_size(8 << 20)
}

/// Opens the WebSocket: resolves and checks the endpoint, connects to the
/// first address that answers, and shakes hands; within [`TOTAL_TIMEOUT`]
/// whatever the number of addresses.
pub async fn connect(endpoint: &Endpoint, policy: &AddressPolicy) -> Result<Socket, ItemError> {
    tokio::time::timeout(TOTAL_TIMEOUT, connect_within(endpoint, policy))
        .await
        .unwrap_or_else(|_| {
            Err(ItemError::new(
                "websocket_connection_timeout",
                format!("no WebSocket within {} s", TOTAL_TIMEOUT.as_secs()),
            ))
        })
}

async fn connect_within(endpoint: &Endpoint, policy: &AddressPolicy) -> Result<Socket, ItemError> {
    let addrs = resolve(endpoint, policy).await?;
    let mut last = ItemError::new("websocket_connection_timeout", "no address answered");
    for addr in addrs {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = ItemError::new("websocket_handshake_failed", format!("{addr}: {e}"));
                continue;
            }
            Err(_) => {
                last = ItemError::new(
                    "websocket_connection_timeout",
                    format!(
                        "{addr}: no connection within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                );
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // What a stuck endpoint can hold in the kernel for us.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
        let connector = if endpoint.url.starts_with("wss://") {
            Connector::Rustls(tls())
        } else {
            Connector::Plain
        };
        let handshake = tokio_tungstenite::client_async_tls_with_config(
            endpoint.url.as_str(),
            stream,
            Some(limits()),
            Some(connector),
        );
        return match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(e)) => Err(ItemError::new("websocket_handshake_failed", e.to_string())),
            Err(_) => Err(ItemError::new(
                "websocket_connection_timeout",
                format!(
                    "no WebSocket handshake within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            )),
        };
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_ws_urls_with_a_host() {
        for ok in [
            "ws://example.com/x?token=1",
            "wss://a.b:8443",
            "ws://[::1]:9/p",
            "ws://10.0.0.1",
        ] {
            assert!(Endpoint::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "ws://",
            "ws://:80/x",
            "ws://user:pw@host/",
            "ws://host:99999",
            "ws://host:0",
            "ws://ho st/",
            "WS://host",
            "ws://[::1/",
        ] {
            assert!(Endpoint::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Endpoint::parse("wss://a").unwrap().port, 443);
    }

    #[test]
    fn local_and_own_addresses_are_refused_unless_allowed() {
        let own: IpAddr = "203.0.113.7".parse().unwrap();
        let strict = AddressPolicy {
            allow_local: false,
            own: vec![own],
        };
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "203.0.113.7",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!strict.permits(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["93.184.216.34", "10.1.2.3", "2001:db8::1"] {
            assert!(strict.permits(ok.parse().unwrap()), "{ok}");
        }
        let loose = AddressPolicy {
            allow_local: true,
            own: vec![own],
        };
        assert!(loose.permits("127.0.0.1".parse().unwrap()));
        assert!(!loose.permits("0.0.0.0".parse().unwrap()));
    }
}
