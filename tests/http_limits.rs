//! The HTTP server's limits against hostile clients, over real TCP: heads
//! that never finish, more connections than the cap, bodies over the limit
//! (declared or streamed), bodies that never finish, oversized heads, and
//! keep-alive connections that outlive the head timeout.

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::server;
use switchboard::api::http_limits::{
    BODY_LIMIT, BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, LINGER_BYTES, LINGER_TIME, MAX_HEADER_BYTES,
};
use switchboard::config::Config;
use switchboard::server::Server;

/// Half a request head, never finished.
const HALF_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: test\r\nX-Pad: ";

/// A response as read off the wire.
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response (head and Content-Length body) within `limit`.
fn read_response(stream: &mut TcpStream, limit: Duration) -> std::io::Result<Response> {
    let deadline = Instant::now() + limit;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned();
                return Ok(Response { status, head, body });
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits up to `limit` for the server to end the connection; true if it
/// did (end of stream or reset), false if it is still open.
fn ends_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A GET on a fresh connection; how long until its 200.
fn probe(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, Duration::from_secs(5)).expect("probe answered");
    assert_eq!(r.status, 200, "{}", r.head);
    start.elapsed()
}

/// A connection that sent half a head.
fn stall(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(HALF_HEAD).unwrap();
    s
}

