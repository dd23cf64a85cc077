#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The federation demo: two homeservers on this machine (the testbed), one mrtc-transportd each.
@alice:hs1.test gets a LiveKit token for a call whose SFU belongs to hs2.test, over signed
federation; then @bob:hs1.test, who is not in the room, is refused. Prints each step and the
decoded token, then cleans up. The SFUs are LiveKit's own server when it is installed
(test/deps.sh: mrtc_install_livekit): the demo shows the room hs2.test's daemon created there
(ListRooms) and the server's verdict on the token. Without it, the stand-in SFU's record of each
RoomService call and livekit-server-sdk's TokenVerifier stand in for them.

Usage: demo.py <mrtc-transportd>
"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from harness import HttpsTo  # noqa: E402
from testbed import Testbed, livekit_binary  # noqa: E402

ROOM = "!demo-call:hs2.test"
STATE = {
    "hs1.test": {"users": {"syt_alice": {"user_id": "@alice:hs1.test", "device_id": "ALICEPHONE"},
                           "syt_bob": {"user_id": "@bob:hs1.test", "device_id": "BOBLAPTOP"}},
                 "rooms": {ROOM: {"members": {"@alice:hs1.test": "join"}}}},
    "hs2.test": {"users": {"syt_carol": {"user_id": "@carol:hs2.test", "device_id": "CAROL1"}},
                 "rooms": {ROOM: {"members": {"@alice:hs1.test": "join",
                                              "@carol:hs2.test": "join"}}}},
}


def step(n, text):
    print(f"\n\033[1m{n}. {text}\033[0m")


def show(status, body):
    print(f"   <- HTTP {status} {body.decode() if isinstance(body, bytes) else body}")


def b64json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def main():
    binary = sys.argv[1]
    livekit = livekit_binary() is not None
    tb = Testbed(mrtc_binary=binary, state=STATE, livekit=livekit)
    print("Starting the testbed: dnsmasq, a CA, nginx, two test homeservers, " +
          ("two LiveKit servers" if livekit else "two test SFUs (LiveKit is not installed)") +
          ", two mrtc-transportd ...")
    tb.start(with_daemons=True)
    ok = False
    try:
        hs1, hs2 = tb.hs("hs1.test"), tb.hs("hs2.test")
        c = HttpsTo(tb.ca, "hs1.test", hs1.address, 443)
        print(f"   hs1.test on {hs1.address}, hs2.test on {hs2.address}; DNS on port {tb.dns_port}")

        step(1, "Alice asks her own homeserver which transports it offers")
        print("   -> GET https://hs1.test/_matrix/client/v1/rtc/transports")
        s, _, b = c.request("GET", "/_matrix/client/v1/rtc/transports",
                            headers={"Authorization": "Bearer syt_alice"})
        show(s, b)

        body = {"url": "wss://sfu.hs2.test", "room_id": ROOM, "slot_id": "m.call#ROOM",
                "member": {"id": "alice-phone-1", "claimed_device_id": "ALICEPHONE"},
                "server_name": "hs2.test"}
        step(2, "Alice asks hs1.test for a token on hs2.test's SFU")
        print("   -> POST https://hs1.test/_matrix/client/v1/rtc/livekit/get_token")
        print(f"      {json.dumps(body)}")
        s, _, b = c.request("POST", "/_matrix/client/v1/rtc/livekit/get_token", body=body,
                            headers={"Authorization": "Bearer syt_alice"})
        show(s, b[:80] + b"...")
        token = json.loads(b)["jwt"]
        time.sleep(0.2)

        step(3, "What happened behind it")
        for name, words in (("hs1.test", ("federation", "get_token")),
                            ("hs2.test", ("federation", "get_token"))):
            for line in tb.hs(name).mrtc.logs().splitlines():
                if any(w in line for w in words) and "healthz" not in line:
                    print(f"   [{name}] {line[25:]}")
        if livekit:
            for name, room in tb.livekit_rooms("hs2.test").items():
                print(f"   [LiveKit of hs2.test] ListRooms: room {name}, empty_timeout "
                      f"{room['empty_timeout']} s, departure_timeout "
                      f"{room['departure_timeout']} s, {room['num_participants']} participants")
        else:
            with urllib.request.urlopen(hs2.sfu_url + "/_test/calls") as r:
                for call in json.load(r)["calls"]:
                    print(f"   [SFU of hs2.test] {call['method']} {json.dumps(call['body'])} "
                          f"with grant {json.dumps(call['grant'])} -> HTTP {call['status']}")

        step(4, "The token Alice got, decoded")
        h, p, _ = token.split(".")
        print("   header: " + json.dumps(b64json(h)))
        print("   claims: " + json.dumps(b64json(p), indent=2).replace("\n", "\n   "))
        if livekit:
            room = b64json(p)["video"]["room"]
            code, text = tb.livekit_validate("hs2.test", token)
            exists = room in tb.livekit_rooms("hs2.test")
            valid = code == 200 and exists
            print(f"   hs2.test's LiveKit server on the token (/rtc/validate): HTTP {code} "
                  f"{text[:60]}; its room exists there: {exists}")
        else:
            req = urllib.request.Request(hs2.sfu_url + "/_test/verify", method="POST",
                                         data=json.dumps({"token": token}).encode())
            with urllib.request.urlopen(req) as r:
                v = json.load(r)
            valid = v["ok"]
            print(f"   livekit-server-sdk TokenVerifier with hs2.test's SFU secret: "
                  f"{'valid' if v['ok'] else 'INVALID: ' + v.get('error', '')}")

        step(5, "Bob, who is not in the room, asks the same")
        s, _, b = c.request("POST", "/_matrix/client/v1/rtc/livekit/get_token",
                            body=dict(body, member={"id": "bob-1"}),
                            headers={"Authorization": "Bearer syt_bob"})
        show(s, b)
        ok = valid and s == 403
    finally:
        tb.stop(failed=not ok)
    print("\nDemo finished; everything it started is stopped." if ok else "\nDemo FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
