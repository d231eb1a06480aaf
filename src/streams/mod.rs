//! One session's RTP streams (RFC 7656) on the media worker that owns its
//! 5-tuple: the routes of the tracks it pushes and the reception
//! statistics its receiver reports carry (ingress), the outlets of the
//! tracks it pulls and their numbering (egress), its round-trip time and
//! transport-cc arrivals.
//!
//! Where it sits: the engine looks a session up by 5-tuple and hands it the
//! packet; the control thread decides what it pushes and pulls and installs
//! that here as a [`SessionMedia`].

pub mod egress;
pub mod ingress;
pub mod media;
pub mod rtt;
pub mod twcc;

pub use media::{InboundRoute, Outlet, RtxStream, SessionMedia, SimulcastPull};
