# Attack: DTLS-looking junk at full rate from a bound address: server RSS before,
# after and 10 s later, log size, drop counters. Prints one JSON object.
# usage: dtls_junk.py BIN PORT MPORT LOG [COUNT] [SECONDS]
import sys, time, json, os, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); from common import *
BIN, PORT, MPORT, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
COUNT = int(sys.argv[5]) if len(sys.argv) > 5 else 2_000_000
SECS = float(sys.argv[6]) if len(sys.argv) > 6 else 20
p = start_server(BIN, PORT, MPORT, LOG)
res = {}
try:
    sid, ufrag, pwd, cufrag, st, j = new_session_with_offer(PORT)
    res["session_status"] = st; res["server_ufrag"] = ufrag; res["client_ufrag"] = cufrag
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.sendto(stun_binding(os.urandom(12), f"{ufrag}:{cufrag}", pwd), ("127.0.0.1", MPORT))
    try:
        d, a = s.recvfrom(2000); res["bind_response_type"] = hex(int.from_bytes(d[:2], "big"))
    except socket.timeout: res["bind_response_type"] = None
    time.sleep(0.5)
    m, _ = metrics(PORT); res["metrics_before"] = metric_lines(m, ("drop", "packets_in", "packets_out"))
    res["rss_kb_before"] = rss_kb(p.pid); res["log_bytes_before"] = os.path.getsize(LOG)
    s.setblocking(False)
    pkts = [bytes([22, 0xfe, 0xfd]) + os.urandom(100) for _ in range(4096)]
    dst = ("127.0.0.1", MPORT)
    t0 = time.monotonic(); c0 = cpu_ticks(p.pid); sent = 0; eagain = 0; rx = 0
    while sent < COUNT and time.monotonic() - t0 < SECS:
        for k in range(256):
            try: s.sendto(pkts[(sent + k) & 4095], dst); 
            except BlockingIOError: eagain += 1
        sent += 256
        try:
            while True: s.recvfrom(4096); rx += 1
        except (BlockingIOError, OSError): pass
    t1 = time.monotonic()
    res["sent"] = sent; res["send_eagain"] = eagain; res["send_s"] = round(t1 - t0, 2); res["rate_pps"] = int(sent / (t1 - t0))
    res["datagrams_received_back"] = rx
    res["cpu_pct_during"] = round(100 * (cpu_ticks(p.pid) - c0) / CLK / (t1 - t0), 1)
    res["rss_kb_right_after"] = rss_kb(p.pid); res["log_bytes_right_after"] = os.path.getsize(LOG)
    time.sleep(10)
    res["rss_kb_10s_after"] = rss_kb(p.pid); res["log_bytes_10s_after"] = os.path.getsize(LOG)
    m, dt = metrics(PORT); res["metrics_after"] = metric_lines(m, ("drop", "packets_in", "packets_out")); res["metrics_get_ms"] = round(dt * 1000, 1)
    s2, d, _ = api(PORT, "GET", f"/sessions/{sid}"); res["session_get_status"] = s2
finally:
    stop_server(p)
print(json.dumps(res, indent=1))
