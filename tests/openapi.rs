//! The server conforms to docs/openapi.yaml: schemathesis (PyPI; an
//! independent property-based API tester, installed by tools/test) drives
//! every operation against a live server with generated valid and invalid
//! requests, following the spec's links from sessions/new to the session
//! routes, and checks every response: no 5xx, a documented status, JSON,
//! the documented headers and body schema, invalid data refused, auth
//! enforced. Bounded: 25 examples per operation, a fixed seed.

use std::process::Command;

use switchboard::config::{AppConfig, Config};
use switchboard::server::Server;

const APP: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "openapi-test-secret";

#[test]
fn the_server_conforms_to_its_openapi_description() {
    let mut config = Config::loopback(1);
    config.apps = vec![AppConfig {
        id: APP.into(),
        secret: SECRET.into(),
    }];
    let server = Server::start(config).expect("server");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let out = Command::new("schemathesis")
        .args(["run", spec, "--experimental=openapi-3.1", "--base-url"])
        .arg(format!("http://{}/v1/apps/{APP}", server.http_addr))
        .args(["-H", &format!("Authorization: Bearer {SECRET}")])
        .args([
            "--checks",
            "all",
            "--stateful=links",
            "--hypothesis-max-examples",
            "25",
            "--hypothesis-seed",
            "1",
            "--hypothesis-derandomize",
            "--no-color",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("schemathesis (tools/test installs it: pip install schemathesis)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    assert!(
        report.contains("not_a_server_error"),
        "checks ran:\n{report}"
    );
}
