# SPDX-License-Identifier: Apache-2.0
"""HTTP skeleton of the real daemon: health, CORS preflight, 404/405 Matrix errors, body limit,
request ids, graceful shutdown with a request in flight, and the command-line modes.

Usage: test_http.py <path to mrtc-transportd>
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Daemon  # noqa: E402

BINARY = None
SECRET = "integration-secret-0123456789abcdef"
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization",
}
BASE_ENV = {"LIVEKIT_URL": "wss://sfu.example.org", "LIVEKIT_KEY": "devkey",
            "LIVEKIT_SECRET": SECRET}


class HttpSkeleton(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(BINARY, BASE_ENV).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        logs = cls.d.logs()
        cls.d.close()
        assert rc == 0, f"exit code {rc}"
        assert SECRET not in logs, "the LiveKit secret reached the log"

    def assert_cors(self, headers):
        for k, v in CORS.items():
            self.assertEqual(headers.get(k), v, k)

    def assert_matrix_error(self, status, headers, body, want_status, errcode):
        self.assertEqual(status, want_status)
        self.assertEqual(headers.get("content-type"), "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["errcode"], errcode)
        self.assertIsInstance(doc["error"], str)
        self.assert_cors(headers)

    def test_healthz_get_and_head(self):
        status, headers, body = self.d.request("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"status": "ok"})
        self.assert_cors(headers)
        status, headers, body = self.d.request("HEAD", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        status, headers, body = self.d.request("GET", "/healthz", admin=True)
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", headers)

    def test_options_preflight_any_path(self):
        for path in ("/_matrix/client/v1/rtc/transports", "/anything/else", "/healthz"):
            status, headers, body = self.d.request("OPTIONS", path, headers={
                "Origin": "https://call.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            self.assertIn(status, (200, 204))
            self.assertEqual(body, b"")
            self.assert_cors(headers)

    def test_unknown_path_is_404_unrecognized(self):
        for method in ("GET", "POST", "PUT"):
            self.assert_matrix_error(*self.d.request(method, "/no/such/path"), 404,
                                     "M_UNRECOGNIZED")
        self.assert_matrix_error(*self.d.request("GET", "/healthz/"), 404, "M_UNRECOGNIZED")

    def test_wrong_method_is_405_unrecognized(self):
        for method in ("POST", "PUT", "DELETE"):
            self.assert_matrix_error(*self.d.request(method, "/healthz", body=b"{}"), 405,
                                     "M_UNRECOGNIZED")
        status, _, body = self.d.request("POST", "/healthz", admin=True)
        self.assertEqual(status, 405)
        self.assertEqual(json.loads(body)["errcode"], "M_UNRECOGNIZED")

    def test_request_id_header_unique(self):
        ids = set()
        for _ in range(20):
            _, headers, _ = self.d.request("GET", "/healthz")
            rid = headers.get("x-request-id")
            self.assertRegex(rid, r"^[0-9a-f]{16}$")
            ids.add(rid)
        self.assertEqual(len(ids), 20)
        time.sleep(0.1)
        self.assertIn(f"[{rid}]", self.d.logs())

    def test_query_string_never_logged(self):
        self.d.request("GET", "/healthz?access_token=syt_very_secret_token")
        time.sleep(0.1)
        self.assertNotIn("syt_very_secret_token", self.d.logs())

    def test_huge_body_refused_without_crash(self):
        try:
            status, _, _ = self.d.request("POST", "/healthz", body=b"x" * (1024 * 1024))
            self.assertIn(status, (405, 413))
        except ConnectionError:
            pass  # libevent may close while the client is still sending: also a refusal
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)

    def test_oversized_headers_refused(self):
        status, _, _ = self.d.request("GET", "/healthz", headers={"X-Big": "a" * 20000})
        self.assertGreaterEqual(status, 400)
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)

    def test_garbage_request_line_does_not_kill(self):
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=5) as s:
            s.sendall(b"\x00\xff GARBAGE \r\n\r\n")
            s.recv(4096)
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)


class Lifecycle(unittest.TestCase):
    def test_sigterm_stops_accepting_and_exits_zero(self):
        d = Daemon(BINARY, BASE_ENV).start()
        try:
            # An idle keep-alive connection must not hold the shutdown up.
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.proc.wait(timeout=15), 0)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
            s.close()
            self.assertIn("shutting down", d.logs())
        finally:
            d.close()

    def test_sigint_exits_zero(self):
        d = Daemon(BINARY, BASE_ENV).start()
        try:
            d.proc.send_signal(signal.SIGINT)
            self.assertEqual(d.proc.wait(timeout=15), 0)
        finally:
            d.close()

    def test_port_in_use_fails_start(self):
        a = Daemon(BINARY, BASE_ENV).start()
        try:
            b = Daemon(BINARY, dict(BASE_ENV, MRTC_BIND=f"127.0.0.1:{a.port}"))
            with self.assertRaises(RuntimeError):
                b.start(timeout=5)
            self.assertNotEqual(b.proc.wait(timeout=5), 0)
            b.close()
        finally:
            a.close()


class CommandLine(unittest.TestCase):
    def run_cli(self, args, env):
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        full.update(env)
        return subprocess.run([BINARY] + args, env=full, capture_output=True, text=True,
                              timeout=30)

    def test_version(self):
        r = self.run_cli(["--version"], {})
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^mrtc-transportd \d+\.\d+\.\d+\n$")

    def test_help_lists_variables_and_hides_secrets(self):
        r = self.run_cli(["--help"], dict(BASE_ENV, MRTC_HOMESERVER_ADMIN_TOKEN="adm-secret"))
        self.assertEqual(r.returncode, 0)
        for name in ("MRTC_SERVER_NAME", "LIVEKIT_URL", "MRTC_FEDERATION_ALLOW_CIDRS",
                     "LIVEKIT_FULL_ACCESS_HOMESERVERS", "MRTC_LOG_LEVEL"):
            self.assertIn(name, r.stdout)
        self.assertNotIn(SECRET, r.stdout)
        self.assertNotIn("adm-secret", r.stdout)

    def test_check_config_ok_and_every_problem(self):
        r = self.run_cli(["--check-config"], BASE_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("lk-jwt-service drop-in", r.stdout)
        r = self.run_cli(["--check-config"], {
            "MRTC_SERVER_NAME": "bad name", "MRTC_TOKEN_TTL": "abc",
            "LIVEKIT_URL": "http://x", "LIVEKIT_INSECURE_SKIP_VERIFY_TLS": "true"})
        self.assertNotEqual(r.returncode, 0)
        for want in ("MRTC_SERVER_NAME:", "MRTC_TOKEN_TTL:", "LIVEKIT_URL:", "LIVEKIT_KEY:",
                     "LIVEKIT_SECRET:", "MRTC_HOMESERVER_URL:", "MRTC_SIGNING_KEY_FILE:",
                     "LIVEKIT_INSECURE_SKIP_VERIFY_TLS:"):
            self.assertIn(want, r.stderr)

    def test_homeserver_mode_with_key_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".key") as kf:
            kf.write("ed25519 a_1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n")
            kf.flush()
            env = dict(BASE_ENV, MRTC_SERVER_NAME="hs1.test",
                       MRTC_HOMESERVER_URL="http://127.0.0.1:8008",
                       MRTC_SIGNING_KEY_FILE=kf.name, MRTC_HOMESERVER_ADMIN_TOKEN="t")
            # No livekit_service_url for the transports answer: refused, naming the settings
            # and the shipping clients that would find no transport.
            r = self.run_cli(["--check-config"], env)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("MRTC_LIVEKIT_SERVICE_URL: set it or MRTC_PUBLIC_BASE_URL", r.stderr)
            self.assertIn("matrix-js-sdk 43, Element Call 0.26.1 and Element X", r.stderr)
            # Starting is refused the same way.
            r = self.run_cli([], env)
            self.assertEqual(r.returncode, 1)
            self.assertIn("MRTC_ALLOW_NO_SERVICE_URL=1", r.stderr)
            r = self.run_cli(["--check-config"], dict(env, MRTC_PUBLIC_BASE_URL="https://hs1.test"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("homeserver mode", r.stdout)
            r = self.run_cli(["--check-config"], dict(env, MRTC_ALLOW_NO_SERVICE_URL="1"))
            self.assertEqual(r.returncode, 0, r.stderr)
            # The opt-out runs, and says at warn what it costs, on every start.
            for _ in range(2):
                d = Daemon(BINARY, dict(env, MRTC_ALLOW_NO_SERVICE_URL="1"),
                           name="mrtc-optout").start()
                d.stop()
                warn = [line for line in d.logs().splitlines()
                        if "MRTC_ALLOW_NO_SERVICE_URL=1" in line]
                self.assertEqual(len(warn), 1, d.logs())
                self.assertIn("warn", warn[0].lower())
                self.assertIn("no usable transport", warn[0])

    def test_unknown_argument(self):
        r = self.run_cli(["--frobnicate"], BASE_ENV)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
