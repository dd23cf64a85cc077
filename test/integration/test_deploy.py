# SPDX-License-Identifier: Apache-2.0
"""The deployment files shipped in module/deploy/: systemd-analyze verify accepts the unit (in a
scratch root holding the built binary where the unit expects it, with the @sbindir@ that meson
install fills in set to /usr/local/bin), its exposure score is low, and a deliberately broken
copy is caught, so the check can fail.

Usage: test_deploy.py <mrtc-transportd>
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "module", "deploy",
                    "mrtc-transportd.service")
BINARY = None


def unit_text():
    with open(UNIT) as f:
        return f.read().replace("@sbindir@", "/usr/local/bin")


class Deploy(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="mrtc-sdroot-")
        for d in ("usr/local/bin", "etc/systemd/system", "usr/lib/systemd", "bin"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        shutil.copy(BINARY, os.path.join(self.root, "usr/local/bin/mrtc-transportd"))
        shutil.copytree("/usr/lib/systemd/system",
                        os.path.join(self.root, "usr/lib/systemd/system"), symlinks=True)
        shutil.copy("/bin/kill", os.path.join(self.root, "bin/kill"))

    def tearDown(self):
        shutil.rmtree(self.root)

    def verify(self, text):
        with open(os.path.join(self.root, "etc/systemd/system/mrtc-transportd.service"), "w") as f:
            f.write(text)
        return subprocess.run(["systemd-analyze", "verify", f"--root={self.root}",
                               "mrtc-transportd.service"], capture_output=True, text=True)

    def test_unit_verifies_cleanly(self):
        r = self.verify(unit_text())
        self.assertEqual(r.returncode, 0, r.stderr)
        # verify reports problems as warnings with exit code 0: none may name our unit.
        self.assertEqual([l for l in (r.stdout + r.stderr).splitlines()
                          if "mrtc-transportd.service" in l], [])

    def test_broken_unit_is_caught(self):
        text = unit_text().replace("ProtectSystem=strict", "ProtectSystem=sometimes")
        r = self.verify(text + "\n[Service]\nNoSuchOption=1\n")
        ours = [l for l in r.stderr.splitlines() if "mrtc-transportd.service" in l]
        self.assertEqual(len(ours), 2, r.stderr)
        self.assertIn("protect system", ours[0])
        self.assertIn("NoSuchOption", ours[1])

    def test_exposure_is_low(self):
        unit = os.path.join(self.root, "mrtc-transportd.service")
        with open(unit, "w") as f:
            f.write(unit_text())
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                           capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
