#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into target/seeds/<target>/:
well-formed examples the fuzzer mutates from (real browser offers from
tests/data, Binding requests with valid MESSAGE-INTEGRITY and FINGERPRINT,
RTP with header extensions and VP8/H.264 payloads, compound RTCP).
Run by tools/fuzz before each run, which reads them beside corpus/<target>
(what earlier runs kept); they are regenerated, never committed."""

import hashlib
import hmac
import json
import pathlib
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
OFFERS = sorted(DATA.glob("*.sdp"))
PWD = b"fuzzfuzzfuzzfuzzfuzzfuzz"  # the stun target's password


def records(*items):
    out = b""
    for tag, data in items:
        out += bytes([tag]) + struct.pack(">H", len(data)) + data
    return out


def write(target, name, data):
    d = HERE / "target" / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def stun_binding(username, use_candidate):
    def attr(kind, value):
        pad = b"\0" * (-len(value) % 4)
        return struct.pack(">HH", kind, len(value)) + value + pad

    body = attr(0x0006, username) + attr(0x0024, struct.pack(">I", 0x6E7F1EFF))
    if use_candidate:
        body += attr(0x0025, b"")
    tid = b"\x01" * 12
    header = lambda n: struct.pack(">HHI", 0x0001, n, 0x2112A442) + tid
    mi = hmac.new(PWD, header(len(body) + 24) + body, hashlib.sha1).digest()
    body += attr(0x0008, mi)
    crc = (zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E) & 0xFFFFFFFF
    body += attr(0x8028, struct.pack(">I", crc))
    return header(len(body)) + body


def rtp(seq, ssrc=0xABC, pt=96, payload=b"\x90\x80\x05" + b"\xab" * 40, ext=True, marker=False):
    first = 0x90 if ext else 0x80
    head = struct.pack(">BBHII", first, (0x80 if marker else 0) | pt, seq, seq * 3000, ssrc)
    if ext:
        # One-byte extensions: transport-cc (id 3), rid (id 4) "h", mid (id 1) "0".
        elems = bytes([0x31]) + struct.pack(">H", seq) + bytes([0x40]) + b"h" + bytes([0x10]) + b"0"
        elems += b"\0" * (-len(elems) % 4)
        head += struct.pack(">HH", 0xBEDE, len(elems) // 4) + elems
    return head + payload


def rtcp_sr(ssrc):
    return struct.pack(">BBHIQIII", 0x80, 200, 6, ssrc, 0xE000000000000000, 3000, 10, 12000)


def rtcp_rr(ssrc, media):
    block = struct.pack(">IIIIII", media, 0x01000002, 100, 5, 0, 0)
    return struct.pack(">BBHI", 0x81, 201, 7, ssrc) + block


def pli(media):
    return struct.pack(">BBHII", 0x81, 206, 2, 1, media)


def nack(media, pid, blp):
    return struct.pack(">BBHIIHH", 0x81, 205, 3, 1, media, pid, blp)


def twcc(media, base, count):
    chunks = struct.pack(">H", 0x2000 | count)  # run length, small deltas
    deltas = b"\x04" * count
    body = struct.pack(">II", 1, media) + struct.pack(">HHI", base, count, 0x00000100)
    body += chunks + deltas
    body += b"\0" * (-len(body) % 4)
    return struct.pack(">BBH", 0x8F, 205, len(body) // 4) + body


def xr_rrtr():
    return struct.pack(">BBHIBBHQ", 0x80, 207, 4, 1, 4, 0, 2, 0xE000000000000000)


def main():
    offers = [p.read_text() for p in OFFERS]
    for p, text in zip(OFFERS, offers):
        write("sdp", p.stem, text.encode())

    for i, text in enumerate(offers):
        sd = {"type": "offer", "sdp": text}
        write("api_json", f"push-{i}", records(
            (0, b"{}"),
            (1, json.dumps({"sessionDescription": sd, "autoDiscover": True}).encode()),
            (0, b""),
            (0x11, json.dumps({"tracks": [{"location": "remote", "trackName": "x",
                                           "sessionId": "0", "simulcast": {"preferredRid": "h"}}]}).encode()),
            (5, b""),
            (6, json.dumps({"dataChannel": {"location": "remote", "dataChannelName": "server-events"}}).encode()),
            (7, json.dumps({"dataChannels": [{"location": "local", "dataChannelName": "chat"}]}).encode()),
            (4, json.dumps({"tracks": [{"mid": "0"}], "force": True}).encode()),
        ))
    write("api_json", "legacy", records((0, json.dumps({"sessionDescription": {"type": "offer", "sdp": offers[0]}}).encode())))

    write("stun", "binding", b"\0" + stun_binding(b"abcd:efgh", True))
    write("stun", "attributes", b"\1" + records((0x00, b"\x06abcd:efgh"), (0x00, b"\x25")))

    vp8_key = b"\x90\x80\x05\x10\x02\x00\x9d\x01\x2a" + b"\x11" * 20
    h264_sps = b"\x67\x42\xc0\x1e" + b"\x22" * 10
    write("rtp", "stream", records(*((i * 2, rtp(i)) for i in range(4)), (1, rtp(5, payload=vp8_key)),
                                     (0x80, rtp(6, pt=102, payload=h264_sps, ext=False, marker=True))))

    compound = rtcp_sr(1) + rtcp_rr(1, 2) + pli(2) + nack(2, 100, 0x0005) + twcc(2, 10, 5) + xr_rrtr()
    write("rtcp", "compound", b"\0" + compound)
    write("rtcp", "arrivals", b"\1" + b"".join(struct.pack(">HB", s, 3) for s in [1, 2, 4, 3, 9, 10]))
    write("rtcp", "lost", b"\2" + b"".join(struct.pack(">H", s) for s in [5, 6, 9, 40, 41]))

    write("dtls", "server", b"\0")
    write("dtls", "handshake", b"\1")

    write("sctp", "empty", b"")
    # A DATA chunk carrying DATA_CHANNEL_OPEN on stream 3 (PPID 50).
    open_msg = struct.pack(">BBHIHH", 3, 0, 256, 0, 4, 0) + b"news"
    data = struct.pack(">BBHIHHI", 0, 0x03, 16 + len(open_msg), 5, 3, 0, 50) + open_msg
    write("sctp", "open", records((1, data)))

    pub = 0xABC
    write("engine", "media", records(
        *((3, rtp(i)) for i in range(1, 6)),
        (3, rtp(8, payload=vp8_key)),
        (4, rtcp_sr(pub)),
        (5, nack(0x1001, 2, 0x0003)),
        (5, pli(0x1001)),
        (6, twcc(0x1002, 0, 4)),
        (7 | (25 << 3), b""),
        (6, rtcp_rr(1, 0x1002)),
        (0, b"\x17\xfe\xfd" + b"\0" * 20),
        (2, rtp(9)),
    ))

    # recording: the first byte picks the video format (0 VP8, 2 AV1, 3
    # H.264); records are [advance 10 ms x tag>>3 | SR 4 | track] + packet.
    def sr(ssrc, ntp_secs, rtp_ts):
        return struct.pack(">IIII", ssrc, ntp_secs, 0, rtp_ts)

    vp8 = [rtp(i, ssrc=1, ext=False, marker=i % 2 == 1,
               payload=(b"\x10\x00\x00\x00\x9d\x01\x2a" if i % 2 == 0 else b"\x00") + b"\xab" * 30)
           for i in range(6)]
    opus = [rtp(i, ssrc=2, pt=111, ext=False, payload=b"\xfc" + b"\x01" * 20) for i in range(4)]
    write("recording", "vp8-opus", b"\0" + records(
        (4, sr(1, 3900000000, 0)), (5, sr(2, 3900000000, 0)),
        *((2 << 3, p) for p in vp8), *(((2 << 3) | 1, p) for p in opus), *((31 << 3, b"") for _ in range(7)), (2, b"")))
    stap = b"\x78\x00\x02\x67\x42\x00\x01\x68"
    write("recording", "h264", b"\3" + records(
        (0, rtp(1, ssrc=1, ext=False, payload=stap)),
        (1 << 3, rtp(2, ssrc=1, ext=False, payload=b"\x7c\x85\x01")),
        (1 << 3, rtp(3, ssrc=1, ext=False, marker=True, payload=b"\x7c\x45\x02"))))
    write("recording", "av1", b"\2" + records(
        (0, rtp(1, ssrc=1, ext=False, payload=b"\x68\x02\x12\x00\x08\xaa")),
        (1 << 3, rtp(2, ssrc=1, ext=False, marker=True, payload=b"\x90\xbb\xcc"))))


if __name__ == "__main__":
    main()
