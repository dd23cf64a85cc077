# SPDX-License-Identifier: Apache-2.0
"""Starts the real mrtc-transportd on loopback for integration tests and stops it cleanly.

Each daemon gets free ports, its own log file (kept and printed when a test fails), and is
stopped with SIGTERM; a daemon that does not exit in time is killed and the test fails.
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def metric_samples(text):
    """Prometheus text exposition @text as {(name, sorted label pairs): value}."""
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def post_json(url, body):
    """POST @body as JSON to a test server's URL; returns the decoded answer."""
    import json
    import urllib.request
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def get_json(url):
    import json
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def free_port(host="127.0.0.1"):
    """A free port, never one the testbed (test/testbed/testbed.py) has handed out already."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testbed"))
    from testbed import free_port as testbed_free_port
    return testbed_free_port(host)


class Daemon:
    def __init__(self, binary, env, name="mrtc", host="127.0.0.1"):
        # A testbed gives each of its daemons its own loopback address: a port picked here is
        # free only until the daemon binds it, and suites run in parallel.
        self.binary = binary
        self.host = host
        self.port = free_port(host)
        self.admin_port = free_port(host)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MRTC_BIND": f"{host}:{self.port}",
            "MRTC_ADMIN_BIND": f"{host}:{self.admin_port}",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.update(env)
        # The default store is SQLite in the state directory: each daemon gets its own, never
        # /var/lib (a test sets MRTC_STATE_DIR itself to share one across daemons or restarts).
        self.state_dir = None
        if "MRTC_STATE_DIR" not in self.env:
            self.state_dir = tempfile.mkdtemp(prefix=f"{name}-state-")
            self.env["MRTC_STATE_DIR"] = self.state_dir
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.proc = None

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen([self.binary], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _, _ = self.request("GET", "/healthz", admin=True)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not become healthy:\n{self.logs()}")

    def request(self, method, path, body=None, headers=None, admin=False, timeout=10):
        conn = http.client.HTTPConnection(self.host, self.admin_port if admin else self.port,
                                          timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def stop(self, timeout=15.0):
        """SIGTERM, then wait; returns the exit code (kills and raises if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"daemon ignored SIGTERM:\n{self.logs()}")

    def logs(self):
        self.log.flush()
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def close(self):
        try:
            self.stop()
        finally:
            self.log.close()
            os.unlink(self.log.name)
            if self.state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)


class HttpsTo:
    """HTTPS to a testbed name at a chosen address, verifying the certificate for that name
    with the testbed CA (the way a homeserver or client would, without touching /etc/hosts)."""

    def __init__(self, ca, name, address, port):
        import ssl
        self.ctx = ssl.create_default_context(cafile=ca)
        self.name, self.address, self.port = name, address, port

    def request(self, method, path, body=None, headers=None, timeout=30):
        import ssl  # noqa: F401
        conn = http.client.HTTPSConnection(self.name, self.port, context=self.ctx,
                                           timeout=timeout)
        conn.sock = self.ctx.wrap_socket(
            socket.create_connection((self.address, self.port), timeout=timeout),
            server_hostname=self.name)
        try:
            h = {"Host": self.name if self.port == 443 else f"{self.name}:{self.port}"}
            h.update(headers or {})
            if isinstance(body, (dict, list)):
                import json
                body = json.dumps(body)
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


class RemembersFailure:
    """unittest.TestCase mixin: cls.failed turns True once a test of the class failed or
    errored, so that tearDownClass can keep the testbed's logs (Testbed.stop(failed=...))."""

    failed = False

    def run(self, result=None):
        r = super().run(result)
        if result and (result.failures or result.errors):
            type(self).failed = True
        return r
