// WebSocket adapters against real Chromium (tests/adapters_chromium.rs).
// The script is the application: it runs a WebSocket server of its own
// (the `ws` package) on 127.0.0.1 and asks the server to connect to it.
//
//   pcm-egress   a page publishes a 660 Hz tone (an oscillator); its PCM
//                arrives here: >= 45 frames a second over 10 s, each
//                3,840 bytes, numbered without gaps, the tone within 2 %.
//   jpeg-egress  a page publishes the fake camera; JPEG pictures arrive at
//                the asked 2 a second (+-20 %) and decode (Chromium's own
//                decoder, createImageBitmap) at the camera's size.
//   pcm-ingest   this script streams 10 s of a 440 Hz tone as fast as it
//                can; a page pulls the track: totalSamplesReceived grows at
//                real-time pace, concealedSamples under 2 %, and an
//                analyser on the received audio finds 440 Hz.
//
// Usage: node tests/browser/adapters.mjs <http-addr> <app-id> <app-secret> [scenario...]

import { WebSocketServer } from "ws";
import { main, sleep } from "./lib.mjs";

const [httpAddr, appId, secret] = process.argv.slice(2);
const apiBase = `http://${httpAddr}/v1/apps/${appId}`;

async function api(path, body) {
  const res = await fetch(apiBase + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

// --- protobuf Packet { uint32 sequenceNumber = 1; uint32 timestamp = 2; bytes payload = 5; }
function readVarint(b, pos) {
  let v = 0, shift = 0;
  for (;;) {
    const byte = b[pos.i++];
    if (byte === undefined) throw new Error("truncated varint");
    v += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return v;
    shift += 7;
  }
}

function parsePacket(b) {
  const out = { sequenceNumber: 0, timestamp: 0, payload: Buffer.alloc(0) };
  const pos = { i: 0 };
  while (pos.i < b.length) {
    const key = readVarint(b, pos);
    const [field, wire] = [Math.floor(key / 8), key & 7];
    if (wire === 0) {
      const v = readVarint(b, pos);
      if (field === 1) out.sequenceNumber = v;
      if (field === 2) out.timestamp = v;
    } else if (wire === 2) {
      const n = readVarint(b, pos);
      if (field === 5) out.payload = b.subarray(pos.i, pos.i + n);
      pos.i += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

function writeVarint(out, v) {
  while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
  out.push(v);
}

function packet(seq, payload) {
  const head = [0x08];
  writeVarint(head, seq);
  head.push(0x2a);
  writeVarint(head, payload.length);
  return Buffer.concat([Buffer.from(head), payload]);
}

// A WebSocket server on 127.0.0.1: collects packets, or sends `send` on
// each connection.
async function endpoint({ send } = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.on("listening", r));
  const received = [];
  let connections = 0;
  wss.on("connection", (ws) => {
    connections++;
    ws.on("message", (data, isBinary) => {
      if (isBinary) received.push({ at: Date.now(), ...parsePacket(data) });
    });
    if (send) send(ws);
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}/agent?token=abc`,
    received,
    connections: () => connections,
    // Existing connections are not closed by wss.close: end them first.
    close: () => {
      for (const c of wss.clients) c.terminate();
      return new Promise((r) => wss.close(r));
    },
  };
}

// The strongest frequency of `samples` (Goertzel, 50 Hz - 5 kHz).
function dominantFrequency(samples, rate) {
  const power = (f) => {
    const coeff = 2 * Math.cos((2 * Math.PI * f) / rate);
    let s1 = 0, s2 = 0;
    for (const x of samples) { const s = x + coeff * s1 - s2; s2 = s1; s1 = s; }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
  };
  const best = (from, to, step) => {
    let bf = from, bp = -1;
    for (let f = from; f <= to; f += step) { const p = power(f); if (p > bp) { bf = f; bp = p; } }
    return bf;
  };
  const coarse = best(50, 5000, 10);
  return best(coarse - 10, coarse + 10, 0.5);
}

// Publishes an oscillator's tone from the page; returns the session id.
async function publishTone(page, hz) {
  return page.evaluate(async (hz) => {
    const ctx = new AudioContext({ sampleRate: 48000 });
    const osc = ctx.createOscillator();
    osc.frequency.value = hz;
    const gain = ctx.createGain();
    gain.gain.value = 0.3;
    const dst = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dst);
    osc.start();
    await ctx.resume();
    window.tone = { ctx, osc };
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    const tr = pc.addTransceiver(dst.stream.getAudioTracks()[0], { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const { sessionId } = await window.sb.apiOk("POST", "/sessions/new");
    const res = await window.sb.apiOk("POST", `/sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pc.localDescription.sdp },
      tracks: [{ location: "local", mid: tr.mid, trackName: "tone" }],
    });
    await pc.setRemoteDescription(res.sessionDescription);
    await window.sb.waitConnected(pc, 10000, "tone publisher");
    window.tone.pc = pc;
    return sessionId;
  }, hz);
}

