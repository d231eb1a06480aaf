//! switchboard-loadgen: simulated WebRTC publishers and subscribers that
//! measure an SFU's forwarding (loss, latency, payload integrity, server
//! CPU per packet). Each simulated client is a real WebRTC endpoint (ICE as
//! the controlling agent, DTLS client, SRTP) on its own UDP socket.
//!
//! Modules: [`endpoint`] (one client's transport, sans-IO), [`sdp`] (the
//! client side's offers and answers), [`media`] (packets with a send-time
//! header extension and a checkable payload), [`stats`] (histograms and the
//! report), [`target`] (setting sessions up through an SFU's API),
//! [`run`] (threads with mio loops), [`datachannels`] (data-channel
//! fan-out load), [`storm`] (subscribers joining at a
//! rate, as a flash crowd), [`udp`] (reads with UDP GRO), [`procstat`] (CPU
//! time from /proc and of threads).

pub mod datachannels;
pub mod endpoint;
pub mod janus;
pub mod media;
pub mod procstat;
pub mod repair;
pub mod run;
pub mod scenario;
pub mod sdp;
pub mod stats;
pub mod storm;
pub mod target;
pub mod udp;
