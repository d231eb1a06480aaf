//! The TURN keys API (calls-api.md, "TURN credentials") against a real
//! redis-server as coturn's user store: credentials in coturn's REST scheme,
//! checked with independent tools (openssl's HMAC-SHA1, Python's MD5);
//! each issued username's long-term key written with its expiry, deleted on
//! revoke; the WHIP `Link` headers carry such credentials; bad keys, tokens
//! and parameters get their documented statuses.
//!
//! Needs redis-server, openssl and python3 (`tools/test` installs them).

mod common;

use std::process::{Command, Stdio};

use common::cluster::{REDIS_PASSWORD, free_tcp_port, redis, start_redis};
use common::http::{delete, post_sdp, request};
use serde_json::{Value, json};
use switchboard::config::{Config, TurnConfig};
use switchboard::server::Server;

const KEY_ID: &str = "turnkey1";
const KEY_TOKEN: &str = "turn-key-token-for-the-test";
const SECRET: &str = "turn-rest-secret";
const REALM: &str = "switchboard.test";

fn turn_server(redis_port: u16) -> Server {
    let mut config = Config::loopback(1);
    config.turn = Some(TurnConfig {
        host: "turn.example.test".into(),
        port: 3478,
        tls_port: Some(5349),
        realm: REALM.into(),
        secret: SECRET.into(),
        redis: format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0"),
        key_id: KEY_ID.into(),
        key_token: KEY_TOKEN.into(),
    });
    Server::start(config).expect("server")
}

fn post(server: &Server, path: &str, token: &str, body: Option<&Value>) -> (u16, String) {
    let url = format!("http://{}{path}", server.http_addr);
    let (content_type, body) = match body {
        Some(b) => (Some("application/json"), b.to_string()),
        None => (None, String::new()),
    };
    let r = request("POST", &url, token, content_type, None, &body);
    (r.status, r.body)
}

fn credentials_path(what: &str) -> String {
    format!("/v1/turn/keys/{KEY_ID}/credentials/{what}")
}

/// base64(HMAC-SHA1(SECRET, username)), by openssl.
fn openssl_rest_credential(username: &str) -> String {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "openssl dgst -sha1 -binary -hmac \"$1\" | openssl base64 -A",
            "sh",
            SECRET,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(username.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// MD5(username:realm:password) as hex, by Python.
fn python_long_term_key(username: &str, password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(':'.join(sys.argv[1:]).encode()).hexdigest())",
            username,
            REALM,
            password,
        ])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn user_key(username: &str) -> String {
    format!("turn/realm/{REALM}/user/{username}/key")
}

fn redis_port_and_process() -> (u16, common::cluster::Process) {
    let port = free_tcp_port();
    (port, start_redis(port))
}

#[test]
fn credentials_follow_the_rest_scheme_and_live_in_the_user_store() {
    let (port, _redis) = redis_port_and_process();
    let server = turn_server(port);
    let (status, body) = post(
        &server,
        &credentials_path("generate-ice-servers"),
        KEY_TOKEN,
        Some(&json!({"ttl": 600, "customIdentifier": "alice"})),
    );
    assert_eq!(status, 201, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let servers = body["iceServers"].as_array().expect("iceServers");
    assert_eq!(servers[0], json!({"urls": ["stun:turn.example.test:3478"]}));
    assert_eq!(
        servers[1]["urls"],
        json!([
            "turn:turn.example.test:3478?transport=udp",
            "turn:turn.example.test:3478?transport=tcp",
            "turns:turn.example.test:5349?transport=tcp",
        ])
    );
    let username = servers[1]["username"].as_str().unwrap().to_owned();
    let credential = servers[1]["credential"].as_str().unwrap().to_owned();
    // {expiry}:{customIdentifier}.{random}, the expiry 600 s from now.
    let (expiry, rest) = username.split_once(':').unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 595..=now + 605).contains(&expiry), "{username}");
    assert!(rest.starts_with("alice."), "{username}");
    assert_eq!(credential, openssl_rest_credential(&username));
    // coturn's user store holds the long-term key until the expiry.
    assert_eq!(
        redis(port, &["GET", &user_key(&username)]),
        python_long_term_key(&username, &credential)
    );
    let ttl: u64 = redis(port, &["TTL", &user_key(&username)]).parse().unwrap();
    assert!((590..=600).contains(&ttl), "TTL {ttl}");

    // The legacy route: one entry with every URL.
    let (status, body) = post(&server, &credentials_path("generate"), KEY_TOKEN, None);
    assert_eq!(status, 201, "{body}");
    let legacy: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(legacy["iceServers"]["urls"].as_array().unwrap().len(), 4);
    let legacy_user = legacy["iceServers"]["username"]
        .as_str()
        .unwrap()
        .to_owned();
    let default_ttl: u64 = redis(port, &["TTL", &user_key(&legacy_user)])
        .parse()
        .unwrap();
    assert!(
        (86_390..=86_400).contains(&default_ttl),
        "default ttl {default_ttl}"
    );

    // Revoke: 204, the key is gone; again: 204.
    let revoke = credentials_path(&format!("{username}/revoke"));
    assert_eq!(post(&server, &revoke, KEY_TOKEN, None).0, 204);
    assert_eq!(redis(port, &["EXISTS", &user_key(&username)]), "0");
    assert_eq!(post(&server, &revoke, KEY_TOKEN, None).0, 204);
    assert_eq!(redis(port, &["EXISTS", &user_key(&legacy_user)]), "1");
}

