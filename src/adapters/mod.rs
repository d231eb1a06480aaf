//! WebSocket adapters (calls-api.md, "WebSocket adapters"): the server
//! opens a WebSocket to an application's endpoint and streams a pulled
//! track's audio to it as PCM or its video as JPEG, or reads PCM from it
//! and publishes that as a track anyone can pull.
//!
//! Where it sits: above the control plane, below the HTTP API. The API's
//! `adapters/websocket/new` and `/close` call [`Adapters::open`] and
//! [`Adapters::close`]. Each adapter is one task on the adapter runtime
//! (its own threads, `--adapter-threads`; never a media worker) with a
//! WebRTC client of this server ([`client`]) and a WebSocket
//! ([`websocket`]): [`egress`] and [`ingest`] run them. The sans-IO parts
//! are the jitter buffer ([`playout`]), the ingest clock
//! ([`ingest_pacer`]) and the outgoing queue ([`backlog`]); [`pcm`] and
//! [`jpeg`] wrap the codecs.
//!
//! Bounds: at most `--adapters-per-app` adapters per app (open and
//! opening; beyond: item error `temporarily_unavailable_error`); each
//! adapter's session counts against the app's session limit; endpoints
//! are checked before anything is spent on them ([`websocket`]); every
//! queue an endpoint can fill is bounded. Closed adapters are remembered
//! (the last [`CLOSED_REMEMBERED`]) so that closing one again answers 200.

pub mod backlog;
pub mod client;
pub mod counters;
pub mod egress;
pub mod ingest;
pub mod ingest_pacer;
pub mod jpeg;
pub mod packet;
pub mod pcm;
pub mod playout;
pub mod request;
pub mod websocket;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use str0m::media::MediaKind;
use tokio::sync::watch;

use crate::calls::CallsError;
use crate::control::Control;
use crate::ids::AppId;

use client::{ItemError, LocalClient};
use counters::{AdapterCounters, CloseReason, Kind};
use request::{CloseItem, CloseRequest, NewItem, NewRequest, Plan};
use websocket::AddressPolicy;

/// Closed adapters remembered for a repeated close.
pub const CLOSED_REMEMBERED: usize = 4096;

/// How the adapters run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Adapters open or opening per app at most.
    pub per_app: usize,
    /// Endpoints on loopback, link-local or this server's addresses are
    /// allowed.
    pub allow_local: bool,
    /// This server's own addresses (refused as endpoints otherwise).
    pub own: Vec<IpAddr>,
    /// The media port the adapters' clients connect to.
    pub media: SocketAddr,
}

struct Open {
    app: AppId,
    kind: Kind,
    stop: watch::Sender<bool>,
    bytes: Arc<AtomicU64>,
}

#[derive(Default)]
struct Table {
    open: HashMap<String, Open>,
    /// Adapters being set up, per app (they count against its limit).
    opening: HashMap<AppId, usize>,
    closed: HashSet<(AppId, String)>,
    closed_order: VecDeque<(AppId, String)>,
}

impl Table {
    fn count(&self, app: &AppId) -> usize {
        self.open.values().filter(|o| &o.app == app).count()
            + self.opening.get(app).copied().unwrap_or(0)
    }

    fn remember_closed(&mut self, app: AppId, id: String) {
        if self.closed.insert((app.clone(), id.clone())) {
            self.closed_order.push_back((app, id));
        }
        while self.closed_order.len() > CLOSED_REMEMBERED {
            if let Some(old) = self.closed_order.pop_front() {
                self.closed.remove(&old);
            }
        }
    }
}

/// The adapters of this server.
pub struct Adapters {
    control: Arc<Control>,
    settings: Settings,
    runtime: tokio::runtime::Handle,
    table: Mutex<Table>,
    counters: Arc<AdapterCounters>,
}

/// A new adapter's result item, and whether it succeeded.
type Opened = (serde_json::Value, bool);

impl Adapters {
    /// The adapters, running their tasks on `runtime`.
    pub fn new(
        control: Arc<Control>,
        settings: Settings,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        jpeg::init();
        Arc::new(Adapters {
            control,
            settings,
            runtime,
            table: Mutex::new(Table::default()),
            counters: Arc::new(AdapterCounters::default()),
        })
    }

