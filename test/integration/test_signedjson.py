# SPDX-License-Identifier: Apache-2.0
"""Cross-implementation check of canonical JSON, JSON signatures and X-Matrix against
python3-signedjson and python3-canonicaljson (what Synapse uses).

1000 generated objects (nested, unicode incl. astral characters, every escape, integers at the
±(2^53-1) limits) are canonicalised by both sides and compared byte for byte; signed by us and
verified by signedjson (and the signatures compared: Ed25519 is deterministic); signed by
signedjson and verified by us. X-Matrix requests are signed by us and checked by signedjson,
signed by signedjson (as Synapse builds them) and verified by us, and tampered ones refused.

Usage: test_signedjson.py <path to crosscheck>
"""
import json
import os
import random
import subprocess
import sys
import tempfile

from canonicaljson import encode_canonical_json
from signedjson.key import generate_signing_key, get_verify_key, write_signing_keys
from signedjson.key import encode_verify_key_base64
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json

N = 1000
SERVER = "origin.example"
INT_LIMIT = 2 ** 53 - 1
ALPHABET = ["a", "Z", "0", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x01",
            "\x1f", "\x7f", "\u00e9", "\u2028", "\u65e5", "\ue000", "\uffff", "\U0001f600",
            "\U00010000", "\U0010ffff", "{", "}", "[", "]", ":", ","]


def rand_string(rng, n=None):
    n = rng.randint(0, 12) if n is None else n
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def rand_value(rng, depth):
    kinds = ["str", "int", "bool", "null", "limit"]
    if depth < 4:
        kinds += ["obj", "list"] * 2
    k = rng.choice(kinds)
    if k == "str":
        return rand_string(rng)
    if k == "int":
        return rng.randint(-INT_LIMIT, INT_LIMIT)
    if k == "limit":
        return rng.choice([INT_LIMIT, -INT_LIMIT, 0, -1, 1, INT_LIMIT - 1])
    if k == "bool":
        return rng.choice([True, False])
    if k == "null":
        return None
    if k == "list":
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rand_object(rng, depth + 1)


def rand_object(rng, depth=0):
    obj = {}
    for _ in range(rng.randint(0, 5)):
        key = rand_string(rng, rng.randint(1, 6)).replace("\x00", "n")
        if key in ("signatures", "unsigned"):
            continue
        obj[key] = rand_value(rng, depth)
    return obj


class Tool:
    def __init__(self, path, key_file):
        self.p = subprocess.Popen([path, key_file, SERVER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def ask(self, **cmd):
        self.p.stdin.write(json.dumps(cmd, ensure_ascii=True) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=30) == 0


def text(obj):
    # ensure_ascii output makes our strict parser handle \uXXXX escapes and surrogate pairs.
    return json.dumps(obj, ensure_ascii=rng_ascii.random() < 0.5)


rng_ascii = random.Random(7)


def main():
    tool_path = sys.argv[1]
    rng = random.Random(20261126)
    key = generate_signing_key("x1")
    vk = get_verify_key(key)
    pk_b64 = encode_verify_key_base64(vk)
    key_id = f"{key.alg}:{key.version}"
    with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as kf:
        write_signing_keys(kf, [key])
    tool = Tool(tool_path, kf.name)
    passed = failed = 0

    def check(cond, what):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            if failed <= 20:
                print("FAIL:", what)

    try:
        for i in range(N):
            obj = rand_object(rng)
            # 1. canonical JSON, byte for byte
            ans = tool.ask(op="canonical", text=text(obj))
            want = encode_canonical_json(obj).decode("utf-8")
            check(ans["ok"] and ans["canonical"] == want, f"canonical #{i}: {obj!r}")
            # 2. we sign, signedjson verifies; signatures identical
            ans = tool.ask(op="sign", text=text(obj))
            ours = json.loads(ans["signed"]) if ans["ok"] else None
            theirs = sign_json(json.loads(json.dumps(obj)), SERVER, key)
            try:
                verify_signed_json(ours, SERVER, vk)
                ok = ours["signatures"] == theirs["signatures"]
            except (SignatureVerifyException, TypeError, KeyError):
                ok = False
            check(ok, f"our signature #{i}")
            # 3. signedjson signs, we verify; a tampered copy is refused
            ans = tool.ask(op="verify", text=text(theirs), server=SERVER, key_id=key_id,
                           public_key=pk_b64)
            check(ans["ok"], f"verify their signature #{i}: {ans}")
            tampered = dict(theirs, tampered=i)
            ans = tool.ask(op="verify", text=text(tampered), server=SERVER, key_id=key_id,
                           public_key=pk_b64)
            check(not ans["ok"] and ans["err"] == "bad signature", f"tampered #{i}")
            # 4. X-Matrix: a POST with this object as content, and a GET with a query
            method, content = ("POST", obj) if i % 2 == 0 else ("GET", None)
            uri = f"/_matrix/federation/v1/x/{i}?q=%40u%3A{i}&z=" + rng.choice(["", "a+b", "%2F"])
            req = {"method": method, "uri": uri, "origin": SERVER, "destination": "dest.example"}
            if content is not None:
                req["content"] = content
            sig = sign_json(json.loads(json.dumps(req)), SERVER, key)["signatures"][SERVER][key_id]
            want_header = (f'X-Matrix origin="{SERVER}",destination="dest.example",'
                           f'key="{key_id}",sig="{sig}"')
            ctext = None if content is None else text(content)
            ans = tool.ask(op="xsign", method=method, uri=uri, destination="dest.example",
                           content=ctext)
            check(ans["ok"] and ans["header"] == want_header, f"xsign #{i}: {ans}")
            common = dict(method=method, uri=uri, content=ctext, origin=SERVER, key_id=key_id,
                          public_key=pk_b64)
            ans = tool.ask(op="xverify", our_name="dest.example", header=want_header, **common)
            check(ans["ok"], f"xverify #{i}: {ans}")
            ans = tool.ask(op="xverify", our_name="other.example", header=want_header, **common)
            check(not ans["ok"], f"xverify wrong destination #{i}")
            bad_uri = dict(common, uri=uri + "x")
            ans = tool.ask(op="xverify", our_name="dest.example", header=want_header, **bad_uri)
            check(not ans["ok"] and ans["err"] == "bad signature", f"xverify tampered uri #{i}")
            if content is not None:
                bad_body = dict(common, content=text(dict(content, extra=1)))
                ans = tool.ask(op="xverify", our_name="dest.example", header=want_header,
                               **bad_body)
                check(not ans["ok"], f"xverify tampered body #{i}")
    finally:
        tool.close()
        os.unlink(kf.name)
    print(f"signedjson cross-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