#[test]
fn keys_tokens_and_parameters_are_checked() {
    let (port, _redis) = redis_port_and_process();
    let server = turn_server(port);
    let generate = credentials_path("generate-ice-servers");
    let ok = json!({"ttl": 60});
    assert_eq!(post(&server, &generate, "wrong", Some(&ok)).0, 401);
    assert_eq!(post(&server, &generate, "", Some(&ok)).0, 401);
    let other_key = "/v1/turn/keys/nokey/credentials/generate-ice-servers";
    assert_eq!(post(&server, other_key, KEY_TOKEN, Some(&ok)).0, 404);
    for bad in [
        json!({"ttl": 0}),
        json!({"ttl": 172_801}),
        json!({"ttl": 60, "customIdentifier": "a:b"}),
        json!({"ttl": 60, "customIdentifier": "x".repeat(65)}),
    ] {
        let (status, body) = post(&server, &generate, KEY_TOKEN, Some(&bad));
        assert_eq!(status, 406, "{bad}: {body}");
        assert!(body.contains("invalid_params"), "{body}");
    }
    assert_eq!(
        post(&server, &generate, KEY_TOKEN, Some(&json!({"ttl": "x"}))).0,
        400
    );
    // A revoke names only a username of our shape (nothing else reaches Redis).
    for bad in ["nocolon", "1:a%2Fb", "1:a%20b", "x1:abc"] {
        let path = credentials_path(&format!("{bad}/revoke"));
        assert_eq!(post(&server, &path, KEY_TOKEN, None).0, 406, "{bad}");
    }
    assert_eq!(redis(port, &["DBSIZE"]), "0", "nothing was written");
    // A server without TURN has no TURN keys.
    let plain = common::server(1);
    assert_eq!(post(&plain, &generate, KEY_TOKEN, Some(&ok)).0, 404);
}

#[test]
fn the_user_store_down_is_503_and_whip_goes_on_without_links() {
    // A user store nobody listens on.
    let server = turn_server(free_tcp_port());
    let (status, body) = post(
        &server,
        &credentials_path("generate-ice-servers"),
        KEY_TOKEN,
        Some(&json!({"ttl": 60})),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("temporarily_unavailable_error"), "{body}");
    let (status, links, _) = whip_links(&server);
    assert_eq!(status, 201, "WHIP works without TURN credentials");
    assert!(links.is_empty(), "{links:?}");
}

/// A str0m broadcaster's WHIP POST to `server`: the status, the `Link`s
/// and the `Location`.
fn whip_links(server: &Server) -> (u16, Vec<String>, String) {
    let (app, secret) = server.app();
    let mut peer = common::Peer::new("broadcaster");
    let (offer, _pending) = peer.offer(|s| {
        s.add_media(
            str0m::media::MediaKind::Audio,
            str0m::media::Direction::SendOnly,
            None,
            None,
            None,
        );
    });
    let url = format!("http://{}/v1/apps/{app}/whip/links", server.http_addr);
    let r = post_sdp(&url, secret, &offer);
    let links = r.all("link").into_iter().map(str::to_owned).collect();
    let location = r.header("location").unwrap_or_default().to_owned();
    (r.status, links, location)
}

#[test]
fn whip_answers_carry_ice_server_links_with_stored_credentials() {
    let (port, _redis) = redis_port_and_process();
    let server = turn_server(port);
    let (status, links, location) = whip_links(&server);
    assert_eq!(status, 201);
    assert_eq!(links.len(), 4, "{links:?}");
    assert_eq!(
        links[0],
        "<stun:turn.example.test:3478>; rel=\"ice-server\""
    );
    let turn = &links[1];
    assert!(turn.starts_with(
        "<turn:turn.example.test:3478?transport=udp>; rel=\"ice-server\"; username=\""
    ));
    assert!(turn.ends_with("; credential-type=\"password\""), "{turn}");
    let field = |name: &str| {
        let start = turn.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        turn[start..].split('"').next().unwrap().to_owned()
    };
    let (username, credential) = (field("username"), field("credential"));
    assert_eq!(credential, openssl_rest_credential(&username));
    assert_eq!(
        redis(port, &["GET", &user_key(&username)]),
        python_long_term_key(&username, &credential)
    );
    let ttl: u64 = redis(port, &["TTL", &user_key(&username)]).parse().unwrap();
    assert!(
        (3590..=3600).contains(&ttl),
        "Link credentials last 1 h: {ttl}"
    );
    // Deleting the session revokes them.
    let (_, secret) = server.app();
    let r = delete(&format!("http://{}{location}", server.http_addr), secret);
    assert_eq!(r.status, 200);
    assert_eq!(redis(port, &["EXISTS", &user_key(&username)]), "0");
}
