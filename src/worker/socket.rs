//! The media socket: UDP, non-blocking, SO_REUSEPORT so that every worker
//! binds the same port, with large kernel buffers for bursts of video.

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

/// Sends datagrams to their destinations with as few syscalls as possible:
/// `sendmmsg` on Linux (one call per up to 64 datagrams), `send_to` in a
/// loop elsewhere. Returns how many were sent; stops at the first error
/// (EAGAIN included), which the caller counts as drops.
pub struct BatchSender {
    addrs: Vec<socket2::SockAddr>,
}

/// Datagrams per `sendmmsg` call.
pub const BATCH: usize = 64;

impl BatchSender {
    /// A sender with room for one batch.
    pub fn new() -> Self {
        BatchSender {
            addrs: Vec::with_capacity(BATCH),
        }
    }

    /// Sends `datagrams` from `socket`.
    #[cfg(target_os = "linux")]
    pub fn send(&mut self, socket: &impl std::os::fd::AsRawFd, datagrams: &[Transmit]) -> usize {
        let mut sent = 0;
        for chunk in datagrams.chunks(BATCH) {
            self.addrs.clear();
            self.addrs
                .extend(chunk.iter().map(|t| socket2::SockAddr::from(t.to)));
            let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, t) in chunk.iter().enumerate() {
                iovecs[i] = libc::iovec {
                    iov_base: t.bytes.as_ptr() as *mut libc::c_void,
                    iov_len: t.bytes.len(),
                };
                let h = &mut headers[i].msg_hdr;
                h.msg_name = self.addrs[i].as_ptr() as *mut libc::c_void;
                h.msg_namelen = self.addrs[i].len();
                h.msg_iov = &mut iovecs[i];
                h.msg_iovlen = 1;
            }
            let mut offset = 0;
            while offset < chunk.len() {
                // SAFETY: `headers[offset..chunk.len()]` are initialised above and
                // point at `iovecs` and `self.addrs`, which outlive the call.
                let n = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        headers[offset..].as_mut_ptr(),
                        (chunk.len() - offset) as libc::c_uint,
                        0,
                    )
                };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return sent;
                }
                if n == 0 {
                    return sent;
                }
                offset += n as usize;
                sent += n as usize;
            }
        }
        sent
    }

    /// Sends `datagrams` from `socket`.
    #[cfg(not(target_os = "linux"))]
    pub fn send(&mut self, socket: &mio::net::UdpSocket, datagrams: &[Transmit]) -> usize {
        let mut sent = 0;
        for t in datagrams {
            if socket.send_to(&t.bytes, t.to).is_err() {
                return sent;
            }
            sent += 1;
        }
        sent
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
            .map(|(i, p)| Transmit {
                to: receivers[i % 3].local_addr().unwrap(),
                bytes: bytes::BytesMut::from(&p[..]),
            })
            .collect();
        let mut batch = BatchSender::new();
        assert_eq!(batch.send(&sender_socket, &datagrams), 100);
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
}
