//! The WHIP and WHEP sessions the server knows (RFC 9725's "WHIP session"
//! resources): each is one Calls API session, found by its session id,
//! which is also its resource id; and, per app and stream name, the WHIP
//! session that publishes it now.
//!
//! Where it sits: the state under [`super::Whip`]; no I/O, no clock. It is
//! bounded: [`Resources::insert`] refuses past [`Resources::capacity`], and
//! [`Resources::retain`] forgets sessions that ended (expiry, a failed
//! transport) without a DELETE.

use std::collections::HashMap;

use crate::ids::{AppId, Mid};

use super::names::Published;

/// Which door a request came through: a WHIP URL reaches publishers only,
/// a WHEP URL players only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `…/whip/…`.
    Whip,
    /// `…/whep/…`.
    Whep,
}

impl Door {
    /// The path word.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Whip => "whip",
            Door::Whep => "whep",
        }
    }
}

/// What a WHIP/WHEP session does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A WHIP client publishing a stream.
    Publish {
        /// Its tracks, named.
        tracks: Vec<Published>,
    },
    /// A WHEP player.
    Play {
        /// What it plays.
        source: Source,
        /// Its receiving sections and the track name each plays.
        pulls: Vec<(Mid, String)>,
    },
}

impl Role {
    /// The door its requests must come through.
    pub fn door(&self) -> Door {
        match self {
            Role::Publish { .. } => Door::Whip,
            Role::Play { .. } => Door::Whep,
        }
    }
}

/// What a WHEP player plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Whatever WHIP session publishes its stream (it follows a publisher
    /// that reconnects).
    Stream,
    /// Named tracks of one Calls API session (our extension).
    Session(String),
}

/// A session's ICE generation: 0, then one more for each ICE restart; its
/// entity tag (RFC 9725 §4.3) is made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(pub u32);

/// One WHIP or WHEP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its app.
    pub app: AppId,
    /// The stream name of its URL.
    pub stream: String,
    /// What it does.
    pub role: Role,
    /// The client's last offer (an ICE restart repeats it with new
    /// credentials).
    pub offer: String,
    /// Its ICE generation.
    pub generation: Generation,
    /// The TURN username its `Link` headers carried, if any (revoked when
    /// it is deleted).
    pub turn_username: Option<String>,
}

impl Resource {
    /// The entity tag of the session (quoted, RFC 9110 §8.8.3).
    pub fn etag(&self, session_id: &str) -> String {
        let short = session_id.get(..12).unwrap_or(session_id);
        format!("\"{short}-{}\"", self.generation.0)
    }

    /// Whether `if_match` (an `If-Match` header) names this session's
    /// current state: `*` or one of its listed tags, compared strongly
    /// (RFC 9110 §13.1.1: a weak tag never matches).
    pub fn matches(&self, session_id: &str, if_match: &str) -> bool {
        let etag = self.etag(session_id);
        if_match
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == etag)
    }
}

/// Where a request points: its app, stream and door.
pub type Place<'a> = (&'a AppId, &'a str, Door);

/// Why a resource was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// All WHIP and WHEP sessions.
#[derive(Debug)]
pub struct Resources {
    by_session: HashMap<String, Resource>,
    live: HashMap<(AppId, String), String>,
    capacity: usize,
}

impl Resources {
    /// No sessions; at most `capacity` at once.
    pub fn new(capacity: usize) -> Self {
        Resources {
            by_session: HashMap::new(),
            live: HashMap::new(),
            capacity,
        }
    }

    /// The most sessions kept at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps `resource` under `session_id`; a publisher becomes its
    /// stream's live one, and the one it replaces is returned (its session
    /// is the caller's to end).
    pub fn insert(
        &mut self,
        session_id: String,
        resource: Resource,
    ) -> Result<Option<(String, Resource)>, Full> {
        if self.by_session.len() >= self.capacity {
            return Err(Full);
        }
        let mut replaced = None;
        if matches!(resource.role, Role::Publish { .. }) {
            let key = (resource.app.clone(), resource.stream.clone());
            if let Some(old) = self.live.insert(key, session_id.clone()) {
                replaced = self.by_session.remove(&old).map(|r| (old, r));
            }
        }
        self.by_session.insert(session_id, resource);
        Ok(replaced)
    }

    /// The session `session_id`, if it is one of `app`'s on `stream`
    /// behind `door`.
    pub fn get(&self, (app, stream, door): Place<'_>, session_id: &str) -> Option<&Resource> {
        self.by_session
            .get(session_id)
            .filter(|r| &r.app == app && r.stream == stream && r.role.door() == door)
    }

    /// The same, to change.
    pub fn get_mut(
        &mut self,
        (app, stream, door): Place<'_>,
        session_id: &str,
    ) -> Option<&mut Resource> {
        self.by_session
            .get_mut(session_id)
            .filter(|r| &r.app == app && r.stream == stream && r.role.door() == door)
    }

    /// Forgets session `session_id` at `place`.
    pub fn remove(&mut self, place: Place<'_>, session_id: &str) -> Option<Resource> {
        self.get(place, session_id)?;
        let key = (place.0.clone(), place.1.to_owned());
        if self.live.get(&key).map(String::as_str) == Some(session_id) {
            self.live.remove(&key);
        }
        self.by_session.remove(session_id)
    }

