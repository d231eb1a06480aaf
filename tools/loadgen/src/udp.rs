//! The clients' socket reads: `recvmsg` with UDP GRO (Linux), so that a
//! burst the SFU sent with UDP GSO arrives as one read, as a NIC with GRO
//! would deliver it, and is split here.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Biggest read: a GRO read holds up to 64 KiB.
const READ_BYTES: usize = 65_536;

/// Turns on UDP GRO for a socket (Linux only; elsewhere it does nothing).
pub fn enable_gro(socket: &UdpSocket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
    Ok(())
}

/// A reusable read buffer.
pub struct Reader {
    buf: Vec<u8>,
    len: usize,
    segment: usize,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            buf: vec![0; READ_BYTES],
            len: 0,
            segment: 0,
        }
    }
}

impl Reader {
    /// Reads one datagram, or one GRO batch of them; returns the sender.
    #[cfg(target_os = "linux")]
    pub fn read(&mut self, socket: &impl std::os::fd::AsRawFd) -> io::Result<SocketAddr> {
        let mut name = socket2::SockAddrStorage::zeroed();
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: self.buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_namelen = name.size_of();
        msg.msg_name = &mut name as *mut socket2::SockAddrStorage as *mut libc::c_void;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at live buffers.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.len = n as usize;
        self.segment = self.len;
        // SAFETY: the kernel filled the control buffer that `msg` describes.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    let size = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const u16);
                    self.segment = usize::from(size).max(1);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let addr = unsafe { socket2::SockAddr::new(name, msg.msg_namelen) };
        addr.as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP sender"))
    }

    /// Reads one datagram; returns the sender.
    #[cfg(not(target_os = "linux"))]
    pub fn read(&mut self, socket: &mio::net::UdpSocket) -> io::Result<SocketAddr> {
        let (n, from) = socket.recv_from(&mut self.buf)?;
        self.len = n;
        self.segment = n.max(1);
        Ok(from)
    }

    /// The datagrams of the last read.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.buf[..self.len].chunks(self.segment.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_datagrams_read_one_by_one() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_gro(&rx).unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[1; 100], rx.local_addr().unwrap()).unwrap();
        tx.send_to(&[2; 30], rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut reader = Reader::default();
        let mut got = Vec::new();
        while let Ok(from) = reader.read(&rx) {
            assert_eq!(from, tx.local_addr().unwrap());
            got.extend(reader.datagrams().map(|d| (d.len(), d[0])));
        }
        assert_eq!(got, vec![(100, 1), (30, 2)]);
    }
}
