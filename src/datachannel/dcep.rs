//! The Data Channel Establishment Protocol (RFC 8832) and the payload
//! protocol identifiers of data channel messages (RFC 8831 §8): what a peer
//! sends on an SCTP stream to open a channel in band (DATA_CHANNEL_OPEN,
//! answered with DATA_CHANNEL_ACK), and how a message says it is a string or
//! binary, empty or not. Channels the API creates are negotiated out of band
//! (`negotiated: true` with the id the API returns) and need no DCEP.
//! Sans-IO: bytes in, bytes out; the SCTP association carries them with
//! [`PPID_DCEP`].

use super::policy::{DeliveryPolicy, Reliability};
use crate::dtls::DtlsRole;

/// SCTP payload protocol identifier of DCEP messages.
pub const PPID_DCEP: u32 = 50;
/// A UTF-8 string message.
pub const PPID_STRING: u32 = 51;
/// A binary message.
pub const PPID_BINARY: u32 = 53;
/// An empty string message (SCTP cannot carry zero bytes: one byte is sent
/// and ignored).
pub const PPID_STRING_EMPTY: u32 = 56;
/// An empty binary message (likewise).
pub const PPID_BINARY_EMPTY: u32 = 57;

const DATA_CHANNEL_ACK: u8 = 0x02;
const DATA_CHANNEL_OPEN: u8 = 0x03;
/// The OPEN's fixed part: type, channel type, priority, reliability
/// parameter, label length, protocol length.
const OPEN_HEADER: usize = 12;

/// A message's kind, from its payload protocol identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A string; `empty` when its PPID says it has no bytes.
    String { empty: bool },
    /// Binary; `empty` likewise.
    Binary { empty: bool },
}

impl MessageKind {
    /// The kind of a message carried with `ppid`; None for DCEP and for
    /// identifiers data channels do not use (the deprecated partial ones).
    pub fn of(ppid: u32) -> Option<Self> {
        match ppid {
            PPID_STRING => Some(MessageKind::String { empty: false }),
            PPID_STRING_EMPTY => Some(MessageKind::String { empty: true }),
            PPID_BINARY => Some(MessageKind::Binary { empty: false }),
            PPID_BINARY_EMPTY => Some(MessageKind::Binary { empty: true }),
            _ => None,
        }
    }

    /// Whether its PPID says it has no bytes (the one byte SCTP carried
    /// is not the message's).
    pub fn is_empty(self) -> bool {
        matches!(
            self,
            MessageKind::String { empty: true } | MessageKind::Binary { empty: true }
        )
    }

    /// The identifier to send a message of `len` bytes with.
    pub fn ppid(is_string: bool, len: usize) -> u32 {
        match (is_string, len == 0) {
            (true, false) => PPID_STRING,
            (true, true) => PPID_STRING_EMPTY,
            (false, false) => PPID_BINARY,
            (false, true) => PPID_BINARY_EMPTY,
        }
    }
}

/// The stream ids a side opens channels on in band (RFC 8832 §6): even
/// for the DTLS client, odd for the DTLS server, so that both can open at
/// once without a clash. Returns whether `id` is ours.
pub fn is_ours(id: u16, role: DtlsRole) -> bool {
    id.is_multiple_of(2) == (role == DtlsRole::Client)
}

/// A DATA_CHANNEL_OPEN (RFC 8832 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Ordering and reliability (the channel type and its parameter).
    pub policy: DeliveryPolicy,
    /// Priority (RFC 8831 §6.4: 128 below normal, 256 normal, …).
    pub priority: u16,
    /// The channel's label (UTF-8).
    pub label: String,
    /// Its subprotocol (UTF-8, often empty).
    pub protocol: String,
}

/// A DCEP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dcep {
    /// The peer opens a channel on the stream it arrived on.
    Open(Open),
    /// The peer accepted the channel we opened on that stream.
    Ack,
}

/// Why a DCEP message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcepError {
    /// No bytes, or fewer than its header says.
    #[error("truncated DCEP message")]
    Truncated,
    /// A message type other than OPEN or ACK.
    #[error("unknown DCEP message type {0:#04x}")]
    UnknownType(u8),
    /// A channel type RFC 8832 §8.2.2 does not define.
    #[error("unknown channel type {0:#04x}")]
    UnknownChannelType(u8),
    /// A label or protocol that is not UTF-8.
    #[error("label or protocol is not UTF-8")]
    NotUtf8,
}

