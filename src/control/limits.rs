//! Caps and value checks on API requests, applied before anything changes:
//! a single request cannot make the control thread (every app's API) work
//! for long, nor leave a negotiation whose answer could not be sent back.
//!
//! Where it sits: the control thread, at the start of each operation.

use serde_json::Value;

use crate::calls::CallsError;
use crate::calls::types::TrackObject;
use crate::sdp::{MediaKind, SessionDescription};

use super::registry::App;
use super::session::Session;
use crate::config::Limits;

/// Most items in one tracks/new (autoDiscover included), tracks/update or
/// tracks/close call (calls-api.md, "Limits and timers").
pub const MAX_ITEMS: usize = 64;

/// Most formats an answer accepts on one m-line we receive (the first ones
/// offered, in the offer's order of preference).
pub const MAX_ANSWERED_FORMATS: usize = 32;

/// Longest `preferredRid` (RFC 8851 rid-ids are short tokens).
const MAX_RID_LEN: usize = 32;

/// Refuses a call with more than [`MAX_ITEMS`] items.
pub fn check_items(count: usize, what: &str) -> Result<(), CallsError> {
    if count > MAX_ITEMS {
        return Err(CallsError::invalid_params(format!(
            "at most {MAX_ITEMS} {what} per call (got {count})"
        )));
    }
    Ok(())
}

/// Refuses an SDP with more m-lines than a session may have (the cap,
/// 256 by default, keeps the answer to an offer of ours far below the 1 MiB
/// body limit: our offers carry one codec per pulled m-line, about 1.5 KiB).
pub fn check_mlines(desc: &SessionDescription, max: usize) -> Result<(), CallsError> {
    if desc.media.len() > max {
        return Err(CallsError::invalid_params(format!(
            "at most {max} m-lines per session (the SDP has {})",
            desc.media.len()
        )));
    }
    Ok(())
}

/// Refuses adding `added` m-lines to a session that would then have more
/// than `max`.
pub fn check_room(session: &Session, added: usize, max: usize) -> Result<(), CallsError> {
    let total = session.transceivers.len() + added;
    if total > max {
        return Err(CallsError::invalid_params(format!(
            "at most {max} m-lines per session (this call would make {total})"
        )));
    }
    Ok(())
}

/// Refuses a new session in an app at its caps: sessions, or sessions that
/// never connected (503: clients retry later, when some have expired).
pub fn check_app_room(app: &App, limits: &Limits) -> Result<(), CallsError> {
    if app.sessions.len() >= limits.sessions_per_app {
        return Err(CallsError::temporarily_unavailable(format!(
            "the app has {} sessions, its limit",
            app.sessions.len()
        )));
    }
    if app.never_connected() >= limits.never_connected_per_app {
        return Err(CallsError::temporarily_unavailable(format!(
            "the app has {} sessions that never connected, its limit",
            app.never_connected()
        )));
    }
    Ok(())
}

/// With autoDiscover, every new sending m-line of the offer becomes a
/// track: together with the named items they count against [`MAX_ITEMS`].
pub fn check_auto_discover(
    session: &Session,
    offer: &SessionDescription,
    items: usize,
) -> Result<(), CallsError> {
    let discovered = offer
        .media
        .iter()
        .filter(|m| m.is_active() && m.direction.sends() && m.kind != MediaKind::Application)
        .filter(|m| {
            m.mid
                .as_ref()
                .is_none_or(|mid| session.transceiver(mid).is_none())
        })
        .count();
    check_items(items + discovered, "tracks (autoDiscover included)")
}

/// Refuses a new third-party session of an app that has `connecting`
/// that have not connected, its `limit` or more (each sends ICE checks).
pub fn check_third_party_room(connecting: usize, limit: usize) -> Result<(), CallsError> {
    if connecting >= limit {
        return Err(CallsError::temporarily_unavailable(format!(
            "the app has {connecting} third-party sessions that have not connected, its limit"
        )));
    }
    Ok(())
}

