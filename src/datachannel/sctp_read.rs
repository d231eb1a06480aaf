//! What rtc-sctp reads of each SCTP chunk: the length it steps on by to
//! the next chunk. rtc-sctp steps by the length of what it parsed, not by
//! the chunk's Length field (RFC 9260 §3.2), so a chunk that claims more
//! than rtc-sctp reads of it hides chunks inside itself that a walk by
//! Length never sees. [`super::sctp_check`] holds the two against each
//! other; this module only answers, for one chunk, what rtc-sctp 0.21
//! reads (its `Chunk::value_length` after `unmarshal`).
//!
//! Where it sits: under [`super::sctp_check::chunks_fit`], before the
//! association reads a packet, on the DTLS threads.

/// Chunk types (RFC 9260 §3.2, RFC 6525 §3.1, RFC 3758 §3.2).
pub const DATA: u8 = 0;
pub const INIT: u8 = 1;
pub const INIT_ACK: u8 = 2;
pub const SACK: u8 = 3;
pub const HEARTBEAT: u8 = 4;
pub const ABORT: u8 = 6;
pub const SHUTDOWN: u8 = 7;
pub const SHUTDOWN_ACK: u8 = 8;
pub const ERROR: u8 = 9;
pub const COOKIE_ACK: u8 = 11;
pub const SHUTDOWN_COMPLETE: u8 = 14;
pub const RE_CONFIG: u8 = 130;
pub const FORWARD_TSN: u8 = 192;

/// A parameter's or an error cause's type and length.
const TLV_HEADER: usize = 4;
/// An INIT's or INIT ACK's fixed fields: tag, a_rwnd, streams, initial TSN.
const INIT_FIXED: usize = 16;
/// A SACK's fixed fields: cumulative TSN ack, a_rwnd, the two counts.
const SACK_FIXED: usize = 12;

/// The length of the value rtc-sctp reads from a chunk of type `kind`
/// whose value (after the chunk header, as its Length field bounds it) is
/// `value`; None where rtc-sctp refuses it or, for error causes, would
/// slice past it.
pub fn value_read(kind: u8, value: &[u8]) -> Option<usize> {
    match kind {
        ABORT | ERROR => causes_read(value),
        SACK => Some(sack_read(value)),
        SHUTDOWN => Some(4),
        SHUTDOWN_ACK | COOKIE_ACK | SHUTDOWN_COMPLETE => Some(0),
        HEARTBEAT => parameter_read(value),
        RE_CONFIG => re_config_read(value),
        INIT | INIT_ACK => init_read(value),
        _ => Some(value.len()),
    }
}

/// Error causes, walked by their unpadded lengths while four bytes are
/// left (as rtc-sctp walks them).
fn causes_read(causes: &[u8]) -> Option<usize> {
    let mut read = 0;
    while causes.len() - read >= TLV_HEADER {
        let len = length_field(&causes[read..]);
        if len < TLV_HEADER || len > causes.len() - read {
            return None;
        }
        read += len;
    }
    Some(read)
}

/// A SACK's length by its counts of gap-ack blocks and duplicate TSNs
/// (RFC 9260 §3.3.4); a shorter one is rtc-sctp's to refuse.
fn sack_read(value: &[u8]) -> usize {
    match value.get(8..SACK_FIXED) {
        Some(counts) => {
            let blocks = usize::from(u16::from_be_bytes([counts[0], counts[1]]));
            let duplicates = usize::from(u16::from_be_bytes([counts[2], counts[3]]));
            SACK_FIXED + 4 * (blocks + duplicates)
        }
        None => value.len(),
    }
}

/// A RE-CONFIG's one or two parameters, the first padded (RFC 6525 §3.1).
fn re_config_read(value: &[u8]) -> Option<usize> {
    let first = parameter_read(value)?;
    let second_at = first.next_multiple_of(4);
    if value.len() > second_at {
        Some(second_at + parameter_read(&value[second_at..])?)
    } else {
        Some(first)
    }
}

/// An INIT's fixed fields, then parameters padded to 4 bytes but the last
/// (RFC 9260 §3.2.1), read while more than a parameter header is left.
fn init_read(value: &[u8]) -> Option<usize> {
    if value.len() < INIT_FIXED {
        return None;
    }
    let mut at = INIT_FIXED;
    let mut read = INIT_FIXED;
    while value.len() - at.min(value.len()) > TLV_HEADER && at < value.len() {
        let parameter = parameter_read(&value[at..])?;
        read = at + parameter;
        at += parameter.next_multiple_of(4);
    }
    Some(read)
}

/// What rtc-sctp reads of the parameter at the start of `bytes`: its
/// header and the value its type's reader keeps.
fn parameter_read(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < TLV_HEADER {
        return None;
    }
    let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
    let len = length_field(bytes);
    if len < TLV_HEADER || len > bytes.len() {
        return None;
    }
    let value = len - TLV_HEADER;
    let kept = match kind {
        // Forward-TSN-Supported: nothing, whatever its length says.
        0xc000 => 0,
        // Requested HMAC algorithms: two bytes each.
        0x8004 => value / 2 * 2,
        // Reconfiguration Response: its first two fields only.
        16 => 8,
        // Heartbeat Info, State Cookie, Outgoing SSN Reset Request,
        // Random, Chunk List, Supported Extensions: all of it.
        1 | 7 | 13 | 0x8002 | 0x8003 | 0x8008 => value,
        // Others: kept whole when the type says skip and go on (its high
        // bit), refused otherwise (RFC 9260 §3.2.1).
        _ if kind & 0x8000 != 0 => value,
        _ => return None,
    };
    Some(TLV_HEADER + kept)
}

