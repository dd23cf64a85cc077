# SPDX-License-Identifier: Apache-2.0
"""Delegated delayed leave, SFU webhooks and the membership watch on the testbed, with a real
SQLite file and a real Redis server as the job stores. The test homeserver records every
restart and send of a delayed event; the test SFU holds participants, records RemoveParticipant
and signs webhooks with livekit-server-sdk.

SFU: the stand-in (sfu.mjs) for every test here, because the delayed-leave state machine and
its stores are tested with participants present or gone, and webhooks sent, at an exact moment
(and some webhooks signed wrongly or stale), and with the record of RemoveParticipant calls;
a real server produces none of that on demand. The same flows against LiveKit's own server, with
real participants and its real webhooks, are in integration-livekit-real.

Usage: test_delayed.py <mrtc-transportd>
"""
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
sys.path.insert(0, HERE)
from harness import Daemon, post_json as post, get_json as get  # noqa: E402
from testbed import Testbed  # noqa: E402

BINARY = None
PATH = "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave"
USERS = {f"tok_{n}": {"user_id": f"@{n}:hs1.test", "device_id": f"DEV_{n}"}
         for n in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")}
STATE = {"hs1.test": {"users": USERS, "rooms": {"!call:hs1.test": {"members": {
    u["user_id"]: "join" for u in USERS.values()}}}}}
FAST = {"MRTC_DELAYED_POLL_MS": "300", "MRTC_DELAYED_CONNECT_WAIT": "3",
        "MRTC_MEMBERSHIP_RECHECK": "1", "MRTC_MEMBERSHIP_CACHE_TTL": "0",
        "MRTC_RATE_BURST": "1000", "MRTC_MIN_DELAY_MS": "1000"}


def lk_hash(*parts):
    data = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")




class Delayed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(state=STATE).start()
        cls.hs1 = cls.tb.hs("hs1.test")
        cls.redis = cls.tb.start_redis()
        cls.db = cls.tb.path("jobs.db")
        cls.daemons = []
        cls.d = cls.daemon(MRTC_STORE=f"sqlite:{cls.db}")

    @classmethod
    def daemon(cls, **env):
        e = cls.tb.mrtc_env(cls.hs1, **FAST)
        e.update(env)
        d = Daemon(BINARY, e, name="mrtc-delayed", host=cls.tb.svc).start()
        cls.daemons.append(d)
        return d

    @classmethod
    def tearDownClass(cls):
        problems = []
        for d in cls.daemons:
            rc = d.stop()
            logs = d.logs()
            if rc not in (0, -9, None):
                problems.append(f"exit {rc}")
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in logs:
                    problems.append(marker)
            if "de_" in logs:
                problems.append("a delay_id reached the log")
            d.close()
        cls.tb.stop()
        assert not problems, problems

    # -- helpers ------------------------------------------------------------------------------
    def user(self, name):
        return USERS[f"tok_{name}"]

    def delayed_event(self, delay_id, name, delay=2000, state="scheduled",
                      room_id="!call:hs1.test"):
        post(self.hs1.hs_url + "/_test/delayed", {"delay_id": delay_id, "delay": delay,
                                                  "user_id": self.user(name)["user_id"],
                                                  "state": state, "room_id": room_id})

    def actions(self, delay_id):
        ev = get(self.hs1.hs_url + "/_test/delayed").get(delay_id, {})
        return [a["action"] for a in ev.get("actions", [])], ev

    def delegate(self, name, delay_id, member="m1", d=None, **extra):
        body = {"url": "wss://sfu.hs1.test", "room_id": "!call:hs1.test",
                "slot_id": "m.call#ROOM", "member": {"id": member}, "delay_id": delay_id}
        body.update(extra)
        body = {k: v for k, v in body.items() if v is not None}  # url=None: an older client
        status, _, data = (d or self.d).request("POST", PATH, body=json.dumps(body),
                                               headers={"Authorization": f"Bearer tok_{name}"})
        return status, json.loads(data)

    def ident(self, name, member="m1"):
        u = self.user(name)
        return lk_hash(u["user_id"], u["device_id"], member)

    ROOM = lk_hash("!call:hs1.test", "m.call#ROOM")

    def participant(self, name, present, member="m1"):
        post(self.hs1.sfu_url + "/_test/participant",
             {"room": self.ROOM, "identity": self.ident(name, member), "present": present})

    def webhook(self, event, name, member="m1", d=None, **kw):
        body = {"event": event, "room": {"name": self.ROOM},
                "participant": {"identity": self.ident(name, member)}}
        return post(self.hs1.sfu_url + "/_test/webhook",
                    dict({"url": f"http://{(d or self.d).host}:{(d or self.d).port}/sfu_webhook",
                          "event": body}, **kw))

    def wait_for(self, cond, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.1)
        return cond()

    # -- tests --------------------------------------------------------------------------------
    def test_connects_then_leaves_sent_once(self):
        self.delayed_event("de_a", "alice")
        self.assertEqual(self.delegate("alice", "de_a"), (200, {}))
        self.participant("alice", True)
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_a")[0]))
        time.sleep(0.8)
        self.participant("alice", False)
        self.assertEqual(self.webhook("participant_left", "alice")["status"], 200)
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_a")[0]))
        time.sleep(1.0)
        acts, ev = self.actions("de_a")
        self.assertEqual(acts.count("send"), 1)
        self.assertEqual(ev["state"], "sent")

    def test_never_connects_sent_after_wait(self):
        self.delayed_event("de_b", "bob", delay=10000)
        start = time.monotonic()
        self.assertEqual(self.delegate("bob", "de_b")[0], 200)
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_b")[0], timeout=8))
        self.assertGreaterEqual(time.monotonic() - start, 2.5)  # MRTC_DELAYED_CONNECT_WAIT=3

    def test_connection_aborted(self):
        self.delayed_event("de_c", "carol", delay=10000)
        self.assertEqual(self.delegate("carol", "de_c")[0], 200)
        self.participant("carol", True)
        self.assertTrue(self.wait_for(lambda: self.actions("de_c")[0].count("restart") >= 1))
        time.sleep(0.5)  # seen as connected by a poll
        self.webhook("participant_connection_aborted", "carol")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_c")[0], timeout=3))

    def test_already_sent_elsewhere_ends_job(self):
        self.delayed_event("de_d", "dave", delay=1500)
        self.assertEqual(self.delegate("dave", "de_d")[0], 200)
        self.participant("dave", True)
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_d")[0]))
        self.delayed_event("de_d", "dave", delay=1500, state="sent")  # sent by someone else
        time.sleep(2.5)
        acts, _ = self.actions("de_d")
        self.assertNotIn("send", acts)
        self.assertIn("delayed event gone", self.d.logs())

    def test_restarts_at_80_percent(self):
        self.delayed_event("de_e", "erin", delay=1500)
        self.assertEqual(self.delegate("erin", "de_e")[0], 200)
        self.participant("erin", True)
        self.assertTrue(self.wait_for(lambda: self.actions("de_e")[0].count("restart") >= 4,
                                      timeout=10))
        _, ev = self.actions("de_e")
        times = [a["time"] for a in ev["actions"] if a["action"] == "restart"]
        gaps = [b - a for a, b in zip(times[1:], times[2:])]
        for g in gaps:
            self.assertAlmostEqual(g, 1.2, delta=0.35)  # 80 % of 1.5 s
        self.participant("erin", False)
        self.webhook("participant_left", "erin")

    def test_newer_delegation_replaces(self):
        self.delayed_event("de_f1", "frank", delay=1500)
        self.delayed_event("de_f2", "frank", delay=1500)
        self.assertEqual(self.delegate("frank", "de_f1")[0], 200)
        self.participant("frank", True)
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_f1")[0]))
        self.assertEqual(self.delegate("frank", "de_f2")[0], 200)
        n1 = len(self.actions("de_f1")[0])
        self.assertTrue(self.wait_for(lambda: self.actions("de_f2")[0].count("restart") >= 2))
        self.assertEqual(len(self.actions("de_f1")[0]), n1)  # the old job stopped
        self.participant("frank", False)
        self.webhook("participant_left", "frank")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_f2")[0]))
        self.assertNotIn("send", self.actions("de_f1")[0])

    def test_refusals(self):
        self.delayed_event("de_g", "grace")
        self.assertEqual(self.delegate("heidi", "de_g")[1]["errcode"], "M_INVALID_PARAM")
        self.assertEqual(self.delegate("grace", "de_nope")[1]["errcode"], "M_INVALID_PARAM")
        self.assertEqual(self.delegate("grace", "de_g", url="wss://elsewhere")[1]["errcode"],
                         "M_INVALID_PARAM")
        status, _, data = self.d.request("POST", PATH, body="{}",
                                         headers={"Authorization": "Bearer tok_grace"})
        self.assertEqual((status, json.loads(data)["errcode"]), (400, "M_BAD_JSON"))
        status, _, data = self.d.request("POST", PATH, body="{}")
        self.assertEqual(status, 401)

    def test_bad_webhooks_refused_and_change_nothing(self):
        self.delayed_event("de_h", "heidi", delay=10000)
        self.assertEqual(self.delegate("heidi", "de_h")[0], 200)
        self.participant("heidi", True)
        time.sleep(0.8)
        self.assertEqual(self.webhook("participant_left", "heidi", secret="wrong")["status"], 401)
        self.assertEqual(self.webhook("participant_left", "heidi", tamper=True)["status"], 401)
        self.assertEqual(self.webhook("participant_left", "heidi", ttl=-120)["status"], 401)
        time.sleep(1.0)
        self.assertNotIn("send", self.actions("de_h")[0])
        self.participant("heidi", False)
        self.webhook("participant_left", "heidi")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_h")[0]))

    def test_kicked_user_removed_from_sfu(self):
        post(self.hs1.sfu_url + "/_test/calls", {})
        body = {"url": "wss://sfu.hs1.test", "room_id": "!call:hs1.test",
                "slot_id": "m.call#ROOM", "member": {"id": "m1"}}
        status, _, _ = self.d.request("POST", "/_matrix/client/v1/rtc/livekit/get_token",
                                      body=json.dumps(body),
                                      headers={"Authorization": "Bearer tok_ivan"})
        self.assertEqual(status, 200)
        self.participant("ivan", True)
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": "@ivan:hs1.test", "membership": "leave"})
        start = time.monotonic()

        def removed():
            calls = get(self.hs1.sfu_url + "/_test/calls")["calls"]
            return any(c["method"] == "RemoveParticipant" and c["body"] and
                       c["body"].get("identity") == self.ident("ivan") for c in calls)
        self.assertTrue(self.wait_for(removed, timeout=5))
        self.assertLess(time.monotonic() - start, 3.0)  # MRTC_MEMBERSHIP_RECHECK=1

    def test_sigkill_mid_job_resumes_from_sqlite(self):
        self.delayed_event("de_k", "alice", delay=1500)
        self.assertEqual(self.delegate("alice", "de_k", member="mk")[0], 200)
        self.participant("alice", True, member="mk")
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_k")[0]))
        time.sleep(0.5)
        self.d.proc.send_signal(signal.SIGKILL)
        self.d.proc.wait()
        self.d.start()
        self.assertIn("taking up the job", self.d.logs())
        n = self.actions("de_k")[0].count("restart")
        self.assertTrue(self.wait_for(lambda: self.actions("de_k")[0].count("restart") > n))
        self.participant("alice", False, member="mk")  # leaves; the poll notices
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_k")[0]))
        time.sleep(0.8)
        self.assertEqual(self.actions("de_k")[0].count("send"), 1)

    def test_redis_takeover_sends_exactly_once(self):
        a = self.daemon(MRTC_STORE=self.redis, MRTC_LEASE_TTL_MS="1500")
        b = self.daemon(MRTC_STORE=self.redis, MRTC_LEASE_TTL_MS="1500")
        self.delayed_event("de_r", "bob", delay=1500)
        self.assertEqual(self.delegate("bob", "de_r", member="mr", d=a)[0], 200)
        self.participant("bob", True, member="mr")
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_r")[0]))
        time.sleep(0.5)
        self.assertNotIn("taking up the job", b.logs())  # A holds it
        # Another daemon takes it up: B, or one an earlier test left running on this Redis.
        alive = [x for x in self.daemons if x is not a and x.proc and x.proc.poll() is None]
        before = [x.logs().count("taking up the job for @bob") for x in alive]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        self.assertTrue(self.wait_for(lambda: any(
            x.logs().count("taking up the job for @bob") > n for x, n in zip(alive, before)),
            timeout=6), b.logs())
        self.participant("bob", False, member="mr")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_r")[0]))
        time.sleep(1.5)
        self.assertEqual(self.actions("de_r")[0].count("send"), 1)

    # -- MSC4195 newest rules and MSC4140 dialects ---------------------------------------------
    def tearDown(self):
        post(self.hs1.hs_url + "/_test/delayed_mode", {})

    def test_other_room_refused(self):
        self.delayed_event("de_room", "grace", room_id="!other:hs1.test")
        status, body = self.delegate("grace", "de_room")
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))
        self.assertIn("another room", body["error"])
        self.assertEqual(self.actions("de_room")[0], [])

    def test_member_id_shape_and_missing_url(self):
        self.delayed_event("de_shape", "alice", delay=10000)
        status, body = self.delegate("alice", "de_shape", member=None, member_id="mshape",
                                     url=None)
        self.assertEqual((status, body), (200, {}))
        self.assertIn("delayed leave of @alice:hs1.test in !call:hs1.test delegated",
                      self.d.logs())

    def test_below_minimum_refused(self):
        self.delayed_event("de_short", "grace", delay=999)  # MRTC_MIN_DELAY_MS=1000
        status, body = self.delegate("grace", "de_short")
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))
        self.assertIn("minimum", body["error"])
        self.assertEqual(self.actions("de_short")[0], [])

    def test_default_minimum_is_one_hour(self):
        e = self.tb.mrtc_env(self.hs1, **{k: v for k, v in FAST.items()
                                          if k != "MRTC_MIN_DELAY_MS"})
        e["MRTC_STORE"] = "sqlite:" + self.tb.path("jobs-min.db")
        d = Daemon(BINARY, e, name="mrtc-delayed-min", host=self.tb.svc).start()
        self.daemons.append(d)
        self.delayed_event("de_hour", "grace", delay=3599999)
        status, body = self.delegate("grace", "de_hour", d=d)
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))

    def dialect_round(self, tag, name, mode, member, **daemon_env):
        post(self.hs1.hs_url + "/_test/delayed_mode", mode)
        d = self.daemon(MRTC_STORE="sqlite:" + self.tb.path(f"jobs-{tag}.db"), **daemon_env)
        did = f"de_{tag}"
        self.delayed_event(did, name, delay=1500)
        self.assertEqual(self.delegate(name, did, member=member, d=d, url=None), (200, {}))
        self.participant(name, True, member=member)
        self.assertTrue(self.wait_for(lambda: self.actions(did)[0].count("restart") >= 2))
        self.participant(name, False, member=member)  # no webhook: the poll notices
        self.assertTrue(self.wait_for(lambda: "send" in self.actions(did)[0]))
        time.sleep(1.0)
        acts, ev = self.actions(did)
        self.assertEqual(acts.count("send"), 1)
        self.assertEqual(ev["state"], "sent")
        return d, ev

    def test_old_dialect_path_form(self):
        self.dialect_round("oldpath", "dave", {"dialect": "old", "form": "path"}, "mo")

    def test_new_dialect_body_form_single_lookup(self):
        d, ev = self.dialect_round("newbody", "erin",
                                   {"dialect": "new", "form": "body", "single": True}, "mn")
        self.assertTrue(all(not r["query"] for r in ev["requests"]))  # no token: sent as before
        gets = [r for r in get(self.hs1.hs_url + "/_test/requests")["requests"]
                if r["method"] == "GET" and r["path"].endswith("/delayed_events/de_newbody")]
        self.assertTrue(gets)  # the single-event lookup was used

    def test_new_dialect_authenticated_as_user(self):
        _, ev = self.dialect_round("newauth", "frank",
                                   {"dialect": "new", "form": "both", "single": True,
                                    "auth": True}, "ma",
                                   MRTC_APPSERVICE_TOKEN=self.hs1.appservice_token)
        self.assertTrue(all(r["query"].get("user_id") == ["@frank:hs1.test"]
                            for r in ev["requests"]))

    def test_conflict_ends_job(self):
        post(self.hs1.hs_url + "/_test/delayed_mode", {"dialect": "new"})
        d = self.daemon(MRTC_STORE="sqlite:" + self.tb.path("jobs-409.db"))
        self.delayed_event("de_409", "heidi", delay=1500)
        self.assertEqual(self.delegate("heidi", "de_409", member="m9", d=d)[0], 200)
        self.participant("heidi", True, member="m9")
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_409")[0]))
        self.delayed_event("de_409", "heidi", delay=1500, state="finalised")
        self.assertTrue(self.wait_for(lambda: "finalised the other way" in d.logs(), timeout=4))
        time.sleep(2.5)  # more than two restart periods
        _, ev = self.actions("de_409")
        self.assertEqual(len(ev.get("refused", [])), 1)
        self.assertEqual(d.logs().count("finalised the other way"), 1)
        self.participant("heidi", False, member="m9")

    def test_failing_homeserver_does_not_drop_connected_participant(self):
        """restart fails for longer than MRTC_DELAYED_CONNECT_WAIT (3 s) while the participant
        stays on the SFU: the job keeps polling and sends no leave (issue 16 finding 10)."""
        d = self.daemon(MRTC_STORE="sqlite:" + self.tb.path("jobs-500.db"))
        self.delayed_event("de_500", "carol", delay=600000)
        self.participant("carol", True, member="m5")
        post(self.hs1.hs_url + "/_test/delayed_mode", {"fail_management": True})
        try:
            self.assertEqual(self.delegate("carol", "de_500", member="m5", d=d)[0], 200)
            time.sleep(5.0)
        finally:
            post(self.hs1.hs_url + "/_test/delayed_mode", {})
        self.assertNotIn("never came", d.logs())
        self.assertIn("participant of @carol:hs1.test is on the SFU", d.logs())
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_500")[0], timeout=6))
        self.assertNotIn("send", self.actions("de_500")[0])
        self.participant("carol", False, member="m5")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_500")[0]))
        time.sleep(0.8)
        self.assertEqual(self.actions("de_500")[0].count("send"), 1)

    def test_gives_up_after_failing_longer_than_delay(self):
        """Issue 16 finding 3: a job whose homeserver fails every management call for longer
        than the delay plus 60 s is removed from the store, logged once, and calls no more."""
        db = self.tb.path("jobs-giveup.db")
        d = self.daemon(MRTC_STORE="sqlite:" + db)
        self.delayed_event("de_giveup", "carol", delay=1000)
        post(self.hs1.hs_url + "/_test/delayed_mode", {"fail_management": True})
        try:
            self.assertEqual(self.delegate("carol", "de_giveup", member="m6", d=d,
                                           delay_timeout=1000)[0], 200)
            start = time.monotonic()
            self.assertTrue(self.wait_for(lambda: "giving up" in d.logs(), timeout=90),
                            d.logs()[-2000:])
            gave_up = time.monotonic() - start

            def calls():
                return sum("de_giveup" in r["path"] for r in
                           get(self.hs1.hs_url + "/_test/requests")["requests"])
            made = calls()
            time.sleep(3)
            self.assertEqual(calls(), made)  # no call since
        finally:
            post(self.hs1.hs_url + "/_test/delayed_mode", {})
        logs = d.logs()
        print(f"job failing since delegation gave up after {gave_up:.1f} s (delay 1 s + 60 s), "
              f"{made} management calls")
        self.assertEqual(logs.count("giving up"), 1)
        self.assertGreater(gave_up, 60)
        self.assertLess(gave_up, 61 + 15)
        import sqlite3
        db = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], 0)
        finally:
            db.close()

    def test_store_round_trips_every_field(self):
        """Both stores hold every job field, the `guarded` flag included (issue 16 finding 8)."""
        import socket
        import sqlite3
        self.delayed_event("de_st", "ivan", delay=600000)
        a = self.daemon(MRTC_STORE=self.redis)
        for d in (self.d, a):
            self.assertEqual(self.delegate("ivan", "de_st", member="ms", d=d)[0], 200)
        key = lk_hash("!call:hs1.test", "m.call#ROOM", "ms", "@ivan:hs1.test")
        want = {"user_id": "@ivan:hs1.test", "room_id": "!call:hs1.test", "room_name": self.ROOM,
                "identity": self.ident("ivan", "ms"), "delay_id": "de_st",
                "cs_api_url": self.hs1.hs_url, "delay_ms": "600000", "state": "0",
                "guarded": "0"}
        row = sqlite3.connect(self.db).execute(
            "SELECT user_id, room_id, room_name, identity, delay_id, cs_api_url, delay_ms,"
            " state, guarded, created_ms FROM jobs WHERE key = ?", (key,)).fetchone()
        self.assertIsNotNone(row)
        self.assertEqual(dict(zip(want, map(str, row[:9]))), want)
        self.assertAlmostEqual(row[9] / 1000, time.time(), delta=30)
        host, port = self.redis[len("redis://"):].split("/")[0].rsplit(":", 1)
        name = "mrtc:{hs1.test}:job:" + key  # the homeserver's namespace
        cmd = f"*2\r\n$7\r\nHGETALL\r\n${len(name)}\r\n{name}\r\n"
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(cmd.encode())
            time.sleep(0.3)
            data = sock.recv(65536).decode()
        items = [ln for i, ln in enumerate(data.split("\r\n")[1:]) if i % 2 == 1]
        got = dict(zip(items[0::2], items[1::2]))
        self.assertEqual({k: got.get(k) for k in want}, want)
        self.assertAlmostEqual(int(got["created_ms"]) / 1000, time.time(), delta=30)

    def test_store_none_unknown_on_every_delegation_path(self):
        """MRTC_STORE=none switches delegation off: 404 M_UNRECOGNIZED on the client-server
        paths (both) and the legacy one, /readyz and --check-config say "none"."""
        d = self.daemon(MRTC_STORE="none")
        for path in (PATH, "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave",
                     "/delegate_delayed_leave"):
            status, _, data = d.request("POST", path, body="{}",
                                        headers={"Authorization": "Bearer tok_alice"})
            self.assertEqual((status, json.loads(data)["errcode"]), (404, "M_UNRECOGNIZED"),
                             path)
        status, _, data = d.request("GET", "/readyz", admin=True)
        self.assertEqual(json.loads(data)["store"]["kind"], "none")
        r = subprocess.run([BINARY, "--check-config"], env=d.env, capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("store: none (delegate_delayed_leave off)", r.stdout)
        self.assertEqual(d.stop(), 0)

    def test_default_store_job_survives_restart(self):
        """No MRTC_STORE: SQLite in MRTC_STATE_DIR (created 0700, the file 0600); a delegated
        job survives a restart and its leave is sent exactly once."""
        state = self.tb.path("default-state")
        d = self.daemon(MRTC_STATE_DIR=state)
        self.assertEqual(os.stat(state).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(os.path.join(state, "store.db")).st_mode & 0o777, 0o600)
        status, _, data = d.request("GET", "/readyz", admin=True)
        store = json.loads(data)["store"]
        self.assertEqual((store["kind"], store["spec"]),
                         ("sqlite", f"sqlite:{state}/store.db"))
        r = subprocess.run([BINARY, "--check-config"], env=d.env, capture_output=True,
                           text=True)
        self.assertIn(f"store: sqlite:{state}/store.db (default, in MRTC_STATE_DIR)", r.stdout)
        self.delayed_event("de_def", "bob", delay=1500)
        self.assertEqual(self.delegate("bob", "de_def", member="md", d=d)[0], 200)
        self.participant("bob", True, member="md")
        self.assertTrue(self.wait_for(lambda: "restart" in self.actions("de_def")[0]))
        self.assertEqual(d.stop(), 0)  # a graceful restart: the job stays in the store
        d.start()
        self.assertTrue(self.wait_for(lambda: "taking up the job" in d.logs()), d.logs())
        n = self.actions("de_def")[0].count("restart")
        self.assertTrue(self.wait_for(lambda: self.actions("de_def")[0].count("restart") > n))
        self.participant("bob", False, member="md")
        self.assertTrue(self.wait_for(lambda: "send" in self.actions("de_def")[0]))
        time.sleep(1.5)
        self.assertEqual(self.actions("de_def")[0].count("send"), 1)

    def admit(self, name, d):
        """@name, joined to the room, gets a token from @d (admitted to its watch) and is on
        the SFU; the SFU's record of calls starts afresh. Their identity."""
        post(self.hs1.sfu_url + "/_test/calls", {})
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": self.user(name)["user_id"],
                                                "membership": "join"})
        body = {"url": "wss://sfu.hs1.test", "room_id": "!call:hs1.test",
                "slot_id": "m.call#ROOM", "member": {"id": "m1"}}
        status, _, _ = d.request("POST", "/_matrix/client/v1/rtc/livekit/get_token",
                                 body=json.dumps(body),
                                 headers={"Authorization": f"Bearer tok_{name}"})
        self.assertEqual(status, 200)
        self.participant(name, True)
        return self.ident(name)

    def kicked_after_restart(self, name, d, rows):
        """@name gets a token from @d (admitted to the watch), @d stops, @name leaves the room,
        @d starts again: the watch, reloaded from the store, removes them from the SFU within
        two watch periods (MRTC_MEMBERSHIP_RECHECK=2). @rows() lists the stored admissions."""
        ident = self.admit(name, d)
        # Written within WATCH_FLUSH_MS (250 ms), and on a graceful stop at the latest.
        self.assertTrue(self.wait_for(lambda: (self.ROOM, ident) in rows(), timeout=5))
        self.assertEqual(d.stop(), 0)
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": self.user(name)["user_id"],
                                                "membership": "leave"})
        d.start()
        start = time.monotonic()

        def removed():
            calls = get(self.hs1.sfu_url + "/_test/calls")["calls"]
            return any(c["method"] == "RemoveParticipant" and c["body"] and
                       c["body"].get("identity") == ident for c in calls)
        self.assertTrue(self.wait_for(removed, timeout=10), d.logs())
        took = time.monotonic() - start
        print(f"\n{name} removed {took:.2f} s after the restart", file=sys.stderr)
        self.assertLess(took, 2 * 2 + 1.0)  # two watch periods, and a margin for the call
        self.assertNotIn((self.ROOM, ident), rows())  # kicked: no longer watched
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": self.user(name)["user_id"],
                                                "membership": "join"})
        self.participant(name, False)
        return took

    def test_admitted_participant_kicked_after_restart_sqlite(self):
        """The default store keeps the watch's admitted set (table `watch`)."""
        import sqlite3
        state = self.tb.path("watch-state")
        d = self.daemon(MRTC_STATE_DIR=state, MRTC_MEMBERSHIP_RECHECK="2")

        def rows():
            with sqlite3.connect(os.path.join(state, "store.db")) as db:
                got = db.execute("SELECT room_name, identity, room_id, user_id, expires_ms,"
                                 " sfu_url FROM watch").fetchall()
            for r in got:  # every field round-trips
                self.assertEqual(r[2], "!call:hs1.test")
                self.assertEqual(r[5], "wss://sfu.hs1.test")
                self.assertTrue(r[3].startswith("@"))
                self.assertAlmostEqual(r[4] / 1000, time.time() + 3600, delta=120)
            return [(r[0], r[1]) for r in got]
        self.kicked_after_restart("frank", d, rows)

    def test_admitted_participant_kicked_after_restart_redis(self):
        """Redis keeps the admitted set too (hash mrtc:{hs1.test}:watch, expiries in
        mrtc:{hs1.test}:watch:expiry)."""
        import socket
        host, port = self.redis[len("redis://"):].split("/")[0].rsplit(":", 1)

        def redis(*args):
            cmd = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(cmd.encode())  # the testbed's Redis URL names db 0
                time.sleep(0.2)
                return sock.recv(1 << 20).decode()

        def rows():
            data = redis("HGETALL", "mrtc:{hs1.test}:watch").split("\r\n")
            items = [ln for i, ln in enumerate(data[1:]) if i % 2 == 1]
            out = []
            for f, v in zip(items[0::2], items[1::2]):
                room_name, rest = f.split("|", 1)
                sfu_url, identity = rest.split("\x1f", 1)
                self.assertEqual(sfu_url, "wss://sfu.hs1.test")
                self.assertEqual(v.split("\x1f")[0], "!call:hs1.test")
                out.append((room_name, identity))
            return out
        d = self.daemon(MRTC_STORE=self.redis, MRTC_MEMBERSHIP_RECHECK="2")
        self.kicked_after_restart("grace", d, rows)

    def test_watch_shared_kick_after_sigkill(self):
        """Two daemons on one Redis (issue 19): ivan is admitted by A, A is killed with SIGKILL,
        ivan leaves the room: B, which reads the admitted set before each sweep and checks
        each participant under a lease per check, removes him from the SFU within two watch
        periods (MRTC_MEMBERSHIP_RECHECK=2); or another survivor does, when an earlier test
        left a daemon with a short period on this Redis (any daemon but A counts)."""
        name = "ivan"
        # An earlier test's removal of ivan (same identity) must not count as this one's.
        post(self.hs1.sfu_url + "/_test/calls", {})
        a = self.daemon(MRTC_STORE=self.redis, MRTC_MEMBERSHIP_RECHECK="2")
        b = self.daemon(MRTC_STORE=self.redis, MRTC_MEMBERSHIP_RECHECK="2")
        ident = self.admit(name, a)
        line = f"{self.user(name)['user_id']} is no longer joined"
        alive = [x for x in self.daemons if x is not a and x.proc and x.proc.poll() is None]
        before = [x.logs().count(line) for x in alive]
        # Stored within WATCH_FLUSH_MS; both daemons sweep meanwhile (one checks him).
        time.sleep(2.5)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": self.user(name)["user_id"],
                                                "membership": "leave"})
        start = time.monotonic()

        def removed():
            calls = get(self.hs1.sfu_url + "/_test/calls")["calls"]
            return any(c["method"] == "RemoveParticipant" and c["body"] and
                       c["body"].get("identity") == ident for c in calls)
        self.assertTrue(self.wait_for(removed, timeout=15), b.logs())
        took = time.monotonic() - start
        print(f"\n{name} (admitted by a daemon killed) removed by the other {took:.2f} s after "
              "leaving", file=sys.stderr)
        self.assertLess(took, 2 * 2 + 1.5)  # two watch periods, and a margin for the call
        # A surviving daemon removed him (logged once the SFU answered, just after it recorded
        # the call): B, or one an earlier test left running on this Redis with a short period.
        self.assertTrue(self.wait_for(lambda: any(
            x.logs().count(line) > n for x, n in zip(alive, before)), timeout=5), b.logs())
        post(self.hs1.hs_url + "/_test/patch", {"room": "!call:hs1.test",
                                                "member": self.user(name)["user_id"],
                                                "membership": "join"})
        self.participant(name, False)
        b.stop()

    def test_state_dir_not_writable_is_a_clear_error(self):
        bad = self.tb.path("jobs.db", "state")  # under a file: cannot be a directory
        e = dict(self.tb.mrtc_env(self.hs1), MRTC_STATE_DIR=bad, PATH=os.environ["PATH"])
        r = subprocess.run([BINARY, "--check-config"], env=e, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"MRTC_STATE_DIR: {bad}", r.stderr)
        r = subprocess.run([BINARY], env=e, capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"the state directory {bad} (MRTC_STATE_DIR)", r.stderr)
        self.assertIn("MRTC_STORE=none", r.stderr)

if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