    /// What the adapters did.
    pub fn counters(&self) -> &AdapterCounters {
        &self.counters
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// POST adapters/websocket/new: opens each item's adapter; 200 if any
    /// opened, 503 if none did.
    pub async fn open(
        self: &Arc<Self>,
        app: &AppId,
        req: NewRequest,
    ) -> Result<(u16, serde_json::Value), CallsError> {
        let plans = req.plans()?;
        let mut tasks = Vec::new();
        for (item, plan) in req.tracks.into_iter().zip(plans) {
            let me = self.clone();
            let app = app.clone();
            tasks.push(
                self.runtime
                    .spawn(async move { me.open_one(&app, item, plan).await }),
            );
        }
        let mut items = Vec::new();
        let mut any = false;
        for t in tasks {
            let (item, ok) = t.await.unwrap_or_else(|_| {
                (serde_json::json!({"errorCode": "internal_error", "errorDescription": "adapter setup failed"}), false)
            });
            any |= ok;
            items.push(item);
        }
        Ok((
            if any { 200 } else { 503 },
            serde_json::json!({ "tracks": items }),
        ))
    }

    async fn open_one(self: Arc<Self>, app: &AppId, item: NewItem, plan: Plan) -> Opened {
        let mut out = serde_json::json!({
            "trackName": item.track_name,
            "endpoint": item.endpoint,
        });
        {
            let mut t = self.lock();
            if t.count(app) >= self.settings.per_app {
                drop(t);
                fail(
                    &mut out,
                    &ItemError::new(
                        "temporarily_unavailable_error",
                        format!(
                            "the app has {} WebSocket adapters open, the most it may",
                            self.settings.per_app
                        ),
                    ),
                );
                return (out, false);
            }
            *t.opening.entry(app.clone()).or_default() += 1;
        }
        let result = self.start(app, &plan).await;
        let mut t = self.lock();
        if let Some(n) = t.opening.get_mut(app) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.opening.remove(app);
            }
        }
        match result {
            Ok((started, task)) => {
                out["adapterId"] = started.id.clone().into();
                if plan.kind == Kind::PcmIngest {
                    out["sessionId"] = started.session_id.clone().into();
                }
                // Registered before its task runs: a task that ends at once
                // finds itself in the table.
                t.open.insert(
                    started.id.clone(),
                    Open {
                        app: app.clone(),
                        kind: plan.kind,
                        stop: started.stop,
                        bytes: started.bytes.clone(),
                    },
                );
                self.counters.opened(plan.kind);
                drop(t);
                self.spawn(
                    app,
                    started.id,
                    started.session_id,
                    plan.kind,
                    started.bytes,
                    task,
                );
                (out, true)
            }
            Err(e) => {
                fail(&mut out, &e);
                (out, false)
            }
        }
    }

    /// Runs an adapter's task; when it ends, [`Self::finished`].
    fn spawn(
        self: &Arc<Self>,
        app: &AppId,
        id: String,
        session_id: String,
        kind: Kind,
        bytes: Arc<AtomicU64>,
        task: Task,
    ) {
        let me = self.clone();
        let app = app.clone();
        let counters = self.counters.clone();
        self.runtime.spawn(async move {
            let reason = match task {
                Task::Egress(e, stopped) => egress::run(e, stopped, bytes, counters).await,
                Task::Ingest(i, stopped) => ingest::run(i, stopped, bytes, counters).await,
            };
            me.finished(&app, &id, &session_id, kind, reason);
        });
    }

    /// Sets up one adapter: its codec, endpoint check, WebRTC client and
    /// WebSocket; its task is the caller's to run.
    async fn start(
        self: &Arc<Self>,
        app: &AppId,
        plan: &Plan,
    ) -> Result<(Started, Task), ItemError> {
        // The codec first: nothing to undo if it cannot start.
        let codec = match plan.kind {
            Kind::PcmIngest => {
                Codec::Ingest(Box::new(pcm::OpusEncoder::new().map_err(|e| {
                    ItemError::new("internal_error", format!("Opus encoder: {e}"))
                })?))
            }
            Kind::PcmEgress => {
                let decoder = pcm::PcmDecoder::new()
                    .map_err(|e| ItemError::new("internal_error", format!("Opus decoder: {e}")))?;
                Codec::Egress(egress::Output::Pcm(
                    playout::Playout::new(),
                    Box::new(decoder),
                ))
            }
            Kind::JpegEgress => Codec::Egress(egress::Output::Jpeg(Box::new(
                jpeg::JpegMaker::new(plan.picture_interval),
            ))),
        };
        let policy = AddressPolicy {
            allow_local: self.settings.allow_local,
            own: self.settings.own.clone(),
        };
        // Refuse a bad endpoint before spending anything on it.
        websocket::resolve(&plan.endpoint, &policy).await?;
        let media = self.settings.media;
        let control = self.control.clone();
        let client = match plan.kind {
            Kind::PcmIngest => {
                LocalClient::push_audio(control, app, media, &plan.track_name).await?
            }
            Kind::PcmEgress | Kind::JpegEgress => {
                let publisher = plan.session_id.as_deref().unwrap_or("");
                let audio = plan.kind == Kind::PcmEgress;
                let client =
                    LocalClient::pull(control, app, media, publisher, &plan.track_name, audio)
                        .await?;
                let want = if audio {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                if client.kind() != Some(want) {
                    self.control.end_session(app, &client.session_id);
                    return Err(ItemError::new(
                        "invalid_params",
                        format!(
                            "outputCodec {} needs a track of kind {}",
                            if audio { "pcm" } else { "jpeg" },
                            if audio { "audio" } else { "video" }
                        ),
                    ));
                }
                client
            }
        };
        let session_id = client.session_id.clone();
        let socket = match websocket::connect(&plan.endpoint, &policy).await {
            Ok(s) => s,
            Err(e) => {
                self.control.end_session(app, &session_id);
                return Err(e);
            }
        };
        let (stop, stopped) = watch::channel(false);
        let bytes = Arc::new(AtomicU64::new(0));
        let id = hex(&crate::ids::random_bytes::<16>());
        let task = match codec {
            Codec::Ingest(encoder) => Task::Ingest(
                ingest::Ingest {
                    client,
                    socket,
                    encoder,
                },
                stopped,
            ),
            Codec::Egress(output) => {
                let (control, app, session) =
                    (self.control.clone(), app.clone(), session_id.clone());
                Task::Egress(
                    egress::Egress {
                        source: Box::new(move || control.pulls_have_a_source(&app, &session)),
                        client,
                        socket,
                        endpoint: plan.endpoint.clone(),
                        policy,
                        output,
                    },
                    stopped,
                )
            }
        };
        Ok((
            Started {
                id,
                session_id,
                stop,
                bytes,
            },
            task,
        ))
    }

    /// An adapter's task ended (closed by the API or by itself).
    fn finished(&self, app: &AppId, id: &str, session_id: &str, kind: Kind, reason: CloseReason) {
        self.control.end_session(app, session_id);
        let mut t = self.lock();
        if t.open.remove(id).is_some() {
            self.counters.closed(kind, reason);
        } else {
            // Closed by the API, which counted it already.
        }
        t.remember_closed(app.clone(), id.to_owned());
        tracing::info!(
            adapter = id,
            reason = reason.label(),
            "WebSocket adapter closed"
        );
    }

    /// POST adapters/websocket/close: 200 if any item closed (or was
    /// closed already), 503 if none did.
    pub fn close(
        &self,
        app: &AppId,
        req: CloseRequest,
    ) -> Result<(u16, serde_json::Value), CallsError> {
        req.check()?;
        let mut items = Vec::new();
        let mut any = false;
        let mut t = self.lock();
        for CloseItem { adapter_id } in req.tracks {
            let id = adapter_id.unwrap_or_default();
            let mut out = serde_json::json!({ "adapterId": id });
            match t.open.get(&id) {
                Some(open) if &open.app == app => {
                    let Some(open) = t.open.remove(&id) else {
                        continue;
                    };
                    let _ = open.stop.send(true);
                    self.counters.closed(open.kind, CloseReason::Api);
                    out["bytesProcessed"] = open.bytes.load(Relaxed).into();
                    t.remember_closed(app.clone(), id);
                    any = true;
                }
                _ if t.closed.contains(&(app.clone(), id.clone())) => any = true,
                _ => fail(
                    &mut out,
                    &ItemError::new("adapter_not_found", format!("no adapter {id} in this app")),
                ),
            }
            items.push(out);
        }
        Ok((
            if any { 200 } else { 503 },
            serde_json::json!({ "tracks": items }),
        ))
    }
}

enum Task {
    Egress(egress::Egress, watch::Receiver<bool>),
    Ingest(ingest::Ingest, watch::Receiver<bool>),
}

/// An adapter's codec, made before anything else of it: ingest's
/// encoder, or what egress makes of the media.
enum Codec {
    Ingest(Box<pcm::OpusEncoder>),
    Egress(egress::Output),
}

struct Started {
    id: String,
    session_id: String,
    stop: watch::Sender<bool>,
    bytes: Arc<AtomicU64>,
}

fn fail(out: &mut serde_json::Value, e: &ItemError) {
    out["errorCode"] = e.code.clone().into();
    out["errorDescription"] = e.description.clone().into();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
