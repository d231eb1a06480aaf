//! The flags of `switchboard [serve]` (each also read from the environment
//! as `SWITCHBOARD_*`) and the TOML file's shape; [`super::Config::load`]
//! resolves them over defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// `switchboard [serve]` flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (same keys as the flags, plus [[apps]]).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API and demo page [default: 127.0.0.1:8080].
    #[arg(long, env = "SWITCHBOARD_HTTP_BIND")]
    pub http_bind: Option<SocketAddr>,
    /// Address of the media UDP port [default: 0.0.0.0:40000].
    #[arg(long, env = "SWITCHBOARD_MEDIA_BIND")]
    pub media_bind: Option<SocketAddr>,
    /// Addresses announced as ICE candidates (repeat or comma-separate)
    /// [default: the media bind address, or 127.0.0.1 and this host's LAN
    /// address when bound to all interfaces].
    #[arg(long, env = "SWITCHBOARD_ANNOUNCE_IP", value_delimiter = ',')]
    pub announce_ip: Vec<IpAddr>,
    /// Media worker threads [default: one per core].
    #[arg(long, env = "SWITCHBOARD_WORKERS")]
    pub workers: Option<usize>,
    /// Do not pin media workers to cores.
    #[arg(long, env = "SWITCHBOARD_NO_PIN")]
    pub no_pin: bool,
    /// Id of the embedded dev app [default: random per start].
    #[arg(long, env = "SWITCHBOARD_DEV_APP_ID")]
    pub dev_app_id: Option<String>,
    /// Secret of the embedded dev app [default: random per start].
    #[arg(long, env = "SWITCHBOARD_DEV_APP_SECRET")]
    pub dev_app_secret: Option<String>,
    /// Do not serve the demo page.
    #[arg(long, env = "SWITCHBOARD_NO_DEMO")]
    pub no_demo: bool,
    /// Most HTTP connections open at once; more wait in the listen queue
    /// [default: 1024, less when the open-file limit is lower].
    #[arg(long, env = "SWITCHBOARD_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Most HTTP connections open at once from one client address; more
    /// are closed at once [default: no cap of its own; set it when clients
    /// connect directly, not through a balancer].
    #[arg(long, env = "SWITCHBOARD_HTTP_MAX_CONNECTIONS_PER_ADDRESS")]
    pub http_max_connections_per_address: Option<usize>,
    /// On SIGTERM or SIGINT: seconds that existing media keeps flowing
    /// (new API calls get 503) before the process exits; it exits sooner
    /// once no session is left [default: 10].
    #[arg(long, env = "SWITCHBOARD_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,
    /// Log lines as text or as JSON objects, one per line (for log
    /// collectors) [default: text].
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Threads that run DTLS handshakes [default: a quarter of the cores, at
    /// least one].
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_THREADS")]
    pub handshake_threads: Option<usize>,
    /// Most sessions in one app; sessions/new beyond answers 503
    /// [default: 200000].
    #[arg(long, env = "SWITCHBOARD_MAX_SESSIONS_PER_APP")]
    pub max_sessions_per_app: Option<usize>,
    /// Most sessions of one app that never connected; sessions/new beyond
    /// answers 503 [default: 100000].
    #[arg(long, env = "SWITCHBOARD_MAX_NEVER_CONNECTED_PER_APP")]
    pub max_never_connected_per_app: Option<usize>,
    /// Most m-lines (tracks) in one session [default: 256].
    #[arg(long, env = "SWITCHBOARD_MAX_TRACKS_PER_SESSION")]
    pub max_tracks_per_session: Option<usize>,
    /// Most API requests per second on one session; more answer 429
    /// [default: 50].
    #[arg(long, env = "SWITCHBOARD_MAX_REQUESTS_PER_SECOND")]
    pub max_requests_per_second: Option<u32>,
    /// Most sessions/new per second from one client address; more answer
    /// 429 [default: no limit].
    #[arg(long, env = "SWITCHBOARD_MAX_NEW_SESSIONS_PER_ADDRESS")]
    pub max_new_sessions_per_address: Option<u32>,
    /// Most third-party sessions (`?thirdparty=true`) of one app that have
    /// not connected; sessions/new beyond answers 503 [default: 32].
    #[arg(long, env = "SWITCHBOARD_MAX_THIRD_PARTY_CONNECTING_PER_APP")]
    pub max_third_party_connecting_per_app: Option<usize>,
    /// Third-party sessions may send ICE checks to loopback and private
    /// addresses (tests, LAN deployments) [default: public addresses only].
    #[arg(long, env = "SWITCHBOARD_THIRD_PARTY_PRIVATE_CANDIDATES")]
    pub third_party_private_candidates: bool,
    /// A bearer token that `GET /metrics` requires (`Authorization: Bearer
    /// <token>`) [default: none, /metrics is open; keep it off the public
    /// network then].
    #[arg(long, env = "SWITCHBOARD_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Join a cluster whose directory is this Redis (`redis://host:port`);
    /// without it the node stands alone and needs no Redis.
    #[arg(long, env = "SWITCHBOARD_CLUSTER_REDIS")]
    pub cluster_redis: Option<String>,
    /// The secret the cluster's nodes share for calls between them
    /// (required with --cluster-redis).
    #[arg(long, env = "SWITCHBOARD_CLUSTER_SECRET")]
    pub cluster_secret: Option<String>,
    /// This node's id in the cluster [default: random per start].
    #[arg(long, env = "SWITCHBOARD_CLUSTER_NODE_ID")]
    pub cluster_node_id: Option<String>,
    /// The URL other nodes reach this node's API at [default:
    /// http://<http-bind>].
    #[arg(long, env = "SWITCHBOARD_CLUSTER_API_URL")]
    pub cluster_api_url: Option<String>,
    /// The only API addresses other nodes may have: networks (10.0.0.0/24,
    /// fd00::/64, 10.0.0.5) and host:port pairs (repeat or
    /// comma-separate); a node listed elsewhere is not called [default:
    /// any http://host:port].
    #[arg(long, env = "SWITCHBOARD_CLUSTER_PEERS", value_delimiter = ',')]
    pub cluster_peers: Vec<String>,
    /// Threads that run the WebSocket adapters (decoding, encoding, their
    /// WebRTC clients and WebSockets) [default: 2].
    #[arg(long, env = "SWITCHBOARD_ADAPTER_THREADS")]
    pub adapter_threads: Option<usize>,
    /// Most WebSocket adapters open at once in one app; more answer the
    /// item error temporarily_unavailable_error [default: 64].
    #[arg(long, env = "SWITCHBOARD_MAX_ADAPTERS_PER_APP")]
    pub max_adapters_per_app: Option<usize>,
    /// WebSocket adapters may connect to loopback, link-local and this
    /// server's own addresses [default: only with the embedded dev app].
    #[arg(long, env = "SWITCHBOARD_ADAPTERS_ALLOW_LOCAL_ENDPOINTS")]
    pub adapters_allow_local_endpoints: bool,
    /// Host name or address of the TURN server beside this one (coturn,
    /// `tools/turn up`); turns on the TURN keys API and WHIP/WHEP `Link`
    /// headers [default: no TURN].
    #[arg(long, env = "SWITCHBOARD_TURN_HOST")]
    pub turn_host: Option<String>,
    /// The TURN server's STUN/TURN port, UDP and TCP [default: 3478].
    #[arg(long, env = "SWITCHBOARD_TURN_PORT")]
    pub turn_port: Option<u16>,
    /// The TURN server's TURN-over-TLS port; 0: none [default: 5349].
    #[arg(long, env = "SWITCHBOARD_TURNS_PORT")]
    pub turns_port: Option<u16>,
    /// The TURN server's realm [default: switchboard].
    #[arg(long, env = "SWITCHBOARD_TURN_REALM")]
    pub turn_realm: Option<String>,
    /// The secret TURN credentials are signed with (REST scheme).
    #[arg(long, env = "SWITCHBOARD_TURN_SECRET")]
    pub turn_secret: Option<String>,
    /// The TURN server's user store, where issued usernames are written
    /// and revoked ones deleted (redis://host:port/db).
    #[arg(long, env = "SWITCHBOARD_TURN_REDIS")]
    pub turn_redis: Option<String>,
    /// The TURN key's id: POST /v1/turn/keys/{id}/credentials/….
    #[arg(long, env = "SWITCHBOARD_TURN_KEY_ID")]
    pub turn_key_id: Option<String>,
    /// The TURN key's bearer token.
    #[arg(long, env = "SWITCHBOARD_TURN_KEY_TOKEN")]
    pub turn_key_token: Option<String>,
    /// Where recordings are written (made when the first one starts)
    /// [default: recordings, in the working directory].
    #[arg(long, env = "SWITCHBOARD_RECORDINGS_DIR")]
    pub recordings_dir: Option<std::path::PathBuf>,
    /// Recordings at once on this server [default: 64].
    #[arg(long, env = "SWITCHBOARD_MAX_RECORDINGS")]
    pub max_recordings: Option<usize>,
    /// Recordings at once per app [default: 16].
    #[arg(long, env = "SWITCHBOARD_MAX_RECORDINGS_PER_APP")]
    pub max_recordings_per_app: Option<usize>,
}

