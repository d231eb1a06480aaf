// Codecs through the SFU in headless Chromium, with the Calls API driven
// from the page (one browser, one tab per case, one case after another).
//
//   node tests/browser/codecs.mjs <http-addr> <app-id> <app-secret> [case...]
//   (run by tests/chromium_codecs.rs; cases are listed in CASES below)
//
// Video: the publisher forces one codec with setCodecPreferences (the
// matching sender capability plus rtx), pushes the fake camera, a second
// peer connection pulls it; the subscriber must decode more than 60 frames
// with that codec (inbound-rtp codecId → mimeType / sdpFmtpLine), and the
// publisher must have encoded with it. Cases: VP8, VP9 profile 0, H.264
// packetization-mode=1 Constrained Baseline (42e01f) and Main (4d001f), AV1.
// H.264 High: when Chromium has no sender capability for it (Debian's build
// encodes H.264 with OpenH264; its sender capabilities stop at Main), the
// case records the H.264 capabilities and passes with `encodable: false`;
// otherwise it runs like the others.
// Opus: the publisher's offer is munged to
// `minptime=10;useinbandfec=1;usedtx=1;stereo=1`; the server's offer to the
// subscriber must carry those parameters and audio packets must keep
// arriving. PCMU, PCMA: forced with setCodecPreferences; packets arrive and
// are played out (totalSamplesReceived > 0).
//
// Prints one JSON line: {"ok", "ms", "capabilities", "scenarios": [{name,
// ok, reason?, publisher, subscriber, ...}]}. Env: CHROMIUM.

import { main } from "./lib.mjs";

const FRAMES = 60;
const OPUS_FMTP = "minptime=10;useinbandfec=1;usedtx=1;stereo=1";

// In the page: push one track forced to `codec`, pull it, wait for media.
async function pushAndPull({ kind, codec, fmtp, frames }) {
  const sb = window.sb;
  const pub = await sb.push({ tracks: [{ kind, name: kind, codec }], fmtp });
  sb.note("publisherOffer", sb.sdpSummary(pub.offer));
  sb.note("publisherAnswer", sb.sdpSummary(pub.answer));
  await sb.waitConnected(pub.pc, 10000, "publisher");
  const sub = await sb.pull(pub.sessionId, [kind]);
  sb.note("subscriberOffer", sb.sdpSummary(sub.offer));
  await sb.waitConnected(sub.pc, 10000, "subscriber");
  const inbound = async () => (await sb.rtp(sub.pc)).find((s) => s.type === "inbound-rtp" && s.kind === kind);
  let last = null;
  await sb.waitFor(async () => {
    last = await inbound();
    sb.note("subscriber", last);
    return kind === "video" ? last && last.framesDecoded > frames
      : last && last.packets > 50 && last.totalSamplesReceived > 0;
  }, 15000, () => `subscriber media (last: ${JSON.stringify(last)})`);
  const first = last;
  await sb.sleep(1000);
  const later = await inbound();
  const publisher = (await sb.rtp(pub.pc)).find((s) => s.type === "outbound-rtp" && s.kind === kind);
  pub.pc.close();
  sub.pc.close();
  return { publisher, subscriber: later, packetsBefore: first.packets, subscriberOffer: sub.offer };
}

const hasParams = (fmtpLine, params) => params.every((p) => (fmtpLine || "").split(";").includes(p));
const sameMime = (codec, mime) => codec && codec.mimeType.toLowerCase() === mime.toLowerCase();

// The subscriber's offer's a=fmtp line for `codec` (the first payload type).
function fmtpOf(sdp, codec) {
  const pt = (sdp.match(new RegExp(`a=rtpmap:(\\d+) ${codec}/`, "i")) || [])[1];
  const line = pt && sdp.split(/\r?\n/).find((l) => l.startsWith(`a=fmtp:${pt} `));
  return line || null;
}

