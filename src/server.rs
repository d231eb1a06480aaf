//! Starting and stopping a whole server: media workers, the control
//! thread (a tokio current-thread runtime serving the HTTP API, within the
//! limits of [`crate::api::http_limits`], and handling worker events and
//! timers).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::api::draining::Draining;
use crate::api::listener;
use crate::api::routes::{ApiState, DEMO_TEMPLATE, router};
use crate::config::Config;
use crate::control::Control;
use crate::dtls::DtlsIdentity;
use crate::dtls_threads::{HandshakePool, JobQueues};
use crate::engine::ice_directory::IceDirectory;
use crate::worker::Workers;

/// How often the control thread runs its timers.
const TICK: Duration = Duration::from_millis(20);
/// Events the workers may have waiting for the control thread (ICE
/// bindings, DTLS records, keyframe requests); past it they are dropped and
/// counted (`control_queue_full`). Each session's share is bounded too (see
/// `engine::control_budget`).
const EVENT_QUEUE: usize = 65_536;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The DTLS certificate could not be made.
    #[error(transparent)]
    Dtls(#[from] crate::dtls::DtlsError),
    /// A thread or runtime could not start.
    #[error("starting: {0}")]
    Runtime(std::io::Error),
    /// The cluster's directory URL is not usable.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::store::StoreError),
    /// This node's API URL is not one other nodes would call.
    #[error("--cluster-api-url: {0}")]
    ClusterApiUrl(#[from] crate::config::peers::UrlError),
    /// The TURN user store's URL is not usable.
    #[error("--turn-redis: {0}")]
    Turn(#[from] crate::turn::store::StoreError),
}

/// A running server.
pub struct Server {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the media port listens.
    pub media_addr: SocketAddr,
    /// The resolved configuration.
    pub config: Config,
    /// The control plane (for metrics and tests).
    pub control: Arc<Control>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    draining: Draining,
    control_thread: Option<JoinHandle<()>>,
    workers: Option<Workers>,
    /// The WebSocket adapters (for metrics and tests).
    pub adapters: Arc<crate::adapters::Adapters>,
    adapter_runtime: Option<tokio::runtime::Runtime>,
    recordings: Arc<crate::recording::Recordings>,
}

impl Server {
    /// Starts workers and the control thread.
    pub fn start(config: Config) -> Result<Server, StartError> {
        let identity = Arc::new(DtlsIdentity::generate()?);
        let directory = Arc::new(IceDirectory::default());
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let (dtls_queues, dtls_receivers) = JobQueues::new(config.handshake_threads);
        let workers = Workers::spawn(
            config.workers,
            config.media_bind,
            config.pin,
            directory.clone(),
            events_tx.clone(),
            Arc::new(dtls_queues.clone()),
        )
        .map_err(|e| StartError::Bind(config.media_bind, e))?;
        let handshakes = HandshakePool::spawn(
            dtls_queues,
            dtls_receivers,
            identity.clone(),
            workers.handles.clone(),
            events_tx,
        )
        .map_err(StartError::Runtime)?;
        let media_addr = workers.local_addr;
        let candidates: Vec<SocketAddr> = config
            .announce_ip
            .iter()
            .map(|ip| SocketAddr::new(*ip, media_addr.port()))
            .collect();
        let control = Control::new(
            config.app_list(),
            workers.handles.clone(),
            identity,
            handshakes,
            directory,
            candidates.clone(),
            config.limits,
        );
        let listener = TcpListener::bind(config.http_bind)
            .map_err(|e| StartError::Bind(config.http_bind, e))?;
        listener
            .set_nonblocking(true)
            .map_err(StartError::Runtime)?;
        let http_addr = listener.local_addr().map_err(StartError::Runtime)?;
        let demo_page = config.demo.then(|| {
            let app = &config.apps[0];
            Arc::from(
                DEMO_TEMPLATE
                    .replace("{{APP_ID}}", &app.id)
                    .replace("{{APP_SECRET}}", &app.secret)
                    .replace(
                        "{{TURN_KEY_ID}}",
                        config.turn.as_ref().map_or("", |t| t.key_id.as_str()),
                    )
                    .replace(
                        "{{TURN_KEY_TOKEN}}",
                        config.turn.as_ref().map_or("", |t| t.key_token.as_str()),
                    ),
            )
        });
        let cluster = match &config.cluster {
            Some(c) => {
                let node = crate::cluster::store::Node {
                    id: c.node_id.clone(),
                    api: c
                        .api_url
                        .clone()
                        .unwrap_or_else(|| format!("http://{http_addr}")),
                    media: candidates
                        .first()
                        .copied()
                        .unwrap_or(media_addr)
                        .to_string(),
                };
                // Other nodes would refuse a record naming another URL (an
                // unspecified bind address names no peer: set the URL).
                crate::config::peers::ApiUrl::parse(&node.api)?;
                let cluster = crate::cluster::Cluster::new(
                    &c.redis,
                    &c.secret,
                    node,
                    c.peers.clone(),
                    control.clone(),
                )?;
                let (feed, changes) = tokio::sync::mpsc::unbounded_channel();
                control.watch_sessions(feed);
                Some((cluster, changes))
            }
            None => None,
        };
        let draining = Draining::new(config.drain);
        let adapter_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.adapters.threads)
            .thread_name("adapter")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let mut own: Vec<std::net::IpAddr> = config.announce_ip.clone();
        own.extend([media_addr.ip(), http_addr.ip()]);
        let adapters = crate::adapters::Adapters::new(
            control.clone(),
            crate::adapters::Settings {
                per_app: config.adapters.per_app,
                allow_local: config.adapters.allow_local.unwrap_or(config.dev_app),
                own,
                media: media_addr,
            },
            adapter_runtime.handle().clone(),
        );
        let whip = Arc::new(crate::whip::Whip::new(control.clone()));
        let turn = match config.turn.clone() {
            Some(t) => Some(Arc::new(crate::turn::Turn::new(t)?)),
            None => None,
        };
        let recordings = Arc::new(crate::recording::Recordings::new(
            control.clone(),
            config.recordings.clone(),
        ));
        let state = ApiState {
            adapters: adapters.clone(),
            control: control.clone(),
            demo_page,
            draining: draining.clone(),
            latency: Default::default(),
            cluster: cluster.as_ref().map(|(c, _)| c.clone()),
            metrics_token: config.metrics_token.as_deref().map(Arc::from),
            whip: whip.clone(),
            turn,
            recordings: recordings.clone(),
        };
        let ended_recordings = recordings.clone();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let ctl = control.clone();
        let connection_limits = listener::ConnectionLimits {
            max: config.http_max_connections,
            per_address: config.http_max_connections_per_address,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let control_thread = crate::supervise::spawn_critical("control".into(), move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "HTTP listener");
                        return;
                    }
                };
                let events_ctl = ctl.clone();
                tokio::spawn(async move {
                    while let Some(event) = events_rx.recv().await {
                        // A bug in handling one event must not stop
                        // ICE and DTLS for every other session.
                        let handled =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                events_ctl.handle_event(event, Instant::now())
                            }));
                        if let Err(payload) = handled {
                            crate::supervise::note_contained(
                                "a media worker event",
                                payload.as_ref(),
                            );
                        }
                    }
                });
                tokio::spawn(ctl.clone().run_fanout_flush());
                let cluster = cluster.map(|(cluster, changes)| {
                    cluster.spawn(changes);
                    cluster
                });
                let forget_recordings = ended_recordings;
                tokio::spawn(async move {
                    // WHIP/WHEP sessions that ended without a DELETE.
                    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        interval.tick().await;
                        whip.forget_ended();
                        forget_recordings.forget_ended();
                    }
                });
                let tick_ctl = ctl.clone();
                tokio::spawn(async move {
                    let mut interval = tokio::time::interval(TICK);
                    loop {
                        interval.tick().await;
                        let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            tick_ctl.handle_tick(Instant::now())
                        }));
                        if let Err(payload) = ticked {
                            crate::supervise::note_contained(
                                "the control timers",
                                payload.as_ref(),
                            );
                        }
                    }
                });
                listener::serve(listener, router(state), connection_limits, async {
                    let _ = shutdown_rx.await;
                })
                .await;
                if let Some(cluster) = cluster {
                    cluster.leave().await;
                }
            });
        })
        .map_err(StartError::Runtime)?;
        Ok(Server {
            http_addr,
            media_addr,
            config,
            control,
            shutdown: Some(shutdown_tx),
            draining,
            control_thread: Some(control_thread),
            workers: Some(workers),
            adapters,
            adapter_runtime: Some(adapter_runtime),
            recordings,
        })
    }

    /// The first app's id and secret (the dev app by default).
    pub fn app(&self) -> (&str, &str) {
        (&self.config.apps[0].id, &self.config.apps[0].secret)
    }

    /// Starts a graceful shutdown: API calls are answered 503 from now on,
    /// media already set up keeps flowing. [`Server::shutdown`] ends it.
    pub fn begin_drain(&self) {
        self.draining.begin();
    }

    /// Sessions that exist (connected or not).
    pub fn sessions(&self) -> usize {
        self.control.session_count()
    }

    /// Drains for at most `period` (or until no session is left), then
    /// stops.
    pub fn drain(self, period: Duration) {
        self.begin_drain();
        let deadline = Instant::now() + period;
        while Instant::now() < deadline && self.sessions() > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.shutdown();
    }

    /// Waits until the control thread ends (it runs until shutdown).
    pub fn wait(mut self) {
        if let Some(t) = self.control_thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the HTTP server and the workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Files are finished while the media still flows.
        self.recordings.close_all();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.control_thread.take() {
            let _ = t.join();
        }
        if let Some(rt) = self.adapter_runtime.take() {
            rt.shutdown_background();
        }
        self.control.shutdown();
        if let Some(w) = self.workers.take() {
            w.shutdown();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