/// How log lines are written (stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileConfig {
    pub(super) http_bind: Option<SocketAddr>,
    pub(super) media_bind: Option<SocketAddr>,
    #[serde(default)]
    pub(super) announce_ip: Vec<IpAddr>,
    pub(super) workers: Option<usize>,
    pub(super) pin: Option<bool>,
    pub(super) demo: Option<bool>,
    pub(super) http_max_connections: Option<usize>,
    pub(super) http_max_connections_per_address: Option<usize>,
    pub(super) drain_seconds: Option<u64>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) handshake_threads: Option<usize>,
    pub(super) max_sessions_per_app: Option<usize>,
    pub(super) max_never_connected_per_app: Option<usize>,
    pub(super) max_tracks_per_session: Option<usize>,
    pub(super) max_requests_per_second: Option<u32>,
    pub(super) max_new_sessions_per_address: Option<u32>,
    pub(super) max_third_party_connecting_per_app: Option<usize>,
    pub(super) third_party_private_candidates: Option<bool>,
    pub(super) metrics_token: Option<String>,
    pub(super) cluster_redis: Option<String>,
    pub(super) cluster_secret: Option<String>,
    pub(super) cluster_node_id: Option<String>,
    pub(super) cluster_api_url: Option<String>,
    #[serde(default)]
    pub(super) cluster_peers: Vec<String>,
    pub(super) adapter_threads: Option<usize>,
    pub(super) max_adapters_per_app: Option<usize>,
    pub(super) adapters_allow_local_endpoints: Option<bool>,
    pub(super) turn_host: Option<String>,
    pub(super) turn_port: Option<u16>,
    pub(super) turns_port: Option<u16>,
    pub(super) turn_realm: Option<String>,
    pub(super) turn_secret: Option<String>,
    pub(super) turn_redis: Option<String>,
    pub(super) turn_key_id: Option<String>,
    pub(super) turn_key_token: Option<String>,
    pub(super) recordings_dir: Option<std::path::PathBuf>,
    pub(super) max_recordings: Option<usize>,
    pub(super) max_recordings_per_app: Option<usize>,
    #[serde(default)]
    pub(super) apps: Vec<AppConfig>,
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app id used in URLs.
    pub id: String,
    /// The bearer secret.
    pub secret: String,
}
