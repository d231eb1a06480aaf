//! Configuration: command-line flags, each also read from the environment
//! (`SWITCHBOARD_*`), over an optional TOML file (`--config`), over defaults
//! that work on a laptop with no configuration at all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;

use crate::ids::{AppId, hex, random_bytes};

mod flags;
pub mod peers;
mod recordings;
mod turn;

use flags::FileConfig;
pub use flags::{AppConfig, LogFormat, ServeArgs};
pub use recordings::RecordingConfig;
pub use turn::TurnConfig;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP API address.
    pub http_bind: SocketAddr,
    /// Media UDP address.
    pub media_bind: SocketAddr,
    /// Addresses announced as host candidates (port: the media port).
    pub announce_ip: Vec<IpAddr>,
    /// Media workers.
    pub workers: usize,
    /// Pin workers to cores.
    pub pin: bool,
    /// Apps; the first is the dev app when `dev_app` is true.
    pub apps: Vec<AppConfig>,
    /// The apps are the embedded dev app (no [[apps]] configured).
    pub dev_app: bool,
    /// Serve the demo page (only with the dev app).
    pub demo: bool,
    /// Most HTTP connections served at once; further ones wait, unaccepted,
    /// in the listen queue until one closes.
    pub http_max_connections: usize,
    /// Most HTTP connections from one client address (`None`: no cap).
    pub http_max_connections_per_address: Option<usize>,
    /// How long a graceful shutdown lets existing media flow.
    pub drain: std::time::Duration,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Threads that run DTLS handshakes.
    pub handshake_threads: usize,
    /// Caps on apps and sessions.
    pub limits: Limits,
    /// Membership of a cluster, if any.
    pub cluster: Option<ClusterConfig>,
    /// The bearer token `GET /metrics` requires, if any.
    pub metrics_token: Option<String>,
    /// How the WebSocket adapters run.
    pub adapters: AdapterConfig,
    /// The TURN server beside this one, if any.
    pub turn: Option<TurnConfig>,
    /// Recordings: where, how many.
    pub recordings: RecordingConfig,
}

/// How the WebSocket adapters run (`crate::adapters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterConfig {
    /// Threads of the adapter runtime.
    pub threads: usize,
    /// Adapters open at once per app at most.
    pub per_app: usize,
    /// Endpoints on loopback, link-local and this server's addresses are
    /// allowed; `None`: only with the embedded dev app.
    pub allow_local: Option<bool>,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            threads: 2,
            per_app: 64,
            allow_local: None,
        }
    }
}

/// How this node joins a cluster (`crate::cluster`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The directory: a Redis URL.
    pub redis: String,
    /// The nodes' shared secret.
    pub secret: String,
    /// This node's id.
    pub node_id: String,
    /// Where other nodes reach this node's API (None: from the HTTP bind
    /// address, once bound).
    pub api_url: Option<String>,
    /// The API addresses other nodes may have.
    pub peers: peers::Peers,
}

/// Caps on what apps and sessions may hold and do (calls-api.md, "Limits
/// and timers"); each answers with its documented error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions per app (503 `temporarily_unavailable_error`).
    pub sessions_per_app: usize,
    /// Never-connected sessions per app (503 `temporarily_unavailable_error`).
    pub never_connected_per_app: usize,
    /// M-lines (tracks) per session (406 `invalid_params`).
    pub tracks_per_session: usize,
    /// API requests per second per session (429 `rate_limited`).
    pub requests_per_second: u32,
    /// sessions/new per second per client address (429 `rate_limited`);
    /// `None`: not limited.
    pub new_sessions_per_address: Option<u32>,
    /// A session that never connected is removed after this long
    /// (calls-api.md, our rule: 60 s). Settable in code (tests).
    pub never_connected_timeout: std::time::Duration,
    /// Third-party sessions per app that have not connected (each sends
    /// ICE checks; 503 `temporarily_unavailable_error` beyond).
    pub third_party_connecting_per_app: usize,
    /// Third-party sessions may send checks to loopback and private
    /// addresses (tests, LAN deployments); otherwise to public ones only.
    pub third_party_private_candidates: bool,
    /// A connected session whose address answers none of our consent
    /// checks for this long stops getting media (RFC 7675: 30 s), and is
    /// removed 30 s later. Settable in code (tests).
    pub consent_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions_per_app: 200_000,
            never_connected_per_app: 100_000,
            tracks_per_session: 256,
            requests_per_second: 50,
            new_sessions_per_address: None,
            never_connected_timeout: NEVER_CONNECTED_TIMEOUT,
            third_party_connecting_per_app: 32,
            third_party_private_candidates: false,
            consent_timeout: CONSENT_TIMEOUT,
        }
    }
}

