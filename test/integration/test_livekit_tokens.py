# SPDX-License-Identifier: Apache-2.0
"""Our LiveKit tokens checked by two independent implementations, PyJWT and the npm
livekit-server-sdk TokenVerifier, plus the things those libraries are lenient about (header alg,
padding, alphabet, integer times, each grant's JSON type); tokens signed with another secret,
expired or not yet valid are refused by both. Webhooks signed by livekit-server-sdk verify with
our code; tampered, wrongly signed or expired ones are refused.

Usage: test_livekit_tokens.py <lktool>
"""
import base64
import json
import os
import re
import subprocess
import sys
import time
import unittest

import jwt

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.join(os.path.dirname(HERE), "testbed")
LKTOOL = None
KEY, SECRET = "APIcross", "cross-secret-0123456789abcdefghij"
BOOL_GRANTS = ("roomJoin", "canPublish", "canSubscribe", "canUpdateOwnMetadata", "roomCreate",
               "hidden")


class Node:
    def __init__(self):
        self.p = subprocess.Popen(["node", os.path.join(TESTBED, "lk.mjs")], cwd=TESTBED,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def mint(kind, identity="J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU", room="O8437W3+jmz/room",
         now=None, ttl=3600, secret=SECRET):
    now = int(time.time()) if now is None else now
    r = subprocess.run([LKTOOL, "mint", KEY, secret, kind, identity, room, str(now), str(ttl)],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class Tokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node()

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def both_verify(self, token, secret=SECRET):
        py = jwt.decode(token, secret, algorithms=["HS256"], issuer=KEY, leeway=60)
        js = self.node.ask(op="verify", token=token, key=KEY, secret=secret)
        self.assertTrue(js["ok"], js)
        return py, js["claims"]

    def assert_both_refuse(self, token, secret=SECRET):
        with self.assertRaises(jwt.InvalidTokenError):
            jwt.decode(token, secret, algorithms=["HS256"], issuer=KEY, leeway=10)
        self.assertFalse(self.node.ask(op="verify", token=token, key=KEY, secret=secret)["ok"])

    def test_every_kind_verifies_with_exact_types(self):
        for kind, publish in (("local", True), ("federated", False), ("legacy-full", True),
                              ("legacy-restricted", False)):
            token = mint(kind)
            self.assertRegex(token, r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
            header = b64url_json(token.split(".")[0])
            self.assertEqual(header["alg"], "HS256")
            py, js = self.both_verify(token)
            for claims in (py, js):
                self.assertEqual(claims["sub"], "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU")
                self.assertEqual(claims["video"]["room"], "O8437W3+jmz/room")
                self.assertIs(claims["video"]["canPublish"], publish)
            self.assertIs(type(py["exp"]), int)
            self.assertIs(type(py["nbf"]), int)
            self.assertEqual(py["exp"] - py["nbf"], 3600)
            for g in BOOL_GRANTS:
                self.assertIs(type(py["video"][g]), bool, g)
            self.assertIs(py["video"]["roomCreate"], False)
            self.assertNotIn("canPublishData", py["video"])

    def test_wrong_secret_expired_and_not_yet_valid_refused(self):
        self.assert_both_refuse(mint("local"), secret="not-the-secret-at-all-0123456789")
        self.assert_both_refuse(mint("local", secret="not-the-secret-at-all-0123456789"))
        self.assert_both_refuse(mint("local", now=int(time.time()) - 7200, ttl=600))
        self.assert_both_refuse(mint("local", now=int(time.time()) + 3600))

    def test_unicode_identity_and_room_survive(self):
        token = mint("federated", identity="@ali/ce:exämple.com:DEV\"1", room="r😀")
        py, js = self.both_verify(token)
        self.assertEqual(py["sub"], "@ali/ce:exämple.com:DEV\"1")
        self.assertEqual(js["video"]["room"], "r😀")

    def test_webhooks_signed_by_livekit_sdk(self):
        body = json.dumps({"event": "participant_joined", "room": {"name": "ROOM1"},
                           "participant": {"identity": "ID1"}, "id": "EV_1"})
        tok = self.node.ask(op="webhook", key=KEY, secret=SECRET, body=body)["token"]
        now = str(int(time.time()))

        def ours(token, data, at=now):
            r = subprocess.run([LKTOOL, "webhook", KEY, SECRET, at, token], input=data,
                               capture_output=True, text=True, check=True)
            return json.loads(r.stdout)

        v = ours(tok, body)
        self.assertTrue(v["ok"], v)
        self.assertEqual((v["event"], v["room"], v["identity"]), (1, "ROOM1", "ID1"))
        self.assertEqual(ours(tok, body.replace("ROOM1", "ROOM2"))["err"], "bad signature")
        self.assertEqual(ours(tok, body + " ")["err"], "bad signature")
        wrong = self.node.ask(op="webhook", key=KEY, secret="other-secret", body=body)["token"]
        self.assertEqual(ours(wrong, body)["err"], "bad signature")
        self.assertEqual(ours(tok, body, at=str(int(time.time()) + 7200))["err"], "key expired")


if __name__ == "__main__":
    LKTOOL = sys.argv.pop(1)
    unittest.main(verbosity=2)
