//! Simulcast: a pushed video track arrives as several layers (one RTP
//! stream per `a=rid`, RFC 8853), and each subscriber gets one of them as
//! a single continuous stream.
//!
//! Where it sits:
//! - On the publisher's worker, each received packet is tagged with its
//!   [`Layer`] (learned per SSRC from the `rtp-stream-id` /
//!   `repaired-rtp-stream-id` header extensions) and, for simulcast tracks,
//!   whether it starts a keyframe (`codec`); every layer goes through the
//!   fan-out.
//! - On each subscriber's worker, a [`LayerSwitch`] per pull sees every
//!   layer go by (which are live, at what rate), picks the one to send
//!   from the subscriber's [`Preferences`] and bandwidth estimate, and
//!   switches only at a keyframe of the target layer, asking for one
//!   (and again every [`switch::KEYFRAME_RETRY`]) until it comes. The
//!   outbound stream keeps SSRC, sequence numbers and timestamps
//!   continuous; VP8 numbering is rewritten (`codec::vp8::Rewrite`).

pub mod preferences;
pub mod switch;

pub use preferences::Preferences;
pub use switch::{Admit, Estimate, LayerSwitch};

/// Most layers a track may have (browsers send up to three).
pub const MAX_LAYERS: usize = 4;

/// A layer of a simulcast track: the index of its rid in the publisher's
/// `a=simulcast:send` list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layer(pub u8);

impl Layer {
    /// Its index, for per-layer arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}
