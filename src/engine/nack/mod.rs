//! NACK and RTX (RFC 4585 §6.2.1, RFC 4588) in both directions, on the
//! media worker.
//!
//! Towards publishers ([`repair`], with [`generator`]): each received
//! packet of a track that negotiated NACK is checked against its stream's
//! gaps, RTX packets are unwrapped back into the original stream, and on
//! the worker's timer the gaps become NACKs to the publisher, or a
//! keyframe request once a gap is given up.
//!
//! Towards subscribers ([`responder`], with [`history`] and [`budget`]):
//! the fan-out keeps each track's last packets once per worker; a
//! subscriber's NACK is answered from there, rewritten for it and sent on
//! its RTX stream, within its resend budget.
//!
//! Sans-IO: every call takes `now`.

pub mod budget;
pub mod generator;
pub mod history;
pub mod repair;
pub mod responder;
