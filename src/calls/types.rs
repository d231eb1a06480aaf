//! The JSON of the Calls API (calls-api.md): field names exact and
//! camelCase; unknown fields ignored; absent optional fields not emitted.

use serde::{Deserialize, Serialize};

/// `{type, sdp}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionDescriptionJson {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP text.
    pub sdp: String,
}

/// A track item of a request or result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrackObject {
    /// `local` (push) or `remote` (pull).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Transceiver mid in this session, or `#trackName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    /// The publisher's session (pulls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The track's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_name: Option<String>,
    /// Make the transceiver sendrecv (server-generated offer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bidirectional_media_stream: Option<bool>,
    /// `audio` or `video` (server-generated offer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Simulcast preferences, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulcast: Option<serde_json::Value>,
    /// GET session: `active` or `inactive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Per-item error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Per-item error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl TrackObject {
    /// Marks the item failed.
    pub fn fail(&mut self, code: &str, description: impl Into<String>) {
        self.error_code = Some(code.to_owned());
        self.error_description = Some(description.into());
    }

    /// Whether it has failed.
    pub fn failed(&self) -> bool {
        self.error_code.is_some()
    }
}

/// POST sessions/new.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSessionRequest {
    /// Legacy: an offer answered in the response.
    pub session_description: Option<SessionDescriptionJson>,
    /// `?thirdparty=true`: the peer is ICE-lite, we check its candidates
    /// (from the query, not the body).
    #[serde(skip)]
    pub third_party: bool,
    /// Made by another node of the cluster for its relay (a call it
    /// signed, not a client's): not limited per client address, and its
    /// requests not per session.
    #[serde(skip)]
    pub relay: bool,
}

/// POST tracks/new.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracksNewRequest {
    /// The client's offer, if any.
    pub session_description: Option<SessionDescriptionJson>,
    /// The tracks.
    #[serde(default)]
    pub tracks: Vec<TrackObject>,
    /// Name every new sending m-line of the offer.
    #[serde(default)]
    pub auto_discover: bool,
}

/// PUT renegotiate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenegotiateRequest {
    /// The client's answer.
    pub session_description: SessionDescriptionJson,
}

/// PUT tracks/update.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracksUpdateRequest {
    /// The tracks to re-point.
    #[serde(default)]
    pub tracks: Vec<TrackObject>,
}

/// PUT tracks/close.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracksCloseRequest {
    /// The transceivers to close, by mid.
    #[serde(default)]
    pub tracks: Vec<TrackObject>,
    /// The client's offer (force: false).
    pub session_description: Option<SessionDescriptionJson>,
    /// Close without renegotiation.
    #[serde(default)]
    pub force: bool,
}

/// The response of tracks/new and tracks/close.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TracksResponse {
    /// Whether the client must apply `sessionDescription` (an offer) and renegotiate.
    pub requires_immediate_renegotiation: bool,
    /// Our answer or offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_description: Option<SessionDescriptionJson>,
    /// Result items.
    pub tracks: Vec<TrackObject>,
}

/// A data channel item of a request or result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataChannelObject {
    /// `local` (publish) or `remote` (subscribe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The publisher's session (subscribe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The channel's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_channel_name: Option<String>,
    /// Delivered in order (publish; default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
    /// Retransmissions at most (publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retransmits: Option<i64>,
    /// Lifetime in ms (publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_packet_life_time: Option<i64>,
    /// Hold delivery until the subscriber's first message (subscribe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_for_ack: Option<bool>,
    /// The subscriber may send to the publisher (subscribe, update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_reply: Option<bool>,
    /// The SCTP stream id on this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// GET session: `active`, `inactive` or `initializing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Per-item error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Per-item error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl DataChannelObject {
    /// Marks the item failed.
    pub fn fail(&mut self, code: &str, description: impl Into<String>) {
        self.error_code = Some(code.to_owned());
        self.error_description = Some(description.into());
    }
}

/// POST datachannels/establish.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EstablishRequest {
    /// The channel: only `server-events`.
    #[serde(alias = "datachannel")]
    pub data_channel: Option<DataChannelObject>,
    /// The client's offer, if any.
    pub session_description: Option<SessionDescriptionJson>,
}

/// The response of datachannels/establish.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EstablishResponse {
    /// Whether the client must apply `sessionDescription` (an offer).
    pub requires_immediate_renegotiation: bool,
    /// The channel: `server-events`, id 0.
    pub data_channel: DataChannelObject,
    /// Our offer or answer.
    pub session_description: SessionDescriptionJson,
}

/// POST datachannels/new, PUT datachannels/update and close.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataChannelsRequest {
    /// The channels.
    #[serde(default, alias = "datachannels")]
    pub data_channels: Vec<DataChannelObject>,
}

/// Their response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataChannelsResponse {
    /// Result items.
    pub data_channels: Vec<DataChannelObject>,
}
