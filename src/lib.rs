//! switchboard: a WebRTC SFU with a Cloudflare Calls compatible HTTP API.
//!
//! The crate's modules are rooms in a fixed order, each importing only
//! rooms before it (docs/architecture.md, "The house"; checked by
//! `tools/imports/check`): the leaves `ids`, `wire` (packet views), `codec`
//! and `supervise`; `calls` (the API's JSON and error codes); `config`,
//! `logging`; `srtp`, `dtls`; `fanout`, `ice`, `simulcast`, `sdp`;
//! `streams`, `datachannel`, `bwe`; `engine` (everything one media worker
//! owns, sans-IO); `worker` (sockets and the clock); `dtls_threads`;
//! `control` (registry, negotiation); `cluster`; `adapters` (WebSocket
//! adapters: WebRTC clients of the server itself); `turn` (TURN
//! credentials for coturn); `whip` (WHIP/WHEP on sessions and tracks);
//! `api` (HTTP); `server`.

pub mod adapters;
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
pub mod recording;
pub mod sdp;
pub mod server;
pub mod simulcast;
pub mod srtp;
pub mod streams;
pub mod supervise;
pub mod turn;
pub mod whip;
pub mod wire;
pub mod worker;
