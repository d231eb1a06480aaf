//! The Calls model: the API's JSON ([`types`]) and its error codes
//! ([`error`]), as calls-api.md defines them. It sits beneath both the
//! control plane, which answers in it, and the HTTP layer (`crate::api`),
//! which reads and writes it; it imports neither, nor anything of HTTP.

pub mod error;
pub mod types;

pub use error::{CallsError, ErrorCode};
