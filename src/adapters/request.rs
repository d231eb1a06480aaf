//! The adapter routes' request bodies and their checks (calls-api.md,
//! "WebSocket adapters"): 1 to 4 items, each a `local` PCM ingest or a
//! `remote` PCM/JPEG egress with a `ws://` or `wss://` endpoint; anything
//! else answers 406 `invalid_params` for the whole request.
//!
//! Where it sits: the API reads these bodies; [`NewRequest::plans`] turns
//! each item into a [`Plan`] that `Adapters::open` carries out.

use std::time::Duration;

use serde::Deserialize;

use super::counters::Kind;
use super::websocket::Endpoint;
use crate::calls::CallsError;

/// Items per request at most.
pub const MAX_ITEMS: usize = 4;
/// Track names and session ids longer than this are refused.
const MAX_NAME: usize = 256;
/// JPEG egress: pictures per second allowed (our extension `frameRate`).
pub const FRAME_RATES: std::ops::RangeInclusive<f64> = 0.1..=30.0;

/// POST adapters/websocket/new.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRequest {
    /// The adapters to open.
    #[serde(default)]
    pub tracks: Vec<NewItem>,
}

/// One adapter to open.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewItem {
    /// `local` (ingest) or `remote` (egress).
    pub location: Option<String>,
    /// Ingest: the new track's name; egress: the pulled track's.
    pub track_name: Option<String>,
    /// Egress: the publisher's session.
    pub session_id: Option<String>,
    /// The WebSocket URL.
    pub endpoint: Option<String>,
    /// Ingest: `pcm`.
    pub input_codec: Option<String>,
    /// Egress: `pcm` or `jpeg`.
    pub output_codec: Option<String>,
    /// Ingest: `buffer` (accepted and ignored, as the service does).
    pub mode: Option<String>,
    /// JPEG egress, our extension: pictures per second (default 1).
    pub frame_rate: Option<f64>,
}

/// What one item asks for, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which adapter.
    pub kind: Kind,
    /// The track's name.
    pub track_name: String,
    /// Egress: the publisher's session.
    pub session_id: Option<String>,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// JPEG egress: between pictures.
    pub picture_interval: Duration,
}

fn invalid(description: impl Into<String>) -> CallsError {
    CallsError::invalid_params(description)
}

fn name(value: &Option<String>, what: &str, i: usize) -> Result<String, CallsError> {
    match value {
        Some(v) if !v.is_empty() && v.len() <= MAX_NAME => Ok(v.clone()),
        Some(_) => Err(invalid(format!(
            "tracks[{i}].{what} must have 1 to {MAX_NAME} bytes"
        ))),
        None => Err(invalid(format!("tracks[{i}].{what} is required"))),
    }
}

impl NewRequest {
    /// Checks every item; one plan per item, in order.
    pub fn plans(&self) -> Result<Vec<Plan>, CallsError> {
        if self.tracks.is_empty() || self.tracks.len() > MAX_ITEMS {
            return Err(invalid(format!("1 to {MAX_ITEMS} tracks per request")));
        }
        self.tracks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let url = t.endpoint.as_deref().unwrap_or("");
                let endpoint = Endpoint::parse(url).ok_or_else(|| {
                    invalid(format!(
                        "tracks[{i}].endpoint must be a ws:// or wss:// URL"
                    ))
                })?;
                let track_name = name(&t.track_name, "trackName", i)?;
                let (kind, session_id) = match (
                    t.location.as_deref(),
                    t.input_codec.as_deref(),
                    t.output_codec.as_deref(),
                ) {
                    (Some("local"), Some("pcm"), None) => (Kind::PcmIngest, None),
                    (Some("remote"), None, Some(codec @ ("pcm" | "jpeg"))) => (
                        if codec == "pcm" {
                            Kind::PcmEgress
                        } else {
                            Kind::JpegEgress
                        },
                        Some(name(&t.session_id, "sessionId", i)?),
                    ),
                    (Some("local"), ..) => {
                        return Err(invalid(format!(
                            "tracks[{i}]: a local adapter takes inputCodec \"pcm\""
                        )));
                    }
                    (Some("remote"), ..) => {
                        return Err(invalid(format!(
                            "tracks[{i}]: a remote adapter takes outputCodec \"pcm\" or \"jpeg\""
                        )));
                    }
                    _ => {
                        return Err(invalid(format!(
                            "tracks[{i}].location must be \"local\" or \"remote\""
                        )));
                    }
                };
                if let Some(mode) = &t.mode
                    && mode != "buffer"
                {
                    return Err(invalid(format!("tracks[{i}].mode must be \"buffer\"")));
                }
                let rate = match (kind, t.frame_rate) {
                    (_, None) => 1.0,
                    (Kind::JpegEgress, Some(r)) if FRAME_RATES.contains(&r) => r,
                    (Kind::JpegEgress, Some(_)) => {
                        return Err(invalid(format!("tracks[{i}].frameRate must be 0.1 to 30")));
                    }
                    (_, Some(_)) => {
                        return Err(invalid(format!(
                            "tracks[{i}].frameRate applies to outputCodec \"jpeg\" only"
                        )));
                    }
                };
                Ok(Plan {
                    kind,
                    track_name,
                    session_id,
                    endpoint,
                    picture_interval: Duration::from_secs_f64(1.0 / rate),
                })
            })
            .collect()
    }
}

