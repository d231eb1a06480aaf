//! The media socket: UDP, non-blocking, SO_REUSEPORT so that every worker
//! binds the same port, with large kernel buffers for bursts of video; and
//! the batched syscalls around it (`recvmmsg`, `sendmmsg` with UDP GSO).

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::engine::Transmit;

/// Kernel buffer size asked for (the kernel may cap it at rmem_max/wmem_max).
const BUFFER_BYTES: usize = 4 << 20;

/// Binds a non-blocking UDP socket with SO_REUSEPORT.
pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    let _ = socket.set_recv_buffer_size(BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Sends datagrams with as few syscalls as possible: `sendmmsg` on Linux
/// (up to 64 messages per call), each message one datagram or, with UDP
/// GSO, several to one destination; `send_to` in a loop elsewhere.
///
/// Errors: a full socket buffer (EAGAIN, ENOBUFS) ends the call, and the
/// caller counts what was not sent as drops; an error on one message (an
/// unreachable destination) skips that message only. A kernel or device
/// that refuses GSO (EIO) turns GSO off for good and the datagrams go one by
/// one; a GSO message refused as too large for the path (EINVAL) is split.
pub struct BatchSender {
    addrs: Vec<socket2::SockAddr>,
    gso: bool,
}

/// What one [`BatchSender::send`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams.
    pub datagrams: usize,
    /// Messages that carried several datagrams (GSO).
    pub gso_messages: usize,
}

/// Messages per `sendmmsg` call.
pub const BATCH: usize = 64;

/// Room for one UDP_SEGMENT control message (CMSG_SPACE of a u16).
#[cfg(target_os = "linux")]
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GsoControl([u8; 24]);

// SAFETY: CMSG_SPACE is pure arithmetic.
#[cfg(target_os = "linux")]
const _: () = assert!(unsafe { libc::CMSG_SPACE(2) } as usize == 24);

/// What one message of a `sendmmsg` call carries.
#[derive(Clone, Copy, Default)]
struct Message {
    /// The transmit it belongs to.
    transmit: usize,
    /// Datagrams in it.
    datagrams: usize,
    /// It is one GSO send of the whole transmit.
    gso: bool,
}

impl BatchSender {
    /// A sender with room for one batch.
    pub fn new() -> Self {
        BatchSender {
            addrs: Vec::with_capacity(BATCH),
            gso: cfg!(target_os = "linux"),
        }
    }

    /// Sends `transmits` from `socket`.
    #[cfg(target_os = "linux")]
    pub fn send(&mut self, socket: &impl std::os::fd::AsRawFd, transmits: &[Transmit]) -> Sent {
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut controls = [GsoControl([0; 24]); BATCH];
        let mut messages = [Message::default(); BATCH];
        let mut sent = Sent::default();
        // Next datagram to send: transmit index, byte offset in it.
        let (mut t, mut offset) = (0, 0);
        // A transmit to split although GSO is on (the path refused it whole).
        let mut split = usize::MAX;
        while t < transmits.len() {
            // Build up to BATCH messages from (t, offset) on.
            self.addrs.clear();
            let mut m = 0;
            while m < BATCH && t < transmits.len() {
                let tx = &transmits[t];
                let whole = self.gso && t != split && tx.segment_size.is_some() && offset == 0;
                let (len, datagrams) = if whole {
                    (tx.bytes.len(), tx.count())
                } else {
                    let size = tx.segment_size.unwrap_or(tx.bytes.len());
                    (size.min(tx.bytes.len() - offset), 1)
                };
                self.addrs.push(socket2::SockAddr::from(tx.to));
                iovecs[m] = libc::iovec {
                    iov_base: tx.bytes[offset..].as_ptr() as *mut libc::c_void,
                    iov_len: len,
                };
                headers[m] = unsafe { std::mem::zeroed() };
                let h = &mut headers[m].msg_hdr;
                h.msg_iov = &mut iovecs[m];
                h.msg_iovlen = 1;
                if whole && datagrams > 1 {
                    let segment = tx.segment_size.unwrap_or(len) as u16;
                    write_gso_control(&mut controls[m], segment);
                    h.msg_control = controls[m].0.as_mut_ptr() as *mut libc::c_void;
                    h.msg_controllen = controls[m].0.len() as _;
                }
                messages[m] = Message {
                    transmit: t,
                    datagrams,
                    gso: whole && datagrams > 1,
                };
                m += 1;
                offset += len;
                if offset >= tx.bytes.len() {
                    t += 1;
                    offset = 0;
                }
            }
            for (h, a) in headers[..m].iter_mut().zip(&self.addrs) {
                h.msg_hdr.msg_name = a.as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = a.len();
            }
            let mut done = 0;
            while done < m {
                // SAFETY: `headers[done..m]` are initialised above and point
                // at `iovecs`, `controls`, `self.addrs` and the transmits'
                // bytes, which all outlive the call.
                let n = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        headers[done..m].as_mut_ptr(),
                        (m - done) as libc::c_uint,
                        0,
                    )
                };
                if n > 0 {
                    let n = n as usize;
                    for message in &messages[done..done + n] {
                        sent.datagrams += message.datagrams;
                        sent.gso_messages += usize::from(message.gso);
                    }
                    done += n;
                    continue;
                }
                let error = io::Error::last_os_error();
                let failed = messages[done];
                match error.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => return sent,
                    Some(code @ (libc::EIO | libc::EINVAL)) if failed.gso => {
                        if code == libc::EIO {
                            tracing::warn!(
                                "UDP GSO refused by the kernel; sending datagrams one by one"
                            );
                            self.gso = false;
                        } else {
                            split = failed.transmit;
                        }
                        // Rebuild from the refused transmit.
                        (t, offset) = (failed.transmit, 0);
                        break;
                    }
                    // This destination failed; the others still go.
                    _ => done += 1,
                }
            }
        }
        sent
    }

    /// Sends `transmits` from `socket`.
    #[cfg(not(target_os = "linux"))]
    pub fn send(&mut self, socket: &mio::net::UdpSocket, transmits: &[Transmit]) -> Sent {
        let mut sent = Sent::default();
        for t in transmits {
            for d in t.datagrams() {
                match socket.send_to(d, t.to) {
                    Ok(_) => sent.datagrams += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return sent,
                    Err(_) => {}
                }
            }
        }
        sent
    }
}

