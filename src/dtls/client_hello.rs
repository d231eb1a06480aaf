//! A checked reader of the client's first flight: the ClientHello is
//! reassembled from its epoch-0 handshake fragments (RFC 6347 §4.2.3) and
//! read for its random and its `use_srtp` profiles (RFC 5764 §4.1.1), so
//! that [`super::DtlsTransport`] can choose the SRTP profile before the DTLS
//! library sees the handshake. Its epoch-0 fragment reader also serves
//! `flight` (which of our flight the client's retransmission answers). Every length is checked against what is
//! there; a malformed or truncated flight reads as absent, never a panic.

/// The use_srtp extension type (RFC 5764 §4.1.1).
const USE_SRTP: u16 = 14;

/// Reassembles the first ClientHello (message_seq 0) from its handshake
/// fragments (RFC 6347 §4.2.3).
#[derive(Default)]
pub(super) struct ClientHello {
    length: Option<usize>,
    body: Vec<u8>,
    /// Bytes of `body` received, as sorted, merged ranges.
    received: Vec<(usize, usize)>,
}

impl ClientHello {
    /// Takes the ClientHello fragments of a datagram's epoch-0 handshake records.
    pub(super) fn add_datagram(&mut self, datagram: &[u8]) {
        for f in hello_fragments(datagram) {
            let (total, offset, fragment) = (f.total, f.offset, f.bytes);
            let frag_len = fragment.len();
            if f.seq != 0 || offset + frag_len > total || total > 1 << 16 {
                continue;
            }
            if self.length.is_none_or(|l| l != total) {
                *self = ClientHello {
                    length: Some(total),
                    body: vec![0; total],
                    received: Vec::new(),
                };
            }
            self.body[offset..offset + frag_len].copy_from_slice(fragment);
            self.received.push((offset, offset + frag_len));
            self.received.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::new();
            for &(a, b) in &self.received {
                match merged.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            self.received = merged;
        }
    }

    /// The whole ClientHello body, once every byte arrived.
    pub(super) fn complete(&self) -> Option<ClientHelloBody<'_>> {
        let total = self.length?;
        (self.received.as_slice() == [(0, total)] || total == 0)
            .then_some(ClientHelloBody(&self.body[..]))
    }
}

/// The client random of a datagram's first-fragment ClientHello (epoch 0,
/// fragment offset 0), if it carries one.
pub(super) fn client_hello_random(datagram: &[u8]) -> Option<[u8; 32]> {
    let first = hello_fragments(datagram).find(|f| f.offset == 0)?;
    // The body's start: what the random needs of it.
    ClientHelloBody(first.bytes).random()
}

/// One handshake message fragment of an epoch-0 handshake record
/// (RFC 6347 §4.2.2).
pub(super) struct Fragment<'a> {
    /// HandshakeType (1: ClientHello).
    pub(super) kind: u8,
    /// The whole message's length.
    pub(super) total: usize,
    /// message_seq.
    pub(super) seq: u16,
    /// Where the fragment sits in the message.
    pub(super) offset: usize,
    /// The fragment.
    pub(super) bytes: &'a [u8],
}

/// The ClientHello fragments of a datagram, in order.
fn hello_fragments(datagram: &[u8]) -> impl Iterator<Item = Fragment<'_>> {
    handshake_fragments(datagram).filter(|f| f.kind == 1)
}

/// The handshake fragments of a datagram's epoch-0 records, in order; ends
/// at a truncated record or fragment.
pub(super) fn handshake_fragments(datagram: &[u8]) -> impl Iterator<Item = Fragment<'_>> {
    let mut records = Reader(datagram);
    let mut record = Reader(&[]);
    std::iter::from_fn(move || {
        loop {
            if let Some(hs) = record.take(12) {
                let Some(bytes) = record.take(be24(&hs[9..12])) else {
                    records = Reader(&[]);
                    record = Reader(&[]);
                    return None;
                };
                return Some(Fragment {
                    kind: hs[0],
                    total: be24(&hs[1..4]),
                    seq: u16::from_be_bytes([hs[4], hs[5]]),
                    offset: be24(&hs[6..9]),
                    bytes,
                });
            }
            let header = records.take(13)?;
            let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
            let body = records.take(len)?;
            let epoch = u16::from_be_bytes([header[3], header[4]]);
            if header[0] == 22 && epoch == 0 {
                record = Reader(body);
            }
        }
    })
}

fn be24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// A whole ClientHello body (RFC 6347 §4.2.1), as [`ClientHello::complete`]
/// gives it: its fields are read through checked lengths, and a malformed
/// body reads as having none of what was asked.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientHelloBody<'a>(&'a [u8]);

