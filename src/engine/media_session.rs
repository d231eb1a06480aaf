//! One session on the worker that owns its transport: its 5-tuple, SRTP
//! contexts, what it pushes (reception stats, repairs, learned layers) and
//! what it pulls (outbound streams, bandwidth estimate).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc_srtp::protection_profile::ProtectionProfile;
use rustc_hash::FxHashMap as HashMap;

use super::counters::Counters;
use super::nack::repair::Repairs;
use crate::bwe::pause::SubscriberEstimate;
use crate::engine::nack::budget::ResendLimiter;
use crate::engine::session_media::SessionMedia;
use crate::ids::TrackKey;
use crate::simulcast::Layer;
use crate::srtp::gcm::{GcmReceiver, GcmSender};
use crate::srtp::gcm_rtcp::GcmRtcpReceiver;
use crate::srtp::{SrtpKeys, SrtpSession};
use crate::streams::egress::OutboundStream;
use crate::streams::ingress::ReceptionStats;
use crate::streams::rtt::RoundTrip;
use crate::streams::twcc::TwccReceiver;

/// One session on the worker that owns its transport.
pub(super) struct MediaSession {
    pub(super) addr: SocketAddr,
    pub(super) srtp: Option<SrtpSession>,
    /// In-place protect of forwarded RTP when the profile is AEAD_AES_128_GCM.
    pub(super) gcm: Option<GcmSender>,
    /// In-place unprotect of received RTP, same profile.
    pub(super) gcm_rx: Option<(GcmReceiver, GcmRtcpReceiver)>,
    pub(super) media: Arc<SessionMedia>,
    /// SSRC → reception stats (and route index).
    pub(super) inbound: HashMap<u32, ReceptionStats>,
    /// Our SSRC towards the client → outbound stream. Keyed by SSRC, not by
    /// source track, so that re-pointing an outlet continues its sequence.
    pub(super) outbound: HashMap<u32, OutboundStream>,
    /// Arrivals of its transport-wide sequence numbers, while negotiated.
    pub(super) twcc: Option<TwccReceiver>,
    /// How much its NACKs may make us resend.
    pub(super) resend: ResendLimiter,
    /// The gaps of what it pushes, NACKed to it.
    pub(super) repairs: Repairs,
    /// Its round-trip time, from the reports it echoes.
    pub(super) rtt: RoundTrip,
    /// When authentic media last came on its path.
    pub(super) last_on_path: Option<Instant>,
    /// The next transport-wide sequence number of what we send it.
    pub(super) twcc_seq: u16,
    /// Its bandwidth estimate: made at its first transport-cc feedback,
    /// while it pulls tracks.
    pub(super) estimate: Option<Box<SubscriberEstimate>>,
    /// SSRC → simulcast layer of what it pushes (media and RTX streams),
    /// learned from the rid header extensions.
    pub(super) layers: HashMap<u32, Layer>,
}

impl MediaSession {
    /// A session whose ICE checks nominated `addr`, before its keys.
    pub(super) fn new(addr: SocketAddr, now: Instant) -> Self {
        MediaSession {
            addr,
            srtp: None,
            gcm: None,
            gcm_rx: None,
            media: Arc::default(),
            inbound: HashMap::default(),
            outbound: HashMap::default(),
            twcc: None,
            resend: ResendLimiter::new(now),
            repairs: Repairs::default(),
            rtt: RoundTrip::new(now),
            last_on_path: None,
            twcc_seq: 0,
            estimate: None,
            layers: HashMap::default(),
        }
    }

    /// Its media path is now `addr`; the previous one, if it differs.
    pub(super) fn move_to(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        let old = std::mem::replace(&mut self.addr, addr);
        (old != addr).then_some(old)
    }

    /// SRTP contexts from a handshake's keys (the in-place GCM ones too,
    /// when that is the profile).
    pub(super) fn install_keys(&mut self, keys: &SrtpKeys) {
        self.srtp = SrtpSession::new(keys).ok();
        let gcm = matches!(keys.profile, ProtectionProfile::AeadAes128Gcm);
        self.gcm = gcm
            .then(|| GcmSender::new(&keys.local.0, &keys.local.1).ok())
            .flatten();
        let (key, salt) = (&keys.remote.0, &keys.remote.1);
        self.gcm_rx = gcm
            .then(|| {
                let rtp = GcmReceiver::new(key, salt).ok()?;
                Some((rtp, GcmRtcpReceiver::new(key, salt).ok()?))
            })
            .flatten();
    }

