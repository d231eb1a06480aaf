//! WHIP (RFC 9725) and WHEP with an independent WebRTC stack (str0m) as
//! the broadcaster and the player, driving the HTTP flow itself: publish,
//! play, a Calls API session pulling the same tracks, trickle and ICE
//! restart PATCHes, a broadcaster that reconnects, DELETE freeing
//! everything, and the RFC's status codes for bad requests.

mod common;

use std::time::Duration;

use common::http::{agent, delete, get, patch, post_sdp, request};
use common::{Api, Peer, drive, metric_at, server, vp8_frame};
use str0m::change::SdpPendingOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};

struct Setup {
    server: switchboard::server::Server,
    api: Api,
    http: String,
    app: String,
    secret: String,
}

fn setup() -> Setup {
    let server = server(1);
    let api = Api::new(&server);
    let (app, secret) = server.app();
    let (app, secret) = (app.to_owned(), secret.to_owned());
    let http = format!("http://{}", server.http_addr);
    Setup {
        server,
        api,
        http,
        app,
        secret,
    }
}

impl Setup {
    fn url(&self, door: &str, stream: &str) -> String {
        format!("{}/v1/apps/{}/{door}/{stream}", self.http, self.app)
    }

    fn absolute(&self, location: &str) -> String {
        format!("{}{location}", self.http)
    }
}

/// A str0m broadcaster's offer (one sendonly audio and one video section).
fn broadcaster() -> (Peer, String, SdpPendingOffer, Mid, Mid) {
    let mut peer = Peer::new("broadcaster");
    let (mut audio, mut video) = (None, None);
    let (offer, pending) = peer.offer(|s| {
        audio = Some(s.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        video = Some(s.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
    });
    (peer, offer, pending, audio.unwrap(), video.unwrap())
}

/// A str0m player's offer (recvonly audio and video).
fn player() -> (Peer, String, SdpPendingOffer, Mid, Mid) {
    let mut peer = Peer::new("player");
    let (mut audio, mut video) = (None, None);
    let (offer, pending) = peer.offer(|s| {
        audio = Some(s.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None));
        video = Some(s.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None));
    });
    (peer, offer, pending, audio.unwrap(), video.unwrap())
}

/// Sends `count` Opus and VP8 frames (every 30th a keyframe) tagged `tag`
/// from `peer`, 20 ms apart, driving `others`.
fn send_media(
    peer: &mut Peer,
    (audio, video): (Mid, Mid),
    tag: &[u8],
    count: u64,
    others: &mut [&mut Peer],
) {
    let opus = common::payload_type(peer, audio, Codec::Opus);
    let vp8 = common::payload_type(peer, video, Codec::Vp8);
    for i in 0..count {
        let t = MediaTime::from_micros(i * 20_000);
        common::write_frame(peer, audio, opus, t, [tag, &i.to_be_bytes()].concat());
        let t90 = MediaTime::from_90khz(i * 1_800);
        common::write_frame(peer, video, vp8, t90, vp8_frame(i, i % 30 == 0, tag, 600));
        common::step_for(peer, others, Duration::from_millis(20));
    }
}

/// VP8 frames received on `mid` whose payload carries `tag` after the
/// frame header.
fn video_received(peer: &Peer, mid: Mid, tag: &[u8]) -> usize {
    peer.events
        .iter()
        .filter(|e| {
            matches!(e, str0m::Event::MediaData(d)
                if d.mid == mid && d.data.get(6..6 + tag.len()) == Some(tag))
        })
        .count()
}

fn connect(peers: &mut [&mut Peer]) {
    assert!(
        drive(peers, Duration::from_secs(10), |p| p
            .iter()
            .all(|p| p.connected)),
        "peers connect"
    );
}

fn whip_gauge(http: &str, role: &str) -> f64 {
    metric_at(
        http,
        &format!("switchboard_whip_sessions{{role=\"{role}\"}}"),
    )
    .expect("metric")
}

