# SPDX-License-Identifier: Apache-2.0
"""`meson install` into a scratch DESTDIR from the build tree the tests run from: the installed
layout (binary in sbindir, man page, systemd unit, nginx snippets, environment example, Grafana
dashboard); the man page renders without groff warnings; systemd-analyze verify accepts the
installed unit (ExecStart pointed at the DESTDIR binary); every variable of the configuration
table (read from the installed daemon's --help) is in the man page and in the environment
example with its default; every metric the dashboard queries is served by the installed daemon's
/metrics; the endpoints and exit statuses the man page lists are the daemon's. The checks are
also shown to fail on a broken copy where that is cheap.

Usage: test_install.py <build dir>
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(SOURCE, "module", "deploy")
sys.path.insert(0, HERE)
from harness import Daemon  # noqa: E402

BUILD = None
MAN_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "ENDPOINTS",
                "SIGNALS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"]
SHARED = ["nginx-mrtc.conf", "nginx-mrtc-appservice.conf", "mrtc-proxy-params.conf",
          "mrtc-transportd.env.example", "grafana-dashboard.json"]


def bare_env(**env):
    """Only @env, plus the sanitizer options a sanitized build runs with."""
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def config_table(binary):
    """[(name, default or None, required)] from --help, which prints the configuration table."""
    out = subprocess.run([binary, "--help"], env=bare_env(), capture_output=True, text=True,
                         check=True)
    rows = re.findall(r"^  ([A-Z][A-Z0-9_]+)(?: \(\*\))?\n      .*\n      default: (.*?)"
                      r"(, required)?; now: ", out.stdout, re.M)
    return [(n, None if d == "none" else d, bool(r)) for n, d, r in rows]


def man_entries(text):
    """{variable: entry text} of the man page's ENVIRONMENT section (one .TP entry each)."""
    env = text.split("\n.SH ENVIRONMENT\n", 1)[1].split("\n.SH ", 1)[0]
    out = {}
    for entry in env.split("\n.TP\n")[1:]:
        head, _, body = entry.partition("\n")
        m = re.match(r'^\.BR? ([A-Z][A-Z0-9_]+)(?: "? ?\(\*\)"?)?$', head)
        if m:
            out[m.group(1)] = body
    return out


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="mrtc-destdir-")
        r = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", cls.dest,
                            "--no-rebuild", "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        opts = json.loads(subprocess.run(["meson", "introspect", BUILD, "--buildoptions"],
                                         capture_output=True, text=True, check=True).stdout)
        o = {x["name"]: x["value"] for x in opts}
        prefix = o["prefix"]
        cls.sbindir = os.path.join(prefix, o["sbindir"])
        cls.mandir = os.path.join(prefix, o["mandir"])
        cls.pkgdatadir = os.path.join(prefix, o["datadir"], "mrtc-transport")
        cls.unitdir = o["systemdsystemunitdir"]
        if not cls.unitdir:
            r = subprocess.run(["pkg-config", f"--define-variable=rootprefix={prefix}",
                                "--variable=systemdsystemunitdir", "systemd"],
                               capture_output=True, text=True)
            cls.unitdir = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else \
                os.path.join(prefix, "lib", "systemd", "system")
        cls.binary = cls.installed(cls.sbindir, "mrtc-transportd")
        cls.man = cls.installed(cls.mandir, "man8", "mrtc-transportd.8")
        cls.unit = cls.installed(cls.unitdir, "mrtc-transportd.service")
        cls.table = config_table(cls.binary)
        cls.tmp = tempfile.mkdtemp(prefix="mrtc-install-check-")
        # The installed daemon in homeserver mode, with its default store (SQLite in its own
        # MRTC_STATE_DIR, given by the harness) so every route is mounted.
        key = os.path.join(cls.tmp, "signing.key")
        with open(key, "w") as f:
            f.write("ed25519 a_inst " + base64.b64encode(os.urandom(32)).decode().rstrip("=")
                    + "\n")
        cls.daemon = Daemon(cls.binary, {
            "MRTC_SERVER_NAME": "install.test", "MRTC_HOMESERVER_URL": "http://127.0.0.1:9",
            "MRTC_SIGNING_KEY_FILE": key, "MRTC_HOMESERVER_ADMIN_TOKEN": "admin-token",
            "MRTC_PUBLIC_BASE_URL": "https://install.test",
            "LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_KEY": "devkey",
            "LIVEKIT_SECRET": "install-secret-0123456789abcdef"}, name="mrtc-install").start()

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.daemon.stop()
            assert rc == 0, f"exit code {rc}:\n{cls.daemon.logs()}"
        finally:
            cls.daemon.close()
            shutil.rmtree(cls.dest)
            shutil.rmtree(cls.tmp)

    @classmethod
    def installed(cls, *parts):
        return os.path.join(cls.dest, os.path.join(*parts).lstrip("/"))

    def read(self, path):
        with open(path) as f:
            return f.read()

    def test_layout(self):
        self.assertTrue(os.access(self.binary, os.X_OK), self.binary)
        r = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^mrtc-transportd \d+\.\d+\.\d+\n$")
        for path in (self.man, self.unit):
            self.assertTrue(os.path.isfile(path), path)
        for name in SHARED:
            path = self.installed(self.pkgdatadir, name)
            self.assertEqual(self.read(path), self.read(os.path.join(DEPLOY, name)), name)
        # Nothing else: no test programs, no stray build output.
        found = sorted(os.path.relpath(os.path.join(d, f), self.dest)
                       for d, _, files in os.walk(self.dest) for f in files)
        want = sorted(os.path.relpath(p, self.dest) for p in
                      [self.binary, self.man, self.unit] +
                      [self.installed(self.pkgdatadir, n) for n in SHARED])
        self.assertEqual(found, want)
        self.assertGreater(len(self.table), 30)

    def test_unit_names_installed_binary_and_verifies(self):
        text = self.read(self.unit)
        self.assertNotRegex(text, r"@[a-z_]+@")
        self.assertIn("\nSystemCallFilter=@system-service\n", text)  # systemd's @ kept
        self.assertIn(f"\nExecStart={self.sbindir}/mrtc-transportd\n", text)
        m = re.search(r"^LimitNOFILE=(\d+)$", text, re.M)
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), 65536)
        # The default store's directory: systemd makes it and hands it over as $STATE_DIRECTORY.
        self.assertIn("\nStateDirectory=mrtc-transport\nStateDirectoryMode=0700\n", text)

        def verify(unit_text, sub):
            d = os.path.join(self.tmp, sub)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "mrtc-transportd.service"), "w") as f:
                f.write(unit_text)
            return subprocess.run(["systemd-analyze", "verify",
                                   os.path.join(d, "mrtc-transportd.service")],
                                  capture_output=True, text=True)
        here = re.sub(r"^ExecStart=.*$", f"ExecStart={self.binary}", text, flags=re.M)
        r = verify(here, "good")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([l for l in (r.stdout + r.stderr).splitlines()
                          if "mrtc-transportd.service" in l], [])
        # The check can fail: the same unit naming a binary that is not there.
        r = verify(here.replace(self.binary, self.binary + "-missing"), "broken")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not executable", r.stdout + r.stderr)

    def groff(self, path):
        return subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True,
                              text=True)

    def test_man_page_renders_without_warnings(self):
        r = self.groff(self.man)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        text = self.read(self.man)
        self.assertNotRegex(text, r"@[a-z_]+@")
        self.assertRegex(text, r"(?m)^\.TH MRTC-TRANSPORTD 8 ")
        heads = re.findall(r"^\.SH (.*)$", text, re.M)
        self.assertEqual(heads, MAN_SECTIONS)
        for name in ("nginx-mrtc.conf", "mrtc-transportd.env.example",
                     "grafana-dashboard.json"):
            self.assertIn(os.path.join(self.pkgdatadir, name), text)
        self.assertIn(os.path.join(self.unitdir, "mrtc-transportd.service"), text)
        for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
            self.assertIn(sig, text.split("\n.SH SIGNALS\n", 1)[1].split("\n.SH ", 1)[0])
        # The check can fail: an unknown macro and a bad escape are reported.
        broken = os.path.join(self.tmp, "broken.8")
        with open(broken, "w") as f:
            f.write(text.replace(".SH DESCRIPTION\n", ".SH DESCRIPTION\n.XX foo\n\\qbad\n"))
        r = self.groff(broken)
        self.assertNotEqual(r.stdout + r.stderr, "")

    def test_man_page_exit_statuses(self):
        text = self.read(self.man)
        section = text.split("\n.SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
        self.assertEqual(re.findall(r"^\.TP\n\.B (\d+)$", section, re.M), ["0", "1", "2"])
        env = {"LIVEKIT_URL": "wss://sfu.example.org", "LIVEKIT_KEY": "k",
               "LIVEKIT_SECRET": "install-secret-0123456789abcdef"}
        for args, e, want in (([], {}, 1), (["--check-config"], env, 0),
                              (["--no-such-option"], env, 2), (["--version"], {}, 0)):
            r = subprocess.run([self.binary] + args, env=bare_env(**e), capture_output=True,
                               timeout=10)
            self.assertEqual(r.returncode, want, (args, r.stderr))

    def test_man_page_endpoints_are_routed(self):
        text = self.read(self.man)
        section = text.split("\n.SH ENDPOINTS\n", 1)[1].split("\n.SH ", 1)[0]
        main, admin = section.split("\nOn the admin listener\n", 1)
        listed = []
        for part, is_admin in ((main, False), (admin, True)):
            for line in re.findall(r"^\.BR? (.*)$", part, re.M):
                for method, path in re.findall(r'(GET|POST) (/[^" ]*)', line):
                    m = re.search(r"\{([^}]*)\}", path)
                    for alt in (m.group(1).split(",") if m else [None]):
                        listed.append((method, path if alt is None else
                                       path[:m.start()] + alt + path[m.end():], is_admin))
        self.assertGreaterEqual(len(listed), 16, listed)
        for method, path, is_admin in listed:
            status, _, body = self.daemon.request(method, path, body=b"{}" if method == "POST"
                                                  else None, admin=is_admin)
            self.assertNotIn(status, (404, 405), (method, path, is_admin, body))
        # The check can fail: a path the daemon does not route.
        status, _, _ = self.daemon.request("POST", "/_matrix/client/v1/rtc/livekit/no_such")
        self.assertEqual(status, 404)

    def test_every_variable_in_man_page(self):
        entries = man_entries(self.read(self.man))
        names = [n for n, _, _ in self.table]
        self.assertEqual(sorted(entries), sorted(names))
        for name, default, required in self.table:
            body = entries[name]
            if required:
                self.assertIn("Required.", body, name)
            elif default is not None:
                self.assertRegex(body, r"Default:\n\.BR " + re.escape(default) + r" \.\n?$",
                                 name)
            else:
                self.assertRegex(body, r"Default: [^\n]+", name)

    def test_every_variable_in_env_example(self):
        text = self.read(self.installed(self.pkgdatadir, "mrtc-transportd.env.example"))
        assigned = re.findall(r"^#([A-Z][A-Z0-9_]+)=(.*)$", text, re.M)
        self.assertEqual([n for n, _ in assigned], [n for n, _, _ in self.table])
        for (name, default, _), (_, value) in zip(self.table, assigned):
            self.assertEqual(value, default or "", name)
            self.assertIn(f"# default: {default or 'none'}", text)
        # Nothing is set: every line is a comment or blank.
        self.assertEqual([l for l in text.splitlines() if l and not l.startswith("#")], [])

    def test_dashboard_queries_exported_metrics(self):
        with open(self.installed(self.pkgdatadir, "grafana-dashboard.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreater(len(exprs), 10)
        # Every query goes to the dashboard's own data-source variable.
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        for p in dash["panels"]:
            for t in [p] + p["targets"]:
                self.assertEqual(t["datasource"], {"type": "prometheus",
                                                   "uid": "${datasource}"}, p["title"])
        # One answered request on the main listener, so the per-endpoint samples exist.
        status, _, _ = self.daemon.request("POST", "/_matrix/client/v1/rtc/livekit/get_token",
                                           body=b"{}")
        self.assertEqual(status, 401)
        status, _, body = self.daemon.request("GET", "/metrics", admin=True)
        self.assertEqual(status, 200)
        samples = {}
        families = set()
        for fam in text_string_to_metric_families(body.decode()):
            families.add(fam.name)
            for s in fam.samples:
                samples.setdefault(s.name, set()).update(s.labels)
        queried = set()
        for e in exprs:
            names = set(re.findall(r"\bmrtc_[a-z0-9_]+", e))
            self.assertTrue(names, e)
            for n in names:
                self.assertIn(n, samples, e)
            queried |= names
            # Every label the query aggregates by is on the series it aggregates.
            for labels, name in re.findall(r"by \(([^)]*)\) \((?:rate\()?(mrtc_[a-z0-9_]+)", e):
                for label in (l.strip() for l in labels.split(",")):
                    self.assertIn(label, samples[name], e)
        # And the dashboard shows every family the daemon exports.
        base = {re.sub(r"_(bucket|sum|count)$", "", n) for n in queried}
        exported = {re.sub(r"_total$", "", f) for f in families}
        self.assertEqual(sorted(exported - {re.sub(r"_total$", "", n) for n in base}), [])


if __name__ == "__main__":
    BUILD = sys.argv.pop(1)
    unittest.main(verbosity=2)