    /// Takes the session's new media (a renegotiation) and returns the old:
    /// learned SSRCs stay only while their route still exists with the same
    /// mid; outbound streams only while their outlet does, and a pull whose
    /// simulcast preferences changed is chosen again at once (`keyframe` is
    /// called for its new target's layer); transport-cc arrivals
    /// are recorded while it pushes, its estimate kept while it pulls.
    pub(super) fn remap(
        &mut self,
        media: Arc<SessionMedia>,
        epoch: Instant,
        now: Instant,
        counters: &Counters,
        mut keyframe: impl FnMut(TrackKey, Layer),
    ) -> Arc<SessionMedia> {
        let old = std::mem::replace(&mut self.media, media);
        let s = self;
        s.inbound.retain(|_, stats| {
            let mid = old.inbound.get(stats.route).map(|r| &r.mid);
            match s.media.inbound.iter().position(|r| Some(&r.mid) == mid) {
                Some(i) => {
                    stats.route = i;
                    true
                }
                None => false,
            }
        });
        let inbound = &s.inbound;
        s.repairs
            .remap(|ssrc| inbound.get(&ssrc).map(|st| st.route));
        let live: Vec<u32> = s.media.outlets.iter().map(|o| o.ssrc).collect();
        s.outbound.retain(|ssrc, _| live.contains(ssrc));
        for o in &s.media.outlets {
            let Some(stream) = s.outbound.get_mut(&o.ssrc) else {
                continue;
            };
            let before = old.outlets.iter().find(|b| b.ssrc == o.ssrc);
            match (&o.simulcast, before) {
                // New preferences (tracks/update): chosen again.
                (Some(pull), Some(b)) if b.track == o.track => {
                    if b.simulcast.as_ref() != Some(pull)
                        && let Some(sw) = stream.layers.as_deref_mut()
                    {
                        // Chosen now, so that the next keyframe of the new
                        // target is not missed.
                        sw.set_preferences(pull.preferences.clone(), &pull.rids);
                        let estimate = s.estimate.as_ref().and_then(|e| e.for_layers(now));
                        sw.retarget(now, estimate);
                        if let Some(layer) = sw.poll_keyframe_request(now) {
                            keyframe(o.track, layer);
                        }
                    }
                }
                // Re-pointed to another track: a new choice.
                _ => stream.layers = None,
            }
        }
        // Arrivals are recorded for what it pushes.
        let receives = !s.media.inbound.is_empty();
        match (s.media.twcc_extension.filter(|_| receives), &s.twcc) {
            (Some(_), None) => s.twcc = Some(TwccReceiver::new(epoch)),
            (None, Some(_)) => s.twcc = None,
            _ => {}
        }
        // The estimate lasts while it pulls with transport-cc.
        if s.media.twcc_extension.is_none() || s.media.outlets.is_empty() {
            release(s.estimate.take(), counters);
        } else if let Some(e) = s.estimate.as_deref_mut() {
            e.can_probe = can_probe(&s.media);
        }
        old
    }
}

/// The state of a session on its way from one worker to another
/// (`super::handover`).
pub struct MovedSession(pub(super) Box<MediaSession>);

impl std::fmt::Debug for MovedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovedSession")
            .field("addr", &self.0.addr)
            .finish_non_exhaustive()
    }
}

impl MovedSession {
    /// The client address it had on the worker it left.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }
}

/// Whether probes can be sent to a session: one of its video outlets has
/// an RTX stream.
pub(super) fn can_probe(media: &SessionMedia) -> bool {
    media.outlets.iter().any(|o| o.video && o.rtx.is_some())
}

/// Forgets a session's estimate, and its pause.
pub(super) fn release(estimate: Option<Box<SubscriberEstimate>>, counters: &Counters) {
    if estimate.is_some_and(|e| e.paused) {
        counters
            .paused_video
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
