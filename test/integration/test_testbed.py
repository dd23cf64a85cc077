# SPDX-License-Identifier: Apache-2.0
"""Smoke test proving each part of the testbed is real: dnsmasq answers SRV queries, nginx
serves each homeserver over TLS with the generated CA (and an untrusted client is refused),
python3-signedjson verifies the test homeserver's key response fetched through nginx, the test
SFU (livekit-server-sdk TokenVerifier) refuses a token signed with the wrong secret with a
plain-text 401, nginx routes the rtc paths to mrtc-transportd with the request target unchanged,
and the testbed comes up and down twice without leaving a process behind.

Usage: test_testbed.py <path to mrtc-transportd>
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.request

import jwt
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
from testbed import LIVEKIT_KEY, Testbed  # noqa: E402

BINARY = None


def https_get(tb, name, port, path):
    ctx = ssl.create_default_context(cafile=tb.ca)
    addr = tb.hs(name).address
    with socket.create_connection((addr, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def sfu_call(tb, name, method, body, token):
    req = urllib.request.Request(f"{tb.hs(name).sfu_url}/twirp/livekit.RoomService/{method}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def service_token(secret, grant):
    now = int(time.time())
    return jwt.encode({"iss": LIVEKIT_KEY, "nbf": now, "exp": now + 600, "video": grant},
                      secret, algorithm="HS256")


class TestbedSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY).start(with_daemons=True)

    @classmethod
    def tearDownClass(cls):
        cls.tb.stop()

    def test_dns_serves_srv_and_a_records(self):
        self.assertEqual(self.tb.dig("_matrix-fed._tcp.srv.test", "SRV"), ["10 5 8448 hs2.test."])
        self.assertEqual(self.tb.dig("_matrix._tcp.oldsrv.test", "SRV"), ["10 5 8448 hs2.test."])
        self.assertEqual(self.tb.dig("_matrix-fed._tcp.hs1.test", "SRV"), [])
        self.assertEqual(self.tb.dig("hs2.test"), [self.tb.hs("hs2.test").address])
        self.assertEqual(self.tb.dig("nosuchname.test"), [])

    def test_tls_through_nginx_with_generated_ca(self):
        for name in ("hs1.test", "hs2.test"):
            for port in (443, 8448):
                status, body = self.tb.curl(name, "/_matrix/client/v3/account/whoami", port=port)
                self.assertEqual(status, 401)
                self.assertEqual(json.loads(body)["errcode"], "M_MISSING_TOKEN")
        # Without the testbed CA the certificate is not trusted.
        addr = self.tb.hs("hs1.test").address
        r = subprocess.run(["curl", "-sS", "--resolve", f"hs1.test:443:{addr}",
                            "https://hs1.test/"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        # A name the certificate does not carry is refused.
        r = subprocess.run(["curl", "-sS", "--cacert", self.tb.ca, "--resolve",
                            f"wrongcert.test:8448:{self.tb.hs('hs2.test').address}",
                            "https://wrongcert.test:8448/"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)

    def test_signedjson_verifies_key_response(self):
        for name in ("hs1.test", "hs2.test"):
            status, body = https_get(self.tb, name, 8448, "/_matrix/key/v2/server")
            self.assertEqual(status, 200)
            doc = json.loads(body)
            self.assertEqual(doc["server_name"], name)
            (key_id, entry), = doc["verify_keys"].items()
            alg, version = key_id.split(":")
            vk = decode_verify_key_bytes(key_id, decode_base64(entry["key"]))
            verify_signed_json(doc, name, vk)  # raises if it does not verify
            doc["valid_until_ts"] += 1
            with self.assertRaises(Exception):
                verify_signed_json(doc, name, vk)

    def test_sfu_refuses_wrong_secret_with_plain_text_401(self):
        s = self.tb.hs("hs1.test")
        status, ctype, body = sfu_call(self.tb, "hs1.test", "CreateRoom", {"name": "r1"},
                                       service_token("wrong-secret", {"roomCreate": True}))
        self.assertEqual(status, 401)
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        status, ctype, body = sfu_call(self.tb, "hs1.test", "CreateRoom",
                                       {"name": "r1", "empty_timeout": 300},
                                       service_token(s.secret, {"roomCreate": True}))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["empty_timeout"], 300)
        status, ctype, body = sfu_call(self.tb, "hs1.test", "GetParticipant",
                                       {"room": "r1", "identity": "x"},
                                       service_token(s.secret, {"roomAdmin": True, "room": "r1"}))
        self.assertEqual((status, json.loads(body)["code"]), (404, "not_found"))
        status, ctype, body = sfu_call(self.tb, "hs1.test", "CreateRoom", {"name": "r2"},
                                       service_token(s.secret, {"roomJoin": True}))
        self.assertEqual((status, json.loads(body)["code"]), (401, "unauthenticated"))

    def test_nginx_routes_rtc_paths_to_daemon_unchanged(self):
        status, body = self.tb.curl("hs1.test", "/_matrix/client/v1/rtc/transports")
        # The daemon answers (the test homeserver does not know this path at all).
        self.assertEqual((status, json.loads(body)["errcode"]), (401, "M_MISSING_TOKEN"))
        # nginx matches the decoded path but forwards the target as sent: the daemon sees the
        # %74 still encoded.
        self.tb.curl("hs1.test", "/_matrix/client/v1/rtc/%74ransports?x=%2F")
        time.sleep(0.2)
        self.assertIn('"/_matrix/client/v1/rtc/%74ransports"', self.tb.hs("hs1.test").mrtc.logs())
        # Everything else goes to the homeserver, also unchanged.
        urllib.request.urlopen(urllib.request.Request(
            self.tb.hs("hs2.test").hs_url + "/_test/requests", method="POST"))
        self.tb.curl("hs2.test", "/_matrix/client/v3/rooms/%21r%3Ahs2.test/state/"
                     "m.room.member/%40a%3Ahs2.test", port=8448)
        with urllib.request.urlopen(self.tb.hs("hs2.test").hs_url + "/_test/requests") as r:
            paths = [q["path"] for q in json.load(r)["requests"]]
        self.assertIn("/_matrix/client/v3/rooms/%21r%3Ahs2.test/state/m.room.member/"
                      "%40a%3Ahs2.test", paths)

    def test_wellknown_delegation_served(self):
        status, body = self.tb.curl("wk.test", "/.well-known/matrix/server")
        self.assertEqual(json.loads(body), {"m.server": "hs2.test:8448"})


class TestbedLifecycle(unittest.TestCase):
    def test_up_down_twice_leaves_nothing(self):
        for _ in range(2):
            tb = Testbed(mrtc_binary=BINARY).start(with_daemons=True)
            pids = [p.pid for _, p, _ in tb.procs]
            d = tb.dir
            tb.stop()
            self.assertFalse(os.path.exists(d))
            for pid in pids:
                with self.assertRaises(ProcessLookupError):
                    os.kill(pid, 0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