/// Fills a UDP_SEGMENT control message: the kernel splits the message's
/// payload into datagrams of `segment` bytes (the last may be shorter).
#[cfg(target_os = "linux")]
fn write_gso_control(control: &mut GsoControl, segment: u16) {
    let header = libc::cmsghdr {
        // SAFETY: CMSG_LEN is pure arithmetic.
        cmsg_len: unsafe { libc::CMSG_LEN(2) } as _,
        cmsg_level: libc::SOL_UDP,
        cmsg_type: libc::UDP_SEGMENT,
    };
    let size = std::mem::size_of::<libc::cmsghdr>();
    // SAFETY: the buffer is 8-aligned and holds a cmsghdr (16 bytes) and the
    // u16 that follows it (CMSG_DATA is right after the aligned header).
    unsafe {
        std::ptr::write(control.0.as_mut_ptr() as *mut libc::cmsghdr, header);
    }
    control.0[size..size + 2].copy_from_slice(&segment.to_ne_bytes());
}

/// Bytes of one receive buffer: more than any datagram a client sends.
const RECV_BYTES: usize = 2048;

/// Reads datagrams with as few syscalls as possible: `recvmmsg` on Linux
/// (up to [`BATCH`] per call), `recv_from` in a loop elsewhere. The
/// datagrams stay in its buffers until the next call.
pub struct BatchReceiver {
    buffers: Vec<u8>,
    received: Vec<(SocketAddr, usize, usize)>,
    #[cfg(target_os = "linux")]
    names: Vec<socket2::SockAddrStorage>,
}

impl BatchReceiver {
    /// A receiver with room for one batch.
    pub fn new() -> Self {
        BatchReceiver {
            buffers: vec![0; BATCH * RECV_BYTES],
            received: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            names: (0..BATCH)
                .map(|_| socket2::SockAddrStorage::zeroed())
                .collect(),
        }
    }

