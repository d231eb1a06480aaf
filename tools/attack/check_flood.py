# Attack: valid STUN checks with the session's own credentials from one source:
# answers per second, server CPU, drop counters. Prints one JSON object.
# usage: check_flood.py BIN PORT MPORT LOG [SECONDS]
import sys, time, json, os, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); from common import *
BIN, PORT, MPORT, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
SECS = float(sys.argv[5]) if len(sys.argv) > 5 else 10
p = start_server(BIN, PORT, MPORT, LOG)
res = {}
try:
    sid, ufrag, pwd, cufrag, st, j = new_session_with_offer(PORT)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setblocking(False)
    user = f"{ufrag}:{cufrag}"
    # precompute distinct valid requests (distinct transaction ids)
    pkts = [stun_binding(os.urandom(12), user, pwd) for _ in range(20000)]
    dst = ("127.0.0.1", MPORT)
    per_sec = [0] * (int(SECS) + 1); sent_sec = [0] * (int(SECS) + 1)
    t0 = time.monotonic(); c0 = cpu_ticks(p.pid); sent = 0; eagain = 0; rx = 0
    while True:
        now = time.monotonic() - t0
        if now >= SECS: break
        sec = int(now)
        for k in range(64):
            try: s.sendto(pkts[(sent + k) % 20000], dst)
            except BlockingIOError: eagain += 1
        sent += 64; sent_sec[sec] += 64
        try:
            while True:
                d = s.recv(2048)
                if d[:2] == b"\x01\x01": per_sec[sec] += 1
                rx += 1
        except BlockingIOError: pass
    t1 = time.monotonic(); c1 = cpu_ticks(p.pid)
    time.sleep(0.3)
    try:
        while True: s.recv(2048); rx += 1
    except BlockingIOError: pass
    res["sent"] = sent; res["eagain"] = eagain; res["send_rate_pps"] = int(sent / (t1 - t0))
    res["responses_total"] = rx; res["responses_per_sec"] = per_sec[:int(SECS)]; res["sent_per_sec"] = sent_sec[:int(SECS)]
    res["cpu_pct"] = round(100 * (c1 - c0) / CLK / (t1 - t0), 1)
    m, _ = metrics(PORT); res["metrics_after"] = metric_lines(m, ("drop", "packets_in", "packets_out"))
    # does a fresh check from another source still get answered?
    s3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s3.settimeout(2)
    s3.sendto(stun_binding(os.urandom(12), user, pwd), dst)
    try: res["other_source_answer"] = s3.recv(2048)[:2].hex()
    except socket.timeout: res["other_source_answer"] = None
finally:
    stop_server(p)
print(json.dumps(res, indent=1))