#[test]
fn str0m_publishes_over_whip_and_whep_and_calls_sessions_receive_it() {
    let s = setup();
    let (mut bc, offer, pending, audio, video) = broadcaster();
    let r = post_sdp(&s.url("whip", "show"), &s.secret, &offer);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").expect("Location").to_owned();
    let session = r.header("x-calls-session").expect("session").to_owned();
    assert_eq!(location, format!("/v1/apps/{}/whip/show/{session}", s.app));
    assert!(r.header("etag").is_some_and(|e| e.starts_with('"')));
    assert_eq!(r.header("x-calls-tracks"), Some("show-audio, show-video"));
    assert!(
        r.header("link").is_none(),
        "no TURN configured, no ice-server links"
    );
    bc.accept_answer(pending, &r.body);
    connect(&mut [&mut bc]);

    // The stream's tracks, for any Calls API client.
    let live = get(&s.url("whip", "show"), &s.secret);
    assert_eq!(live.status, 200, "{}", live.body);
    let live: serde_json::Value = serde_json::from_str(&live.body).unwrap();
    assert_eq!(live["sessionId"], session.as_str());
    assert_eq!(live["tracks"][0]["trackName"], "show-audio");
    assert_eq!(live["tracks"][0]["kind"], "audio");
    assert_eq!(live["tracks"][1]["trackName"], "show-video");

    // A WHEP player with the stream's own token (not the app secret).
    let token = switchboard::ids::scoped_token(s.secret.as_bytes(), "whep:show");
    let (mut pl, offer, pending, p_audio, p_video) = player();
    let r = post_sdp(&s.url("whep", "show"), &token, &offer);
    assert_eq!(r.status, 201, "{}", r.body);
    let player_location = r.header("location").unwrap().to_owned();
    assert!(player_location.starts_with(&format!("/v1/apps/{}/whep/show/", s.app)));
    pl.accept_answer(pending, &r.body);
    // Naming any session (our extension) takes the app's secret.
    let (_, by_id, _, _, _) = player();
    let extension = format!(
        "{}?sessionId={session}&tracks=show-audio",
        s.url("whep", "any")
    );
    let other_token = switchboard::ids::scoped_token(s.secret.as_bytes(), "whep:any");
    assert_eq!(post_sdp(&extension, &other_token, &by_id).status, 401);
    let r = post_sdp(&extension, &s.secret, &by_id);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("x-calls-tracks"), Some("show-audio"));
    let extension_player = s.absolute(r.header("location").unwrap());
    assert_eq!(delete(&extension_player, &s.secret).status, 200);
    // The stream token does not publish.
    let (_, o2, _, _, _) = broadcaster();
    let denied = post_sdp(&s.url("whip", "show"), &token, &o2);
    assert_eq!(denied.status, 401);

    // A play token reaches players only: not the publisher's session (by
    // either door), nor the stream's GET.
    let publisher_by_whep = format!("{}/{session}", s.url("whep", "show"));
    assert_eq!(delete(&publisher_by_whep, &token).status, 404);
    let restart = "a=ice-ufrag:evil\r\na=ice-pwd:evilevilevilevilevilevil\r\n";
    assert_eq!(
        patch(&publisher_by_whep, &token, Some("*"), restart).status,
        404
    );
    assert_eq!(delete(&s.absolute(&location), &token).status, 401);
    assert_eq!(get(&s.url("whip", "show"), &token).status, 401);
    // A Calls API session pulls the same tracks.
    let (mut calls, _, pulled) = common::pull(
        &s.api,
        serde_json::json!([
            {"location": "remote", "sessionId": session, "trackName": "show-audio"},
            {"location": "remote", "sessionId": session, "trackName": "show-video"},
        ]),
        &mut [&mut bc, &mut pl],
    );
    connect(&mut [&mut bc, &mut pl, &mut calls]);
    let c_audio: Mid = pulled[0]["mid"].as_str().unwrap().into();
    let c_video: Mid = pulled[1]["mid"].as_str().unwrap().into();
    assert_eq!(whip_gauge(&s.http, "publish"), 1.0);
    assert_eq!(whip_gauge(&s.http, "play"), 1.0);

    send_media(
        &mut bc,
        (audio, video),
        b"ON-AIR",
        100,
        &mut [&mut pl, &mut calls],
    );
    drive(
        &mut [&mut bc, &mut pl, &mut calls],
        Duration::from_millis(300),
        |_| false,
    );
    for (who, peer, a, v) in [
        ("WHEP player", &pl, p_audio, p_video),
        ("Calls session", &calls, c_audio, c_video),
    ] {
        let got_audio = common::received(peer, a, b"ON-AIR");
        let got_video = video_received(peer, v, b"ON-AIR");
        assert!(got_audio >= 90, "{who}: {got_audio} of 100 audio frames");
        assert!(got_video >= 90, "{who}: {got_video} of 100 video frames");
    }

    // DELETE ends both; the stream is gone and so are its sessions.
    let r = delete(&s.absolute(&player_location), &token);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = delete(&s.absolute(&location), &s.secret);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&s.url("whip", "show"), &s.secret).status, 404);
    for (loc, tok) in [(&location, &s.secret), (&player_location, &token)] {
        assert_eq!(delete(&s.absolute(loc), tok).status, 404);
        let r = patch(&s.absolute(loc), tok, None, "a=end-of-candidates\r\n");
        assert_eq!(r.status, 404);
    }
    let (status, _) = s.api.call("GET", &format!("/sessions/{session}"), None);
    assert!(
        status == 404 || status == 410,
        "the WHIP session is gone: {status}"
    );
    assert_eq!(whip_gauge(&s.http, "publish"), 0.0);
    assert_eq!(whip_gauge(&s.http, "play"), 0.0);
    // Only the Calls API session is left.
    assert_eq!(metric_at(&s.http, "switchboard_sessions"), Some(1.0));
    drop(s.server);
}

