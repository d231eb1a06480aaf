//! `wss://` endpoints: the adapters' TLS trusts the system's roots and
//! nothing else. Two endpoints on 127.0.0.1 with certificates that openssl
//! makes here, each issued by a CA of its own: one CA is the only root
//! (`SSL_CERT_FILE`, which the system's root loader honours), the other is
//! unknown.
//! The first gets PCM frames; the second fails with
//! `websocket_handshake_failed`. In a test binary of its own: the roots are
//! read once per process.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Api;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use switchboard::config::Config;
use switchboard::server::Server;
use tokio_tungstenite::tungstenite::{self, Message};

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA of its own named `name` in `dir`, and a certificate it issues for
/// `localhost` and 127.0.0.1: (CA certificate, certificate, key).
fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let path = |f: &str| dir.join(format!("{name}-{f}"));
    let (ca, ca_key, cert, key, csr, ext) = (
        path("ca.crt"),
        path("ca.key"),
        path("leaf.crt"),
        path("leaf.key"),
        path("leaf.csr"),
        path("ext"),
    );
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subject = format!("/CN={name} test CA");
    let (ca_s, ca_key_s, cert_s, key_s, csr_s, ext_s) =
        (s(&ca), s(&ca_key), s(&cert), s(&key), s(&csr), s(&ext));
    let mut args = vec!["req", "-x509", "-days", "1", "-subj", subject.as_str()];
    args.extend(ec);
    args.extend(["-keyout", ca_key_s.as_str(), "-out", ca_s.as_str()]);
    openssl(&args);
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", key_s.as_str(), "-out", csr_s.as_str()]);
    openssl(&args);
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        &csr_s,
        "-CA",
        &ca_s,
        "-CAkey",
        &ca_key_s,
        "-CAcreateserial",
        "-extfile",
        &ext_s,
        "-out",
        &cert_s,
    ]);
    (ca, cert, key)
}

/// A `wss://` endpoint with this certificate; counts the binary messages
/// it gets.
fn tls_endpoint(cert: &Path, key: &Path) -> (u16, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, counted) = (config.clone(), counted.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let tls = rustls::StreamOwned::new(conn, stream);
                let Ok(mut ws) = tungstenite::accept(tls) else {
                    return;
                };
                while let Ok(m) = ws.read() {
                    if matches!(m, Message::Binary(_)) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (port, count)
}

#[test]
fn wss_endpoints_are_checked_against_the_system_roots() {
    let dir = std::env::temp_dir().join(format!("switchboard-adapters-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (trusted_ca, trusted_cert, trusted_key) = issue(&dir, "trusted");
    let (_, unknown_cert, unknown_key) = issue(&dir, "unknown");
    // The system's roots are this one CA (read on first use).
    // SAFETY: set before any thread of this test process reads the
    // environment (the server starts below).
    unsafe { std::env::set_var("SSL_CERT_FILE", &trusted_ca) };
    let (trusted, got) = tls_endpoint(&trusted_cert, &trusted_key);
    let (unknown, _) = tls_endpoint(&unknown_cert, &unknown_key);
    let mut config = Config::loopback(1);
    config.adapters.allow_local = Some(true);
    let server = Server::start(config).expect("server starts");
    let api = Api::new(&server);
    let (mut publisher, session, mid, _) = common::push_audio(&api, "mic".into(), false);
    let item = |port: u16| {
        json!({"location": "remote", "sessionId": session, "trackName": "mic",
               "endpoint": format!("wss://localhost:{port}/agent"), "outputCodec": "pcm"})
    };
    let (status, body) = api.call(
        "POST",
        "/adapters/websocket/new",
        Some(&json!({"tracks": [item(trusted), item(unknown)]}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["adapterId"].is_string(), "{body}");
    assert_eq!(
        body["tracks"][1]["errorCode"], "websocket_handshake_failed",
        "{body}"
    );
    // The trusted endpoint gets frames (3 s of packets: 50 frames a
    // second once playout starts).
    common::send_opus(&mut publisher, mid, b"tls", 150, &mut []);
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.load(Ordering::Relaxed) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        got.load(Ordering::Relaxed) >= 100,
        "{} frames over TLS",
        got.load(Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
