#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Prints one closing line 'LABEL: N passed, N failed' from meson testlog.json files."""
import json
import sys

label, paths = sys.argv[1], sys.argv[2:]
passed = failed = skipped = 0
for path in paths:
    with open(path) as f:
        for line in f:
            result = json.loads(line).get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
line = f"{label}: {passed} passed, {failed} failed"
print(line + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