async function pcmEgress(page) {
  const ep = await endpoint();
  try {
    const sessionId = await publishTone(page, 660);
    const r = await api("/adapters/websocket/new", {
      tracks: [{ location: "remote", sessionId, trackName: "tone", endpoint: ep.url, outputCodec: "pcm" }],
    });
    if (r.status !== 200 || r.json.tracks[0].errorCode) throw new Error(`adapters/new: ${r.status} ${JSON.stringify(r.json)}`);
    const adapterId = r.json.tracks[0].adapterId;
    // 10 s from the first frame.
    for (let i = 0; i < 100 && !ep.received.length; i++) await sleep(100);
    if (!ep.received.length) throw new Error("no frame within 10 s");
    const first = ep.received.length;
    const t0 = Date.now();
    await sleep(10000);
    const frames = ep.received.slice(first);
    const seconds = (Date.now() - t0) / 1000;
    const rate = frames.length / seconds;
    const sizes = new Set(frames.map((f) => f.payload.length));
    const gaps = frames.slice(1).filter((f, i) => f.sequenceNumber !== frames[i].sequenceNumber + 1).length;
    const mid = frames.slice(Math.floor(frames.length / 2), Math.floor(frames.length / 2) + 25);
    const left = [];
    for (const f of mid) for (let i = 0; i + 3 < f.payload.length; i += 4) left.push(f.payload.readInt16LE(i));
    const hz = dominantFrequency(left, 48000);
    const closed = await api("/adapters/websocket/close", { tracks: [{ adapterId }] });
    const ok = rate >= 45 && sizes.size === 1 && sizes.has(3840) && gaps === 0 && Math.abs(hz - 660) <= 660 * 0.02
      && closed.status === 200 && closed.json.tracks[0].bytesProcessed > 0;
    return { ok, frames: frames.length, rate, sizes: [...sizes], gaps, hz, bytesProcessed: closed.json.tracks[0].bytesProcessed };
  } finally {
    await ep.close();
  }
}

async function jpegEgress(page) {
  const ep = await endpoint();
  try {
    const pub = await page.evaluate(async () => {
      const p = await window.sb.push({ tracks: [{ kind: "video", name: "cam" }] });
      await window.sb.waitConnected(p.pc, 10000, "camera publisher");
      window.camera = p;
      return p.sessionId;
    });
    const r = await api("/adapters/websocket/new", {
      tracks: [{ location: "remote", sessionId: pub, trackName: "cam", endpoint: ep.url, outputCodec: "jpeg", frameRate: 2 }],
    });
    if (r.status !== 200 || r.json.tracks[0].errorCode) throw new Error(`adapters/new: ${r.status} ${JSON.stringify(r.json)}`);
    for (let i = 0; i < 100 && !ep.received.length; i++) await sleep(100);
    if (!ep.received.length) throw new Error("no picture within 10 s");
    const first = ep.received.length;
    const t0 = Date.now();
    await sleep(10000);
    const pictures = ep.received.slice(first);
    const seconds = (Date.now() - t0) / 1000;
    const rate = pictures.length / seconds;
    // Decode each with Chromium's image decoder.
    const sizes = await page.evaluate(async (b64s) => {
      const out = [];
      for (const b64 of b64s) {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        try {
          const bmp = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
          out.push(`${bmp.width}x${bmp.height}`);
        } catch (e) {
          out.push(`undecodable: ${e.message}`);
        }
      }
      return out;
    }, pictures.map((p) => p.payload.toString("base64")));
    const camera = await page.evaluate(async () => {
      let size = null;
      (await window.camera.pc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") size = `${s.frameWidth}x${s.frameHeight}`;
      });
      return size;
    });
    const ok = rate >= 1.6 && rate <= 2.4 && sizes.length > 0 && sizes.every((s) => s === camera);
    return { ok, pictures: pictures.length, rate, camera, sizes: [...new Set(sizes)], bytes: pictures.map((p) => p.payload.length).slice(0, 3) };
  } finally {
    await ep.close();
  }
}