impl<'a> ClientHelloBody<'a> {
    /// The client random.
    pub(super) fn random(&self) -> Option<[u8; 32]> {
        self.0.get(2..34).and_then(|r| r.try_into().ok())
    }

    /// The SRTP profiles of its `use_srtp` extension (empty if it has none
    /// or is malformed).
    pub(super) fn srtp_profiles(&self) -> Vec<u16> {
        self.read_srtp_profiles().unwrap_or_default()
    }

    fn read_srtp_profiles(&self) -> Option<Vec<u16>> {
        let mut r = Reader(self.0);
        r.take(2 + 32)?; // client_version, random
        let n = usize::from(r.u8()?);
        r.take(n)?; // session_id
        let n = usize::from(r.u8()?);
        r.take(n)?; // cookie
        let n = usize::from(r.u16()?);
        r.take(n)?; // cipher_suites
        let n = usize::from(r.u8()?);
        r.take(n)?; // compression_methods
        let n = usize::from(r.u16()?);
        let mut ext = Reader(r.take(n)?);
        while let (Some(kind), Some(len)) = (ext.u16(), ext.u16()) {
            let mut body = Reader(ext.take(usize::from(len))?);
            if kind == USE_SRTP {
                let n = usize::from(body.u16()?);
                let mut list = Reader(body.take(n)?);
                let mut profiles = Vec::new();
                while let Some(p) = list.u16() {
                    profiles.push(p);
                }
                return Some(profiles);
            }
        }
        None
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record (annotated), with use_srtp listing AES_CM_80 then GCM.
    #[test]
    fn reads_use_srtp_from_a_client_hello() {
        let mut body = vec![0xfe, 0xfd]; // client_version DTLS 1.2
        body.extend_from_slice(&[0xab; 32]); // random
        body.push(0); // session_id: empty
        body.push(0); // cookie: empty
        body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2b]); // one cipher suite
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        let ext = [
            0x00, 0x17, 0x00, 0x00, // extended_master_secret, empty
            0x00, 0x0e, 0x00, 0x07, // use_srtp, 7 bytes
            0x00, 0x04, 0x00, 0x01, 0x00, 0x07, // two profiles: 0x0001, 0x0007
            0x00, // empty MKI
        ];
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let len = (body.len() as u32).to_be_bytes();
        let mut dgram = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
        dgram.extend_from_slice(&((body.len() + 12) as u16).to_be_bytes());
        dgram.extend_from_slice(&[
            1, len[1], len[2], len[3], 0, 0, 0, 0, 0, len[1], len[2], len[3],
        ]);
        dgram.extend_from_slice(&body);

        let mut whole = ClientHello::default();
        whole.add_datagram(&dgram);
        assert_eq!(
            whole.complete().map(|body| body.srtp_profiles()),
            Some(vec![0x0001, 0x0007])
        );

        // The same ClientHello in two fragments, in two datagrams, last first.
        let split = 40;
        let fragment = |from: usize, to: usize| {
            let mut d = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
            d.extend_from_slice(&((to - from + 12) as u16).to_be_bytes());
            let off = (from as u32).to_be_bytes();
            let flen = ((to - from) as u32).to_be_bytes();
            d.extend_from_slice(&[
                1, len[1], len[2], len[3], 0, 0, off[1], off[2], off[3], flen[1], flen[2], flen[3],
            ]);
            d.extend_from_slice(&body[from..to]);
            d
        };
        // The client random, which tells a new handshake from a retransmission.
        assert_eq!(client_hello_random(&dgram), Some([0xab; 32]));
        assert_eq!(client_hello_random(&fragment(0, split)), Some([0xab; 32]));
        assert_eq!(client_hello_random(&fragment(split, body.len())), None);
        assert_eq!(client_hello_random(&fragment(0, 20)), None);

        let mut parts = ClientHello::default();
        parts.add_datagram(&fragment(split, body.len()));
        assert!(parts.complete().is_none());
        parts.add_datagram(&fragment(0, split));
        assert_eq!(
            parts.complete().map(|body| body.srtp_profiles()),
            Some(vec![0x0001, 0x0007])
        );

        // Truncations and other handshake types never complete or panic.
        for n in 0..dgram.len() {
            let mut h = ClientHello::default();
            h.add_datagram(&dgram[..n]);
            assert!(h.complete().is_none());
        }
        dgram[13] = 2; // ServerHello
        let mut h = ClientHello::default();
        h.add_datagram(&dgram);
        assert!(h.complete().is_none());
    }
}
