# SPDX-License-Identifier: Apache-2.0
"""matrix-js-sdk 43 as the client: brings up the two-homeserver testbed with both daemons behind
nginx over TLS, then runs test/testbed/matrix_js_sdk.test.mjs with node's test runner. The test
reaches https://hs1.test through the testbed's own address for it; where to find the test
homeserver's controls, LiveKit's own servers (the participants join them with @livekit/rtc-node,
at their signalling ports on loopback), the LiveKit secrets and the CA are passed in the
environment.

With --appservice, hs1.test's daemon runs in application-service mode behind the Synapse
stand-in (synapse_proxy.py): the same library calls, answered through MSC4512 and fed_proxy.

Usage: run_matrix_js_sdk.py <mrtc-transportd> [--appservice] [extra daemon VAR=value ...]
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.join(os.path.dirname(HERE), "testbed")
sys.path.insert(0, TESTBED)
from testbed import LIVEKIT_KEY, Testbed  # noqa: E402

USERS = {
    "tok_alice": {"user_id": "@alice:hs1.test", "device_id": "ALICEDEV"},
    "tok_bob": {"user_id": "@bob:hs1.test", "device_id": "BOBDEV"},
}
JOIN = {"@alice:hs1.test": "join"}
STATE = {
    "hs1.test": {"users": USERS, "rooms": {"!call:hs1.test": {"members": JOIN},
                                           "!call:hs2.test": {"members": JOIN}}},
    "hs2.test": {"users": {"tok_carol": {"user_id": "@carol:hs2.test", "device_id": "CAROLDEV"}},
                 "rooms": {"!call:hs2.test": {"members": dict(JOIN, **{"@carol:hs2.test":
                                                                        "join"})}}},
}


def main():
    binary = sys.argv[1]
    appservice = "--appservice" in sys.argv[2:]
    extra = dict(a.split("=", 1) for a in sys.argv[2:] if a != "--appservice")
    tb = Testbed(mrtc_binary=binary, state=STATE, livekit=True,
                 appservice=("hs1.test",) if appservice else ())
    daemon_env = {"MRTC_DELAYED_POLL_MS": "300",
                  "MRTC_DELAYED_CONNECT_WAIT": "5", "MRTC_MEMBERSHIP_CACHE_TTL": "0",
                  "MRTC_FEDERATION_TIMEOUT": "4", "MRTC_RATE_BURST": "1000"}
    daemon_env.update(extra)
    failed = True
    try:
        tb.start(with_daemons=True, **daemon_env)
        hs1, hs2 = tb.hs("hs1.test"), tb.hs("hs2.test")
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=tb.ca, MRTC_TB=json.dumps({
            "addresses": {"hs1.test": hs1.address, "hs2.test": hs2.address},
            "livekit_key": LIVEKIT_KEY,
            "secrets": {"hs1.test": hs1.secret, "hs2.test": hs2.secret},
            "hs1_control": hs1.hs_url,
            "livekit_ws": {s.name: f"ws://{s.svc}:{s.lk_port}" for s in (hs1, hs2)},
            "hs1_webhook": f"http://{hs1.mrtc.host}:{hs1.mrtc.port}/sfu_webhook",
        }))
        rc = subprocess.run(["node", "--test", "--test-reporter=spec",
                             "matrix_js_sdk.test.mjs"], cwd=TESTBED, env=env,
                            timeout=150).returncode
        failed = rc != 0
        for s in tb.servers.values():
            logs = s.mrtc.logs()
            assert "tok_" not in logs and s.secret not in logs and "de_js" not in logs, \
                "a secret reached the daemon log"
            for token in (getattr(s, "as_token", None), getattr(s, "hs_token", None)):
                assert not token or token not in logs, "an appservice token reached the log"
    finally:
        tb.stop(failed=failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
