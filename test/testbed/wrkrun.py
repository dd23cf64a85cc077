# SPDX-License-Identifier: Apache-2.0
"""Runs wrk (one thread, with --latency) and reads its summary: requests per second, p50 and
p99 in ms, the count of non-2xx answers and the socket-error line. Used by the benchmark and by
the tests that measure latency under load."""
import re
import subprocess


def run(host, port, script, conns, seconds, timeout=2, cpu=None, script_args=()):
    """wrk against http://@host:@port with Lua @script; pinned to @cpu when given."""
    cmd = ["taskset", "-c", str(cpu)] if cpu is not None else []
    out = subprocess.run(cmd + ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
                                f"--timeout={timeout}s", "-s", script, f"http://{host}:{port}",
                                "--", *script_args],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    lat = {}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([0-9.]+)(us|ms|s)\b", out)
        v = float(m.group(1))
        lat[p] = v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "non2xx": int(m.group(1)) if m else 0,
            "socket_errors": errors.group(0) if errors else "", "out": out}
