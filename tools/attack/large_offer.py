# Attack: one large offer (256 recvonly m=video, 60 VP9 formats each, every
# profile-id of the offer distinct) to sessions/new, while another
# sessions/new is timed every 20 ms: the offer's status and time, and the
# slowest concurrent call. Prints one JSON object.
# usage: large_offer.py BIN PORT MPORT LOG
import os, sys, threading, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); from common import *
BIN, PORT, MPORT, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
FP = "sha-256 85:99:C2:23:6B:6A:EC:A1:8E:DE:8A:4E:36:82:34:D7:D5:18:5D:1E:7D:80:D7:4E:DC:64:AD:AA:60:06:E4:7B"

def offer(m, formats):
    pts = (list(range(96, 128)) + list(range(35, 64)))[:formats]
    s = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE " + " ".join(map(str, range(m))) +
         f"\r\na=fingerprint:{FP}\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n")
    for i in range(m):
        s += f"m=video 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, pts))}\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=recvonly\r\na=rtcp-mux\r\n"
        s += "".join(f"a=rtpmap:{pt} VP9/90000\r\na=fmtp:{pt} profile-id={i * formats + n}\r\n" for n, pt in enumerate(pts))
    return s

p = start_server(BIN, PORT, MPORT, LOG)
res = {}
try:
    stop = False; slowest = [0.0, 0]
    def timer():
        while not stop:
            s, _, dt = api(PORT, "POST", "/sessions/new")
            slowest[0] = max(slowest[0], dt); slowest[1] += 1
            time.sleep(0.02)
    th = threading.Thread(target=timer); th.start(); time.sleep(0.5)
    sdp = offer(256, 60)
    s, d, dt = api(PORT, "POST", "/sessions/new", {"sessionDescription": {"type": "offer", "sdp": sdp}}, timeout=300)
    time.sleep(0.5); stop = True; th.join()
    res = {"offer_kb": len(sdp) // 1000, "status": s, "offer_ms": round(dt * 1000, 1),
           "other_calls": slowest[1], "other_slowest_ms": round(slowest[0] * 1000, 1)}
finally:
    stop_server(p)
print(json.dumps(res))