#[test]
fn patch_trickles_and_restarts_ice() {
    let s = setup();
    let (mut bc, offer, pending, audio, video) = broadcaster();
    let r = post_sdp(&s.url("whip", "live"), &s.secret, &offer);
    assert_eq!(r.status, 201, "{}", r.body);
    let location = s.absolute(r.header("location").unwrap());
    let etag = r.header("etag").unwrap().to_owned();
    let answer = r.body.clone();
    bc.accept_answer(pending, &answer);
    connect(&mut [&mut bc]);
    let frag = "application/trickle-ice-sdpfrag";

    // Trickled candidates: 204, with or without the current ETag.
    let trickle = format!(
        "a=ice-options:trickle\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
         a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
        bc.addr.ip(),
        bc.addr.port()
    );
    assert_eq!(
        patch(&location, &s.secret, Some(&etag), &trickle).status,
        204
    );
    assert_eq!(patch(&location, &s.secret, None, &trickle).status, 204);
    assert_eq!(
        patch(&location, &s.secret, Some("\"stale\""), &trickle).status,
        412
    );
    assert_eq!(
        request(
            "PATCH",
            &location,
            &s.secret,
            Some("application/sdp"),
            None,
            &trickle
        )
        .status,
        415
    );
    assert_eq!(patch(&location, &s.secret, None, "v=0\r\n").status, 400);

    // New credentials without If-Match "*" restart nothing (a late trickle
    // of an earlier generation, or a restart RFC 9725 does not allow).
    let foreign = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n";
    assert_eq!(patch(&location, &s.secret, None, foreign).status, 412);
    assert_eq!(
        patch(&location, &s.secret, Some(&etag), foreign).status,
        412
    );
    // A weak tag never matches (RFC 9110 strong comparison).
    let weak = format!("W/{etag}");
    assert_eq!(
        patch(&location, &s.secret, Some(&weak), &trickle).status,
        412
    );

    // An ICE restart: str0m makes new credentials; they go in a PATCH
    // with If-Match "*"; ours come back in a fragment with a new ETag.
    let mut api = bc.rtc.sdp_api();
    let creds = api.ice_restart(true);
    let (_, pending) = api.apply().expect("restart offer");
    bc.drain();
    let body = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n",
        creds.ufrag, creds.pass
    );
    let r = patch(&location, &s.secret, Some("*"), &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some(frag));
    let new_etag = r.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let line = |text: &str, p: &str| {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix(p).map(str::to_owned))
            .unwrap()
    };
    let (ufrag, pwd) = (line(&r.body, "a=ice-ufrag:"), line(&r.body, "a=ice-pwd:"));
    assert_ne!(
        ufrag,
        line(&answer, "a=ice-ufrag:"),
        "the server's credentials changed"
    );
    assert!(r.body.contains("a=candidate:"), "{}", r.body);
    // The old ETag no longer matches.
    assert_eq!(
        patch(&location, &s.secret, Some(&etag), &trickle).status,
        412
    );
    // str0m takes our new credentials as the answer to its restart offer.
    let restarted: String = answer
        .lines()
        .map(|l| {
            if l.starts_with("a=ice-ufrag:") {
                format!("a=ice-ufrag:{ufrag}\r\n")
            } else if l.starts_with("a=ice-pwd:") {
                format!("a=ice-pwd:{pwd}\r\n")
            } else {
                format!("{}\r\n", l.trim_end())
            }
        })
        .collect();
    bc.accept_answer(pending, &restarted);

    // Media still reaches a subscriber after the restart.
    let live: serde_json::Value =
        serde_json::from_str(&get(&s.url("whip", "live"), &s.secret).body).unwrap();
    let (mut sub, _, pulled) = common::pull(
        &s.api,
        serde_json::json!([{"location": "remote", "sessionId": live["sessionId"], "trackName": "live-audio"}]),
        &mut [&mut bc],
    );
    let mid: Mid = pulled[0]["mid"].as_str().unwrap().into();
    send_media(&mut bc, (audio, video), b"AFTER", 60, &mut [&mut sub]);
    drive(&mut [&mut bc, &mut sub], Duration::from_millis(300), |_| {
        false
    });
    let got = common::received(&sub, mid, b"AFTER");
    assert!(got >= 50, "{got} of 60 frames after the ICE restart");
}

