# SPDX-License-Identifier: Apache-2.0
"""What shipping clients see, on the testbed through nginx over TLS: the homeserver's own
whoami refusals (401 with soft_logout, 403 M_FORBIDDEN, 429 with its retry hint) reach the
client as the homeserver sent them; anything else is 502 M_UNKNOWN; refusals are not cached.

Usage: test_clients_compat.py <mrtc-transportd>
"""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.join(os.path.dirname(HERE), "testbed")
sys.path.insert(0, TESTBED)
sys.path.insert(0, HERE)
from harness import HttpsTo, post_json  # noqa: E402
from testbed import Testbed  # noqa: E402

BINARY = None
GET_TOKEN = "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/get_token"
TRANSPORTS = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"
DELEGATE = "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave"

SOFT = {"status": 401, "body": {"errcode": "M_UNKNOWN_TOKEN", "error": "Token expired",
                                "soft_logout": True}}
LOCKED = {"status": 403, "body": {"errcode": "M_FORBIDDEN", "error": "Account suspended"}}
SLOW = {"status": 429, "body": {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many",
                                "retry_after_ms": 7000}}
BROKEN = {"status": 418, "body": {"errcode": "M_TEAPOT", "error": "no"}}


def state():
    users = {
        "tok_alice": {"user_id": "@alice:hs1.test", "device_id": "ALICEDEV"},
        "tok_soft": {"user_id": "@soft:hs1.test", "whoami_error": SOFT},
        "tok_locked": {"user_id": "@locked:hs1.test", "whoami_error": LOCKED},
        "tok_slow": {"user_id": "@slow:hs1.test", "whoami_error": SLOW},
        "tok_broken": {"user_id": "@broken:hs1.test", "whoami_error": BROKEN},
        "tok_later": {"user_id": "@later:hs1.test", "device_id": "LATERDEV",
                      "whoami_error": LOCKED},
    }
    members = {u["user_id"]: "join" for u in users.values()}
    return {"hs1.test": {"users": users, "rooms": {"!local:hs1.test": {"members": members}}}}


class ClientsCompat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(mrtc_binary=BINARY, state=state(), livekit=True)  # CreateRoom: LiveKit
        cls.tb.start(with_daemons=True)  # the default store: each daemon its own
        hs1 = cls.tb.hs("hs1.test")
        cls.c1 = HttpsTo(cls.tb.ca, "hs1.test", hs1.address, 443)

    @classmethod
    def tearDownClass(cls):
        logs = cls.tb.hs("hs1.test").mrtc.logs()
        cls.tb.stop()
        assert "tok_" not in logs, "an access token reached the log"

    def ask(self, token, path=GET_TOKEN):
        body = {"url": "wss://sfu.hs1.test", "room_id": "!local:hs1.test",
                "slot_id": "m.call#ROOM", "member": {"id": "m1"}}
        if path == DELEGATE:
            body["delay_id"] = "syd_x"
        method = "GET" if path == TRANSPORTS else "POST"
        status, h, data = self.c1.request(method, path, body=body if method == "POST" else None,
                                          headers={"Authorization": f"Bearer {token}"})
        return status, h, json.loads(data)

    def test_401_soft_logout_passes_through(self):
        for path in (GET_TOKEN, TRANSPORTS, DELEGATE):
            status, _, doc = self.ask("tok_soft", path)
            self.assertEqual((status, doc), (401, SOFT["body"]), path)

    def test_403_stays_403_with_the_homeservers_errcode(self):
        for path in (GET_TOKEN, TRANSPORTS, DELEGATE):
            status, _, doc = self.ask("tok_locked", path)
            self.assertEqual((status, doc), (403, LOCKED["body"]), path)
            self.assertNotIn("soft_logout", doc)

    def test_429_keeps_its_retry_hint(self):
        for path in (GET_TOKEN, DELEGATE):
            status, h, doc = self.ask("tok_slow", path)
            self.assertEqual((status, doc.get("errcode"), doc.get("retry_after_ms")),
                             (429, "M_LIMIT_EXCEEDED", 7000), doc)
            self.assertEqual(h.get("retry-after"), "7")

    def test_other_answers_are_502_m_unknown(self):
        for path in (GET_TOKEN, TRANSPORTS, DELEGATE):
            status, _, doc = self.ask("tok_broken", path)
            self.assertEqual((status, doc.get("errcode")), (502, "M_UNKNOWN"), (path, doc))

    def test_refusals_are_not_cached(self):
        status, _, doc = self.ask("tok_later")
        self.assertEqual(status, 403, doc)
        hs = self.tb.hs("hs1.test")
        post_json(hs.hs_url + "/_test/patch",
                  {"token": "tok_later", "whoami_error": None})
        status, _, doc = self.ask("tok_later")
        self.assertEqual(status, 200, doc)
        self.assertIn("jwt", doc)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
