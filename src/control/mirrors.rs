//! What the control plane offers a cluster (`crate::cluster`): a feed of
//! the sessions of this node that go or change their tracks (for the Redis
//! directory), and **mirrors**: the local end of a relay from another node.
//!
//! There is one mirror per (app, owning node): a third-party session whose
//! peer is the owning node, where the relay is a session of ours that pulls
//! every track of that node pulled here (one 5-tuple between two nodes'
//! media ports carries one session). The mirror pushes each such track
//! under `{session}/{name}`, and the registry's aliases let pulls name it as
//! on its node (`session`, `name`); media crosses once per node, however
//! many local subscribers. To the workers a mirror is an ordinary
//! publishing session; API calls never see one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::calls::CallsError;
use crate::calls::types::{SessionDescriptionJson, TrackObject, TracksNewRequest};
use crate::ids::{AppId, SessionId, SessionKey, TrackName};

use super::{Control, State};

/// A session of this node removed, or its tracks changed (mirrors are not
/// listed; a new session is recorded by the API before it answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// Removed.
    Removed(AppId, SessionId),
    /// Its active pushed tracks are now these (names).
    Tracks(AppId, SessionId, Vec<String>),
}

/// Where a mirror's media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorOf {
    /// The owning node's id.
    pub node: String,
    /// Its API base URL.
    pub api: String,
    /// The relay: our third-party session on the owning node.
    pub relay_session: String,
}

/// A mirror as the control plane keeps it.
#[derive(Debug)]
pub(super) struct Mirror {
    app: AppId,
    of: MirrorOf,
    /// Since when none of its tracks has been pulled here.
    unused_since: Option<Instant>,
}

/// A mirror none of whose tracks has been pulled here for its linger: to
/// close on its node (its relay's mids) and forget here.
#[derive(Debug)]
pub struct UnusedMirror {
    /// Its app.
    pub app: AppId,
    /// Its node and relay.
    pub of: MirrorOf,
    /// The mids of its tracks, which are those of the relay's pulls.
    pub mids: Vec<String>,
}

impl Control {
    /// Sends every session this node creates or removes to `feed`.
    pub fn watch_sessions(&self, feed: tokio::sync::mpsc::UnboundedSender<SessionChange>) {
        let _ = self.session_feed.set(feed);
    }

    pub(super) fn note_session(&self, change: SessionChange) {
        if let Some(feed) = self.session_feed.get() {
            let _ = feed.send(change);
        }
    }

    /// Tells the feed the pushed tracks of `changed` sessions that differ
    /// from what it was told (nothing without a feed).
    pub(super) fn note_tracks(&self, st: &mut State, changed: &[SessionKey]) {
        if self.session_feed.get().is_none() {
            return;
        }
        let State {
            reg,
            mirrors,
            told_tracks,
            ..
        } = st;
        for key in changed.iter().filter(|k| !mirrors.contains_key(k)) {
            let Some((app, s)) = reg.sessions.get(key) else {
                continue;
            };
            let names = active_tracks(s);
            if told_tracks.get(key).is_none_or(|told| *told != names) {
                told_tracks.insert(*key, names.clone());
                self.note_session(SessionChange::Tracks(app.clone(), s.id.clone(), names));
            }
        }
    }

    /// This node's own sessions (not mirrors): app, id and active pushed
    /// tracks.
    pub fn own_sessions(&self) -> Vec<(AppId, SessionId, Vec<String>)> {
        let st = self.lock();
        st.reg
            .sessions
            .iter()
            .filter(|(key, _)| !st.mirrors.contains_key(key))
            .map(|(_, (app, s))| (app.clone(), s.id.clone(), active_tracks(s)))
            .collect()
    }

    /// Whether `id` is a session of `app` on this node (a mirror is not).
    pub fn owns_session(&self, app: &AppId, id: &str) -> bool {
        let st = self.lock();
        st.reg
            .session_key(app, id)
            .is_some_and(|key| !st.mirrors.contains_key(&key))
    }

