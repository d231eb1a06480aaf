//! switchboard: a WebRTC SFU with a Cloudflare Calls compatible HTTP API.
//!
//! The crate is laid out along the data path (see `docs` in the README):
//! `wire` (packet views), `ice`, `dtls`, `srtp`, `sdp`, `fanout`, `engine`
//! (everything one media worker owns, sans-IO), `worker` (sockets and the
//! clock), `control` (registry, negotiation, DTLS), `api` (HTTP).

pub mod api;
pub mod bwe;
pub mod calls;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod control;
pub mod datachannel;
pub mod dtls;
pub mod dtls_threads;
pub mod engine;
pub mod fanout;
pub mod ice;
pub mod ids;
pub mod logging;
pub mod sdp;
pub mod server;
pub mod session;
pub mod simulcast;
pub mod srtp;
pub mod supervise;
pub mod wire;
pub mod worker;
