//! What WebSocket adapters cost: CPU per adapter (and so adapters per
//! core) for PCM egress, 1-fps JPEG egress and PCM ingest, measured on an
//! in-process server with one media worker and one adapter thread.
//!
//! A str0m publisher sends a 440 Hz tone as Opus and 640x480 VP8 (encoded
//! once, up front, by libavcodec's libvpx) at 30 frames a second; N
//! adapters of one kind run against a WebSocket sink on loopback that
//! reads and discards (ingest: each connection is sent 12 s of PCM at
//! once). After a 2 s warm-up the CPU time of the adapter thread and of the
//! media worker is read from /proc over 8 s.
//!
//! ```text
//! cargo run --release --example adapters_bench [-- N...]     # default N: 10 40
//! ```

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use serde_json::{Value, json};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use switchboard::adapters::packet::Packet;
use switchboard::config::Config;
use switchboard::server::Server;
use tokio_tungstenite::tungstenite::{self, Message};

const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(8);

fn main() {
    let counts: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if given.is_empty() {
            vec![10, 40]
        } else {
            given
        }
    };
    let mut config = Config::loopback(1);
    config.adapters.allow_local = Some(true);
    config.adapters.per_app = 1000;
    config.adapters.threads = 1;
    let server = Server::start(config).expect("server");
    let (app, secret) = server.app();
    let base = format!("http://{}/v1/apps/{app}", server.http_addr);
    let call = |path: &str, body: Value| -> Value {
        let mut r = ureq::post(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {secret}"))
            .send(body.to_string())
            .expect("API call");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let session = publisher(&call, stop.clone());
    let sink = sink(stop.clone());
    println!(
        "| adapters | kind | adapter thread CPU | per adapter | adapters per core | media worker CPU |"
    );
    println!("|---|---|---|---|---|---|");
    for kind in ["pcm_egress", "jpeg_egress", "pcm_ingest"] {
        for &n in &counts {
            let item = match kind {
                "pcm_egress" => {
                    json!({"location": "remote", "sessionId": session, "trackName": "mic",
                                       "endpoint": format!("ws://{sink}/"), "outputCodec": "pcm"})
                }
                "jpeg_egress" => {
                    json!({"location": "remote", "sessionId": session, "trackName": "cam",
                                        "endpoint": format!("ws://{sink}/"), "outputCodec": "jpeg"})
                }
                _ => json!({"location": "local", "trackName": "speech",
                            "endpoint": format!("ws://{sink}/?speak"), "inputCodec": "pcm"}),
            };
            let mut ids = Vec::new();
            for _ in 0..n {
                let r = call("/adapters/websocket/new", json!({"tracks": [item]}));
                let id = r["tracks"][0]["adapterId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}"));
                ids.push(id.to_owned());
            }
            std::thread::sleep(WARM_UP);
            let (a0, w0, t0) = (cpu("adapter"), cpu("media-0"), Instant::now());
            std::thread::sleep(MEASURE);
            let secs = t0.elapsed().as_secs_f64();
            let adapter = (cpu("adapter") - a0) / secs;
            let worker = (cpu("media-0") - w0) / secs;
            let per = adapter / n as f64;
            println!(
                "| {n} | {kind} | {:.1} % | {:.2} % of a core | {:.0} | {:.1} % |",
                adapter * 100.0,
                per * 100.0,
                1.0 / per,
                worker * 100.0
            );
            for id in ids {
                call(
                    "/adapters/websocket/close",
                    json!({"tracks": [{"adapterId": id}]}),
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    stop.store(true, Ordering::Relaxed);
}

/// CPU seconds used so far by this process's threads named `name`.
fn cpu(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (utime + stime) / ticks;
    }
    total
}

/// A sink: reads and discards; a connection to `/?speak` is sent 12 s of
/// PCM at once first.
fn sink(stop: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut pcm = Vec::new();
    for i in 0..48_000u32 * 12 {
        let v =
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 48_000.0).sin()) as i16;
        pcm.extend_from_slice(&v.to_le_bytes());
        pcm.extend_from_slice(&v.to_le_bytes());
    }
    let pcm = Arc::new(pcm);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (pcm, stop) = (pcm.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut speak = false;
                let Ok(mut ws) = tungstenite::accept_hdr(
                    stream,
                    |req: &tungstenite::handshake::server::Request, res| {
                        speak = req.uri().query() == Some("speak");
                        Ok(res)
                    },
                ) else {
                    return;
                };
                if speak {
                    for (n, chunk) in pcm.chunks(32_000).enumerate() {
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
                while !stop.load(Ordering::Relaxed) && ws.read().is_ok() {}
            });
        }
    });
    addr
}