    /// The publisher of `stream` now: its session id and resource.
    pub fn live(&self, app: &AppId, stream: &str) -> Option<(&str, &Resource)> {
        let id = self.live.get(&(app.clone(), stream.to_owned()))?;
        Some((id.as_str(), self.by_session.get(id)?))
    }

    /// The players of `app`'s `stream` that follow its publisher.
    pub fn followers(&self, app: &AppId, stream: &str) -> Vec<(String, Vec<(Mid, String)>)> {
        self.by_session
            .iter()
            .filter(|(_, r)| &r.app == app && r.stream == stream)
            .filter_map(|(id, r)| match &r.role {
                Role::Play {
                    source: Source::Stream,
                    pulls,
                } => Some((id.clone(), pulls.clone())),
                _ => None,
            })
            .collect()
    }

    /// Keeps only the sessions `alive` says still exist.
    pub fn retain(&mut self, mut alive: impl FnMut(&AppId, &str) -> bool) {
        self.by_session.retain(|id, r| alive(&r.app, id));
        let by_session = &self.by_session;
        self.live.retain(|_, id| by_session.contains_key(id));
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// (publishers, players). Every publisher kept is its stream's live
    /// one (a replaced one is dropped), so `live` counts them.
    pub fn counts(&self) -> (usize, usize) {
        (self.live.len(), self.by_session.len() - self.live.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::MediaKind;

    fn publisher(stream: &str) -> Resource {
        Resource {
            app: AppId::from("app"),
            stream: stream.into(),
            role: Role::Publish {
                tracks: vec![Published {
                    mid: Mid::from("0"),
                    kind: MediaKind::Audio,
                    track_name: format!("{stream}-audio"),
                }],
            },
            offer: String::new(),
            generation: Generation(0),
            turn_username: None,
        }
    }

    fn player(stream: &str) -> Resource {
        Resource {
            role: Role::Play {
                source: Source::Stream,
                pulls: vec![(Mid::from("0"), format!("{stream}-audio"))],
            },
            ..publisher(stream)
        }
    }

    #[test]
    fn a_new_publisher_replaces_the_live_one() {
        let mut r = Resources::new(8);
        let app = AppId::from("app");
        assert_eq!(r.insert("s1".into(), publisher("a")), Ok(None));
        r.insert("p1".into(), player("a")).unwrap();
        let (old, _) = r.insert("s2".into(), publisher("a")).unwrap().unwrap();
        assert_eq!(old, "s1");
        assert_eq!(r.live(&app, "a").unwrap().0, "s2");
        assert!(r.get((&app, "a", Door::Whip), "s1").is_none());
        assert_eq!(r.followers(&app, "a").len(), 1);
        assert_eq!(r.counts(), (1, 1));
    }

    #[test]
    fn sessions_are_found_only_under_their_app_stream_and_door() {
        let mut r = Resources::new(8);
        let (app, other) = (AppId::from("app"), AppId::from("other"));
        r.insert("s1".into(), publisher("a")).unwrap();
        r.insert("p1".into(), player("a")).unwrap();
        assert!(r.get((&app, "a", Door::Whip), "s1").is_some());
        assert!(r.get((&other, "a", Door::Whip), "s1").is_none());
        assert!(r.get((&app, "b", Door::Whip), "s1").is_none());
        // A player's door does not reach the publisher, nor the reverse.
        assert!(r.get((&app, "a", Door::Whep), "s1").is_none());
        assert!(r.remove((&app, "a", Door::Whep), "s1").is_none());
        assert!(r.remove((&app, "a", Door::Whip), "p1").is_none());
        assert!(r.remove((&app, "b", Door::Whip), "s1").is_none());
        assert!(r.remove((&app, "a", Door::Whip), "s1").is_some());
        assert!(r.live(&app, "a").is_none());
        assert!(r.remove((&app, "a", Door::Whep), "p1").is_some());
    }

    #[test]
    fn bounded_and_forgets_ended_sessions() {
        let mut r = Resources::new(2);
        r.insert("s1".into(), publisher("a")).unwrap();
        r.insert("s2".into(), publisher("b")).unwrap();
        assert_eq!(r.insert("s3".into(), publisher("c")), Err(Full));
        r.retain(|_, id| id != "s1");
        assert!(r.live(&AppId::from("app"), "a").is_none());
        assert!(r.insert("s3".into(), publisher("c")).is_ok());
    }

    #[test]
    fn etags_change_with_the_ice_generation() {
        let mut res = publisher("a");
        let first = res.etag("0123456789abcdef");
        assert!(res.matches("0123456789abcdef", &first));
        assert!(res.matches("0123456789abcdef", "*"));
        res.generation = Generation(1);
        assert!(!res.matches("0123456789abcdef", &first));
        let now = res.etag("0123456789abcdef");
        assert!(res.matches("0123456789abcdef", &format!("\"x\", {now}")));
        assert!(!res.matches("0123456789abcdef", &format!("W/{now}")));
    }
}
