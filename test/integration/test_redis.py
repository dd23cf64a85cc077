# SPDX-License-Identifier: Apache-2.0
"""Redis as operators run it: a password and an ACL user (in MRTC_STORE, percent-encoded, or
from a file), refused credentials (not ready, one clear log line, no password anywhere), and a
Sentinel failover (one master, one replica, three sentinels; the master is stopped with SIGSTOP
and the replica promoted) with delegated jobs running: every leave event is sent exactly once.
Two homeservers' daemons on one Redis database: each drives only its own jobs (namespaced keys),
even while the other homeserver's daemon is dead, and a previous version's un-namespaced records
go to the homeserver of their user. Real redis-server and redis-sentinel on loopback, free ports, everything stopped at the end.

Usage: test_redis.py <mrtc-transportd>
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
sys.path.insert(0, HERE)
from harness import Daemon, free_port, get_json, post_json  # noqa: E402
import test_delayed  # noqa: E402
from test_delayed import STATE, USERS, lk_hash  # noqa: E402
from testbed import Testbed, wait_for  # noqa: E402

BINARY = None
# hs2.test's users, in its own call room: the second homeserver on the shared database.
USERS2 = {f"tok_{n}": {"user_id": f"@{n}:hs2.test", "device_id": f"DEV_{n}"}
          for n in ("xavier", "yara", "zed")}
STATE2 = dict(STATE, **{"hs2.test": {"users": USERS2, "rooms": {"!call:hs2.test": {"members": {
    u["user_id"]: "join" for u in USERS2.values()}}}}})
NAMES = [u["user_id"][1:].split(":")[0] for u in USERS.values()]  # alice ... ivan
FAST = {"MRTC_DELAYED_POLL_MS": "300", "MRTC_DELAYED_CONNECT_WAIT": "20",
        "MRTC_RATE_BURST": "1000", "MRTC_MIN_DELAY_MS": "1000", "MRTC_READINESS_INTERVAL": "1"}

ADMIN_PW = "adm1n-Pw-7c4e"             # requirepass: the default user (and the sentinels' view)
USER_PW = "s3cr:t/@%x-9d2a"           # the ACL user's password: ':', '/', '@', '%' in it
SENTINEL_PW = "sentinel-Pw-41b8"      # the sentinels' own password
# What the daemon needs and nothing more: its keys, reads, writes, scripts, PING, SELECT, ROLE.
ACL = ["mrtc", "on", ">" + USER_PW, "~mrtc:*", "resetchannels", "-@all", "+@read", "+@write",
       "+@scripting", "+ping", "+select", "+role", "+auth", "+time"]
BAD_SENTINEL_PW = "wrong-sentinel-Pw-93fe"
SECRETS = (ADMIN_PW, USER_PW, SENTINEL_PW, urllib.parse.quote(USER_PW, safe=""), BAD_SENTINEL_PW)


def cli(host, port, *args, password=ADMIN_PW, user=None, timeout=5):
    cmd = ["redis-cli", "-h", host, "-p", str(port), "--no-auth-warning"]
    if user:
        cmd += ["--user", user]
    if password:
        cmd += ["--pass", password]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
    return r.stdout.strip()


class Redis(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tb = Testbed(state=STATE2).start()
        cls.host = cls.tb.svc
        cls.hs1 = cls.tb.hs("hs1.test")
        cls.daemons = []
        cls.stopped = []  # SIGSTOPped processes, continued before the testbed stops them
        try:
            cls.port = cls.redis_server("redis-auth")
        except Exception:
            cls.tb.stop(failed=True)
            raise

    @classmethod
    def redis_server(cls, name, replica_of=None):
        port = free_port(cls.host)
        cmd = ["redis-server", "--port", str(port), "--bind", cls.host, "--save", "",
               "--appendonly", "no", "--dir", cls.tb.dir, "--dbfilename", f"{name}.rdb",
               "--requirepass", ADMIN_PW, "--masterauth", ADMIN_PW,
               "--replica-announce-ip", cls.host, "--user"] + ACL
        if replica_of:
            cmd += ["--replicaof", cls.host, str(replica_of)]
        cls.tb.spawn(name, cmd)
        wait_for(lambda: cli(cls.host, port, "ping") == "PONG", name)
        return port

    @classmethod
    def sentinel(cls, name, master_port):
        port = free_port(cls.host)
        conf = cls.tb.path(f"{name}.conf")
        with open(conf, "w") as f:
            f.write(f"port {port}\nbind {cls.host}\ndir {cls.tb.dir}\n"
                    f"sentinel announce-ip {cls.host}\n"
                    f"requirepass {SENTINEL_PW}\n"
                    f"sentinel monitor mymaster {cls.host} {master_port} 2\n"
                    "sentinel down-after-milliseconds mymaster 1000\n"
                    "sentinel failover-timeout mymaster 4000\n"
                    "sentinel parallel-syncs mymaster 1\n"
                    f"sentinel auth-pass mymaster {ADMIN_PW}\n"
                    f"sentinel sentinel-pass {SENTINEL_PW}\n")
        cls.tb.spawn(name, ["redis-sentinel", conf])
        wait_for(lambda: cli(cls.host, port, "ping", password=SENTINEL_PW) == "PONG", name)
        return port

    @classmethod
    def daemon(cls, check=True, **env):
        e = cls.tb.mrtc_env(cls.hs1, **FAST)
        e.update(env)
        d = Daemon(BINARY, e, name="mrtc-redis", host=cls.host).start()
        cls.daemons.append(d)
        return d

    @classmethod
    def tearDownClass(cls):
        for p in cls.stopped:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
        problems = []
        for d in cls.daemons:
            rc = d.stop()
            logs = d.logs()
            if rc not in (0, None):
                problems.append(f"exit {rc}")
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in logs:
                    problems.append(marker)
            for s in SECRETS:
                if s in logs:
                    problems.append("a Redis password reached the log")
            if "de_" in logs:
                problems.append("a delay_id reached the log")
            d.close()
        cls.tb.stop()
        assert not problems, problems

    # -- helpers (test_delayed's: its users, delayed events, delegations, SFU participants) ---
    # (Borrowed as functions: a TestCase class imported by name would run here too.)
    _D = test_delayed.Delayed
    ROOM = _D.ROOM
    user, ident, delayed_event, delegate, participant = (
        _D.user, _D.ident, _D.delayed_event, _D.delegate, _D.participant)

    def actions(self, delay_id):
        return self._D.actions(self, delay_id)[0]

    def readyz(self, d):
        status, _, data = d.request("GET", "/readyz", admin=True)
        return status, json.loads(data)

    def wait(self, cond, timeout=15):
        return self._D.wait_for(self, cond, timeout)

    def job_keys(self, port, db=0, ns="mrtc:{hs1.test}:"):
        out = cli(self.host, port, "-n", str(db), "smembers", ns + "jobs")
        return set(out.split()) if out else set()

    def assert_no_secret(self, text):
        for s in SECRETS:
            self.assertNotIn(s, text)

    # -- credentials --------------------------------------------------------------------------
    def test_acl_user_in_the_url_percent_encoded(self):
        pw = urllib.parse.quote(USER_PW, safe="")
        spec = f"redis://mrtc:{pw}@{self.host}:{self.port}/3"
        d = self.daemon(MRTC_STORE=spec)
        self.delayed_event("de_acl", "alice", delay=10000)
        self.assertEqual(self.delegate("alice", "de_acl", d=d), (200, {}))
        key = lk_hash("!call:hs1.test", "m.call#ROOM", "m1", "@alice:hs1.test")
        self.assertIn(key, self.job_keys(self.port, db=3))  # in db 3, as the ACL user wrote it
        status, body = self.readyz(d)
        self.assertEqual(body["store"]["kind"], "redis")
        self.assertEqual(body["store"]["state"], "connected")
        self.assertEqual(body["store"]["spec"], f"redis://mrtc:***@{self.host}:{self.port}/3")
        self.assertEqual(body["store"]["address"], f"{self.host}:{self.port}")
        self.assertTrue(body["checks"]["store"])
        self.assert_no_secret(json.dumps(body))
        self.assertIn(f"Redis: connected to {self.host}:{self.port}", d.logs())
        # --help and --check-config show the spec redacted
        env = dict(d.env)
        for arg in ("--help", "--check-config"):
            r = subprocess.run([BINARY, arg], env=env, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"redis://mrtc:***@{self.host}", r.stdout)
            self.assert_no_secret(r.stdout + r.stderr)

    def test_password_from_a_file(self):
        # The default user's password (requirepass) from MRTC_REDIS_PASSWORD_FILE: AUTH pass.
        path = self.tb.path("redis-password")
        with open(path, "w") as f:
            f.write(ADMIN_PW + "\n")
        os.chmod(path, 0o600)
        d = self.daemon(MRTC_STORE=f"redis://{self.host}:{self.port}/4",
                        MRTC_REDIS_PASSWORD_FILE=path)
        self.delayed_event("de_file", "bob", delay=10000)
        self.assertEqual(self.delegate("bob", "de_file", d=d), (200, {}))
        self.assertEqual(len(self.job_keys(self.port, db=4)), 1)
        # An ACL user in the URL, its password from the file: AUTH user pass.
        with open(path, "w") as f:
            f.write(USER_PW + "\n")
        d2 = self.daemon(MRTC_STORE=f"redis://mrtc@{self.host}:{self.port}/5",
                         MRTC_REDIS_PASSWORD_FILE=path)
        self.delayed_event("de_file2", "carol", delay=10000)
        self.assertEqual(self.delegate("carol", "de_file2", d=d2), (200, {}))
        self.assertEqual(len(self.job_keys(self.port, db=5)), 1)
        self.assertEqual(self.readyz(d2)[1]["store"]["state"], "connected")

    def test_wrong_credentials_refused(self):
        cases = [("wrong password", f"redis://mrtc:not-{USER_PW[:4]}@{self.host}:{self.port}",
                  "WRONGPASS"),
                 ("no password", f"redis://{self.host}:{self.port}", "NOAUTH")]
        for what, spec, code in cases:
            with self.subTest(what):
                d = self.daemon(MRTC_STORE=spec)
                self.assertTrue(self.wait(lambda: self.readyz(d)[0] == 503, timeout=15))
                status, body = self.readyz(d)
                self.assertEqual(body["status"], "not ready")
                self.assertFalse(body["checks"]["store"])
                self.assertEqual(body["store"]["state"], "credentials refused")
                self.assertIn(code, body["store"]["detail"])
                self.assertNotIn("not-", json.dumps(body))
                name = "dave" if code == "WRONGPASS" else "erin"
                self.delayed_event(f"de_refused_{name}", name, delay=10000)
                status, err = self.delegate(name, f"de_refused_{name}", d=d)
                self.assertEqual((status, err["errcode"]), (502, "M_UNKNOWN"))
                time.sleep(3)  # retried meanwhile (backoff): still logged once
                logs = d.logs()
                line = f"server {self.host}:{self.port} refused the credentials ({code})"
                self.assertEqual(logs.count(line), 1, logs)
                self.assertNotIn("not-", logs)
                self.assert_no_secret(logs)

    def test_config_problems(self):
        d = Daemon(BINARY, self.tb.mrtc_env(self.hs1), name="mrtc-redis-check", host=self.host)
        try:
            cases = [
                ({"MRTC_STORE": f"redis://mrtc@{self.host}"}, "names a Redis user but no pass"),
                ({"MRTC_STORE": f"redis://:x@{self.host}", "MRTC_REDIS_PASSWORD": "y"},
                 "holds a password already"),
                ({"MRTC_STORE": f"redis://u:p%zz@{self.host}"}, "percent-encode"),
                ({"MRTC_STORE": f"redis://{self.host}", "MRTC_REDIS_SENTINEL_PASSWORD": "s"},
                 "not a redis+sentinel:// store"),
                ({"MRTC_STORE": f"redis+sentinel://{self.host}"}, "expected sqlite:"),
            ]
            for env, want in cases:
                e = dict(d.env)
                e.update(env)
                r = subprocess.run([BINARY, "--check-config"], env=e, capture_output=True,
                                   text=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(want, r.stderr)
                self.assertNotIn("p%zz", r.stderr)
        finally:
            d.close()

    # -- Sentinel failover --------------------------------------------------------------------
    def test_sentinel_failover_sends_each_leave_once(self):
        master = self.redis_server("redis-master")
        replica = self.redis_server("redis-replica", replica_of=master)
        self.assertTrue(self.wait(lambda: "master_link_status:up" in cli(
            self.host, replica, "info", "replication"), timeout=20))
        sentinels = [self.sentinel(f"sentinel{i}", master) for i in range(3)]

        def ckquorum():
            return all(cli(self.host, s, "sentinel", "ckquorum", "mymaster",
                           password=SENTINEL_PW).startswith("OK 3 usable")
                       for s in sentinels)
        self.assertTrue(self.wait(ckquorum, timeout=30), "the sentinels did not find each other")
        pw = urllib.parse.quote(USER_PW, safe="")
        nodes = ",".join(f"{self.host}:{s}" for s in sentinels)
        spec = f"redis+sentinel://mrtc:{pw}@{nodes}/mymaster/2"
        d = self.daemon(MRTC_STORE=spec, MRTC_REDIS_SENTINEL_PASSWORD=SENTINEL_PW,
                        MRTC_RATE_LIMIT_SHARED="true")
        status, body = self.readyz(d)
        self.assertEqual((body["store"]["kind"], body["store"]["state"]),
                         ("redis-sentinel", "connected"))
        self.assertEqual(body["store"]["address"], f"{self.host}:{master}")
        self.assertEqual(body["store"]["spec"], f"redis+sentinel://mrtc:***@{nodes}/mymaster/2")
        # The sentinels' own password is a separate credential; a wrong one is refused too.
        bad = self.daemon(MRTC_STORE=spec, MRTC_REDIS_SENTINEL_PASSWORD=BAD_SENTINEL_PW)
        self.assertTrue(self.wait(lambda: self.readyz(bad)[0] == 503))
        store = self.readyz(bad)[1]["store"]
        self.assertEqual(store["state"], "credentials refused")
        self.assertIn("sentinel", store["detail"])
        self.assertIn("WRONGPASS", store["detail"])
        self.assertEqual(bad.stop(), 0)

        # Jobs running: every participant on the SFU, restarts flowing.
        names = NAMES[:8]
        for n in names:
            self.delayed_event(f"de_s_{n}", n, delay=10000)
            self.assertEqual(self.delegate(n, f"de_s_{n}", member="ms", d=d), (200, {}))
            self.participant(n, True, member="ms")
        self.assertTrue(self.wait(lambda: all("restart" in self.actions(f"de_s_{n}")
                                              for n in names)))
        keys = [lk_hash("!call:hs1.test", "m.call#ROOM", "ms", f"@{n}:hs1.test") for n in names]

        def all_connected_on_replica():  # seen on the SFU, and so stored, and replicated
            return all(cli(self.host, replica, "-n", "2", "hget", f"mrtc:{{hs1.test}}:job:{k}",
                       "state") == "1"
                       for k in keys)
        self.assertTrue(self.wait(all_connected_on_replica), "the jobs did not reach the replica")
        # The delegations took their tokens from the shared buckets, on the master.
        self.assertGreaterEqual(self.shared_decisions(d), len(names),
                                [line for line in d.logs().splitlines() if "limits" in line] +
                                [self.metric(d, "mrtc_rate_limit_decisions_total",
                                             '{where="fallback",result="any"}')])

        # The master stops answering; the sentinels promote the replica.
        master_proc = next(p for name, p, _ in self.tb.procs if name == "redis-master")
        t0 = time.monotonic()
        os.kill(master_proc.pid, signal.SIGSTOP)
        self.stopped.append(master_proc)
        for n in names[:3]:  # leaving while Redis is failing over
            self.participant(n, False, member="ms")

        def promoted():
            return cli(self.host, sentinels[0], "sentinel", "get-master-addr-by-name",
                       "mymaster", password=SENTINEL_PW).split() == [self.host, str(replica)]
        self.assertTrue(self.wait(promoted, timeout=60), "no failover")
        t_promoted = time.monotonic() - t0
        line = f"connected to master 'mymaster' at {self.host}:{replica} (from Sentinel)"
        self.assertTrue(self.wait(lambda: line in d.logs(), timeout=30), d.logs())
        t_reconnected = time.monotonic() - t0
        self.assertTrue(self.wait(lambda: self.readyz(d)[1]["store"].get("address") ==
                                  f"{self.host}:{replica}", timeout=10))
        print(f"\nfailover: promoted after {t_promoted:.1f} s, daemon on the new master after "
              f"{t_reconnected:.1f} s", file=sys.stderr)

        # The rest leave after the failover; a new delegation lands on the new master.
        for n in names[3:]:
            self.participant(n, False, member="ms")
        self.delayed_event("de_s_new", "ivan", delay=10000)
        self.assertEqual(self.delegate("ivan", "de_s_new", member="ms", d=d), (200, {}))
        key = lk_hash("!call:hs1.test", "m.call#ROOM", "ms", "@ivan:hs1.test")
        self.assertIn(key, self.job_keys(replica, db=2))
        # The shared rate limits followed the master too (asked the sentinels again).
        self.assertTrue(self.wait(lambda: self.metric(d, "mrtc_rate_limit_shared_up") == 1,
                                  timeout=15))
        shared = self.shared_decisions(d)
        self.delayed_event("de_s_rl", "heidi", delay=10000)
        self.assertEqual(self.delegate("heidi", "de_s_rl", member="mrl", d=d), (200, {}))
        self.assertEqual(self.shared_decisions(d), shared + 1)
        self.participant("heidi", True, member="mrl")
        self.participant("ivan", True, member="ms")
        self.assertTrue(self.wait(lambda: all("send" in self.actions(f"de_s_{n}")
                                              for n in names), timeout=30),
                        {n: self.actions(f"de_s_{n}") for n in names})
        time.sleep(2 * 3.4 + 1)  # two lease scans: a stale job would be taken up again
        for n in names:
            self.assertEqual(self.actions(f"de_s_{n}").count("send"), 1, n)
        self.participant("ivan", False, member="ms")
        self.participant("heidi", False, member="mrl")
        self.assertTrue(self.wait(lambda: "send" in self.actions("de_s_new"), timeout=15))
        self.assertTrue(self.wait(lambda: "send" in self.actions("de_s_rl"), timeout=15))
        # Jobs that ended while Redis was failing over were taken up again and found gone.
        self.assertTrue(self.wait(lambda: not self.job_keys(replica, db=2), timeout=10),
                        f"finished jobs were left in the store:\n{d.logs()}")

        # A planned switchover back (SENTINEL FAILOVER, as for maintenance): the old master,
        # continued, is a replica now; the sentinels promote it and drop our connection.
        os.kill(master_proc.pid, signal.SIGCONT)
        self.assertTrue(self.wait(lambda: "master_link_status:up" in cli(
            self.host, master, "info", "replication"), timeout=30))
        back = names[:2]
        for n in back:
            self.delayed_event(f"de_b_{n}", n, delay=10000)
            self.assertEqual(self.delegate(n, f"de_b_{n}", member="mb", d=d), (200, {}))
            self.participant(n, True, member="mb")
        bkeys = [lk_hash("!call:hs1.test", "m.call#ROOM", "mb", f"@{n}:hs1.test") for n in back]
        self.assertTrue(self.wait(lambda: all(
            cli(self.host, master, "-n", "2", "hget", f"mrtc:{{hs1.test}}:job:{k}", "state")
            == "1"
            for k in bkeys)))
        self.assertTrue(self.wait(lambda: cli(self.host, sentinels[1], "sentinel", "failover",
                                              "mymaster", password=SENTINEL_PW) == "OK",
                                  timeout=30))
        t0 = time.monotonic()
        line = f"connected to master 'mymaster' at {self.host}:{master} (from Sentinel)"
        self.assertTrue(self.wait(lambda: cli(
            self.host, sentinels[0], "sentinel", "get-master-addr-by-name", "mymaster",
            password=SENTINEL_PW).split() == [self.host, str(master)], timeout=60))
        t_switched = time.monotonic() - t0
        self.assertTrue(self.wait(lambda: d.logs().count(line) == 2, timeout=30), d.logs())
        print(f"switchover: sentinels name the old master after {t_switched:.1f} s, the daemon "
              f"uses it after {time.monotonic() - t0:.1f} s", file=sys.stderr)
        # Not when the sentinels convert the old master (seconds later): the daemon checks
        # every second that the sentinels still name the master it uses.
        self.assertLess(time.monotonic() - t0 - t_switched, 5.0)
        for n in back:
            self.participant(n, False, member="mb")
        self.assertTrue(self.wait(lambda: all("send" in self.actions(f"de_b_{n}") for n in back),
                                  timeout=30))
        self.assertTrue(self.wait(lambda: not self.job_keys(master, db=2), timeout=10),
                        f"left: {self.job_keys(master, db=2)}\n{d.logs()[-3000:]}")
        for n in back:
            self.assertEqual(self.actions(f"de_b_{n}").count("send"), 1, n)
        # The rate limits are on the old master, and said so once per outage.
        self.assertTrue(self.wait(lambda: self.metric(d, "mrtc_rate_limit_shared_up") == 1,
                                  timeout=15))
        self.assertEqual(d.logs().count("shared rate limits: Redis unusable"),
                         d.logs().count("shared rate limits: Redis is back"))
        self.assert_no_secret(d.logs())

    # -- two homeservers on one database ------------------------------------------------------
    def test_two_homeservers_on_one_database(self):
        hs2 = self.tb.hs("hs2.test")
        db = 6
        pw = urllib.parse.quote(USER_PW, safe="")
        spec = f"redis://mrtc:{pw}@{self.host}:{self.port}/{db}"
        room2 = lk_hash("!call:hs2.test", "m.call#ROOM")
        lease = {"MRTC_LEASE_TTL_MS": "1500"}

        def event(s, delay_id, user_id, room_id):
            post_json(s.hs_url + "/_test/delayed", {"delay_id": delay_id, "delay": 10000,
                                                    "user_id": user_id, "state": "scheduled",
                                                    "room_id": room_id})

        def sends(s, delay_id):
            ev = get_json(s.hs_url + "/_test/delayed").get(delay_id, {})
            return [a["action"] for a in ev.get("actions", [])].count("send")

        def ident2(n, member="m2"):
            return lk_hash(f"@{n}:hs2.test", f"DEV_{n}", member)

        def present2(n, present):
            post_json(hs2.sfu_url + "/_test/participant",
                      {"room": room2, "identity": ident2(n), "present": present})

        def delegate2(d, n):
            body = {"url": hs2.livekit_url, "room_id": "!call:hs2.test", "slot_id": "m.call#ROOM",
                    "member": {"id": "m2"}, "delay_id": f"de_2_{n}"}
            status, _, data = d.request("POST", test_delayed.PATH, body=json.dumps(body),
                                        headers={"Authorization": f"Bearer tok_{n}"})
            return status, json.loads(data)

        def daemon2():
            e = self.tb.mrtc_env(hs2, **FAST)
            e.update(lease, MRTC_STORE=spec)
            d = Daemon(BINARY, e, name="mrtc-redis-hs2", host=self.host).start()
            self.daemons.append(d)
            return d

        # Written by a previous version (keys without a namespace): a job of each server.
        old = {"grace": (self.hs1, "@grace:hs1.test", "!call:hs1.test", "m.call#ROOM"),
               "zed": (hs2, "@zed:hs2.test", "!call:hs2.test", "m.call#ROOM")}
        old_keys = {}
        for n, (s, user_id, room_id, slot) in old.items():
            event(s, f"de_o_{n}", user_id, room_id)
            key = lk_hash(room_id, slot, "mo", user_id)
            old_keys[n] = key
            cli(self.host, self.port, "-n", str(db), "hset", f"mrtc:job:{key}",
                "user_id", user_id, "room_id", room_id, "room_name", lk_hash(room_id, slot),
                "identity", lk_hash(user_id, f"DEV_{n}", "mo"), "delay_id", f"de_o_{n}",
                "cs_api_url", s.hs_url, "sfu_url", "", "delay_ms", "10000",
                "created_ms", str(int(time.time() * 1000)), "state", "1", "guarded", "0")
            cli(self.host, self.port, "-n", str(db), "sadd", "mrtc:jobs", key)

        a = self.daemon(MRTC_STORE=spec, **lease)
        # a moved grace's job (its user is of hs1.test) and left zed's.
        self.assertTrue(self.wait(lambda: "moved 1 delayed-leave jobs" in a.logs()), a.logs())
        self.assertIn("left there for other servers' daemons: 1 jobs", a.logs())
        self.assertEqual(self.job_keys(self.port, db, ns="mrtc:"), {old_keys["zed"]})
        post_json(hs2.sfu_url + "/_test/participant",  # zed is on hs2's SFU
                  {"room": room2, "identity": ident2("zed", "mo"), "present": True})
        b = daemon2()
        self.assertTrue(self.wait(lambda: "moved 1 delayed-leave jobs" in b.logs()), b.logs())
        self.assertEqual(self.job_keys(self.port, db, ns="mrtc:"), set())

        # Each homeserver's daemon delegates its own users' jobs; everyone is on the SFU.
        ones, twos = ["alice", "bob"], ["xavier", "yara"]
        for n in ones:
            self.delayed_event(f"de_1_{n}", n, delay=10000)
            self.assertEqual(self.delegate(n, f"de_1_{n}", member="m1", d=a), (200, {}))
            self.participant(n, True, member="m1")
        for n in twos:
            event(hs2, f"de_2_{n}", f"@{n}:hs2.test", "!call:hs2.test")
            self.assertEqual(delegate2(b, n), (200, {}))
            present2(n, True)
        self.assertTrue(self.wait(lambda: all("restart" in self.actions(f"de_1_{n}")
                                              for n in ones)))
        self.assertTrue(self.wait(lambda: all(
            "restart" in [x["action"] for x in get_json(hs2.hs_url + "/_test/delayed")
                          [f"de_2_{n}"].get("actions", [])] for n in twos)))
        keys1 = {lk_hash("!call:hs1.test", "m.call#ROOM", "m1", f"@{n}:hs1.test") for n in ones}
        keys2 = {lk_hash("!call:hs2.test", "m.call#ROOM", "m2", f"@{n}:hs2.test") for n in twos}
        # grace is not on the SFU: her old job sends her leave, once, from a, and ends.
        self.assertTrue(self.wait(lambda: sends(self.hs1, "de_o_grace") == 1, timeout=30))
        self.assertTrue(self.wait(lambda: self.job_keys(self.port, db) == keys1),
                        self.job_keys(self.port, db))
        self.assertEqual(self.job_keys(self.port, db, ns="mrtc:{hs2.test}:"),
                         keys2 | {old_keys["zed"]})

        # hs2's daemon dies with its jobs' leases held: hs1's daemon must not take them up
        # (before the namespace, it did after one lease, and sent their leaves early).
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        self.daemons.remove(b)
        time.sleep(3 * 1.5 + 2)  # three leases and a scan: long enough for a takeover
        for n in twos + ["zed"]:
            self.assertNotIn(f"@{n}:hs2.test", a.logs())
        self.assertEqual([sends(hs2, f"de_2_{n}") for n in twos], [0, 0])
        self.assertEqual(sends(hs2, "de_o_zed"), 0)

        # hs2's daemon again: it takes up its own jobs, zed's among them; everyone leaves; each leave is sent once, by its own homeserver's daemon.
        b2 = daemon2()
        post_json(hs2.sfu_url + "/_test/participant",
                  {"room": room2, "identity": ident2("zed", "mo"), "present": False})
        self.assertTrue(self.wait(lambda: sends(hs2, "de_o_zed") == 1, timeout=30), b2.logs())
        for n in ones:
            self.participant(n, False, member="m1")
        for n in twos:
            present2(n, False)
        self.assertTrue(self.wait(lambda: all(sends(self.hs1, f"de_1_{n}") == 1 for n in ones) and
                                  all(sends(hs2, f"de_2_{n}") == 1 for n in twos), timeout=30),
                        b2.logs())
        time.sleep(2 * 1.5 + 1)
        self.assertEqual([sends(self.hs1, f"de_1_{n}") for n in ones] +
                         [sends(hs2, f"de_2_{n}") for n in twos] +
                         [sends(self.hs1, "de_o_grace"), sends(hs2, "de_o_zed")], [1] * 6)
        self.assertTrue(self.wait(lambda: not self.job_keys(self.port, db) and not
                                  self.job_keys(self.port, db, ns="mrtc:{hs2.test}:")))
        for x in ("ERROR: AddressSanitizer", "runtime error:"):
            self.assertNotIn(x, b.logs())
        b.close()
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b2.stop(), 0)

    def metric(self, d, name, labels=""):
        _, _, data = d.request("GET", "/metrics", admin=True)
        m = re.search(r"^" + re.escape(name + labels) + r" (\S+)$", data.decode(), re.M)
        return float(m.group(1)) if m else None

    def shared_decisions(self, d):
        return sum(self.metric(d, "mrtc_rate_limit_decisions_total",
                               f'{{where="shared",result="{r}"}}') for r in ("allowed", "refused"))


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
