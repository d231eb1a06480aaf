//! The registry of apps, sessions and tracks. Owned by the control thread;
//! the API and the transport events both work on it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::ids::{AppId, SessionId, SessionKey, TrackKey, TrackName};

use super::session::{PushedTrack, Session};

/// An application: its secret and its sessions.
pub struct App {
    /// The bearer secret.
    pub secret: String,
    /// Its sessions by id.
    pub sessions: HashMap<SessionId, SessionKey>,
    /// How many of them completed DTLS at least once.
    pub connected: usize,
}

impl App {
    /// Its sessions that never connected.
    pub fn never_connected(&self) -> usize {
        self.sessions.len().saturating_sub(self.connected)
    }
}

/// Everything the control thread knows about sessions and tracks.
#[derive(Default)]
pub struct Registry {
    /// Apps by id.
    pub apps: HashMap<AppId, App>,
    /// Sessions by key, with their app. Boxed: growing the map moves
    /// pointers, not sessions (a resize at 100,000 sessions would otherwise
    /// copy some 70 MB while the API waits).
    pub sessions: HashMap<SessionKey, (AppId, Box<Session>)>,
    /// The session that pushes each track (kept by the sync, which sees
    /// every session whose pushed tracks changed).
    pub tracks: HashMap<TrackKey, SessionKey>,
    /// Tracks of other nodes' sessions relayed here (a cluster): (app,
    /// their session, their name) → the mirror that pushes it, and its name
    /// there.
    pub aliases: HashMap<(AppId, SessionId, TrackName), (SessionKey, TrackName)>,
    /// Sessions in creation order, for the never-connected expiry: the
    /// oldest is first, so expiry looks only at what is due.
    pub created: VecDeque<(Instant, SessionKey)>,
    next_session: u32,
}

impl Registry {
    /// A registry with these apps (id, secret).
    pub fn new(apps: impl IntoIterator<Item = (AppId, String)>) -> Self {
        Registry {
            apps: apps
                .into_iter()
                .map(|(id, secret)| {
                    (
                        id,
                        App {
                            secret,
                            sessions: HashMap::new(),
                            connected: 0,
                        },
                    )
                })
                .collect(),
            ..Registry::default()
        }
    }

    /// Creates a session in `app`.
    pub fn create_session(&mut self, app: &AppId, now: Instant) -> Option<SessionKey> {
        let a = self.apps.get_mut(app)?;
        self.next_session += 1;
        let key = SessionKey(self.next_session);
        let session = Box::new(Session::new(key, now));
        a.sessions.insert(session.id.clone(), key);
        self.sessions.insert(key, (app.clone(), session));
        self.created.push_back((now, key));
        Some(key)
    }

    /// The app of a session.
    pub fn app_of(&self, key: SessionKey) -> Option<&AppId> {
        self.sessions.get(&key).map(|(app, _)| app)
    }

    /// Counts a session's first DTLS completion in its app.
    pub fn count_connected(&mut self, app: &AppId) {
        if let Some(a) = self.apps.get_mut(app) {
            a.connected += 1;
        }
    }

    /// The key of a session of `app`.
    pub fn session_key(&self, app: &AppId, id: &str) -> Option<SessionKey> {
        self.apps
            .get(app)?
            .sessions
            .get(&SessionId(id.to_owned()))
            .copied()
    }

    /// A session by key.
    pub fn session(&self, key: SessionKey) -> Option<&Session> {
        self.sessions.get(&key).map(|(_, s)| &**s)
    }

    /// A session by key, mutably.
    pub fn session_mut(&mut self, key: SessionKey) -> Option<&mut Session> {
        self.sessions.get_mut(&key).map(|(_, s)| &mut **s)
    }

    /// Removes a session.
    pub fn remove_session(&mut self, key: SessionKey) -> Option<(AppId, Box<Session>)> {
        let (app, session) = self.sessions.remove(&key)?;
        if let Some(a) = self.apps.get_mut(&app) {
            a.sessions.remove(&session.id);
            if session.dtls.connected_at().is_some() {
                a.connected = a.connected.saturating_sub(1);
            }
        }
        for p in &session.pushed {
            self.tracks.remove(&p.key());
        }
        if !self.aliases.is_empty() {
            self.aliases.retain(|_, (mirror, _)| *mirror != key);
        }
        Some((app, session))
    }

    /// An active pushed track of `app`, by publisher session id and name
    /// (a relayed one by its alias).
    pub fn find_track(
        &self,
        app: &AppId,
        session_id: &str,
        name: &TrackName,
    ) -> Option<&PushedTrack> {
        let own = self
            .session_key(app, session_id)
            .and_then(|key| self.session(key)?.pushed_track(name));
        own.or_else(|| {
            let alias = (app.clone(), SessionId(session_id.to_owned()), name.clone());
            let (mirror, there) = self.aliases.get(&alias)?;
            self.session(*mirror)?.pushed_track(there)
        })
    }

    /// The session that pushes a track, and the track.
    pub fn track_owner(&self, track: TrackKey) -> Option<(&Session, &PushedTrack)> {
        let s = self.session(*self.tracks.get(&track)?)?;
        s.pushed.iter().find(|t| t.key() == track).map(|t| (s, t))
    }

    /// The session that pushes a track, mutably.
    pub fn track_owner_mut(&mut self, track: TrackKey) -> Option<&mut Session> {
        let key = *self.tracks.get(&track)?;
        self.session_mut(key)
    }
}
