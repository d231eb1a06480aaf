//! A WebSocket endpoint for the adapter tests: an application's server as
//! the adapters reach it, on 127.0.0.1, one thread, with a behaviour per
//! test (collect what arrives, send PCM, never read, send garbage, close
//! early). Messages are read with a protobuf reader of its own (three
//! fields), not the server's.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::{self, Message};

/// One `Packet` as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub sequence_number: u32,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// What the endpoint does with each connection.
#[derive(Clone)]
pub enum Behaviour {
    /// Reads and keeps every message.
    Collect,
    /// Reads `n` messages, then closes the connection (later connections
    /// collect).
    CloseAfter(usize),
    /// Sends these payloads as `Packet`s as fast as it can, then an empty
    /// one (end of segment), then stays open reading.
    Send(Arc<Vec<Vec<u8>>>),
    /// Completes the handshake and never reads again.
    Stuck,
    /// Sends bytes that are not a `Packet`.
    Garbage,
    /// Accepts TCP and never answers the handshake.
    Silent,
    /// Answers the handshake with a redirect.
    Redirect,
}

/// The endpoint: its URL and what it saw.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Endpoint {
    /// Starts an endpoint with `behaviour`; `recv_buffer` (bytes) shrinks
    /// its sockets' receive buffer (a stuck endpoint fills up sooner).
    pub fn start(behaviour: Behaviour, recv_buffer: Option<usize>) -> Endpoint {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if let Some(b) = recv_buffer {
            socket.set_recv_buffer_size(b).unwrap();
        }
        socket.set_reuse_address(true).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        socket.listen(64).unwrap();
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (received.clone(), connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = c.fetch_add(1, Ordering::Relaxed);
                        let behaviour = match (&behaviour, n) {
                            (Behaviour::CloseAfter(_), n) if n > 0 => Behaviour::Collect,
                            (b, _) => b.clone(),
                        };
                        let (r, s) = (r.clone(), s.clone());
                        std::thread::spawn(move || serve(stream, behaviour, r, s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        Endpoint {
            addr,
            received,
            connections,
            stop,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("ws://{}/adapter?token=t", self.addr)
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: std::net::TcpStream,
    behaviour: Behaviour,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
) {
    stream.set_nonblocking(false).unwrap();
    match behaviour {
        Behaviour::Silent => {
            std::thread::sleep(Duration::from_secs(20));
            return;
        }
        Behaviour::Redirect => {
            use std::io::{Read, Write};
            let mut s = stream;
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
            );
            return;
        }
        _ => {}
    }
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let mut count = 0;
    match &behaviour {
        Behaviour::Send(payloads) => {
            for (i, p) in payloads.iter().enumerate() {
                if ws
                    .send(Message::Binary(packet(i as u32, p).into()))
                    .is_err()
                {
                    return;
                }
            }
            let _ = ws.send(Message::Binary(packet(payloads.len() as u32, &[]).into()));
        }
        Behaviour::Garbage => {
            let _ = ws.send(Message::Binary(vec![0xff, 0xff, 0xff, 0x07].into()));
        }
        Behaviour::Stuck => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        _ => {}
    }
    while !stop.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                if let Some(r) = parse(&b) {
                    received.lock().unwrap().push(r);
                }
                count += 1;
                if let Behaviour::CloseAfter(n) = behaviour
                    && count >= n
                {
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    return;
                }
            }
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// `Packet { sequenceNumber = 1; timestamp = 2; payload = 5 }`.
pub fn packet(sequence_number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(0x08);
    varint(&mut out, u64::from(sequence_number));
    out.push(0x2a);
    varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Reads a `Packet`; unknown fields are skipped as protobuf says.
pub fn parse(b: &[u8]) -> Option<Received> {
    let mut r = Received {
        at: Instant::now(),
        sequence_number: 0,
        timestamp: 0,
        payload: Vec::new(),
    };
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i)?;
        match (key >> 3, key & 7) {
            (1, 0) => r.sequence_number = read_varint(b, &mut i)? as u32,
            (2, 0) => r.timestamp = read_varint(b, &mut i)? as u32,
            (5, 2) => {
                let n = read_varint(b, &mut i)? as usize;
                r.payload = b.get(i..i + n)?.to_vec();
                i += n;
            }
            (_, 0) => {
                read_varint(b, &mut i)?;
            }
            (_, 2) => {
                let n = read_varint(b, &mut i)? as usize;
                i += n;
            }
            _ => return None,
        }
    }
    Some(r)
}

/// The left channel of s16le stereo PCM, as f64.
pub fn left_channel(pcm: &[u8]) -> Vec<f64> {
    pcm.chunks_exact(4)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
        .collect()
}

/// The strongest frequency (Hz) of `samples` at `rate`, between 50 Hz and
/// 5 kHz (Goertzel, coarse then fine).
pub fn dominant_frequency(samples: &[f64], rate: f64) -> f64 {
    let power = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / rate;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for x in samples {
            let s = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let best = |from: f64, to: f64, step: f64| {
        let mut f = from;
        let (mut best_f, mut best_p) = (from, -1.0);
        while f <= to {
            let p = power(f);
            if p > best_p {
                (best_f, best_p) = (f, p);
            }
            f += step;
        }
        best_f
    };
    let coarse = best(50.0, 5000.0, 10.0);
    best(coarse - 10.0, coarse + 10.0, 0.5)
}

/// `seconds` of a sine tone at `hz` as s16le 48 kHz stereo PCM.
pub fn tone_pcm(hz: f64, seconds: f64) -> Vec<u8> {
    let n = (48_000.0 * seconds) as usize;
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        let v = (9000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 48_000.0).sin()) as i16;
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
