//! The Janus VideoRoom target over Janus's HTTP (REST) API: one Janus
//! session with a long-poll thread that sorts events by handle; a room per
//! run; publishers `joinandconfigure` with an offer; subscribers `join` with
//! `streams: [{feed}]` and `start` with an answer. With `full_trickle`,
//! Janus's candidates arrive as `trickle` events; they are appended to its
//! SDP so the rest of the load generator reads them like switchboard's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::target::Sfu;

/// Events per handle, filled by the long-poll thread.
#[derive(Default)]
struct Inbox {
    events: Mutex<HashMap<u64, VecDeque<Value>>>,
    arrived: Condvar,
}

/// A Janus server's VideoRoom.
pub struct Janus {
    base: String,
    session: u64,
    room: u64,
    agent: ureq::Agent,
    inbox: Arc<Inbox>,
    stop: Arc<AtomicBool>,
    next_tx: u64,
}

impl Janus {
    /// Connects to Janus at `url` (e.g. `http://127.0.0.1:8088`) and creates a room.
    pub fn new(url: &str, publishers: usize) -> anyhow::Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("{}/janus", url.trim_end_matches('/'));
        let mut janus = Janus {
            base,
            session: 0,
            room: 0,
            agent,
            inbox: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            next_tx: 0,
        };
        let created = janus.post("", json!({"janus": "create"}))?;
        janus.session = created["data"]["id"].as_u64().context("Janus session id")?;
        janus.spawn_long_poll();
        let handle = janus.attach()?;
        janus.room = 1_000_000
            + u64::from(std::process::id()) * 100
            + (Instant::now().elapsed().subsec_nanos() % 100) as u64;
        let created = janus.post(
            &format!("/{}/{handle}", janus.session),
            json!({"janus": "message", "body": {
                "request": "create", "room": janus.room, "publishers": publishers.max(1),
                "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0, "notify_joining": false,
            }}),
        )?;
        let result = &created["plugindata"]["data"];
        if result["videoroom"] != "created" {
            bail!("Janus room create: {created}");
        }
        Ok(janus)
    }

    fn post(&mut self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        self.next_tx += 1;
        body["transaction"] = json!(format!("t{}", self.next_tx));
        let url = format!("{}{path}", self.base);
        let mut r = self
            .agent
            .post(&url)
            .send(body.to_string())
            .with_context(|| format!("POST {url}"))?;
        let text = r.body_mut().read_to_string()?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("POST {url}: {text}"))?;
        if v["janus"] == "error" {
            bail!("Janus error: {v}");
        }
        Ok(v)
    }

    fn spawn_long_poll(&self) {
        let url = format!("{}/{}?maxev=50", self.base, self.session);
        let agent = self.agent.clone();
        let inbox = self.inbox.clone();
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let Ok(mut r) = agent.get(&url).call() else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let Ok(text) = r.body_mut().read_to_string() else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let list = match v {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                let mut events = inbox.events.lock().unwrap_or_else(|e| e.into_inner());
                for e in list {
                    if let Some(sender) = e["sender"].as_u64() {
                        events.entry(sender).or_default().push_back(e);
                    }
                }
                inbox.arrived.notify_all();
            }
        });
    }

    /// Waits for an event of `handle` that `want` accepts.
    fn wait(
        &self,
        handle: u64,
        limit: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        let mut events = self.inbox.events.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(queue) = events.get_mut(&handle)
                && let Some(i) = queue.iter().position(&want)
            {
                return Ok(queue.remove(i).unwrap_or_default());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no expected Janus event for handle {handle} within {limit:?}");
            }
            events = self
                .inbox
                .arrived
                .wait_timeout(events, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Janus's candidates for `handle`, as SDP lines.
    fn candidates(&self, handle: u64) -> anyhow::Result<String> {
        let mut lines = String::new();
        loop {
            let e = self.wait(handle, Duration::from_secs(5), |e| e["janus"] == "trickle")?;
            let c = &e["candidate"];
            if c["completed"] == true {
                break;
            }
            if let Some(text) = c["candidate"].as_str() {
                lines.push_str(&format!("a={text}\r\n"));
                if text.contains(" udp ") || text.contains(" UDP ") {
                    break;
                }
            }
        }
        Ok(lines)
    }

    fn attach(&mut self) -> anyhow::Result<u64> {
        let v = self.post(
            &format!("/{}", self.session),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )?;
        v["data"]["id"].as_u64().context("Janus handle id")
    }

    fn message(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        self.post(&format!("/{}/{handle}", self.session), msg)
    }

    fn trickle_completed(&mut self, handle: u64) -> anyhow::Result<()> {
        self.post(
            &format!("/{}/{handle}", self.session),
            json!({"janus": "trickle", "candidate": {"completed": true}}),
        )?;
        Ok(())
    }
}

/// Appends candidate lines to every m-section of an SDP.
fn with_candidates(sdp: &str, candidates: &str) -> String {
    let mut out = String::new();
    let mut first = true;
    for section in sdp.split("\r\nm=") {
        if !first {
            out.push_str("\r\nm=");
        }
        out.push_str(section.trim_end_matches("\r\n"));
        if !first {
            out.push_str("\r\n");
            out.push_str(candidates.trim_end_matches("\r\n"));
        }
        first = false;
    }
    out.push_str("\r\n");
    out
}

impl Sfu for Janus {
    fn publish(
        &mut self,
        offer: &str,
        _tracks: &[(String, String)],
    ) -> anyhow::Result<(String, String)> {
        let handle = self.attach()?;
        let room = self.room;
        self.message(
            handle,
            json!({"request": "joinandconfigure", "ptype": "publisher", "room": room, "audio": true, "video": true}),
            Some(json!({"type": "offer", "sdp": offer})),
        )?;
        self.trickle_completed(handle)?;
        let event = self.wait(handle, Duration::from_secs(10), |e| {
            e["jsep"]["type"] == "answer"
        })?;
        let feed = event["plugindata"]["data"]["id"]
            .as_u64()
            .context("publisher feed id")?;
        let answer = event["jsep"]["sdp"].as_str().context("answer sdp")?;
        let candidates = self.candidates(handle)?;
        Ok((feed.to_string(), with_candidates(answer, &candidates)))
    }

    fn subscribe(
        &mut self,
        publisher: &str,
        _names: &[String],
    ) -> anyhow::Result<(String, String)> {
        let handle = self.attach()?;
        let feed: u64 = publisher.parse()?;
        let room = self.room;
        self.message(
            handle,
            json!({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]}),
            None,
        )?;
        let event = self.wait(handle, Duration::from_secs(10), |e| {
            e["jsep"]["type"] == "offer"
        })?;
        let offer = event["jsep"]["sdp"].as_str().context("offer sdp")?;
        let candidates = self.candidates(handle)?;
        Ok((handle.to_string(), with_candidates(offer, &candidates)))
    }

    fn answer(&mut self, subscription: &str, answer: &str) -> anyhow::Result<()> {
        let handle: u64 = subscription.parse()?;
        let room = self.room;
        self.message(
            handle,
            json!({"request": "start", "room": room}),
            Some(json!({"type": "answer", "sdp": answer})),
        )?;
        self.trickle_completed(handle)?;
        Ok(())
    }

    fn close(&mut self, _session: &str, _mids: &[String]) -> anyhow::Result<()> {
        anyhow::bail!("--close is for switchboard only")
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.post(&format!("/{}", self.session), json!({"janus": "destroy"}));
    }
}