/// Handshake threads when none are configured: a quarter of the cores.
fn default_handshake_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 4).max(1)
}

/// The default of [`Config::never_connected_timeout`].
pub const NEVER_CONNECTED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The default of [`Limits::consent_timeout`]: RFC 7675's 30 s.
pub const CONSENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML of the expected shape.
    #[error("parsing {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// An app without an id or a secret (an empty secret would let a
    /// request without a token through).
    #[error("app {0:?}: an app needs a non-empty id and secret")]
    EmptyApp(String),
    /// Two apps with one id (one would silently replace the other).
    #[error("app id {0:?} is configured twice")]
    DuplicateApp(String),
    /// A cluster needs a shared secret.
    #[error("--cluster-redis needs --cluster-secret (the secret the nodes share)")]
    ClusterSecret,
    /// A `--cluster-peers` entry is neither a network nor `host:port`.
    #[error(transparent)]
    ClusterPeers(#[from] peers::PeersError),
    /// TURN is on (`--turn-host`) but a setting it needs is missing.
    #[error("--turn-host needs {0} (tools/turn up prints every TURN flag)")]
    TurnNeeds(&'static str),
}

impl Config {
    /// Resolves flags over the file over defaults.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e))?
            }
            None => FileConfig::default(),
        };
        let turn = turn::resolve(args, &file)?;
        let recordings = recordings::resolve(args, &file);
        let media_bind = args
            .media_bind
            .or(file.media_bind)
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 40000));
        let announce_ip = if !args.announce_ip.is_empty() {
            args.announce_ip.clone()
        } else if !file.announce_ip.is_empty() {
            file.announce_ip
        } else {
            default_announce(media_bind.ip())
        };
        let cluster = match args.cluster_redis.clone().or(file.cluster_redis) {
            Some(redis) => Some(ClusterConfig {
                redis,
                secret: args
                    .cluster_secret
                    .clone()
                    .or(file.cluster_secret)
                    .filter(|s| !s.is_empty())
                    .ok_or(ConfigError::ClusterSecret)?,
                node_id: args
                    .cluster_node_id
                    .clone()
                    .or(file.cluster_node_id)
                    .unwrap_or_else(|| hex(&random_bytes::<8>())),
                api_url: args.cluster_api_url.clone().or(file.cluster_api_url),
                peers: peers::Peers::parse(if args.cluster_peers.is_empty() {
                    &file.cluster_peers
                } else {
                    &args.cluster_peers
                })?,
            }),
            None => None,
        };
        let dev_app = file.apps.is_empty();
        let apps = if dev_app {
            vec![AppConfig {
                id: args
                    .dev_app_id
                    .clone()
                    .unwrap_or_else(|| hex(&random_bytes::<16>())),
                secret: args
                    .dev_app_secret
                    .clone()
                    .unwrap_or_else(|| hex(&random_bytes::<32>())),
            }]
        } else {
            file.apps
        };
        check_apps(&apps)?;
        Ok(Config {
            http_bind: args
                .http_bind
                .or(file.http_bind)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            media_bind,
            announce_ip,
            workers: args
                .workers
                .or(file.workers)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            pin: !args.no_pin && file.pin.unwrap_or(true),
            demo: dev_app && !args.no_demo && file.demo.unwrap_or(true),
            apps,
            dev_app,
            http_max_connections: args
                .http_max_connections
                .or(file.http_max_connections)
                .unwrap_or_else(default_http_max_connections)
                .max(1),
            http_max_connections_per_address: args
                .http_max_connections_per_address
                .or(file.http_max_connections_per_address)
                .map(|n| n.max(1)),
            drain: std::time::Duration::from_secs(
                args.drain_seconds
                    .or(file.drain_seconds)
                    .unwrap_or(DEFAULT_DRAIN_SECONDS),
            ),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            handshake_threads: args
                .handshake_threads
                .or(file.handshake_threads)
                .unwrap_or_else(default_handshake_threads)
                .max(1),
            limits: {
                let d = Limits::default();
                Limits {
                    sessions_per_app: args
                        .max_sessions_per_app
                        .or(file.max_sessions_per_app)
                        .unwrap_or(d.sessions_per_app),
                    never_connected_per_app: args
                        .max_never_connected_per_app
                        .or(file.max_never_connected_per_app)
                        .unwrap_or(d.never_connected_per_app),
                    tracks_per_session: args
                        .max_tracks_per_session
                        .or(file.max_tracks_per_session)
                        .unwrap_or(d.tracks_per_session)
                        .max(1),
                    requests_per_second: args
                        .max_requests_per_second
                        .or(file.max_requests_per_second)
                        .unwrap_or(d.requests_per_second)
                        .max(1),
                    new_sessions_per_address: args
                        .max_new_sessions_per_address
                        .or(file.max_new_sessions_per_address),
                    never_connected_timeout: d.never_connected_timeout,
                    third_party_connecting_per_app: args
                        .max_third_party_connecting_per_app
                        .or(file.max_third_party_connecting_per_app)
                        .unwrap_or(d.third_party_connecting_per_app),
                    third_party_private_candidates: args.third_party_private_candidates
                        || file.third_party_private_candidates.unwrap_or(false),
                    consent_timeout: d.consent_timeout,
                }
            },
            cluster,
            metrics_token: args
                .metrics_token
                .clone()
                .or(file.metrics_token)
                .filter(|t| !t.is_empty()),
            adapters: {
                let d = AdapterConfig::default();
                AdapterConfig {
                    threads: args
                        .adapter_threads
                        .or(file.adapter_threads)
                        .unwrap_or(d.threads)
                        .max(1),
                    per_app: args
                        .max_adapters_per_app
                        .or(file.max_adapters_per_app)
                        .unwrap_or(d.per_app),
                    allow_local: (args.adapters_allow_local_endpoints
                        || file.adapters_allow_local_endpoints.unwrap_or(false))
                    .then_some(true),
                }
            },
            turn,
            recordings,
        })
    }

    /// A configuration for tests: loopback only, ephemeral ports.
    pub fn loopback(workers: usize) -> Self {
        Config {
            http_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            media_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            announce_ip: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            workers,
            pin: false,
            apps: vec![AppConfig {
                id: hex(&random_bytes::<16>()),
                secret: hex(&random_bytes::<32>()),
            }],
            dev_app: true,
            demo: true,
            http_max_connections: default_http_max_connections(),
            http_max_connections_per_address: None,
            drain: std::time::Duration::from_secs(DEFAULT_DRAIN_SECONDS),
            log_format: LogFormat::Text,
            handshake_threads: 1,
            limits: Limits {
                third_party_private_candidates: true,
                ..Limits::default()
            },
            cluster: None,
            metrics_token: None,
            adapters: AdapterConfig {
                threads: 1,
                ..AdapterConfig::default()
            },
            turn: None,
            recordings: RecordingConfig::default(),
        }
    }

    /// The apps as (id, secret).
    pub fn app_list(&self) -> Vec<(AppId, String)> {
        self.apps
            .iter()
            .map(|a| (AppId(a.id.clone()), a.secret.clone()))
            .collect()
    }
}

