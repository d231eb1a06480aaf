//! Setting sessions up on the SFU under test through its HTTP API: the
//! [`Sfu`] operations a run needs, for switchboard here and for Janus in
//! `crate::janus`.

/// What a run asks of an SFU.
pub trait Sfu {
    /// Pushes the tracks `(mid, trackName)` of `offer`; returns what
    /// subscribers name the publisher by, and the SFU's answer (with its
    /// candidates).
    fn publish(
        &mut self,
        offer: &str,
        tracks: &[(String, String)],
    ) -> anyhow::Result<(String, String)>;
    /// Pulls `names` of a publisher into a new subscription; returns its id
    /// and the SFU's offer (with its candidates).
    fn subscribe(&mut self, publisher: &str, names: &[String]) -> anyhow::Result<(String, String)>;
    /// Answers the SFU's offer of a subscription.
    fn answer(&mut self, subscription: &str, answer: &str) -> anyhow::Result<()>;
    /// Closes a session's transceivers `mids` without renegotiating.
    fn close(&mut self, session: &str, mids: &[String]) -> anyhow::Result<()>;
}

impl Sfu for Switchboard {
    fn publish(
        &mut self,
        offer: &str,
        tracks: &[(String, String)],
    ) -> anyhow::Result<(String, String)> {
        Switchboard::publish(self, offer, tracks)
    }
    fn subscribe(&mut self, publisher: &str, names: &[String]) -> anyhow::Result<(String, String)> {
        Switchboard::subscribe(self, publisher, names)
    }
    fn answer(&mut self, subscription: &str, answer: &str) -> anyhow::Result<()> {
        self.renegotiate(subscription, answer)
    }
    fn close(&mut self, session: &str, mids: &[String]) -> anyhow::Result<()> {
        let tracks: Vec<Value> = mids.iter().map(|m| json!({"mid": m})).collect();
        let v = self.call(
            "PUT",
            &format!("/sessions/{session}/tracks/close"),
            &json!({"tracks": tracks, "force": true}),
        )?;
        check_items(&v)
    }
}

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// The HTTP calls an API client made: each one's round trip (request
/// written to answer read), and how many failed.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    /// Round trips in µs, in call order.
    pub us: Vec<u64>,
    /// Calls that got no answer or an error status.
    pub failed: u64,
}

/// A switchboard (Calls API) app.
pub struct Switchboard {
    base: String,
    secret: String,
    /// The rid pulls ask for (`simulcast: {preferredRid}`), if any.
    prefer_rid: Option<String>,
    agent: ureq::Agent,
    calls: RefCell<Calls>,
}

impl Switchboard {
    /// The app `app_id` on the server at `url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(url: &str, app_id: &str, secret: &str) -> Self {
        Switchboard {
            base: format!("{}/v1/apps/{app_id}", url.trim_end_matches('/')),
            secret: secret.to_owned(),
            prefer_rid: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into(),
            calls: RefCell::default(),
        }
    }

    /// Pulls made from now on ask for the simulcast layer `rid`.
    pub fn prefer_rid(mut self, rid: Option<String>) -> Self {
        self.prefer_rid = rid;
        self
    }

    /// The calls made so far (they are forgotten here).
    pub fn take_calls(&self) -> Calls {
        self.calls.take()
    }

    /// One API call; its JSON answer, or why it failed.
    pub fn call(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let started = Instant::now();
        let result = self.round_trip(method, path, body);
        let mut calls = self.calls.borrow_mut();
        calls.us.push(started.elapsed().as_micros().max(1) as u64);
        calls.failed += u64::from(result.is_err());
        result
    }

    fn round_trip(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.secret);
        let mut response = match method {
            "POST" => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send(body.to_string()),
            _ => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send(body.to_string()),
        }
        .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{method} {url}: {text}"))?;
        if !(200..300).contains(&status) {
            bail!("{method} {url}: {status} {text}");
        }
        Ok(value)
    }

    /// POST sessions/new; the session id.
    pub fn new_session(&self) -> anyhow::Result<String> {
        let v = self.call("POST", "/sessions/new", &json!({}))?;
        Ok(v["sessionId"].as_str().context("sessionId")?.to_owned())
    }

    /// Pushes the tracks `(mid, trackName)` of `offer`; returns the session and the answer.
    pub fn publish(
        &self,
        offer: &str,
        tracks: &[(String, String)],
    ) -> anyhow::Result<(String, String)> {
        let session = self.new_session()?;
        let items: Vec<Value> = tracks
            .iter()
            .map(|(mid, name)| json!({"location": "local", "mid": mid, "trackName": name}))
            .collect();
        let v = self.call(
            "POST",
            &format!("/sessions/{session}/tracks/new"),
            &json!({"sessionDescription": {"type": "offer", "sdp": offer}, "tracks": items}),
        )?;
        check_items(&v)?;
        let answer = v["sessionDescription"]["sdp"]
            .as_str()
            .context("answer")?
            .to_owned();
        Ok((session, answer))
    }

    /// Pulls `names` of `publisher` into a new session; returns it and the server's offer.
    pub fn subscribe(&self, publisher: &str, names: &[String]) -> anyhow::Result<(String, String)> {
        let session = self.new_session()?;
        let items: Vec<Value> = names
            .iter()
            .map(|n| {
                let mut item =
                    json!({"location": "remote", "sessionId": publisher, "trackName": n});
                if let Some(rid) = &self.prefer_rid {
                    item["simulcast"] = json!({"preferredRid": rid});
                }
                item
            })
            .collect();
        let v = self.call(
            "POST",
            &format!("/sessions/{session}/tracks/new"),
            &json!({ "tracks": items }),
        )?;
        check_items(&v)?;
        let offer = v["sessionDescription"]["sdp"]
            .as_str()
            .context("offer")?
            .to_owned();
        Ok((session, offer))
    }

    /// Answers the server's offer.
    pub fn renegotiate(&self, session: &str, answer: &str) -> anyhow::Result<()> {
        self.call(
            "PUT",
            &format!("/sessions/{session}/renegotiate"),
            &json!({"sessionDescription": {"type": "answer", "sdp": answer}}),
        )?;
        Ok(())
    }
}

fn check_items(v: &Value) -> anyhow::Result<()> {
    for t in v["tracks"].as_array().into_iter().flatten() {
        if let Some(code) = t["errorCode"].as_str() {
            bail!(
                "track {}: {code}: {}",
                t["trackName"],
                t["errorDescription"]
            );
        }
    }
    Ok(())
}
