#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The benchmark: brings up the testbed with both daemons (no nginx in front of the measured
daemon) and prints a table measured in one run on this machine:
  1. local client get_token with warm caches at 1, 64 and 512 connections (wrk, one thread)
     against a bare libevent handler answering a fixed JSON body (the ratio is the headline);
  2. federation get_token on the resident side against raw Ed25519 verifications per second;
  3. end-to-end federated get_token through both daemons;
  4. RSS at idle and after filling the auth and membership caches (distinct users).
Rate limits are lifted and logging is at warn for the daemons measured.

Usage: bench.py BUILD_DIR [seconds per run]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
from testbed import Testbed, free_port  # noqa: E402

from signedjson.key import read_signing_keys  # noqa: E402
from signedjson.sign import sign_json  # noqa: E402

FED = "/_matrix/federation/v1/rtc/livekit/get_token"
CLIENT = "/_matrix/client/v1/rtc/livekit/get_token"
STATE = {
    "hs1.test": {"users": {"tok_b": {"user_id": "@bench:hs1.test", "device_id": "BD"}},
                 "wildcard_users": True,
                 "rooms": {"!r:hs1.test": {"members": {"@bench:hs1.test": "join"},
                                           "wildcard_members": True},
                           "!r:hs2.test": {"members": {"@bench:hs1.test": "join"}}}},
    "hs2.test": {"rooms": {"!r:hs2.test": {"members": {"@bench:hs1.test": "join",
                                                       "@c:hs2.test": "join"}}}},
}


def lua(path, body, headers, distinct=False):
    h = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    if distinct:  # a new access token for every request: fills the caches
        f.write(f'''counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "{path}", {{["Authorization"] = "Bearer wild_" .. counter,
    ["Content-Type"] = "application/json"}}, {json.dumps(body)!r})
end
'''.replace("'", '"', 0))
    else:
        f.write(f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                f'wrk.headers = {{ {h} }}\n')
    f.close()
    return f.name


def wrk(port, script, conns, seconds, host="127.0.0.1"):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script,
                          f"http://{host}:{port}"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    lat = {}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([0-9.]+)(us|ms|s)", out)
        v = float(m.group(1))
        lat[p] = v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat["50"], lat["99"], int(non2xx.group(1)) if non2xx else 0


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def metric(d, name):
    with urllib.request.urlopen(f"http://{d.host}:{d.admin_port}/metrics") as r:
        text = r.read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))


