// In-page helpers for the scripted Calls API tests. `installHelpers` is
// serialised into the page (page.evaluate), so it must not refer to anything
// outside itself. It defines `window.sb`:
//
//   api(method, path, body)   → {status, json, text}; apiOk throws unless 2xx
//                               and no item failed
//   push({tracks: [{kind, name, codec?}], fmtp?})
//                             → {pc, sessionId, transceivers, offer, answer}
//                               (codec: {mime, fmtp: ["k=v"...]} forced with
//                               setCodecPreferences; fmtp: {codecName: params}
//                               munges the offer's a=fmtp before applying it)
//   pushSimulcast(name)       → {pc, sessionId, transceiver, encodings()}: the
//                               fake camera at 1280x720 as three VP8 layers
//                               f, h, q (1, 1/2, 1/4 of the resolution);
//                               encodings() → {rid: {width, frames, ...}}
//   simulcastTransceiver(pc) → that camera and its three layers on pc (no
//                               signalling: WHIP clients use it too)
//   attach(track)             → plays a received track in the page
//   pull(publisherSessionId, trackNames, fields?)
//                             → {pc, sessionId, offer, mids: {trackName: mid}}
//                               (fields, e.g. {simulcast}, go into each item)
//   waitConnected(pc, ms, what), waitFor(probe, ms, what)
//   rtp(pc)                   → inbound/outbound RTP stats with their codec
//   frames(pc, mid)           → framesDecoded of the inbound stream on mid
//   watchFrames(pc, mid, ms)  → {start, end, longestStallMs}: framesDecoded on
//                               mid sampled every 100 ms for ms; the stall is
//                               the longest time without a new frame
//   flow(pc)                  → {"in|out kind mid": "frames/packets"}, compact
//   metrics()                 → the server's forwarded and dropped packet (and video pauses,
//                               data-channel drops by reason) counters (GET /metrics,
//                               summed over workers)
//   sdpSummary(sdp)           → the m-, mid, direction, BUNDLE, ICE and codec
//                               lines (for evidence in results)
//   iceCredentials(sdp)       → {ufrag, pwd}
//   note(key, value), notes   evidence kept for failure reports