impl Dcep {
    /// Reads one DCEP message (a whole SCTP message with [`PPID_DCEP`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, DcepError> {
        match *bytes.first().ok_or(DcepError::Truncated)? {
            DATA_CHANNEL_ACK => Ok(Dcep::Ack),
            DATA_CHANNEL_OPEN => {
                let header = bytes.get(..OPEN_HEADER).ok_or(DcepError::Truncated)?;
                let be16 = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
                let parameter = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                let (label_len, protocol_len) = (be16(8), be16(10));
                let label = bytes
                    .get(OPEN_HEADER..OPEN_HEADER + label_len)
                    .ok_or(DcepError::Truncated)?;
                let protocol = bytes
                    .get(OPEN_HEADER + label_len..OPEN_HEADER + label_len + protocol_len)
                    .ok_or(DcepError::Truncated)?;
                let text = |b: &[u8]| {
                    std::str::from_utf8(b)
                        .map(str::to_owned)
                        .map_err(|_| DcepError::NotUtf8)
                };
                Ok(Dcep::Open(Open {
                    policy: policy_of(header[1], parameter)?,
                    priority: be16(2) as u16,
                    label: text(label)?,
                    protocol: text(protocol)?,
                }))
            }
            other => Err(DcepError::UnknownType(other)),
        }
    }

    /// Appends the message's bytes to `out`. A label or protocol longer
    /// than 65,535 bytes is cut there.
    pub fn write(&self, out: &mut Vec<u8>) {
        let Dcep::Open(open) = self else {
            out.push(DATA_CHANNEL_ACK);
            return;
        };
        let (channel_type, parameter) = channel_type_of(open.policy);
        let label = &open.label.as_bytes()[..open.label.len().min(0xffff)];
        let protocol = &open.protocol.as_bytes()[..open.protocol.len().min(0xffff)];
        out.push(DATA_CHANNEL_OPEN);
        out.push(channel_type);
        out.extend_from_slice(&open.priority.to_be_bytes());
        out.extend_from_slice(&parameter.to_be_bytes());
        out.extend_from_slice(&(label.len() as u16).to_be_bytes());
        out.extend_from_slice(&(protocol.len() as u16).to_be_bytes());
        out.extend_from_slice(label);
        out.extend_from_slice(protocol);
    }
}

/// Bit 7 of the channel type: unordered (RFC 8832 §5.1).
const UNORDERED: u8 = 0x80;

/// The policy of a channel type and its reliability parameter.
fn policy_of(channel_type: u8, parameter: u32) -> Result<DeliveryPolicy, DcepError> {
    let reliability = match channel_type & !UNORDERED {
        0x00 => Reliability::Reliable,
        0x01 => Reliability::MaxRetransmits(parameter),
        0x02 => Reliability::MaxPacketLifeTime(parameter),
        _ => return Err(DcepError::UnknownChannelType(channel_type)),
    };
    Ok(DeliveryPolicy {
        ordered: channel_type & UNORDERED == 0,
        reliability,
    })
}

