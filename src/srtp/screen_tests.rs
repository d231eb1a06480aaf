//! The screen against rtc-srtp as the client's SRTP (an independent
//! implementation of RFC 3711 and RFC 7714): what it protects passes,
//! forged packets of new SSRCs leave no state, and a client rotating its
//! SSRCs keeps the context bounded.

use rtc_srtp::protection_profile::ProtectionProfile;

use super::MAX_SSRCS;
use crate::srtp::SrtpSession;
use crate::srtp::fixture::{keys, peer, rtp_packet};

const PROFILES: [ProtectionProfile; 2] = [
    ProtectionProfile::AeadAes128Gcm,
    ProtectionProfile::Aes128CmHmacSha1_80,
];

/// A receiver report with no blocks from `ssrc`.
fn rtcp_packet(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// Our session and the client's (rtc-srtp both ways, keys swapped).
fn pair(profile: ProtectionProfile) -> (SrtpSession, SrtpSession) {
    let k = keys(profile, 9);
    (SrtpSession::new(&k).unwrap(), peer(&k))
}

#[test]
fn what_the_client_protects_passes_and_replays_do_not() {
    for profile in PROFILES {
        let (mut ours, mut client) = pair(profile);
        for seq in 0..50u16 {
            let plain = rtp_packet(seq, 0x1234);
            let sent = client.protect_rtp(&plain).unwrap();
            assert_eq!(
                &ours.unprotect_rtp(&sent).unwrap()[..],
                &plain[..],
                "{profile:?}"
            );
            if seq == 49 {
                assert!(ours.unprotect_rtp(&sent).is_err(), "{profile:?}: a replay");
            }
            let report = client.protect_rtcp(&rtcp_packet(0x1234)).unwrap();
            assert_eq!(
                &ours.unprotect_rtcp(&report).unwrap()[..],
                &rtcp_packet(0x1234)[..]
            );
        }
        assert_eq!(ours.inbound_ssrcs(), (1, 1), "{profile:?}");
    }
}

/// The attack: packets with a new SSRC each (and a tag that is not the
/// key's), as anyone who can send from (or spoof) the client's address
/// can. Before, each one left state in the context, for good.
#[test]
fn forged_packets_of_new_ssrcs_leave_no_state() {
    for profile in PROFILES {
        let (mut ours, mut client) = pair(profile);
        let mut seed = 0x9e37_79b9u32;
        for i in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            // A real packet of another stream, its SSRC rewritten: the
            // tag no longer covers it.
            let mut forged = client
                .protect_rtp(&rtp_packet(i as u16, 1))
                .unwrap()
                .to_vec();
            forged[8..12].copy_from_slice(&seed.to_be_bytes());
            assert!(ours.unprotect_rtp(&forged).is_err());
            let mut report = client.protect_rtcp(&rtcp_packet(1)).unwrap().to_vec();
            report[4..8].copy_from_slice(&seed.to_be_bytes());
            assert!(ours.unprotect_rtcp(&report).is_err());
        }
        assert_eq!(ours.inbound_ssrcs(), (0, 0), "{profile:?}");
        // Short and empty packets are refused too, and the real stream
        // goes on.
        for len in [0, 4, 11, 12, 21] {
            assert!(ours.unprotect_rtp(&vec![0x80; len]).is_err());
            assert!(ours.unprotect_rtcp(&vec![0x80; len]).is_err());
        }
        let plain = rtp_packet(7, 0x1234);
        let sent = client.protect_rtp(&plain).unwrap();
        assert_eq!(&ours.unprotect_rtp(&sent).unwrap()[..], &plain[..]);
        assert_eq!(ours.inbound_ssrcs(), (1, 0), "{profile:?}");
    }
}

/// A client with the keys rotating through twice as many SSRCs as the
/// context may hold: it starts afresh instead of growing, and the
/// client's current stream still decrypts (replays of it refused).
#[test]
fn a_client_rotating_its_ssrcs_keeps_the_context_bounded() {
    for profile in PROFILES {
        let (mut ours, mut client) = pair(profile);
        for i in 0..(MAX_SSRCS as u32 * 2 + 10) {
            let rotated = client.protect_rtp(&rtp_packet(1, 0x1000 + i)).unwrap();
            assert!(ours.unprotect_rtp(&rotated).is_ok(), "{profile:?} SSRC {i}");
            let (rtp, rtcp) = ours.inbound_ssrcs();
            assert!(
                rtp <= MAX_SSRCS && rtcp <= MAX_SSRCS,
                "{profile:?}: {rtp} {rtcp}"
            );
        }
        let plain = rtp_packet(9, 0x1000);
        let sent = client.protect_rtp(&plain).unwrap();
        assert_eq!(
            &ours.unprotect_rtp(&sent).unwrap()[..],
            &plain[..],
            "{profile:?}"
        );
        assert!(ours.unprotect_rtp(&sent).is_err(), "{profile:?}: a replay");
    }
}