async function pcmIngest(page) {
  // 10 s of 440 Hz in 32 KB messages (the most a message may carry), sent
  // at once, then the end of the segment.
  const rate = 48000;
  const samples = rate * 10;
  const pcm = Buffer.alloc(samples * 4);
  for (let i = 0; i < samples; i++) {
    const v = Math.round(9000 * Math.sin((2 * Math.PI * 440 * i) / rate));
    pcm.writeInt16LE(v, i * 4);
    pcm.writeInt16LE(v, i * 4 + 2);
  }
  let sentAt = null;
  const ep = await endpoint({
    send: (ws) => {
      let seq = 0;
      for (let off = 0; off < pcm.length; off += 32000) ws.send(packet(seq++, pcm.subarray(off, off + 32000)));
      ws.send(packet(seq++, Buffer.alloc(0)));
      sentAt = Date.now();
    },
  });
  try {
    const r = await api("/adapters/websocket/new", {
      tracks: [{ location: "local", trackName: "speech", endpoint: ep.url, inputCodec: "pcm", mode: "buffer" }],
    });
    if (r.status !== 200 || r.json.tracks[0].errorCode) throw new Error(`adapters/new: ${r.status} ${JSON.stringify(r.json)}`);
    const sessionId = r.json.tracks[0].sessionId;
    const result = await page.evaluate(async (sessionId) => {
      const sub = await window.sb.pull(sessionId, ["speech"]);
      await window.sb.waitConnected(sub.pc, 10000, "subscriber");
      const receiver = sub.pc.getReceivers().find((x) => x.track.kind === "audio");
      const ctx = new AudioContext({ sampleRate: 48000 });
      await ctx.resume();
      const source = ctx.createMediaStreamSource(new MediaStream([receiver.track]));
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 32768;
      source.connect(analyser);
      const inbound = async () => {
        let s = null;
        (await sub.pc.getStats()).forEach((x) => { if (x.type === "inbound-rtp" && x.kind === "audio") s = x; });
        return s;
      };
      await window.sb.waitFor(async () => ((await inbound())?.totalSamplesReceived || 0) > 48000, 10000, "a second of audio");
      const a = await inbound();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 5000));
      const b = await inbound();
      const seconds = (performance.now() - t0) / 1000;
      const bins = new Float32Array(analyser.frequencyBinCount);
      analyser.getFloatFrequencyData(bins);
      let peak = 0;
      for (let i = 1; i < bins.length; i++) if (bins[i] > bins[peak]) peak = i;
      return {
        samplesPerSecond: (b.totalSamplesReceived - a.totalSamplesReceived) / seconds,
        concealed: (b.concealedSamples - a.concealedSamples) / (b.totalSamplesReceived - a.totalSamplesReceived),
        peakHz: (peak * ctx.sampleRate) / analyser.fftSize,
        totalSamplesReceived: b.totalSamplesReceived,
        concealedSamples: b.concealedSamples,
      };
    }, sessionId);
    const ok = Math.abs(result.samplesPerSecond - 48000) <= 48000 * 0.1 && result.concealed < 0.02
      && Math.abs(result.peakHz - 440) <= 440 * 0.02;
    return { ok, ...result, sentIn: sentAt ? "at once" : "not sent" };
  } finally {
    await ep.close();
  }
}

await main({
  script: "adapters.mjs",
  hardTimeoutMs: 150000,
  scenarios: [
    { name: "pcm-egress", timeoutMs: 40000, run: pcmEgress },
    { name: "jpeg-egress", timeoutMs: 40000, run: jpegEgress },
    { name: "pcm-ingest", timeoutMs: 40000, run: pcmIngest },
  ],
});
