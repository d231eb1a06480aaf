//! The media socket: UDP, non-blocking, SO_REUSEPORT so that every worker
//! binds the same port, with large kernel buffers for bursts of video.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

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