/// Longest `trackName` or `dataChannelName`, in bytes: each is stored per
/// track, listed in GET session, and written to a cluster's directory.
pub const MAX_NAME: usize = 256;

/// Longest `sessionId` an item may name (ours are 32 hex characters).
const MAX_SESSION_ID: usize = 64;

/// The checks of a tracks/new or tracks/update body before any work: the
/// item cap, each item's `simulcast` object and the lengths of its names.
pub fn check_track_items(items: &[TrackObject]) -> Result<(), CallsError> {
    check_items(items.len(), "tracks")?;
    check_simulcast(items)?;
    check_names(items)
}

/// Refuses an item naming a track, a session or a mid longer than a name
/// may be (a mid may be `#` and a track name).
pub fn check_names(items: &[TrackObject]) -> Result<(), CallsError> {
    for t in items {
        check_name("trackName", t.track_name.as_deref(), MAX_NAME)?;
        check_name("sessionId", t.session_id.as_deref(), MAX_SESSION_ID)?;
        check_name("mid", t.mid.as_deref(), 1 + MAX_NAME)?;
    }
    Ok(())
}

/// Refuses data-channel items whose names are too long.
pub fn check_channel_names(
    items: &[crate::calls::types::DataChannelObject],
) -> Result<(), CallsError> {
    for c in items {
        check_name("dataChannelName", c.data_channel_name.as_deref(), MAX_NAME)?;
        check_name("sessionId", c.session_id.as_deref(), MAX_SESSION_ID)?;
    }
    Ok(())
}

fn check_name(field: &str, value: Option<&str>, max: usize) -> Result<(), CallsError> {
    match value {
        Some(v) if v.len() > max => Err(CallsError::invalid_params(format!(
            "{field} is at most {max} bytes (got {})",
            v.len()
        ))),
        _ => Ok(()),
    }
}

/// Every item's `simulcast` must be the documented object:
/// `{preferredRid?: string, priorityOrdering?: "none" | "asciibetical",
/// ridNotAvailable?: "none" | "asciibetical"}`.
pub fn check_simulcast(items: &[TrackObject]) -> Result<(), CallsError> {
    for value in items.iter().filter_map(|t| t.simulcast.as_ref()) {
        simulcast(value).map_err(|why| CallsError::invalid_params(format!("simulcast: {why}")))?;
    }
    Ok(())
}

fn simulcast(value: &Value) -> Result<(), String> {
    let Value::Object(fields) = value else {
        return Err("must be an object".into());
    };
    for (name, v) in fields {
        match (name.as_str(), v) {
            ("preferredRid", Value::String(rid)) => {
                let token = rid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if rid.is_empty() || rid.len() > MAX_RID_LEN || !token {
                    return Err(format!(
                        "preferredRid must be 1 to {MAX_RID_LEN} letters, digits, '-' or '_'"
                    ));
                }
            }
            ("priorityOrdering" | "ridNotAvailable", Value::String(s))
                if s == "none" || s == "asciibetical" => {}
            ("preferredRid" | "priorityOrdering" | "ridNotAvailable", _) => {
                return Err(format!("{name} has a wrong type or value"));
            }
            // Unknown fields are ignored, as everywhere in the API.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simulcast_must_be_the_documented_object() {
        let ok = [
            json!({}),
            json!({"preferredRid": "f"}),
            json!({"preferredRid": "q-1", "priorityOrdering": "asciibetical", "ridNotAvailable": "none"}),
            json!({"preferredRid": "h", "extra": [1, 2, 3]}),
        ];
        for v in ok {
            assert_eq!(simulcast(&v), Ok(()), "{v}");
        }
        let bad = [
            json!("f"),
            json!(["f"]),
            json!(null),
            json!({"preferredRid": 7}),
            json!({"preferredRid": ""}),
            json!({"preferredRid": "a b"}),
            json!({"preferredRid": "x".repeat(33)}),
            json!({"priorityOrdering": "random"}),
            json!({"ridNotAvailable": true}),
        ];
        for v in bad {
            assert!(simulcast(&v).is_err(), "{v}");
        }
    }
}