/// The Length field of a chunk, a parameter or an error cause: all three
/// begin with a type and a 16-bit length (RFC 9260 §3.2, §3.2.1, §3.3.10).
pub fn length_field(bytes: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter of `kind` with `value`.
    fn parameter(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut p = kind.to_be_bytes().to_vec();
        p.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
        p.extend_from_slice(value);
        p
    }

    fn padded(mut p: Vec<u8>) -> Vec<u8> {
        p.resize(p.len().next_multiple_of(4), 0);
        p
    }

    #[test]
    fn chunks_whose_value_is_all_read() {
        // An INIT: Forward-TSN-Supported, then Supported Extensions (3
        // chunk types, last, so not padded).
        let mut init = vec![0, 0, 0, 7, 0, 2, 0, 0, 0, 16, 0, 16, 0, 0, 0, 1];
        init.extend(parameter(0xc000, &[]));
        init.extend(parameter(0x8008, &[192, 130, 15]));
        assert_eq!(value_read(INIT, &init), Some(init.len()));
        // With padding between parameters.
        let mut padded_first = init[..16].to_vec();
        padded_first.extend(padded(parameter(0x8008, &[192, 130, 15])));
        padded_first.extend(parameter(0x8002, &[7; 32]));
        assert_eq!(value_read(INIT, &padded_first), Some(padded_first.len()));
        // A last parameter that is not padded.
        let mut ack = init[..16].to_vec();
        ack.extend(parameter(7, &[1, 2, 3, 4, 5]));
        assert_eq!(value_read(INIT_ACK, &ack), Some(ack.len()));
        let heartbeat = parameter(1, &[9; 12]);
        assert_eq!(value_read(HEARTBEAT, &heartbeat), Some(heartbeat.len()));
        // An Outgoing SSN Reset Request for streams 1 and 3.
        let mut re_config = padded(parameter(13, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 1]));
        re_config.truncate(18);
        assert_eq!(value_read(RE_CONFIG, &re_config), Some(18));
        let sack = [0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 3];
        assert_eq!(value_read(SACK, &sack), Some(16));
        assert_eq!(value_read(DATA, &[0; 13]), Some(13));
    }

    #[test]
    fn chunks_that_claim_more_than_is_read() {
        // A last parameter of four bytes is left unread.
        let mut init = vec![0; 16];
        init.extend(padded(parameter(0x8008, &[192, 130, 15])));
        init.extend(parameter(0xc000, &[]));
        assert_eq!(value_read(INIT, &init), Some(23));
        // Forward-TSN-Supported keeps none of the 8 bytes it claims: they
        // are read as the next parameter (one to skip), and the last four
        // are left.
        let mut init = vec![0; 16];
        init.extend(parameter(0xc000, &[0x80, 0x0a, 0, 4, 1, 2, 3, 4]));
        assert_eq!(value_read(INIT, &init), Some(24));
        // A Heartbeat Info shorter than its chunk.
        let mut heartbeat = parameter(1, &[9; 4]);
        heartbeat.extend_from_slice(&[DATA, 3, 0, 17, 0, 0, 0, 1]);
        assert_eq!(value_read(HEARTBEAT, &heartbeat), Some(8));
        // A Reconfiguration Response keeps 8 bytes: its optional fields
        // are read as a second parameter.
        let mut response = parameter(16, &[0; 8]);
        response.extend(parameter(0x8001, &[0; 4]));
        assert_eq!(value_read(RE_CONFIG, &parameter(16, &[0; 8])), Some(12));
        assert_eq!(value_read(RE_CONFIG, &response), Some(20));
        assert_eq!(value_read(SHUTDOWN_ACK, &[0; 28]), Some(0));
        assert_eq!(value_read(SACK, &[0; 20]), Some(12));
        // Error causes read by their unpadded lengths while four bytes are
        // left: three bytes stay unread.
        assert_eq!(value_read(ERROR, &[0, 1, 0, 4, 9, 0, 0]), Some(4));
        assert_eq!(value_read(ERROR, &[0, 1, 0, 5, 9, 0, 0]), Some(5));
    }

    #[test]
    fn what_rtc_sctp_refuses_or_would_slice_past() {
        assert_eq!(value_read(ERROR, &[0, 13, 0, 32]), None);
        assert_eq!(value_read(ABORT, &[0, 1, 0, 2]), None);
        assert_eq!(value_read(INIT, &[0; 15]), None);
        let mut init = vec![0; 16];
        init.extend(parameter(5, &[127, 0, 0, 1]));
        assert_eq!(value_read(INIT, &init), None, "IPv4 Address: stop");
        assert_eq!(value_read(HEARTBEAT, &[0, 1, 0, 9, 0]), None);
        // A Reconfiguration Response with its optional fields (RFC 6525
        // §4.4): rtc-sctp reads them as a parameter of length 0.
        assert_eq!(value_read(RE_CONFIG, &parameter(16, &[0; 16])), None);
    }
}