/// POST adapters/websocket/close.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseRequest {
    /// The adapters to close.
    #[serde(default)]
    pub tracks: Vec<CloseItem>,
}

/// One adapter to close.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseItem {
    /// Its id.
    pub adapter_id: Option<String>,
}

impl CloseRequest {
    /// 1 to 4 items, each with an `adapterId`.
    pub fn check(&self) -> Result<(), CallsError> {
        if self.tracks.is_empty() || self.tracks.len() > MAX_ITEMS {
            return Err(invalid(format!("1 to {MAX_ITEMS} tracks per request")));
        }
        for (i, t) in self.tracks.iter().enumerate() {
            name(&t.adapter_id, "adapterId", i)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(items: serde_json::Value) -> NewRequest {
        serde_json::from_value(serde_json::json!({ "tracks": items })).unwrap()
    }

    #[test]
    fn the_documented_shapes_are_accepted() {
        let plans = req(serde_json::json!([
            {"location": "local", "trackName": "speech", "endpoint": "wss://a.example/x", "inputCodec": "pcm", "mode": "buffer"},
            {"location": "remote", "sessionId": "s", "trackName": "mic", "endpoint": "ws://b.example", "outputCodec": "pcm"},
            {"location": "remote", "sessionId": "s", "trackName": "cam", "endpoint": "ws://b.example", "outputCodec": "jpeg", "frameRate": 5},
        ]))
        .plans()
        .unwrap();
        assert_eq!(plans[0].kind, Kind::PcmIngest);
        assert_eq!(plans[1].kind, Kind::PcmEgress);
        assert_eq!(plans[2].kind, Kind::JpegEgress);
        assert_eq!(plans[2].picture_interval, Duration::from_millis(200));
    }

    #[test]
    fn anything_else_is_invalid_params() {
        let item = |v: serde_json::Value| req(serde_json::json!([v])).plans().unwrap_err();
        let cases = [
            serde_json::json!({"location": "local", "trackName": "a", "endpoint": "http://x", "inputCodec": "pcm"}),
            serde_json::json!({"location": "local", "trackName": "a", "endpoint": "ws://x", "inputCodec": "opus"}),
            serde_json::json!({"location": "remote", "trackName": "a", "endpoint": "ws://x", "outputCodec": "pcm"}),
            serde_json::json!({"location": "remote", "sessionId": "s", "trackName": "a", "endpoint": "ws://x", "outputCodec": "h264"}),
            serde_json::json!({"location": "elsewhere", "trackName": "a", "endpoint": "ws://x"}),
            serde_json::json!({"location": "local", "endpoint": "ws://x", "inputCodec": "pcm"}),
            serde_json::json!({"location": "remote", "sessionId": "s", "trackName": "a", "endpoint": "ws://x", "outputCodec": "jpeg", "frameRate": 1000}),
            serde_json::json!({"location": "local", "trackName": "a", "endpoint": "ws://x", "inputCodec": "pcm", "mode": "stream"}),
        ];
        for c in cases {
            assert_eq!(item(c.clone()).code.as_str(), "invalid_params", "{c}");
        }
        let five: Vec<_> = (0..5)
            .map(|_| serde_json::json!({"location": "local", "trackName": "a", "endpoint": "ws://x", "inputCodec": "pcm"}))
            .collect();
        assert!(req(serde_json::Value::Array(five)).plans().is_err());
        assert!(req(serde_json::json!([])).plans().is_err());
        assert!(CloseRequest::default().check().is_err());
    }
}