    /// Whether `id` is a mirror's (never a session of the API).
    pub fn is_mirror(&self, app: &AppId, id: &str) -> bool {
        let st = self.lock();
        st.reg
            .session_key(app, id)
            .is_some_and(|key| st.mirrors.contains_key(&key))
    }

    /// Whether a track can be pulled here without a new relay: pushed by a
    /// session of this node, or relayed here (active or idle: its relay
    /// carries it, and media turns it active again).
    pub fn has_track(&self, app: &AppId, session: &str, name: &str) -> bool {
        let st = self.lock();
        let name = TrackName(name.to_owned());
        let alias = (app.clone(), SessionId(session.to_owned()), name.clone());
        st.reg.aliases.contains_key(&alias) || st.reg.find_track(app, session, &name).is_some()
    }

    /// The mirror of `app`'s tracks from `node`, if there is one.
    pub fn mirror_of_node(&self, app: &AppId, node: &str) -> Option<MirrorOf> {
        let st = self.lock();
        let key = mirror_key(&st, app, node)?;
        st.mirrors.get(&key).map(|m| m.of.clone())
    }

    /// Creates the mirror of `app`'s tracks from `of.node` (a third-party
    /// session).
    pub fn create_mirror(&self, app: &AppId, of: MirrorOf, now: Instant) -> Result<(), CallsError> {
        let mut st = self.lock();
        let key = st
            .reg
            .create_session(app, now)
            .ok_or_else(|| CallsError::not_found("Unknown app"))?;
        let (ufrag, pwd) = st
            .reg
            .session(key)
            .map(|s| (s.ice.ufrag.clone(), s.ice.pwd.clone()))
            .ok_or_else(|| CallsError::internal("mirror vanished"))?;
        self.directory.insert(&ufrag, key, &pwd);
        // Its requests are the node's, for every local pull of a track of
        // that node: the per-session request rate is a client's.
        if let Some(s) = st.reg.session_mut(key) {
            s.rate_window = super::rate_window::RateWindow::exempt(now);
        }
        let targets = self.relay_check_targets();
        self.make_third_party(&mut st, key, targets);
        let mirror = Mirror {
            app: app.clone(),
            of,
            unused_since: None,
        };
        st.mirrors.insert(key, mirror);
        Ok(())
    }

    /// Adds a track to the mirror of `node`: the node's offer (its relay now
    /// pulls `name` of `session` on `mid`) is applied as if a client pushed
    /// it, and the track is aliased to its name on its node. Returns our
    /// answer, for the relay's renegotiation.
    pub fn mirror_push(
        &self,
        app: &AppId,
        node: &str,
        offer: String,
        mid: String,
        (session, name): (&str, &str),
        now: Instant,
    ) -> Result<String, CallsError> {
        let (key, id) = {
            let st = self.lock();
            let key = mirror_key(&st, app, node)
                .ok_or_else(|| CallsError::internal("the relay's mirror is gone"))?;
            let id = st.reg.session(key).map(|s| s.id.0.clone());
            (
                key,
                id.ok_or_else(|| CallsError::internal("the relay's mirror is gone"))?,
            )
        };
        let here = TrackName(format!("{session}/{name}"));
        let req = TracksNewRequest {
            session_description: Some(SessionDescriptionJson {
                kind: "offer".into(),
                sdp: offer,
            }),
            tracks: vec![TrackObject {
                location: Some("local".into()),
                mid: Some(mid),
                track_name: Some(here.0.clone()),
                ..TrackObject::default()
            }],
            auto_discover: false,
        };
        let response = self.tracks_new(app, &id, req, now)?;
        if let Some(failed) = response.tracks.iter().find(|t| t.failed()) {
            return Err(CallsError::internal(format!(
                "the relay's offer was refused: {}",
                failed.error_description.as_deref().unwrap_or("")
            )));
        }
        let alias = (
            app.clone(),
            SessionId(session.to_owned()),
            TrackName(name.to_owned()),
        );
        self.lock().reg.aliases.insert(alias, (key, here));
        response
            .session_description
            .map(|d| d.sdp)
            .ok_or_else(|| CallsError::internal("no answer for the relay's offer"))
    }

