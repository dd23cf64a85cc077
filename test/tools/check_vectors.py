#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Re-derive every known-answer vector in test/vectors/ with independent libraries.

The C unit tests compare the daemon's code with test/vectors/; this script checks that the
vectors themselves still say what the independent implementations say (test/vectors/README.md
names them): python3-canonicaljson, python3-signedjson + python3-nacl, python3-unpaddedbase64,
PyJWT (python3-jwt), and matrix-js-sdk 43 through node when test/testbed/node_modules has it.

Usage: check_vectors.py [VECTORS_DIR]   (default: $MRTC_VECTORS_DIR, else ../vectors)
Exit status 0 only when every check passed; the last line is "vectors: N passed, M failed".
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys

import canonicaljson
import jwt
import nacl.encoding
import nacl.exceptions
import nacl.signing
import signedjson.key
import signedjson.sign
import unpaddedbase64

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

passed = 0
failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL %s%s" % (what, (": " + detail) if detail else ""))


def load(vdir, name):
    with open(os.path.join(vdir, name), "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def canonical(value):
    return canonicaljson.encode_canonical_json(value)


# --- canonical_json.json -------------------------------------------------------------------

INT_MAX = 2**53 - 1


class Refused(Exception):
    pass


def _no_float(text):
    raise Refused("float %s" % text)


def _no_constant(text):
    raise Refused("constant %s" % text)


def _pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Refused("duplicate key")
    for k in keys:
        if "\0" in k:
            raise Refused("NUL in key")
    return dict(pairs)


def _range(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -INT_MAX <= value <= INT_MAX:
            raise Refused("integer out of range")
    elif isinstance(value, list):
        for v in value:
            _range(v)
    elif isinstance(value, dict):
        for v in value.values():
            _range(v)


def who_rejects(text):
    """Which layer refuses @text: 'json' (the stdlib's strict parser), 'canonicaljson' (the
    library's encoder), 'spec' (a Matrix canonical JSON rule applied on top of the parse:
    floats, integer range, duplicate keys, NUL in keys), or None when everything accepts."""
    try:
        value = json.loads(text)
    except ValueError:
        return "json"
    try:
        canonical(value)
    except (ValueError, TypeError, UnicodeError):
        return "canonicaljson"
    try:
        strict = json.loads(text, parse_float=_no_float, parse_constant=_no_constant,
                            object_pairs_hook=_pairs)
        _range(strict)
    except Refused:
        return "spec"
    return None


def check_canonical_json(vdir):
    d = load(vdir, "canonical_json.json")
    for i, case in enumerate(d["cases"]):
        got = canonical(json.loads(case["input"]))
        check(got == case["canonical"].encode("utf-8"), "canonical_json case %d" % i,
              "canonicaljson gives %r, vector has %r" % (got, case["canonical"]))
        check(who_rejects(case["input"]) is None, "canonical_json case %d accepted" % i)
    layers = {}
    for text in d["reject"]:
        layer = who_rejects(text)
        check(layer is not None, "canonical_json reject %r" % text, "every layer accepts it")
        layers[layer] = layers.get(layer, 0) + 1
    print("canonical_json: rejects refused by %s" %
          ", ".join("%s %d" % (k, v) for k, v in sorted(layers.items(), key=str)))


# --- unpadded_base64.json ------------------------------------------------------------------


def check_unpadded_base64(vdir):
    d = load(vdir, "unpadded_base64.json")
    for case in d["cases"]:
        raw = case["bytes_utf8"].encode("utf-8")
        check(unpaddedbase64.encode_base64(raw) == case["b64"], "unpadded_base64 encode %r" % raw)
        check(unpaddedbase64.decode_base64(case["b64"]) == raw, "unpadded_base64 decode %r" %
              case["b64"])
        padded = case["b64"] + "=" * (-len(case["b64"]) % 4)
        check(unpaddedbase64.decode_base64(padded) == raw, "unpadded_base64 padded %r" % padded)


# --- signing.json, server_keys.json, xmatrix.json ------------------------------------------


def signing_key(d):
    return signedjson.key.decode_signing_key_base64("ed25519", d["key_id"].split(":", 1)[1],
                                                    d["seed_b64"])


def check_signing(vdir):
    d = load(vdir, "signing.json")
    key = signing_key(d)
    verify_key = signedjson.key.get_verify_key(key)
    check(signedjson.key.encode_verify_key_base64(verify_key) == d["public_key_b64"],
          "signing public key from seed")
    version = d["key_id"].split(":", 1)[1]
    check(d["signing_key_file_line"] == "ed25519 %s %s" % (version, d["seed_b64"]),
          "signing key file line")
    # The signing-key file format is what signedjson.key reads.
    parsed = signedjson.key.read_signing_keys([d["signing_key_file_line"]])
    check(len(parsed) == 1 and bytes(parsed[0]) == bytes(key) and parsed[0].version == version,
          "signing key file line parsed by signedjson")
    for i, case in enumerate(d["cases"]):
        signed = signedjson.sign.sign_json(json.loads(json.dumps(case["object"])),
                                           d["server_name"], key)
        check(signed == case["signed"], "signing case %d" % i,
              "signedjson gives %s" % json.dumps(signed, sort_keys=True))
        try:
            signedjson.sign.verify_signed_json(case["signed"], d["server_name"], verify_key)
            ok = True
        except signedjson.sign.SignatureVerifyException:
            ok = False
        check(ok, "signing case %d verifies" % i)
    return d, key


def check_server_keys(vdir, sd, key):
    d = load(vdir, "server_keys.json")
    resp = d["response"]
    server = resp["server_name"]
    check(server == sd["server_name"], "server_keys server_name is signing.json's")
    unsigned = {k: v for k, v in resp.items() if k not in ("signatures", "unsigned")}
    check(canonical(unsigned) == d["signed_bytes"].encode("utf-8"), "server_keys signed bytes")
    for key_id, entry in resp["verify_keys"].items():
        vk = signedjson.key.decode_verify_key_base64("ed25519", key_id.split(":", 1)[1],
                                                     entry["key"])
        try:
            signedjson.sign.verify_signed_json(resp, server, vk)
            ok = True
        except signedjson.sign.SignatureVerifyException:
            ok = False
        check(ok, "server_keys self-signature by %s" % key_id)
    resigned = signedjson.sign.sign_json(dict(unsigned), server, key)
    check(resigned["signatures"] == resp["signatures"], "server_keys signature re-derived")


def check_xmatrix(vdir, sd, key):
    d = load(vdir, "xmatrix.json")
    about = d["about"]
    origin, destination = "origin.example", "dest.example"
    check(origin in about and destination in about, "xmatrix about names origin/destination")
    verify_key = signedjson.key.get_verify_key(key)
    for i, req in enumerate(d["requests"]):
        obj = {"method": req["method"], "uri": req["uri"], "origin": origin,
               "destination": destination}
        if req["content"] is not None:
            obj["content"] = req["content"]
        check(canonical(obj) == req["signed_bytes"].encode("utf-8"),
              "xmatrix request %d signed bytes" % i)
        signed = signedjson.sign.sign_json(dict(obj), origin, key)
        sig = signed["signatures"][origin][sd["key_id"]]
        check(sig == req["sig"], "xmatrix request %d signature (signedjson)" % i)
        try:
            verify_key.verify(req["signed_bytes"].encode("utf-8"),
                              unpaddedbase64.decode_base64(req["sig"]))
            ok = True
        except nacl.exceptions.BadSignatureError:
            ok = False
        check(ok, "xmatrix request %d signature verifies (nacl)" % i)
        want = ('X-Matrix origin="%s",destination="%s",key="%s",sig="%s"' %
                (origin, destination, sd["key_id"], req["sig"]))
        check(req["authorization"] == want, "xmatrix request %d header" % i)
    # parse_ok / parse_bad are parser cases for the daemon's own parser; what an independent
    # check can say about them: every expected parse names origin, key and sig.
    for i, (header, params) in enumerate(d["parse_ok"]):
        check(header.lower().startswith("x-matrix ") and
              all(params.get(k) for k in ("origin", "key", "sig")),
              "xmatrix parse_ok %d is well formed" % i)
    check(len(d["parse_bad"]) > 0, "xmatrix parse_bad present")


# --- livekit_jwt.json ----------------------------------------------------------------------


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def check_livekit_jwt(vdir):
    d = load(vdir, "livekit_jwt.json")
    token = d["token"]
    claims = d["claims"]
    try:
        got = jwt.decode(token, d["api_secret"], algorithms=["HS256"],
                         options={"verify_exp": False, "verify_nbf": False,
                                  "require": ["iss", "sub", "nbf", "exp"]})
        ok = True
    except jwt.PyJWTError as e:
        got, ok = None, False
        check(False, "livekit_jwt verifies with the secret", str(e))
    if ok:
        check(True, "livekit_jwt verifies with the secret")
        check(got == claims, "livekit_jwt claims equal the vector's",
              json.dumps(got, sort_keys=True))
    header = jwt.get_unverified_header(token)
    check(header == {"alg": "HS256", "typ": "JWT"}, "livekit_jwt header", json.dumps(header))
    check("=" not in token and token.count(".") == 2, "livekit_jwt is unpadded compact JWS")
    check(claims.get("iss") == d["api_key"], "livekit_jwt iss is the API key")
    try:
        jwt.decode(token, d["api_secret"] + "x", algorithms=["HS256"],
                   options={"verify_exp": False, "verify_nbf": False})
        check(False, "livekit_jwt refused with a wrong secret")
    except jwt.InvalidSignatureError:
        check(True, "livekit_jwt refused with a wrong secret")
    # Payload bytes: the vector's token decodes to exactly its claims.
    payload = json.loads(b64url_decode(token.split(".")[1]))
    check(payload == claims, "livekit_jwt payload bytes decode to the claims")


# --- hashes.json ---------------------------------------------------------------------------


def rtc_hash(array):
    return unpaddedbase64.encode_base64(hashlib.sha256(canonical(array)).digest())


def find_sdk_identity_module():
    """The matrix-js-sdk 43 module exporting computeRtcIdentityRaw, or None."""
    sdk = os.path.join(REPO, "test", "testbed", "node_modules", "matrix-js-sdk")
    if not os.path.isdir(sdk):
        return None, "test/testbed/node_modules/matrix-js-sdk is not installed"
    with open(os.path.join(sdk, "package.json")) as f:
        version = json.load(f).get("version", "")
    if not version.startswith("43."):
        return None, "matrix-js-sdk is %s, not 43" % version
    lib = os.path.join(sdk, "lib")
    for root, _, files in os.walk(lib):
        for name in sorted(files):
            if not name.endswith(".js"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if ("export function computeRtcIdentityRaw" in text or
                    "export async function computeRtcIdentityRaw" in text or
                    "export const computeRtcIdentityRaw" in text):
                return path, None
    return None, "no module of matrix-js-sdk %s exports computeRtcIdentityRaw" % version


NODE_SCRIPT = r"""
import { pathToFileURL } from "node:url";
const [modPath, input] = process.argv.slice(1);
const mod = await import(pathToFileURL(modPath).href);
const out = [];
for (const [u, d, m] of JSON.parse(input)) out.push(await mod.computeRtcIdentityRaw(u, d, m));
process.stdout.write(JSON.stringify(out));
"""


def check_hashes(vdir):
    d = load(vdir, "hashes.json")
    sdk_cases = []
    for i, case in enumerate(d["cases"]):
        arr = case["array"]
        check(all(isinstance(s, str) for s in arr), "hashes case %d array of strings" % i)
        check(canonical(arr) == case["canonical"].encode("utf-8"),
              "hashes case %d canonical" % i, canonical(arr).decode("utf-8"))
        check(rtc_hash(arr) == case["hash"], "hashes case %d hash" % i, rtc_hash(arr))
        if case["kind"] == "identity" and len(arr) == 3:
            sdk_cases.append((i, arr, case["hash"]))
    leg = d["legacy_sfu_get_identity"]
    check(leg["identity"] == leg["user_id"] + ":" + leg["device_id"], "hashes legacy identity")

    path, why = find_sdk_identity_module()
    node = shutil.which("node")
    if path is None or node is None:
        print("hashes: NOTE: skipped the matrix-js-sdk cross-check (%s)" %
              (why or "node is not installed"))
        return
    check(len(sdk_cases) > 0, "hashes has identity cases for matrix-js-sdk")
    try:
        out = subprocess.run([node, "--input-type=module", "-e", NODE_SCRIPT, path,
                              json.dumps([a for _, a, _ in sdk_cases])],
                             capture_output=True, timeout=60, check=True)
        got = json.loads(out.stdout)
    except (subprocess.SubprocessError, ValueError) as e:
        check(False, "matrix-js-sdk computeRtcIdentityRaw runs", str(e))
        return
    for (i, arr, want), have in zip(sdk_cases, got):
        check(have == want, "hashes case %d equals matrix-js-sdk computeRtcIdentityRaw" % i,
              "sdk gives %r" % have)
    print("hashes: %d identities cross-checked with %s" %
          (len(sdk_cases), os.path.relpath(path, REPO)))


def main():
    vdir = (sys.argv[1] if len(sys.argv) > 1 else
            os.environ.get("MRTC_VECTORS_DIR") or os.path.join(REPO, "test", "vectors"))
    expected = {"canonical_json.json", "hashes.json", "livekit_jwt.json", "server_keys.json",
                "signing.json", "unpadded_base64.json", "xmatrix.json"}
    present = {n for n in os.listdir(vdir) if n.endswith(".json")}
    check(present == expected, "vector files", "have %s" % sorted(present))
    steps = [
        ("canonical_json.json", lambda: check_canonical_json(vdir)),
        ("unpadded_base64.json", lambda: check_unpadded_base64(vdir)),
        ("livekit_jwt.json", lambda: check_livekit_jwt(vdir)),
        ("hashes.json", lambda: check_hashes(vdir)),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as e:  # a malformed vector file is a failure, not a crash
            check(False, name, "%s: %s" % (type(e).__name__, e))
    try:
        sd, key = check_signing(vdir)
        check_server_keys(vdir, sd, key)
        check_xmatrix(vdir, sd, key)
    except Exception as e:
        check(False, "signing/server_keys/xmatrix", "%s: %s" % (type(e).__name__, e))
    print("vectors: %d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