/// A POST head to sessions/new with `framing` (a Content-Length or
/// Transfer-Encoding line).
fn post_head(server: &Server, framing: &str) -> Vec<u8> {
    let (app, secret) = server.app();
    format!(
        "POST /v1/apps/{app}/sessions/new HTTP/1.1\r\nHost: test\r\n\
         Authorization: Bearer {secret}\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

/// This process's descriptors that are connections the server accepted on
/// `port` (its end: local port `port`), from /proc/self/fd and
/// /proc/self/net/tcp. Connections waiting in the listen queue have none.
fn accepted_fds(port: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    let inodes: HashSet<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
            // State 0A is LISTEN: the listener, not a connection.
            (local_port == port && cols[3] != "0A").then(|| cols[9].to_owned())
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|link| {
            let link = link.to_string_lossy();
            link.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
        .count()
}

/// Polls `done` until it holds; fails after `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (a) Hundreds of heads that never finish: the API keeps answering, and
/// each stalled connection is closed once the head timeout passes.
fn stalled_heads() {
    let server = server(1);
    let addr = server.http_addr;
    let start = Instant::now();
    // In batches the listen queue holds, each accepted before the next.
    let mut stalled: Vec<TcpStream> = Vec::new();
    for _ in 0..6 {
        stalled.extend((0..50).map(|_| stall(addr)));
        wait_for(Duration::from_secs(2), || {
            accepted_fds(addr.port()) >= stalled.len()
        });
    }
    let all_accepted = Instant::now();
    for _ in 0..5 {
        let took = probe(addr);
        assert!(took < Duration::from_millis(200), "probe took {took:?}");
    }
    for (i, s) in stalled.iter_mut().enumerate() {
        let limit = (all_accepted + HEADER_READ_TIMEOUT + Duration::from_secs(2))
            .saturating_duration_since(Instant::now());
        assert!(ends_within(s, limit), "stalled connection {i} still open");
        if i == 0 {
            let at = start.elapsed();
            assert!(at >= HEADER_READ_TIMEOUT, "closed early, after {at:?}");
        }
    }
    assert_eq!(accepted_fds(addr.port()), 0);
}

/// (d) A body that never finishes: 408 once the body timeout passes, then
/// the connection ends.
fn unfinished_body() {
    let server = server(1);
    let mut s = TcpStream::connect(server.http_addr).unwrap();
    s.write_all(&post_head(&server, "Content-Length: 100"))
        .unwrap();
    s.write_all(b"{\"sessionDe").unwrap();
    let start = Instant::now();
    let r = read_response(&mut s, BODY_READ_TIMEOUT + Duration::from_secs(3)).expect("408");
    let took = start.elapsed();
    assert_eq!(r.status, 408, "{}\n{}", r.head, r.body);
    assert!(r.body.contains("request_timeout"), "{}", r.body);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        took >= BODY_READ_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(ends_within(&mut s, LINGER_TIME + Duration::from_secs(1)));
}

/// A keep-alive connection idle for longer than the head timeout is still
/// served: the head timeout starts with a request's first byte.
fn idle_keep_alive() {
    let server = server(1);
    let mut s = TcpStream::connect(server.http_addr).unwrap();
    let get = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";
    s.write_all(get).unwrap();
    let r = read_response(&mut s, Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    std::thread::sleep(HEADER_READ_TIMEOUT + Duration::from_secs(1));
    s.write_all(get).unwrap();
    let r = read_response(&mut s, Duration::from_secs(5)).expect("second request answered");
    assert_eq!(r.status, 200);
}

/// The scenarios that wait for a timeout run side by side, each against a
/// server of its own, so the file takes about the longest of them.
#[test]
fn timeouts_close_stalled_connections() {
    std::thread::scope(|scope| {
        scope.spawn(stalled_heads);
        scope.spawn(unfinished_body);
        scope.spawn(idle_keep_alive);
    });
}

/// (b) Connections beyond the cap wait unaccepted, holding no descriptor
/// of the server's; once others close, new clients are answered.
#[test]
fn connection_cap() {
    const CAP: usize = 16;
    let mut config = Config::loopback(1);
    config.http_max_connections = CAP;
    let server = Server::start(config).expect("server starts");
    let addr = server.http_addr;
    let held: Vec<TcpStream> = (0..CAP).map(|_| stall(addr)).collect();
    let queued: Vec<TcpStream> = (0..8).map(|_| stall(addr)).collect();
    let mut waiting = TcpStream::connect(addr).unwrap();
    waiting
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepted_fds(addr.port()), CAP);
    assert!(
        matches!(
            read_response(&mut waiting, Duration::from_millis(300)),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
        ),
        "a client beyond the cap waits"
    );
    drop(held);
    let r =
        read_response(&mut waiting, Duration::from_secs(2)).expect("answered once others close");
    assert_eq!(r.status, 200);
    let took = probe(addr);
    assert!(took < Duration::from_millis(200), "probe took {took:?}");
    assert!(accepted_fds(addr.port()) <= CAP);
    drop(queued);
}

/// (c) A declared length over the limit is refused before any of the body
/// is sent, and the connection ends.
#[test]
fn declared_body_over_limit() {
    let server = server(1);
    let mut s = TcpStream::connect(server.http_addr).unwrap();
    s.write_all(&post_head(
        &server,
        &format!("Content-Length: {}", 16 << 20),
    ))
    .unwrap();
    let start = Instant::now();
    let r = read_response(&mut s, Duration::from_secs(2)).expect("413 before the body");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(r.body.contains("payload_too_large"), "{}", r.body);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(ends_within(&mut s, LINGER_TIME + Duration::from_secs(1)));
}

/// (c) A chunked body is refused as soon as it passes the limit, while the
/// client is still sending; the server then reads a bounded amount more
/// and ends the connection.
#[test]
fn streamed_body_over_limit() {
    let server = server(1);
    let mut s = TcpStream::connect(server.http_addr).unwrap();
    s.write_all(&post_head(&server, "Transfer-Encoding: chunked"))
        .unwrap();
    let chunk = {
        let data = vec![b' '; 64 << 10];
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(&data);
        c.extend_from_slice(b"\r\n");
        c
    };
    let mut sent = 0;
    while sent <= BODY_LIMIT {
        s.write_all(&chunk).unwrap();
        sent += 64 << 10;
    }
    let r = read_response(&mut s, Duration::from_secs(2)).expect("413 while streaming");
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(r.body.contains("payload_too_large"), "{}", r.body);
    assert_eq!(r.header("connection"), Some("close"));
    // Keep streaming: the server must end the connection rather than read
    // the rest (256 MiB here).
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let start = Instant::now();
    let mut more = 0usize;
    let refused = loop {
        if more >= 256 << 20 {
            break false;
        }
        match s.write_all(&chunk) {
            Ok(()) => more += chunk.len(),
            Err(_) => break true,
        }
    };
    assert!(refused, "the server read {more} bytes more");
    // What the server discards, plus what the kernel buffers on the way.
    assert!(more < LINGER_BYTES + (24 << 20), "{more} bytes more");
    assert!(
        start.elapsed() < LINGER_TIME + Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A head over the size limit is answered 431, finished or not.
#[test]
fn head_over_limit() {
    let server = server(1);
    let pad = "a".repeat(1000);
    let mut head = String::from("GET /metrics HTTP/1.1\r\nHost: test\r\n");
    while head.len() <= MAX_HEADER_BYTES {
        head.push_str(&format!("X-Pad: {pad}\r\n"));
    }
    let mut finished = TcpStream::connect(server.http_addr).unwrap();
    finished
        .write_all(format!("{head}\r\n").as_bytes())
        .unwrap();
    let r = read_response(&mut finished, Duration::from_secs(2)).expect("431");
    assert_eq!(r.status, 431, "{}", r.head);
    let mut unfinished = TcpStream::connect(server.http_addr).unwrap();
    unfinished.write_all(head.as_bytes()).unwrap();
    let r = read_response(&mut unfinished, Duration::from_secs(2)).expect("431");
    assert_eq!(r.status, 431, "{}", r.head);
}

/// Idle keep-alive connections that fill every slot (a request every 25 s
/// keeps each open) do not lock others out: while every slot is taken,
/// the ones between requests are closed, and a new client is answered.
#[test]
fn idle_keep_alives_give_their_slots_up() {
    const CAP: usize = 16;
    let mut config = Config::loopback(1);
    config.http_max_connections = CAP;
    let server = Server::start(config).expect("server starts");
    let addr = server.http_addr;
    let mut idle: Vec<TcpStream> = (0..CAP)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            assert_eq!(
                read_response(&mut s, Duration::from_secs(5))
                    .unwrap()
                    .status,
                200
            );
            s
        })
        .collect();
    let took = probe(addr);
    assert!(
        took < Duration::from_secs(1),
        "a new client waited {took:?}"
    );
    let mut closed = 0;
    for s in &mut idle {
        closed += usize::from(ends_within(s, Duration::from_millis(500)));
    }
    assert!(closed >= 1, "idle connections made room");
    assert!(accepted_fds(addr.port()) <= CAP);
}

/// With `--http-max-connections-per-address`, one address's connections
/// beyond it are closed at once; another address is still served.
#[test]
fn one_address_holds_at_most_its_share() {
    const PER_ADDRESS: usize = 4;
    let mut config = Config::loopback(1);
    config.http_max_connections_per_address = Some(PER_ADDRESS);
    let server = Server::start(config).expect("server starts");
    let addr = server.http_addr;
    let held: Vec<TcpStream> = (0..PER_ADDRESS).map(|_| stall(addr)).collect();
    let mut over = TcpStream::connect(addr).unwrap();
    assert!(
        ends_within(&mut over, Duration::from_secs(1)),
        "a connection over the per-address cap is closed"
    );
    // From 127.0.0.2: served.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    other.connect(&addr.into()).unwrap();
    let mut other: TcpStream = other.into();
    other
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut other, Duration::from_secs(5)).expect("another address is served");
    assert_eq!(r.status, 200);
    drop(held);
    // Its connections ended: the first address is served again.
    wait_for(Duration::from_secs(3), || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_response(&mut s, Duration::from_secs(1)).is_ok_and(|r| r.status == 200)
    });
}
