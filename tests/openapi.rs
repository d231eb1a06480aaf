//! The server conforms to docs/openapi.yaml: schemathesis (PyPI; an
//! independent property-based API tester, installed by tools/test) drives
//! every operation against a live server with generated valid and invalid
//! requests, following the spec's links from sessions/new to the session
//! routes, and checks every response: no 5xx, a documented status, JSON,
//! the documented headers and body schema, invalid data refused, auth
//! enforced. Bounded: 25 examples per operation, a fixed seed. The adapter
//! routes run apart: they answer 503 when every item failed, as documented.

use std::process::Command;

use switchboard::config::{AppConfig, Config};
use switchboard::server::Server;

const APP: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "openapi-test-secret";

#[test]
fn the_server_conforms_to_its_openapi_description() {
    let report = schemathesis(&[
        "--exclude-path-regex",
        "/adapters/websocket/",
        "--checks",
        "all",
    ]);
    assert!(
        report.contains("not_a_server_error"),
        "checks ran:\n{report}"
    );
}

/// The adapter routes answer 503 when every item failed (the service's
/// rule), which the generated requests mostly do (their endpoints are
/// nowhere): every check but "no 5xx" holds, the 503 among them must be
/// documented (`status_code_conformance`) and carry its documented body.
#[test]
fn the_adapter_routes_conform_to_their_openapi_description() {
    let report = schemathesis(&[
        "--include-path-regex",
        "/adapters/websocket/",
        "--checks",
        "all",
        "--exclude-checks",
        "not_a_server_error",
    ]);
    assert!(
        report.contains("status_code_conformance")
            && report.contains("response_schema_conformance"),
        "checks ran:\n{report}"
    );
}

/// Runs schemathesis on docs/openapi.yaml against a live server with
/// `selection` (which operations, which checks); its report.
fn schemathesis(selection: &[&str]) -> String {
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
        .args(selection)
        .args([
            "--stateful=links",
            "--hypothesis-max-examples",
            "25",
            "--hypothesis-seed",
            "1",
            "--hypothesis-derandomize",
            "--no-color",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // WHIP/WHEP bodies are SDP text (tests/openapi_hooks.py).
        .env("SCHEMATHESIS_HOOKS", "openapi_hooks")
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
        .output()
        .expect("schemathesis (tools/test installs it: pip install schemathesis)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    report
}