/// Refuses apps with an empty id or secret, and ids given twice.
fn check_apps(apps: &[AppConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for app in apps {
        if app.id.is_empty() || app.secret.is_empty() {
            return Err(ConfigError::EmptyApp(app.id.clone()));
        }
        if !seen.insert(app.id.as_str()) {
            return Err(ConfigError::DuplicateApp(app.id.clone()));
        }
    }
    Ok(())
}

/// The HTTP connection cap when none is configured.
const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 1024;

/// File descriptors kept out of the HTTP connection cap's reach: the
/// listener, media sockets, the runtime's and workers' own descriptors,
/// logs, and room to spare.
const RESERVED_FDS: usize = 128;

/// Seconds a graceful shutdown drains by default.
pub const DEFAULT_DRAIN_SECONDS: u64 = 10;

/// [`DEFAULT_HTTP_MAX_CONNECTIONS`], lowered when the process's open-file
/// limit (RLIMIT_NOFILE, soft) leaves less than that beside
/// [`RESERVED_FDS`], so HTTP clients can never take every descriptor.
pub fn default_http_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
        && limit.rlim_cur != libc::RLIM_INFINITY
    {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    DEFAULT_HTTP_MAX_CONNECTIONS.min(soft.saturating_sub(RESERVED_FDS).max(16))
}

/// Loopback plus the address of the interface with the default route, when
/// bound to all interfaces; else the bind address itself.
fn default_announce(bind: IpAddr) -> Vec<IpAddr> {
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut out = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    // connect() on UDP sends nothing: it only asks the kernel which local
    // address would route to a (documentation) destination.
    let lan = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr());
    if let Ok(addr) = lan
        && !addr.ip().is_loopback()
        && !addr.ip().is_unspecified()
    {
        out.push(addr.ip());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_max_connections_from_flag_file_or_file_limit() {
        let flag = ServeArgs {
            http_max_connections: Some(7),
            ..ServeArgs::default()
        };
        assert_eq!(Config::load(&flag).unwrap().http_max_connections, 7);
        let file: FileConfig = toml::from_str("http-max-connections = 5").unwrap();
        assert_eq!(file.http_max_connections, Some(5));
        let default = Config::load(&ServeArgs::default())
            .unwrap()
            .http_max_connections;
        assert!((16..=DEFAULT_HTTP_MAX_CONNECTIONS).contains(&default));
    }

    #[test]
    fn limits_from_flags_or_file_over_defaults() {
        let flag = ServeArgs {
            max_sessions_per_app: Some(10),
            max_new_sessions_per_address: Some(3),
            handshake_threads: Some(2),
            ..ServeArgs::default()
        };
        let c = Config::load(&flag).unwrap();
        assert_eq!(c.limits.sessions_per_app, 10);
        assert_eq!(c.limits.new_sessions_per_address, Some(3));
        assert_eq!(c.limits.never_connected_per_app, 100_000);
        assert_eq!(c.handshake_threads, 2);
        let file: FileConfig = toml::from_str(
            "max-tracks-per-session = 8\nmax-requests-per-second = 9\nmax-never-connected-per-app = 7",
        )
        .unwrap();
        assert_eq!(file.max_tracks_per_session, Some(8));
        assert_eq!(file.max_requests_per_second, Some(9));
        assert_eq!(file.max_never_connected_per_app, Some(7));
        let d = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(d.limits, Limits::default());
        assert_eq!(d.limits.new_sessions_per_address, None);
        assert!(d.handshake_threads >= 1);
    }

    /// Loads a TOML configuration from a file.
    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        let path =
            std::env::temp_dir().join(format!("switchboard-{}.toml", hex(&random_bytes::<8>())));
        std::fs::write(&path, text).unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let out = Config::load(&args);
        std::fs::remove_file(path).unwrap();
        out
    }

    #[test]
    fn apps_without_a_secret_or_configured_twice_are_refused() {
        let ok = load_toml("[[apps]]\nid = \"a\"\nsecret = \"s\"\n").unwrap();
        assert_eq!(ok.apps.len(), 1);
        assert!(matches!(
            load_toml("[[apps]]\nid = \"a\"\nsecret = \"\"\n"),
            Err(ConfigError::EmptyApp(id)) if id == "a"
        ));
        assert!(matches!(
            load_toml("[[apps]]\nid = \"a\"\nsecret = \"s\"\n[[apps]]\nid = \"a\"\nsecret = \"t\"\n"),
            Err(ConfigError::DuplicateApp(id)) if id == "a"
        ));
        let dev = ServeArgs {
            dev_app_secret: Some(String::new()),
            ..ServeArgs::default()
        };
        assert!(matches!(Config::load(&dev), Err(ConfigError::EmptyApp(_))));
    }

    #[test]
    fn third_party_checks_go_to_public_addresses_unless_configured() {
        let d = Config::load(&ServeArgs::default()).unwrap();
        assert!(!d.limits.third_party_private_candidates);
        assert_eq!(d.limits.third_party_connecting_per_app, 32);
        let lan = ServeArgs {
            third_party_private_candidates: true,
            max_third_party_connecting_per_app: Some(4),
            ..ServeArgs::default()
        };
        let c = Config::load(&lan).unwrap();
        assert!(c.limits.third_party_private_candidates);
        assert_eq!(c.limits.third_party_connecting_per_app, 4);
        let file = load_toml("third-party-private-candidates = true\n").unwrap();
        assert!(file.limits.third_party_private_candidates);
    }

    #[test]
    fn cluster_peers_from_flag_or_file_and_bad_ones_refused() {
        use peers::Peers;
        let cluster = "cluster-redis = \"redis://127.0.0.1:6379\"\ncluster-secret = \"s\"\n";
        let any = load_toml(cluster).unwrap();
        assert_eq!(any.cluster.unwrap().peers, Peers::any());
        let file = load_toml(&format!("{cluster}cluster-peers = [\"10.0.0.0/24\"]\n")).unwrap();
        let expected = Peers::parse(&["10.0.0.0/24".into()]).unwrap();
        assert_eq!(file.cluster.unwrap().peers, expected);
        let flag = ServeArgs {
            cluster_redis: Some("redis://127.0.0.1:6379".into()),
            cluster_secret: Some("s".into()),
            cluster_peers: vec!["10.0.0.0/24".into()],
            ..ServeArgs::default()
        };
        assert_eq!(
            Config::load(&flag).unwrap().cluster.unwrap().peers,
            expected
        );
        let bad = load_toml(&format!("{cluster}cluster-peers = [\"10.0.0.0/40\"]\n"));
        assert!(matches!(bad, Err(ConfigError::ClusterPeers(_))));
    }
}