/// Publishes "mic" (Opus tone) and "cam" (VP8) from a str0m client on its
/// own thread; returns the session id.
fn publisher(call: &dyn Fn(&str, Value) -> Value, stop: Arc<AtomicBool>) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let session = call("/sessions/new", json!({}))["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &format!("/sessions/{session}/tracks/new"),
        json!({"sessionDescription": {"type": "offer", "sdp": offer.to_sdp_string()},
               "tracks": [{"location": "local", "mid": audio.to_string(), "trackName": "mic"},
                          {"location": "local", "mid": video.to_string(), "trackName": "cam"}]}),
    );
    let answer =
        SdpAnswer::from_sdp_string(r["sessionDescription"]["sdp"].as_str().unwrap()).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let vp8 = encode_vp8(300);
    std::thread::spawn(move || run_publisher(rtc, socket, local, audio, video, vp8, stop));
    std::thread::sleep(Duration::from_secs(1));
    session
}

fn run_publisher(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    audio: Mid,
    video: Mid,
    vp8: Vec<Vec<u8>>,
    stop: Arc<AtomicBool>,
) {
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
    let start = Instant::now();
    let (mut audio_sent, mut video_sent) = (0u64, 0u64);
    let mut buf = [0u8; 2000];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let elapsed = now.duration_since(start);
        let pt = |rtc: &mut Rtc, mid: Mid, codec: Codec| {
            rtc.writer(mid)?
                .payload_params()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
        };
        while audio_sent < (elapsed.as_millis() / 20) as u64 {
            let mut pcm = [0i16; 1920];
            for s in 0..960 {
                let t = (audio_sent * 960 + s as u64) as f64 / 48_000.0;
                let v = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
                pcm[2 * s] = v;
                pcm[2 * s + 1] = v;
            }
            let mut out = [0u8; 1500];
            let n = encoder.encode(&pcm, &mut out).unwrap();
            if let Some(pt) = pt(&mut rtc, audio, Codec::Opus)
                && let Some(w) = rtc.writer(audio)
            {
                let _ = w.write(
                    pt,
                    now,
                    MediaTime::from_micros(audio_sent * 20_000),
                    out[..n].to_vec(),
                );
            }
            audio_sent += 1;
        }
        while video_sent < (elapsed.as_millis() * 30 / 1000) as u64 {
            if let Some(pt) = pt(&mut rtc, video, Codec::Vp8)
                && let Some(w) = rtc.writer(video)
            {
                let frame = vp8[(video_sent % vp8.len() as u64) as usize].clone();
                let _ = w.write(pt, now, MediaTime::from_90khz(video_sent * 3000), frame);
            }
            video_sent += 1;
        }
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        };
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source: from,
                            destination: local,
                            contents,
                        },
                    );
                    if rtc.accepts(&input) {
                        let _ = rtc.handle_input(input);
                    }
                }
            }
            Err(_) => {
                let now = Instant::now();
                if now >= timeout {
                    let _ = rtc.handle_input(Input::Timeout(now));
                }
            }
        }
    }
}

/// `n` frames of 640x480 VP8 (a keyframe every 2 s at 30 frames a second).
fn encode_vp8(n: usize) -> Vec<Vec<u8>> {
    ffmpeg::init().unwrap();
    let codec = ffmpeg::encoder::find_by_name("libvpx").expect("libvpx in libavcodec");
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .unwrap();
    let (w, h) = (640, 480);
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(ffmpeg::format::Pixel::YUV420P);
    ctx.set_time_base((1, 30));
    ctx.set_gop(60);
    ctx.set_bit_rate(800_000);
    let mut options = ffmpeg::Dictionary::new();
    options.set("deadline", "realtime");
    options.set("cpu-used", "8");
    let mut enc = ctx.open_with(options).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
        for plane in 0..3 {
            let stride = f.stride(plane);
            for (k, b) in f.data_mut(plane).iter_mut().enumerate() {
                *b = ((k % stride + k / stride + i * 3 + plane * 60) % 256) as u8;
            }
        }
        f.set_pts(Some(i as i64));
        enc.send_frame(&f).unwrap();
        let mut p = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut p).is_ok() {
            out.push(p.data().unwrap().to_vec());
        }
    }
    out
}
