//! The cascade: a local pull of a track pushed on another node goes through
//! one relay per (app, owning node), set up on first use, carrying every
//! track of that node pulled here, and closed once none has been pulled for
//! [`LINGER`]. (One relay per node pair, not per remote session: the two
//! nodes' media ports make one 5-tuple, which carries one session.)
//!
//! Set-up, all through the owning node's public API, signed as this node's
//! (`node_call`; no app secret travels):
//! 1. `sessions/new?thirdparty=true` there: the relay session (it checks
//!    our candidates, as we check its);
//! 2. here, the mirror (`control::mirrors`), a third-party session too;
//! 3. `tracks/new` there, pulling the track into the relay: its offer;
//! 4. the offer applied to the mirror as a push of the track: our answer;
//! 5. `renegotiate` there with the answer.
//!
//! ICE then binds both ends (each binds on the other's checks or on the
//! responses to its own), DTLS runs (the owner is the client: we answer
//! `a=setup:passive`), and the track's media reaches the mirror as any
//! publisher's would. A further track from the same node repeats steps 3–5
//! on the same relay.
//!
//! A track whose steps 3–5 fail fails alone: what its steps did is undone
//! (its pull on the owner closed, its alias here forgotten) and the relay
//! goes on carrying its other tracks. Only a relay opened for that track,
//! which carries nothing else, is forgotten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Value, json};

use crate::calls::CallsError;
use crate::control::mirrors::MirrorOf;
use crate::ids::AppId;

use super::store::{Node, Owner, Presence};
use super::{Cluster, http, node_call};

/// How long a relay stays after its last local subscriber left.
pub const LINGER: Duration = Duration::from_secs(10);