#[test]
fn a_broadcaster_that_reconnects_takes_its_players_along() {
    let s = setup();
    let (mut first, offer, pending, _, _) = broadcaster();
    let r = post_sdp(&s.url("whip", "obs"), &s.secret, &offer);
    assert_eq!(r.status, 201, "{}", r.body);
    let first_session = r.header("x-calls-session").unwrap().to_owned();
    first.accept_answer(pending, &r.body);
    connect(&mut [&mut first]);
    let (mut pl, offer, pending, p_audio, _) = player();
    let r = post_sdp(&s.url("whep", "obs"), &s.secret, &offer);
    assert_eq!(r.status, 201, "{}", r.body);
    pl.accept_answer(pending, &r.body);
    connect(&mut [&mut first, &mut pl]);

    // The broadcaster comes back (a new PeerConnection, as OBS does).
    let (mut second, offer, pending, audio, video) = broadcaster();
    let r = post_sdp(&s.url("whip", "obs"), &s.secret, &offer);
    assert_eq!(r.status, 201, "{}", r.body);
    second.accept_answer(pending, &r.body);
    connect(&mut [&mut second, &mut pl]);
    let (status, _) = s
        .api
        .call("GET", &format!("/sessions/{first_session}"), None);
    assert!(
        status == 404 || status == 410,
        "the first publisher's session ended: {status}"
    );
    assert_eq!(whip_gauge(&s.http, "publish"), 1.0);
    send_media(&mut second, (audio, video), b"AGAIN", 80, &mut [&mut pl]);
    drive(
        &mut [&mut second, &mut pl],
        Duration::from_millis(300),
        |_| false,
    );
    let got = common::received(&pl, p_audio, b"AGAIN");
    assert!(
        got >= 60,
        "the player gets the new broadcaster: {got} of 80"
    );
}