    /// Forgets that the mirror of `node` carries `name` of `session` (its
    /// relay could not be completed): a later pull sets it up again. The
    /// mirror's m-line stays, inactive.
    pub fn mirror_forget(&self, app: &AppId, node: &str, (session, name): (&str, &str)) {
        let mut st = self.lock();
        if mirror_key(&st, app, node).is_none() {
            return;
        }
        let alias = (
            app.clone(),
            SessionId(session.to_owned()),
            TrackName(name.to_owned()),
        );
        st.reg.aliases.remove(&alias);
    }

    /// Forgets the mirror of `node` (its pulls here turn inactive);
    /// whether there was one.
    pub fn remove_mirror(&self, app: &AppId, node: &str) -> bool {
        let mut st = self.lock();
        let key = mirror_key(&st, app, node);
        if let Some(key) = key {
            self.remove_session(&mut st, key);
        }
        key.is_some()
    }

    /// How many mirrors (open relays) there are.
    pub fn mirror_count(&self) -> usize {
        self.lock().mirrors.len()
    }

    /// The owning nodes of the mirrors.
    pub fn mirror_owners(&self) -> Vec<String> {
        let st = self.lock();
        let mut nodes: Vec<String> = st.mirrors.values().map(|m| m.of.node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Forgets the mirrors of a node that left the cluster; how many.
    pub fn remove_mirrors_of(&self, node: &str) -> usize {
        let mut st = self.lock();
        let keys: Vec<SessionKey> = st
            .mirrors
            .iter()
            .filter(|(_, m)| m.of.node == node)
            .map(|(k, _)| *k)
            .collect();
        let n = keys.len();
        for key in keys {
            self.remove_session(&mut st, key);
        }
        n
    }

    /// Mirrors none of whose tracks has been pulled here for `linger`
    /// (they are forgotten here; the caller closes their relays), except
    /// those whose node `busy` says is setting up a relay.
    pub fn take_unused_mirrors(
        &self,
        now: Instant,
        linger: Duration,
        busy: impl Fn(&AppId, &str) -> bool,
    ) -> Vec<UnusedMirror> {
        let mut st = self.lock();
        if st.mirrors.is_empty() {
            return Vec::new();
        }
        let State { reg, mirrors, .. } = &mut *st;
        // The pulled tracks (a subscriber counts from its pull to its
        // close, connected or not, so that one reconnecting keeps its
        // relay).
        let pulled: std::collections::HashSet<crate::ids::TrackKey> = reg
            .sessions
            .values()
            .flat_map(|(_, s)| s.transceivers.iter())
            .filter(|t| !t.stopped)
            .filter_map(|t| t.subscription.as_ref().map(|sub| sub.track))
            .collect();
        let mut due = Vec::new();
        for (key, m) in mirrors.iter_mut() {
            let Some((app, s)) = reg.sessions.get(key) else {
                continue;
            };
            let used = s.pushed.iter().any(|p| pulled.contains(&p.key()));
            if used || busy(app, &m.of.node) {
                m.unused_since = None;
                continue;
            }
            let since = *m.unused_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= linger {
                due.push((
                    *key,
                    UnusedMirror {
                        app: app.clone(),
                        of: m.of.clone(),
                        mids: s.pushed.iter().map(|p| p.mid.0.clone()).collect(),
                    },
                ));
            }
        }
        for (key, _) in &due {
            self.remove_session(&mut st, *key);
        }
        due.into_iter().map(|(_, m)| m).collect()
    }
}

/// The session of the mirror of `app`'s tracks from `node`.
fn mirror_key(st: &State, app: &AppId, node: &str) -> Option<SessionKey> {
    st.mirrors
        .iter()
        .find(|(_, m)| m.app == *app && m.of.node == node)
        .map(|(k, _)| *k)
}

/// The names of a session's active pushed tracks.
fn active_tracks(s: &super::session::Session) -> Vec<String> {
    s.pushed
        .iter()
        .filter(|p| p.active)
        .map(|p| p.name.0.clone())
        .collect()
}

/// Mirrors by session key (the control plane's state).
pub(super) type Mirrors = HashMap<SessionKey, Mirror>;