impl Cluster {
    /// Makes `tracks` of `session` (a session of `app`) pullable here: a
    /// no-op for local tracks and for sessions no node owns; otherwise the
    /// relay from the owner carries them once this returns. Fails when the
    /// directory or the owner cannot be reached or is not believed, or when
    /// the relay cannot carry one of them (that one fails alone: what the
    /// relay already carries goes on).
    pub async fn ensure_relays(
        &self,
        app: &AppId,
        session: &str,
        tracks: &[&str],
    ) -> Result<(), CallsError> {
        let all_here = tracks
            .iter()
            .all(|t| self.control.has_track(app, session, t));
        if all_here || self.control.owns_session(app, session) {
            return Ok(());
        }
        let Some(owner) = self.owner_elsewhere(app, session).await? else {
            return Ok(());
        };
        let lock = self.relay_lock(app, &owner.id);
        let _one_at_a_time = lock.lock().await;
        for track in tracks {
            if self.control.has_track(app, session, track) {
                continue;
            }
            let (relay, opened) = match self.control.mirror_of_node(app, &owner.id) {
                Some(m) => (m.relay_session, false),
                None => (self.open_relay(app, &owner).await?, true),
            };
            let added = self
                .add_to_relay(app, (session, track), &owner, &relay)
                .await;
            if let Err(e) = added {
                tracing::warn!(session, track, node = %owner.id, error = %e.description, "a track could not be added to its relay");
                // A relay opened for this track carries nothing: forgotten,
                // so that nothing looks relayed that is not (the owner's
                // relay session loses its consent). An older relay goes on.
                if opened && self.control.remove_mirror(app, &owner.id) {
                    self.counters
                        .relays_closed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Pulls `track` into the relay on its owner and pushes it on the
    /// mirror (steps 3–5 of the module doc); on a failure, undoes what it
    /// did.
    async fn add_to_relay(
        &self,
        app: &AppId,
        (session, track): (&str, &str),
        owner: &Node,
        relay: &str,
    ) -> Result<(), CallsError> {
        let pull =
            json!({"tracks": [{"location": "remote", "sessionId": session, "trackName": track}]});
        let base = format!("/v1/apps/{}/sessions/{relay}", app.0);
        let tracks_new = format!("{base}/tracks/new");
        let reply = self
            .call_as_node(owner, Method::POST, &tracks_new, &pull)
            .await?;
        let item = &reply["tracks"][0];
        if item.get("errorCode").is_some() {
            // The owner has no such track: the local pull fails as for any
            // unknown track.
            return Ok(());
        }
        let (Some(offer), Some(mid)) = (
            reply["sessionDescription"]["sdp"].as_str(),
            item["mid"].as_str(),
        ) else {
            return Err(CallsError::cluster_unavailable(
                "The node that owns the track gave no offer for its relay",
            ));
        };
        let answer = self.control.mirror_push(
            app,
            &owner.id,
            offer.to_owned(),
            mid.to_owned(),
            (session, track),
            Instant::now(),
        );
        let renegotiated = match answer {
            Ok(answer) => {
                let renegotiate = json!({"sessionDescription": {"type": "answer", "sdp": answer}});
                let path = format!("{base}/renegotiate");
                self.call_as_node(owner, Method::PUT, &path, &renegotiate)
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = renegotiated {
            // Nothing here names it relayed, and the owner's relay no
            // longer pulls it (best effort: a relay whose owner is gone
            // goes with the upkeep).
            self.control.mirror_forget(app, &owner.id, (session, track));
            let close = json!({"tracks": [{"mid": mid}], "force": true});
            let path = format!("{base}/tracks/close");
            let _ = self.call_as_node(owner, Method::PUT, &path, &close).await;
            return Err(CallsError::cluster_unavailable(format!(
                "The relay could not carry the track: {}",
                e.description
            )));
        }
        tracing::info!(session, track, node = %owner.id, "relay carries a track from its node");
        Ok(())
    }

    /// The live node that owns `session`, when it is not this one; `None`
    /// when no node owns it: the call is answered here, as for an unknown
    /// session. A directory that cannot answer, or whose answer is not
    /// believed (a record that does not verify, an owner not listed, a
    /// directory being written again), is 503 `cluster_unavailable`: a
    /// client tries again, and no live session is ever called gone for it.
    pub async fn owner_elsewhere(
        &self,
        app: &AppId,
        session: &str,
    ) -> Result<Option<Node>, CallsError> {
        let owner = self
            .store
            .owner(&app.0, session, &self.node.id)
            .await
            .map_err(|e| CallsError::cluster_unavailable(e.to_string()))?;
        match owner {
            Owner::Node(node) => Ok(Some(node)),
            Owner::Nobody | Owner::This => Ok(None),
            Owner::Unsure(why) => Err(CallsError::cluster_unavailable(format!(
                "The cluster directory cannot say where this session lives yet: {why}"
            ))),
        }
    }

    /// Creates the relay session on the owner and the mirror here.
    async fn open_relay(&self, app: &AppId, owner: &Node) -> Result<String, CallsError> {
        let path = format!("/v1/apps/{}/sessions/new?thirdparty=true", app.0);
        let reply = self
            .call_as_node(owner, Method::POST, &path, &json!({}))
            .await?;
        let relay = reply["sessionId"]
            .as_str()
            .ok_or_else(|| {
                CallsError::cluster_unavailable("The node that owns the track created no relay")
            })?
            .to_owned();
        let of = MirrorOf {
            node: owner.id.clone(),
            api: owner.api.clone(),
            relay_session: relay.clone(),
        };
        self.control.create_mirror(app, of, Instant::now())?;
        self.counters
            .relays_opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(relay)
    }

    /// Closes relays whose node left the directory (their mirrors' pulls
    /// turn inactive here; judged only when the directory is `settled`) and
    /// relays unused for [`LINGER`].
    pub(super) async fn upkeep_relays(self: &Arc<Self>, now: Instant, settled: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let owners = if settled {
            self.control.mirror_owners()
        } else {
            Vec::new()
        };
        for node in owners {
            match self.store.node(&node).await {
                Ok(Presence::Gone) => {
                    let n = self.control.remove_mirrors_of(&node);
                    self.counters.relays_closed.fetch_add(n as u64, Relaxed);
                    tracing::warn!(
                        node,
                        relays = n,
                        "a node left the cluster: its relays are closed"
                    );
                }
                // Listed, or not sure (a directory being written again, a
                // record not believed): relays keep forwarding.
                Ok(Presence::Live(_) | Presence::Unsure(_)) => {}
                // An outage of the directory: relays keep forwarding.
                Err(_) => break,
            }
        }
        let busy = |app: &AppId, id: &str| self.relay_busy(app, id);
        for unused in self.control.take_unused_mirrors(now, LINGER, busy) {
            self.counters.relays_closed.fetch_add(1, Relaxed);
            tracing::info!(node = %unused.of.node, "relay closed: nothing of its node pulled here");
            let this = self.clone();
            // Not awaited here: a slow node must not hold up the others'
            // upkeep.
            tokio::spawn(async move {
                let tracks: Vec<Value> = unused.mids.iter().map(|m| json!({"mid": m})).collect();
                let path = format!(
                    "/v1/apps/{}/sessions/{}/tracks/close",
                    unused.app.0, unused.of.relay_session
                );
                let close = json!({"tracks": tracks, "force": true});
                let owner = Node {
                    id: unused.of.node.clone(),
                    api: unused.of.api.clone(),
                    media: String::new(),
                };
                let closed = this.call_as_node(&owner, Method::PUT, &path, &close).await;
                if let Err(e) = closed {
                    tracing::debug!(error = %e, "closing an unused relay on its node");
                }
            });
        }
    }

    /// A JSON call to another node's API, signed as this node's (the
    /// owner serves it as the app of its path).
    async fn call_as_node(
        &self,
        owner: &Node,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, CallsError> {
        let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let signed = self.sign_call(&owner.id, method.as_str(), path, &body);
        headers.insert(node_call::HEADER, signed);
        let call = http::call(
            &owner.api,
            method,
            path,
            (headers, body),
            http::RELAY_CALL_TIMEOUT,
        );
        let reply = call.await.map_err(|e| {
            tracing::warn!(error = %e, "a relay call got no answer");
            CallsError::cluster_unavailable("The node that owns the track did not answer")
        })?;
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if !reply.status.is_success() {
            let why = value["errorDescription"].as_str().unwrap_or("");
            tracing::warn!(path, status = %reply.status, why, "a relay call failed");
            return Err(CallsError::cluster_unavailable(format!(
                "The node that owns the track refused its relay ({}: {why})",
                reply.status.as_u16()
            )));
        }
        Ok(value)
    }

    /// Whether a relay from `node` is being set up or extended (the upkeep
    /// leaves it alone).
    fn relay_busy(&self, app: &AppId, node: &str) -> bool {
        let locks = self.relay_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks
            .get(&(app.clone(), node.to_owned()))
            .is_some_and(|l| l.try_lock().is_err())
    }

    /// The lock of the relay of `app`'s tracks from `node`.
    fn relay_lock(&self, app: &AppId, node: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.relay_locks.lock().unwrap_or_else(|e| e.into_inner());
        // Locks of finished set-ups go (only the map and the caller hold them).
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks
            .entry((app.clone(), node.to_owned()))
            .or_default()
            .clone()
    }
}