def main():
    build = sys.argv[1]
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    binary = os.path.join(build, "mrtc-transportd")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}; one wrk thread; the daemon: one event loop "
          "plus MRTC_VERIFY_THREADS=2 signature threads")
    tb = Testbed(mrtc_binary=binary, state=STATE).start(
        with_daemons=True, MRTC_RATE_PER_SECOND="1000000", MRTC_RATE_BURST="1000000",
        MRTC_LOG_LEVEL="warn", MRTC_MEMBERSHIP_CACHE_TTL="300", MRTC_AUTH_CACHE_TTL="3600")
    bare_port = free_port()
    bare = subprocess.Popen([os.path.join(build, "test/bench/bare_server"), str(bare_port)])
    rows, scripts = [], []
    try:
        time.sleep(0.3)
        hs1, hs2 = tb.hs("hs1.test"), tb.hs("hs2.test")
        local = {"url": "wss://sfu.hs1.test", "room_id": "!r:hs1.test",
                 "slot_id": "m.call#ROOM", "member_id": "m"}
        s_local = lua(CLIENT, local, {"Authorization": "Bearer tok_b",
                                      "Content-Type": "application/json"})
        scripts.append(s_local)
        idle = {n: rss_mib(tb.hs(n).mrtc.proc.pid) for n in ("hs1.test", "hs2.test")}
        wrk(hs1.mrtc.port, s_local, 1, 1, host=hs1.mrtc.host)  # warm the caches
        print(f"\n{'measurement':58} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}")
        for c in (1, 64, 512):
            b = wrk(bare_port, s_local, c, secs)
            d = wrk(hs1.mrtc.port, s_local, c, secs, host=hs1.mrtc.host)
            assert d[3] == 0, f"{d[3]} non-2xx answers"
            print(f"{'bare libevent handler, fixed JSON, %d conn' % c:58} {b[0]:9.0f} "
                  f"{b[1]:8.3f} {b[2]:8.3f}")
            print(f"{'local client get_token, warm caches, %d conn' % c:58} {d[0]:9.0f} "
                  f"{d[1]:8.3f} {d[2]:8.3f} {100 * d[0] / b[0]:6.1f}%")
            rows.append(("local", c, b, d))
        # 2. the resident side of federation, one pre-signed request replayed
        with open(hs1.signing_key_file) as f:
            key = read_signing_keys(f)[0]
        fed_body = {"user_id": "@bench:hs1.test", "url": "wss://sfu.hs2.test",
                    "room_id": "!r:hs2.test", "slot_id": "m.call#ROOM", "member_id": "m",
                    "member": {"id": "m", "claimed_device_id": "BD"}}
        sig = sign_json({"method": "POST", "uri": FED, "origin": "hs1.test",
                         "destination": "hs2.test", "content": fed_body}, "hs1.test",
                        key)["signatures"]["hs1.test"][f"ed25519:{key.version}"]
        auth = (f'X-Matrix origin=\\"hs1.test\\",destination=\\"hs2.test\\",'
                f'key=\\"ed25519:{key.version}\\",sig=\\"{sig}\\"')
        s_fed = lua(FED, fed_body, {"Authorization": auth, "Content-Type": "application/json"})
        scripts.append(s_fed)
        wrk(hs2.mrtc.port, s_fed, 1, 1, host=hs2.mrtc.host)
        raw = subprocess.run([os.path.join(build, "test/bench/bench_verify"), str(secs)],
                             capture_output=True, text=True).stdout
        raw_rate = float(re.search(r"raw crypto_sign_verify_detached\s+([0-9]+)", raw).group(1))
        f = wrk(hs2.mrtc.port, s_fed, 64, secs, host=hs2.mrtc.host)
        assert f[3] == 0, f"{f[3]} non-2xx answers"
        print(f"{'raw Ed25519 verify (libsodium), one core':58} {raw_rate:9.0f}")
        print(f"{'resident federation get_token, 64 conn':58} {f[0]:9.0f} {f[1]:8.3f} "
              f"{f[2]:8.3f} {100 * f[0] / raw_rate:6.1f}%")
        # 3. end to end: client -> hs1 daemon -> signed federation over TLS -> hs2 (nginx) -> daemon
        remote = dict(local, url="wss://sfu.hs2.test", room_id="!r:hs2.test",
                      server_name="hs2.test")
        s_e2e = lua(CLIENT, remote, {"Authorization": "Bearer tok_b",
                                     "Content-Type": "application/json"})
        scripts.append(s_e2e)
        wrk(hs1.mrtc.port, s_e2e, 1, 1, host=hs1.mrtc.host)
        for c in (1, 64):
            e = wrk(hs1.mrtc.port, s_e2e, c, secs, host=hs1.mrtc.host)
            assert e[3] == 0, f"{e[3]} non-2xx answers"
            print(f"{'end-to-end federated get_token, %d conn' % c:58} {e[0]:9.0f} "
                  f"{e[1]:8.3f} {e[2]:8.3f}")
        # 4. memory
        s_fill = lua(CLIENT, local, {}, distinct=True)
        scripts.append(s_fill)
        fill_secs = int(os.environ.get("MRTC_BENCH_FILL_SECONDS", "60"))
        wrk(hs1.mrtc.port, s_fill, 64, fill_secs, host=hs1.mrtc.host)
        auth_n = metric(hs1.mrtc, 'mrtc_cache_entries{cache="auth"}')
        memb_n = metric(hs1.mrtc, 'mrtc_cache_entries{cache="membership"}')
        print(f"\nRSS of mrtc-transportd (hs1.test): {idle['hs1.test']:.1f} MiB idle, "
              f"{rss_mib(hs1.mrtc.proc.pid):.1f} MiB with {auth_n:.0f} auth and {memb_n:.0f} "
              f"membership entries (bounds 100000 each)")
        print(f"RSS of mrtc-transportd (hs2.test): {idle['hs2.test']:.1f} MiB idle, "
              f"{rss_mib(hs2.mrtc.proc.pid):.1f} MiB after the runs above")
    finally:
        bare.terminate()
        bare.wait()
        for s in scripts:
            os.unlink(s)
        tb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