/// The channel type and reliability parameter of a policy.
fn channel_type_of(policy: DeliveryPolicy) -> (u8, u32) {
    let (kind, parameter) = match policy.reliability {
        Reliability::Reliable => (0x00, 0),
        Reliability::MaxRetransmits(n) => (0x01, n),
        Reliability::MaxPacketLifeTime(ms) => (0x02, ms),
    };
    let order = if policy.ordered { 0 } else { UNORDERED };
    (kind | order, parameter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OPEN Chromium sends for `createDataChannel("chat", {ordered:
    /// false, maxRetransmits: 3})`, annotated.
    const UNORDERED_REXMIT_OPEN: [u8; 16] = [
        0x03, // DATA_CHANNEL_OPEN
        0x81, // DATA_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED
        0x01, 0x00, // priority 256 (normal)
        0x00, 0x00, 0x00, 0x03, // 3 retransmissions
        0x00, 0x04, // label length
        0x00, 0x00, // protocol length
        b'c', b'h', b'a', b't', // label
    ];

    #[test]
    fn reads_and_writes_an_open() {
        let open = Open {
            policy: DeliveryPolicy {
                ordered: false,
                reliability: Reliability::MaxRetransmits(3),
            },
            priority: 256,
            label: "chat".into(),
            protocol: String::new(),
        };
        assert_eq!(
            Dcep::parse(&UNORDERED_REXMIT_OPEN),
            Ok(Dcep::Open(open.clone()))
        );
        let mut out = Vec::new();
        Dcep::Open(open).write(&mut out);
        assert_eq!(out, UNORDERED_REXMIT_OPEN);
    }

    #[test]
    fn every_channel_type_round_trips() {
        let reliabilities = [
            Reliability::Reliable,
            Reliability::MaxRetransmits(0),
            Reliability::MaxPacketLifeTime(1500),
        ];
        for ordered in [true, false] {
            for reliability in reliabilities {
                let open = Dcep::Open(Open {
                    policy: DeliveryPolicy {
                        ordered,
                        reliability,
                    },
                    priority: 512,
                    label: "cursors ✓".into(),
                    protocol: "json".into(),
                });
                let mut out = Vec::new();
                open.write(&mut out);
                assert_eq!(Dcep::parse(&out), Ok(open));
            }
        }
        // Channel types on the wire (RFC 8832 §8.2.2).
        let types: Vec<u8> = [
            (true, 0),
            (false, 0),
            (true, 1),
            (false, 1),
            (true, 2),
            (false, 2),
        ]
        .iter()
        .map(|&(ordered, i)| {
            channel_type_of(DeliveryPolicy {
                ordered,
                reliability: reliabilities[i],
            })
            .0
        })
        .collect();
        assert_eq!(types, [0x00, 0x80, 0x01, 0x81, 0x02, 0x82]);
    }

    #[test]
    fn reads_an_ack_and_refuses_what_is_not_dcep() {
        assert_eq!(Dcep::parse(&[0x02]), Ok(Dcep::Ack));
        let mut out = Vec::new();
        Dcep::Ack.write(&mut out);
        assert_eq!(out, [0x02]);
        assert_eq!(Dcep::parse(&[]), Err(DcepError::Truncated));
        assert_eq!(Dcep::parse(&[0x04]), Err(DcepError::UnknownType(0x04)));
        let mut bad = UNORDERED_REXMIT_OPEN;
        bad[1] = 0x03;
        assert_eq!(Dcep::parse(&bad), Err(DcepError::UnknownChannelType(0x03)));
        bad = UNORDERED_REXMIT_OPEN;
        bad[12] = 0xff; // not UTF-8
        assert_eq!(Dcep::parse(&bad), Err(DcepError::NotUtf8));
        // Every truncation is refused, never a panic.
        for n in 1..UNORDERED_REXMIT_OPEN.len() {
            assert_eq!(
                Dcep::parse(&UNORDERED_REXMIT_OPEN[..n]),
                Err(DcepError::Truncated)
            );
        }
        // A label length past the end.
        bad = UNORDERED_REXMIT_OPEN;
        bad[9] = 0x40;
        assert_eq!(Dcep::parse(&bad), Err(DcepError::Truncated));
    }

    #[test]
    fn message_kinds_and_stream_parity() {
        assert_eq!(MessageKind::ppid(true, 5), PPID_STRING);
        assert_eq!(MessageKind::ppid(true, 0), PPID_STRING_EMPTY);
        assert_eq!(MessageKind::ppid(false, 5), PPID_BINARY);
        assert_eq!(MessageKind::ppid(false, 0), PPID_BINARY_EMPTY);
        for ppid in [
            PPID_STRING,
            PPID_STRING_EMPTY,
            PPID_BINARY,
            PPID_BINARY_EMPTY,
        ] {
            let kind = MessageKind::of(ppid).expect("a message kind");
            let (is_string, empty) = match kind {
                MessageKind::String { empty } => (true, empty),
                MessageKind::Binary { empty } => (false, empty),
            };
            assert_eq!(kind.is_empty(), empty);
            assert_eq!(MessageKind::ppid(is_string, usize::from(!empty)), ppid);
        }
        assert_eq!(MessageKind::of(PPID_DCEP), None);
        assert_eq!(MessageKind::of(52), None); // deprecated partial string
        assert!(is_ours(0, DtlsRole::Client) && is_ours(2, DtlsRole::Client));
        assert!(is_ours(1, DtlsRole::Server) && !is_ours(1, DtlsRole::Client));
    }
}
