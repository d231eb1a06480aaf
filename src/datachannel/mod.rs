//! Data channels (RFC 8831): messages over SCTP (RFC 9260) inside a
//! session's DTLS association (RFC 8261). They run off the media workers,
//! on the threads that own each session's DTLS association
//! (architecture.md: SCTP never touches the forwarding path).
//!
//! So far: a channel's delivery policy as the API asks for it
//! ([`policy`]), the in-band establishment protocol with the payload
//! identifiers of messages ([`dcep`]), and one session's SCTP association
//! with its channels ([`sctp`], on `rtc-sctp`: sans-IO, of the same family
//! as the DTLS and SRTP crates, with partial reliability and stream
//! resets). Carrying its packets in the session's DTLS association, the API
//! routes and the fan-out build on these.

pub mod budget;
pub mod channels;
pub mod counters;
pub mod dcep;
pub mod ops;
pub mod overload;
pub mod policy;
pub mod queue_delay;
pub mod sctp;
mod sctp_check;
mod sctp_read;