    /// Reads what is waiting, up to one batch; returns how many datagrams
    /// (0 when none is waiting).
    #[cfg(target_os = "linux")]
    pub fn receive(&mut self, socket: &impl std::os::fd::AsRawFd) -> usize {
        self.received.clear();
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, chunk) in self.buffers.chunks_mut(RECV_BYTES).enumerate() {
            iovecs[i] = libc::iovec {
                iov_base: chunk.as_mut_ptr() as *mut libc::c_void,
                iov_len: RECV_BYTES,
            };
            let h = &mut headers[i].msg_hdr;
            h.msg_namelen = self.names[i].size_of();
            h.msg_name = &mut self.names[i] as *mut socket2::SockAddrStorage as *mut libc::c_void;
            h.msg_iov = &mut iovecs[i];
            h.msg_iovlen = 1;
        }
        let n = loop {
            // SAFETY: the headers point at `iovecs`, `self.names` and
            // `self.buffers`, which outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                // Nothing waiting, or an ICMP error surfacing: either way
                // nothing to read now.
                _ => break 0,
            }
        };
        for (slot, (h, name)) in headers[..n].iter().zip(&mut self.names).enumerate() {
            // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes.
            let storage = std::mem::replace(name, socket2::SockAddrStorage::zeroed());
            let addr = unsafe { socket2::SockAddr::new(storage, h.msg_hdr.msg_namelen) };
            let Some(from) = addr.as_socket() else {
                continue;
            };
            // Datagrams cut to the buffer (MSG_TRUNC) are kept: they fail
            // authentication and are counted as drops like any bad packet.
            let len = (h.msg_len as usize).min(RECV_BYTES);
            self.received.push((from, slot, len));
        }
        self.received.len()
    }

    /// Reads what is waiting, up to one batch; returns how many datagrams.
    #[cfg(not(target_os = "linux"))]
    pub fn receive(&mut self, socket: &mio::net::UdpSocket) -> usize {
        self.received.clear();
        for (slot, chunk) in self.buffers.chunks_mut(RECV_BYTES).enumerate() {
            match socket.recv_from(chunk) {
                Ok((n, from)) => self.received.push((from, slot, n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.received.len()
    }

    /// Datagram `i` of the last [`receive`](Self::receive): sender and bytes.
    pub fn datagram(&mut self, i: usize) -> (SocketAddr, &mut [u8]) {
        let (from, slot, len) = self.received[i];
        let start = slot * RECV_BYTES;
        (from, &mut self.buffers[start..start + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reaches_every_destination() {
        let sender_socket = bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let receivers: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let datagrams: Vec<Transmit> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Transmit::single(
                    receivers[i % 3].local_addr().unwrap(),
                    bytes::BytesMut::from(&p[..]),
                )
            })
            .collect();
        let mut batch = BatchSender::new();
        assert_eq!(batch.send(&sender_socket, &datagrams).datagrams, 100);
        let mut buf = [0u8; 512];
        for (i, p) in payloads.iter().enumerate() {
            let r = &receivers[i % 3];
            r.set_read_timeout(Some(std::time::Duration::from_secs(1)))
                .unwrap();
            let (n, from) = r.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &p[..]);
            assert_eq!(from, sender_socket.local_addr().unwrap());
        }
    }

    #[test]
    fn a_gso_transmit_arrives_as_separate_datagrams() {
        let sender_socket = bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        // Three of 1000 bytes and a last one of 300, then a single datagram.
        let mut bytes = bytes::BytesMut::new();
        for i in 0..4u8 {
            bytes.extend(std::iter::repeat_n(i, if i == 3 { 300 } else { 1000 }));
        }
        let to = receiver.local_addr().unwrap();
        let transmits = [
            Transmit {
                to,
                bytes,
                segment_size: Some(1000),
            },
            Transmit::single(to, bytes::BytesMut::from(&[9u8; 50][..])),
        ];
        let mut batch = BatchSender::new();
        assert_eq!(
            batch.send(&sender_socket, &transmits),
            Sent {
                datagrams: 5,
                gso_messages: 1
            }
        );
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        for _ in 0..5 {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            got.push((n, buf[0]));
        }
        assert_eq!(
            got,
            vec![(1000, 0), (1000, 1), (1000, 2), (300, 3), (50, 9)]
        );
    }

    #[test]
    fn a_batch_is_read_in_one_call_with_each_sender() {
        let socket = bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let senders: Vec<UdpSocket> = (0..2)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for i in 0..10u8 {
            let s = &senders[usize::from(i % 2)];
            s.send_to(&vec![i; 10 + usize::from(i)], addr).unwrap();
        }
        let mut rx = BatchReceiver::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = rx.receive(&socket);
            for i in 0..n {
                let (from, bytes) = rx.datagram(i);
                got.push((from, bytes.to_vec()));
            }
            if got.len() == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got.len(), 10);
        for (i, (from, bytes)) in got.iter().enumerate() {
            assert_eq!(*from, senders[i % 2].local_addr().unwrap());
            assert_eq!(*bytes, vec![i as u8; 10 + i]);
        }
        assert_eq!(rx.receive(&socket), 0);
    }
}