function videoCase(name, codec) {
  return {
    name,
    timeoutMs: 25000,
    run: async (page) => {
      const r = await page.evaluate(pushAndPull, { kind: "video", codec, frames: FRAMES });
      const failures = [];
      if (!(r.subscriber.framesDecoded > FRAMES)) failures.push(`framesDecoded ${r.subscriber.framesDecoded}`);
      for (const [who, s] of [["subscriber", r.subscriber], ["publisher", r.publisher]]) {
        if (!sameMime(s && s.codec, codec.mime) || !hasParams(s.codec.sdpFmtpLine, codec.fmtp || [])) {
          failures.push(`${who} codec ${JSON.stringify(s && s.codec)} is not ${JSON.stringify(codec)}`);
        }
      }
      delete r.subscriberOffer;
      return { ok: failures.length === 0, reason: failures.join("; ") || undefined, ...r };
    },
  };
}

// `force`: setCodecPreferences to the codec; `fmtp`: munge the offer.
function audioCase(name, codec, { force, fmtp }) {
  return {
    name,
    timeoutMs: 25000,
    run: async (page) => {
      const r = await page.evaluate(pushAndPull, { kind: "audio", codec: force ? codec : undefined, fmtp });
      const failures = [];
      if (!sameMime(r.subscriber.codec, codec.mime)) failures.push(`subscriber codec ${JSON.stringify(r.subscriber.codec)}`);
      if (!(r.subscriber.packets > r.packetsBefore)) failures.push(`packetsReceived did not grow (${r.packetsBefore} → ${r.subscriber.packets})`);
      if (!(r.subscriber.totalSamplesReceived > 0)) failures.push("totalSamplesReceived is 0");
      const offered = fmtp ? fmtpOf(r.subscriberOffer, "opus") : undefined;
      if (fmtp && !hasParams(offered && offered.split(" ")[1], fmtp.opus.split(";"))) {
        failures.push(`server offer to the subscriber has ${JSON.stringify(offered)}, expected ${fmtp.opus}`);
      }
      delete r.subscriberOffer;
      return { ok: failures.length === 0, reason: failures.join("; ") || undefined, subscriberOfferFmtp: offered, ...r };
    },
  };
}

// H.264 High: a full case when Chromium can encode it, else the evidence
// that it cannot.
const h264High = {
  name: "h264-high",
  timeoutMs: 25000,
  run: async (page) => {
    const caps = await page.evaluate(() => RTCRtpSender.getCapabilities("video").codecs
      .filter((c) => c.mimeType === "video/H264").map((c) => c.sdpFmtpLine));
    const high = caps.find((l) => /profile-level-id=64/i.test(l) && /packetization-mode=1/.test(l));
    if (!high) return { ok: true, encodable: false, senderH264: caps };
    const plid = high.match(/profile-level-id=(\w+)/)[1];
    const codec = { mime: "video/H264", fmtp: ["packetization-mode=1", `profile-level-id=${plid}`] };
    const r = await videoCase("h264-high", codec).run(page);
    return { ...r, encodable: true };
  },
};

const CASES = [
  videoCase("vp8", { mime: "video/VP8" }),
  videoCase("vp9", { mime: "video/VP9", fmtp: ["profile-id=0"] }),
  videoCase("h264-constrained-baseline", { mime: "video/H264", fmtp: ["packetization-mode=1", "profile-level-id=42e01f"] }),
  h264High,
  videoCase("h264-main", { mime: "video/H264", fmtp: ["packetization-mode=1", "profile-level-id=4d001f"] }),
  videoCase("av1", { mime: "video/AV1" }),
  audioCase("opus-fmtp", { mime: "audio/opus" }, { fmtp: { opus: OPUS_FMTP } }),
  audioCase("pcmu", { mime: "audio/PCMU" }, { force: true }),
  audioCase("pcma", { mime: "audio/PCMA" }, { force: true }),
];

await main({
  script: "codecs.mjs",
  scenarios: CASES,
  hardTimeoutMs: 150000,
  extra: (page) => page.evaluate(() => {
    const list = (kind) => RTCRtpSender.getCapabilities(kind).codecs
      .filter((c) => !/rtx|red|ulpfec|flexfec|CN|telephone-event/i.test(c.mimeType))
      .map((c) => `${c.mimeType} ${c.sdpFmtpLine || ""}`.trim());
    return { capabilities: { video: list("video"), audio: list("audio"), userAgent: navigator.userAgent } };
  }),
});