#[test]
fn bad_requests_get_rfc_9725_statuses() {
    let s = setup();
    let (_, offer, _, _, _) = broadcaster();
    let whip = s.url("whip", "show");
    // Token: none, wrong, or another stream's.
    assert_eq!(post_sdp(&whip, "", &offer).status, 401);
    assert_eq!(post_sdp(&whip, "wrong", &offer).status, 401);
    let other = switchboard::ids::scoped_token(s.secret.as_bytes(), "whip:other");
    assert_eq!(post_sdp(&whip, &other, &offer).status, 401);
    // Content type.
    assert_eq!(
        request(
            "POST",
            &whip,
            &s.secret,
            Some("application/json"),
            None,
            &offer
        )
        .status,
        415
    );
    assert_eq!(
        request("POST", &whip, &s.secret, None, None, &offer).status,
        415
    );
    // Malformed or useless SDP.
    for bad in ["hello", "v=0\r\n", &offer.replace("sendonly", "recvonly")] {
        let r = post_sdp(&whip, &s.secret, bad);
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(body["errorCode"].is_string());
    }
    // Unknown app, bad stream names, unknown sessions.
    let unknown_app = format!("{}/v1/apps/nope/whip/show", s.http);
    assert_eq!(post_sdp(&unknown_app, &s.secret, &offer).status, 404);
    let long = s.url("whip", &"x".repeat(49));
    assert_eq!(post_sdp(&long, &s.secret, &offer).status, 404);
    let ghost = format!("{whip}/00000000000000000000000000000000");
    assert_eq!(
        patch(&ghost, &s.secret, None, "a=end-of-candidates\r\n").status,
        404
    );
    assert_eq!(delete(&ghost, &s.secret).status, 404);
    // WHEP of a stream nobody publishes.
    let (_, play_offer, _, _, _) = player();
    assert_eq!(
        post_sdp(&s.url("whep", "show"), &s.secret, &play_offer).status,
        404
    );
    // A session of one stream is not found under another.
    let (mut bc, offer2, pending, _, _) = broadcaster();
    let r = post_sdp(&whip, &s.secret, &offer2);
    assert_eq!(r.status, 201, "{}", r.body);
    bc.accept_answer(pending, &r.body);
    let id = r.header("x-calls-session").unwrap();
    let elsewhere = format!("{}/{id}", s.url("whip", "other"));
    assert_eq!(delete(&elsewhere, &s.secret).status, 404);
    // Preflight: the RFC's Accept-Post, and CORS for browsers.
    let pre = agent().options(&whip).call().expect("OPTIONS");
    assert_eq!(pre.status().as_u16(), 204);
    let h = |n: &str| {
        pre.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(h("accept-post"), "application/sdp");
    assert!(h("access-control-allow-methods").contains("PATCH"));
    assert!(h("access-control-expose-headers").contains("location"));
    // The server is unharmed.
    assert_eq!(s.api.call("POST", "/sessions/new", None).0, 201);
}

#[test]
fn whip_and_whep_are_bounded_like_any_session() {
    let mut config = switchboard::config::Config::loopback(1);
    config.limits.sessions_per_app = 3;
    let server = switchboard::server::Server::start(config).expect("server");
    let (app, secret) = server.app();
    let (app, secret) = (app.to_owned(), secret.to_owned());
    let http = format!("http://{}", server.http_addr);
    let url = |door: &str, stream: &str| format!("{http}/v1/apps/{app}/{door}/{stream}");

    // Offers that fail cost nothing: no session is left behind.
    let (_, offer, _, _, _) = broadcaster();
    let huge_offer = format!("{offer}{}", "a=x-padding:0123456789\r\n".repeat(50_000));
    assert_eq!(
        post_sdp(&url("whip", "a"), &secret, &huge_offer).status,
        413
    );
    let padded = format!("{offer}{}", "a=x-padding:0123456789\r\n".repeat(3_000));
    let r = post_sdp(&url("whip", "a"), &secret, &padded);
    assert_eq!(r.status, 413, "over 64 KiB: {}", r.body);
    let many_sections: String = (0..300)
        .map(|i| format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"))
        .collect();
    let r = post_sdp(
        &url("whip", "a"),
        &secret,
        &format!("{offer}{many_sections}"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(metric_at(&http, "switchboard_sessions"), Some(0.0));

    // The app's session cap holds for WHIP, WHEP and the Calls API alike.
    let mut locations = Vec::new();
    for stream in ["a", "b", "c"] {
        let (_, offer, _, _, _) = broadcaster();
        let r = post_sdp(&url("whip", stream), &secret, &offer);
        assert_eq!(r.status, 201, "{}", r.body);
        locations.push(r.header("location").unwrap().to_owned());
    }
    let (_, offer, _, _, _) = broadcaster();
    let r = post_sdp(&url("whip", "d"), &secret, &offer);
    assert_eq!(r.status, 503, "{}", r.body);
    let (_, play, _, _, _) = player();
    assert_eq!(post_sdp(&url("whep", "a"), &secret, &play).status, 503);
    assert_eq!(metric_at(&http, "switchboard_sessions"), Some(3.0));
    assert_eq!(whip_gauge(&http, "publish"), 3.0);
    // A DELETE makes room again.
    let r = delete(&format!("{http}{}", locations[0]), &secret);
    assert_eq!(r.status, 200);
    let r = post_sdp(&url("whip", "d"), &secret, &offer);
    assert_eq!(r.status, 201, "{}", r.body);

    // A trickle fragment is bounded too.
    let flood = "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n".repeat(65);
    let target = format!("{http}{}", locations[1]);
    let r = patch(&target, &secret, None, &flood);
    assert_eq!(r.status, 400, "{}", r.body);
    // And the sessions are all still there.
    assert_eq!(metric_at(&http, "switchboard_sessions"), Some(3.0));
}
