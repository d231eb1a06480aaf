//! A WebSocket endpoint for the adapters, as an application would run one:
//! PCM frames show as a level meter, JPEG pictures are written to
//! `latest.jpg`, and with `--speak` every connection is sent two seconds of
//! a 440 Hz tone (PCM ingest: pull the adapter's track to hear it).
//!
//! ```text
//! cargo run --release                              # the server, its dev app and demo page
//! cargo run --example adapter_sink -- 127.0.0.1:9090 [--speak]
//! # publish from the demo page (http://127.0.0.1:8080), then, with its app id,
//! # secret and session id:
//! curl -s -H "Authorization: Bearer $SECRET" http://127.0.0.1:8080/v1/apps/$APP/adapters/websocket/new \
//!   -d '{"tracks": [{"location": "remote", "sessionId": "'$SESSION'", "trackName": "audio",
//!                    "endpoint": "ws://127.0.0.1:9090/", "outputCodec": "pcm"},
//!                   {"location": "remote", "sessionId": "'$SESSION'", "trackName": "video",
//!                    "endpoint": "ws://127.0.0.1:9090/", "outputCodec": "jpeg"}]}'
//! ```
//!
//! The embedded dev app allows loopback endpoints; a configured server
//! needs `--adapters-allow-local-endpoints` for this (calls-api.md).

use std::net::TcpListener;
use std::time::Instant;

use switchboard::adapters::packet::Packet;
use tokio_tungstenite::tungstenite::{self, Message};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9090".into());
    let speak = args.any(|a| a == "--speak");
    let listener = TcpListener::bind(&addr).expect("bind");
    println!("adapter sink on ws://{addr}/ (Ctrl-C to stop)");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let Ok(mut ws) = tungstenite::accept(stream) else {
                return;
            };
            println!("{peer}: connected");
            if speak {
                send_tone(&mut ws);
            }
            serve(&peer, &mut ws);
            println!("{peer}: closed");
        });
    }
}

fn serve(peer: &str, ws: &mut tungstenite::WebSocket<std::net::TcpStream>) {
    let mut last_meter = Instant::now();
    let mut frames = 0u32;
    let mut peak = 0.0f64;
    while let Ok(message) = ws.read() {
        let Message::Binary(bytes) = message else {
            continue;
        };
        let Some(packet) = Packet::from_bytes(&bytes) else {
            println!("{peer}: not a Packet ({} bytes)", bytes.len());
            continue;
        };
        if packet.payload.starts_with(&[0xff, 0xd8]) {
            let _ = std::fs::write("latest.jpg", &packet.payload);
            println!(
                "{peer}: picture {} ({} bytes) -> latest.jpg",
                packet.sequence_number,
                packet.payload.len()
            );
            continue;
        }
        frames += 1;
        for s in packet.payload.chunks_exact(2) {
            peak = peak.max(f64::from(i16::from_le_bytes([s[0], s[1]])).abs() / 32768.0);
        }
        if last_meter.elapsed().as_secs() >= 1 {
            let db = 20.0 * peak.max(1e-6).log10();
            let bar = "#".repeat(((db + 60.0).max(0.0) / 2.0) as usize);
            println!("{peer}: {frames:3} frames/s  {db:6.1} dBFS  {bar}");
            (frames, peak, last_meter) = (0, 0.0, Instant::now());
        }
    }
}

fn send_tone(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) {
    let mut pcm = Vec::new();
    for i in 0..96_000u32 {
        let v =
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 48_000.0).sin()) as i16;
        pcm.extend_from_slice(&v.to_le_bytes());
        pcm.extend_from_slice(&v.to_le_bytes());
    }
    for (n, chunk) in pcm
        .chunks(32_000)
        .chain(std::iter::once(&[][..]))
        .enumerate()
    {
        let p = Packet {
            sequence_number: n as u32,
            timestamp: 0,
            payload: chunk.to_vec(),
        };
        if ws.send(Message::Binary(p.to_bytes().into())).is_err() {
            return;
        }
    }
}