export function installHelpers(cfg) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const notes = {};
  const note = (key, value) => { notes[key] = value; };

  async function api(method, path, body) {
    const res = await fetch(cfg.apiBase + path, {
      method,
      headers: { Authorization: "Bearer " + cfg.secret, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : {}; } catch { json = null; }
    return { status: res.status, json, text };
  }

  async function apiOk(method, path, body) {
    const r = await api(method, path, body);
    const failed = ((r.json && r.json.tracks) || []).filter((t) => t.errorCode);
    if (r.status >= 300 || !r.json || r.json.errorCode || failed.length) {
      throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.text.slice(0, 600)}`);
    }
    return r.json;
  }

  let media = null;
  async function sourceTrack(kind) {
    if (!media) media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    return (kind === "audio" ? media.getAudioTracks() : media.getVideoTracks())[0].clone();
  }

  // The sender capabilities matching {mime, fmtp}, followed by every rtx
  // entry; null when none matches.
  function pickCodecs(kind, want) {
    const all = RTCRtpSender.getCapabilities(kind).codecs;
    const params = (c) => (c.sdpFmtpLine || "").split(";");
    const main = all.filter((c) => c.mimeType.toLowerCase() === want.mime.toLowerCase()
      && (want.fmtp || []).every((p) => params(c).includes(p)));
    if (!main.length) return null;
    return [...main, ...all.filter((c) => c.mimeType.toLowerCase() === `${kind}/rtx`)];
  }

  // Replaces the a=fmtp parameters of every payload type of `codec`.
  function setFmtp(sdp, codec, params) {
    const pts = [...sdp.matchAll(new RegExp(`a=rtpmap:(\\d+) ${codec}/`, "gi"))].map((m) => m[1]);
    let out = sdp;
    for (const pt of pts) {
      const line = new RegExp(`a=fmtp:${pt} [^\\r\\n]*`, "g");
      out = line.test(out) ? out.replace(line, `a=fmtp:${pt} ${params}`)
        : out.replace(new RegExp(`(a=rtpmap:${pt} [^\\r\\n]*\\r\\n)`), `$1a=fmtp:${pt} ${params}\r\n`);
    }
    return out;
  }

  function attach(track) {
    const el = document.createElement(track.kind);
    el.autoplay = true;
    el.muted = track.kind === "video";
    el.srcObject = new MediaStream([track]);
    document.body.append(el);
    el.play().catch(() => {});
  }

  async function push(spec) {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    const transceivers = [];
    for (const t of spec.tracks) {
      const tr = pc.addTransceiver(await sourceTrack(t.kind), { direction: "sendonly" });
      if (t.codec) {
        const codecs = pickCodecs(t.kind, t.codec);
        if (!codecs) throw new Error(`no sender capability ${JSON.stringify(t.codec)}`);
        tr.setCodecPreferences(codecs);
      }
      transceivers.push(tr);
    }
    let sdp = (await pc.createOffer()).sdp;
    for (const [codec, params] of Object.entries(spec.fmtp || {})) sdp = setFmtp(sdp, codec, params);
    await pc.setLocalDescription({ type: "offer", sdp });
    const { sessionId } = await apiOk("POST", "/sessions/new");
    const res = await apiOk("POST", `/sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pc.localDescription.sdp },
      tracks: transceivers.map((tr, i) => ({ location: "local", mid: tr.mid, trackName: spec.tracks[i].name })),
    });
    await pc.setRemoteDescription(res.sessionDescription);
    return { pc, sessionId, transceivers, offer: pc.localDescription.sdp, answer: res.sessionDescription.sdp };
  }

  // The fake camera at 1280x720 on `pc` as three VP8 layers f, h, q (1,
  // 1/2, 1/4 of the resolution), keeping the resolution under load.
  async function simulcastTransceiver(pc) {
    const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 } });
    const transceiver = pc.addTransceiver(camera.getVideoTracks()[0], {
      direction: "sendonly",
      sendEncodings: [
        { rid: "f", maxBitrate: 1_500_000 },
        { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
        { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
      ],
    });
    transceiver.setCodecPreferences(RTCRtpSender.getCapabilities("video").codecs.filter((c) => /vp8|rtx/i.test(c.mimeType)));
    const params = transceiver.sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await transceiver.sender.setParameters(params);
    return transceiver;
  }

  async function pushSimulcast(name) {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    const transceiver = await simulcastTransceiver(pc);
    await pc.setLocalDescription(await pc.createOffer());
    note("simulcastOffer", pc.localDescription.sdp.split("\r\n").filter((l) => /^a=(rid|simulcast)/.test(l)));
    const { sessionId } = await apiOk("POST", "/sessions/new");
    const res = await apiOk("POST", `/sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pc.localDescription.sdp },
      tracks: [{ location: "local", mid: transceiver.mid, trackName: name }],
    });
    note("simulcastAnswer", res.sessionDescription.sdp.split("\r\n").filter((l) => /^a=(rid|simulcast)/.test(l)));
    await pc.setRemoteDescription(res.sessionDescription);
    const encodings = async () => {
      const out = {};
      (await pc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          out[s.rid] = { width: s.frameWidth, frames: s.framesEncoded, limitation: s.qualityLimitationReason, active: s.active };
        }
      });
      return out;
    };
    return { pc, sessionId, transceiver, encodings };
  }

  async function pull(publisherSessionId, trackNames, fields = {}) {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    pc.ontrack = (e) => attach(e.track);
    const { sessionId } = await apiOk("POST", "/sessions/new");
    const res = await apiOk("POST", `/sessions/${sessionId}/tracks/new`, {
      tracks: trackNames.map((trackName) => ({ location: "remote", sessionId: publisherSessionId, trackName, ...fields })),
    });
    if (!res.requiresImmediateRenegotiation || !res.sessionDescription) {
      throw new Error(`pull: expected a server offer, got ${JSON.stringify(res).slice(0, 300)}`);
    }
    await pc.setRemoteDescription(res.sessionDescription);
    await pc.setLocalDescription(await pc.createAnswer());
    await apiOk("PUT", `/sessions/${sessionId}/renegotiate`, {
      sessionDescription: { type: "answer", sdp: pc.localDescription.sdp },
    });
    const mids = Object.fromEntries(res.tracks.map((t) => [t.trackName, t.mid]));
    return { pc, sessionId, offer: res.sessionDescription.sdp, mids, items: res.tracks };
  }

  function waitConnected(pc, ms, what) {
    return waitFor(() => {
      const ice = pc.iceConnectionState;
      if (pc.connectionState === "failed" || ice === "failed") throw new Error(`${what}: connection failed`);
      return pc.connectionState === "connected" || ice === "connected" || ice === "completed";
    }, ms, () => `${what} connected (ice ${pc.iceConnectionState}, connection ${pc.connectionState})`);
  }

  // Polls `probe` every 100 ms until it returns a truthy value.
  async function waitFor(probe, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`);
      }
      await sleep(100);
    }
  }

  async function rtp(pc) {
    const report = await pc.getStats();
    const out = [];
    report.forEach((s) => {
      if (s.type !== "inbound-rtp" && s.type !== "outbound-rtp") return;
      const c = s.codecId ? report.get(s.codecId) : null;
      out.push({
        type: s.type, kind: s.kind, mid: s.mid, ssrc: s.ssrc,
        packets: s.type === "inbound-rtp" ? s.packetsReceived : s.packetsSent,
        framesDecoded: s.framesDecoded, framesEncoded: s.framesEncoded,
        implementation: s.type === "inbound-rtp" ? s.decoderImplementation : s.encoderImplementation,
        totalSamplesReceived: s.totalSamplesReceived, audioLevel: s.audioLevel,
        totalAudioEnergy: s.totalAudioEnergy,
        codec: c ? { mimeType: c.mimeType, sdpFmtpLine: c.sdpFmtpLine, payloadType: c.payloadType } : null,
      });
    });
    return out;
  }

  async function frames(pc, mid) {
    const s = (await rtp(pc)).find((r) => r.type === "inbound-rtp" && r.mid === mid);
    return (s && s.framesDecoded) || 0;
  }

  async function watchFrames(pc, mid, ms) {
    const t0 = performance.now();
    const start = await frames(pc, mid);
    let last = start;
    let lastChange = t0;
    let longestStallMs = 0;
    while (performance.now() - t0 < ms) {
      await sleep(100);
      const now = performance.now();
      const f = await frames(pc, mid);
      if (f !== last) {
        last = f;
        lastChange = now;
      }
      longestStallMs = Math.max(longestStallMs, Math.round(now - lastChange));
    }
    return { start, end: last, longestStallMs };
  }

  async function flow(pc) {
    const out = {};
    for (const s of await rtp(pc)) {
      const frames = s.type === "inbound-rtp" ? s.framesDecoded : s.framesEncoded;
      out[`${s.type === "inbound-rtp" ? "in" : "out"} ${s.kind} ${s.mid}`] = `${frames ?? "-"}/${s.packets}`;
    }
    (await pc.getStats()).forEach((s) => {
      if (s.type === "transport") {
        out[`transport ${s.id}`] = `dtls ${s.dtlsState}, ice ${s.iceState}, sent ${s.packetsSent}, received ${s.packetsReceived}`;
      }
    });
    return out;
  }

  async function metrics() {
    const text = await (await fetch(location.origin + "/metrics")).text();
    const out = { forwarded: 0, videoPauses: 0, drops: {}, dataChannelDrops: {} };
    for (const m of text.matchAll(/^switchboard_(rtp_forwarded|video_pauses|drops|datachannel_drops)_total\{[^}]*?(?:reason="([^"]+)")?\} (\d+)$/gm)) {
      if (m[1] === "rtp_forwarded") out.forwarded += Number(m[3]);
      else if (m[1] === "video_pauses") out.videoPauses += Number(m[3]);
      else if (!Number(m[3])) continue;
      else if (m[1] === "drops") out.drops[m[2]] = (out.drops[m[2]] || 0) + Number(m[3]);
      else out.dataChannelDrops[m[2]] = (out.dataChannelDrops[m[2]] || 0) + Number(m[3]);
    }
    return out;
  }

  function sdpSummary(sdp) {
    return sdp.split(/\r?\n/).filter((l) => /^(m=|a=mid:|a=group:|a=ice-ufrag|a=(sendrecv|sendonly|recvonly|inactive)$|a=rtpmap:|a=fmtp:)/.test(l));
  }

  function iceCredentials(sdp) {
    const ufrag = (sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
    const pwd = (sdp.match(/a=ice-pwd:(\S+)/) || [])[1];
    return { ufrag, pwd };
  }

  window.sb = {
    api, apiOk, push, pushSimulcast, simulcastTransceiver, attach, pull, waitConnected, waitFor, rtp, frames, watchFrames, flow, metrics, sdpSummary, iceCredentials,
    pickCodecs, sleep, note, notes,
  };
}
