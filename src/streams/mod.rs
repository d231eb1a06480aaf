//! One session's RTP streams (RFC 7656) on the media worker that owns its
//! 5-tuple: the reception statistics its receiver reports carry (ingress),
//! the numbering of what it is sent (egress), its round-trip time and
//! transport-cc arrivals.
//!
//! Where it sits: state of the engine's `MediaSession`, read by the
//! bandwidth estimate and the NACK responder too. What a session pushes
//! and pulls comes from the control thread as `engine::session_media`.

pub mod egress;
pub mod ingress;
pub mod rtt;
pub mod twcc;
