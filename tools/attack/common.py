# Shared by the attacks: start/stop a server by PID, HTTP calls, a session from
# Chrome's captured offer, STUN binding requests (HMAC-SHA1, FINGERPRINT), /proc
# CPU and RSS.
import os, sys, time, json, socket, subprocess, hmac, hashlib, struct, zlib, http.client, signal

APP = "0123456789abcdef0123456789abcdef"
SECRET = "s3cr3t"
HDR = {"Authorization": "Bearer " + SECRET, "Content-Type": "application/json"}
CHROME = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/data/chrome-offer.sdp")).read()
if "\r\n" not in CHROME:
    CHROME = CHROME.replace("\n", "\r\n")
CLK = os.sysconf("SC_CLK_TCK")

def start_server(binpath, port, mport, log):
    f = open(log, "wb")
    p = subprocess.Popen([binpath, "--http-bind", f"127.0.0.1:{port}", "--media-bind", f"127.0.0.1:{mport}",
                          "--workers", "1", "--no-pin", "--dev-app-id", APP, "--dev-app-secret", SECRET],
                         stdout=subprocess.DEVNULL, stderr=f)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/metrics"); c.getresponse().read(); c.close()
            return p
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("server did not start")

def stop_server(p):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try: p.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL); p.wait()

def req(port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, (dict, list)): body = json.dumps(body)
    if isinstance(body, str): body = body.encode()
    t = time.monotonic()
    c.request(method, path, body=body, headers=HDR)
    r = c.getresponse(); data = r.read()
    dt = time.monotonic() - t
    c.close()
    return r.status, data, dt

def api(port, method, sub, body=None, timeout=120):
    return req(port, method, f"/v1/apps/{APP}" + sub, body, timeout)

def metrics(port, timeout=30):
    s, d, dt = req(port, "GET", "/metrics", timeout=timeout)
    return d.decode(), dt

def metric_lines(text, words=("drop", "control", "stun", "session", "queue")):
    return [l for l in text.splitlines() if not l.startswith("#") and any(w in l for w in words) and l.split()[-1] not in ("0", "0.0")]

def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime+stime (fields 14,15)

def rss_kb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])

def sdp_attr(sdp, name):
    for l in sdp.splitlines():
        if l.startswith("a=" + name + ":"): return l.split(":", 1)[1].strip()

def stun_binding(txid, username, pwd, use_candidate=True):
    attrs = b""
    def attr(t, v):
        return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)
    attrs += attr(0x0006, username.encode())
    attrs += attr(0x0024, struct.pack("!I", 0x6e0001ff))
    attrs += attr(0x802A, bytes([1,2,3,4,5,6,7,8]))
    if use_candidate: attrs += attr(0x0025, b"")
    # MI: length covers up to and including MI (24 bytes)
    hdr = struct.pack("!HHI", 0x0001, len(attrs) + 24, 0x2112A442) + txid
    mac = hmac.new(pwd.encode(), hdr + attrs, hashlib.sha1).digest()
    attrs += attr(0x0008, mac)
    hdr = struct.pack("!HHI", 0x0001, len(attrs) + 8, 0x2112A442) + txid
    crc = (zlib.crc32(hdr + attrs) ^ 0x5354554e) & 0xffffffff
    attrs += attr(0x8028, struct.pack("!I", crc))
    return hdr + attrs

def new_session_with_offer(port):
    s, d, dt = api(port, "POST", "/sessions/new", {"sessionDescription": {"type": "offer", "sdp": CHROME}})
    j = json.loads(d)
    ans = j["sessionDescription"]["sdp"]
    return j["sessionId"], sdp_attr(ans, "ice-ufrag"), sdp_attr(ans, "ice-pwd"), sdp_attr(CHROME, "ice-ufrag"), s, j
