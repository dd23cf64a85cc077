#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A test stand-in for Synapse 1.161+'s application-service features, in front of the test
homeserver (homeserver.py): what an application service such as mrtc-transportd in its
application-service mode sees of Synapse. Not product code.

- Registration: read as Synapse 1.161/1.162 reads it (load_registration below): the prefixed
  keys io.element.msc4512.proxy_prefix / proxy_url and io.element.msc4502.scopes only; an
  unknown scope refuses to start ("Unknown application service scope(s)").
- MSC4512 client proxying: /_matrix/client/(unstable/<ns>|v<N>)/<proxy_prefix>(/.*)? is
  authenticated here (the user's access token, asked of the homeserver's whoami), paths with
  "." or ".." segments get 400 M_INVALID_PARAM, and the request goes to proxy_url + the same
  URI (access_token query parameters removed) with only Content-Type, Accept and
  Accept-Language of the client's headers, plus Authorization: Bearer <hs_token> and
  X-Matrix-User-Identifier. 30 s limit; a failure answers 500 M_UNKNOWN as Synapse's
  return_json_error does. Hop-by-hop headers of the answer are dropped.
- MSC4512 federation proxying: /_matrix/federation/(unstable/<ns>|v<N>)/<proxy_prefix>(/.*)?
  has its X-Matrix signature verified here (the origin's key fetched from its
  /_matrix/key/v2/server over TLS) and goes on with X-Matrix-Origin instead.
- fed_proxy: POST /_matrix/client/unstable/io.element.msc4512/appservice/fed_proxy with the
  as_token; {destination, method, path, body?, query?}; signs with the homeserver's key
  (python3-signedjson) and answers {"status", "content"}; errors as Synapse:
  401 M_MISSING_TOKEN/M_UNKNOWN_TOKEN, 403 M_FORBIDDEN (a user, not an application service),
  400 M_NOT_JSON/M_MISSING_PARAM/M_INVALID_PARAM, 403 <prefix>M_FEDPROXY_PATH_NOT_ALLOWED,
  403 <prefix>M_FEDPROXY_DESTINATION_DENIED (ourselves, not a server name, or --deny),
  502 <prefix>M_FEDPROXY_CONNECTION_FAILED, with <prefix> "IO.ELEMENT.MSC4512.".
- MSC4143 /rtc/transports answered from --rtc-transports (Synapse's matrix_rtc.transports).
- Everything else goes to the test homeserver unchanged (is_joined, delayed events, keys).
Every forwarded request is recorded at /_test/proxy_requests (headers included) for tests.

Usage: synapse_proxy.py --port P --host H --server-name NAME --homeserver URL
         --signing-key FILE --registration FILE --ca FILE [--peer NAME=ADDR]... [--deny NAME]...
         [--proxy-timeout SECONDS (30, as Synapse; tests shorten it)] [--rtc-transports JSON]
"""
import argparse
import http.client
import json
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from signedjson.key import decode_verify_key_bytes, read_signing_keys
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from unpaddedbase64 import decode_base64

ARGS = None
KEY = None
REG = None
LOCK = threading.Lock()
PROXIED = []  # what was forwarded to the application service
UNSTABLE_PREFIX = "IO.ELEMENT.MSC4512."
FED_PROXY = "/_matrix/client/unstable/io.element.msc4512/appservice/fed_proxy"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade"}
KNOWN_SCOPES = {"urn:matrix:client:io.element.msc4502:rooms:is_joined"}


class RegistrationError(Exception):
    pass


def load_registration(path, server_name):
    """Reads an application-service registration as Synapse 1.161/1.162 does (the fields this
    feature uses): returns a dict, or raises RegistrationError with Synapse's complaint."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        raise RegistrationError("registration is not a mapping")
    for field in ("id", "as_token", "hs_token", "sender_localpart"):
        if not isinstance(doc.get(field), str):
            raise RegistrationError(f"Missing/bad type for field: {field}")
    if "url" not in doc:
        raise RegistrationError("Missing/bad type for field: url")
    ns = doc.get("namespaces", {})
    users = ns.get("users", []) if isinstance(ns, dict) else None
    if not isinstance(users, list):
        raise RegistrationError("Expected namespace entry to be a list")
    for entry in users:
        if not isinstance(entry, dict) or not isinstance(entry.get("regex"), str) or \
                not isinstance(entry.get("exclusive"), bool):
            raise RegistrationError("Expected bool for 'exclusive' and str 'regex' in ns")
        re.compile(entry["regex"])
    prefix = doc.get("io.element.msc4512.proxy_prefix")
    proxy_url = doc.get("io.element.msc4512.proxy_url")
    scopes = doc.get("io.element.msc4502.scopes", [])
    if not isinstance(scopes, list):
        raise RegistrationError("io.element.msc4502.scopes must be a list")
    unknown = set(scopes) - KNOWN_SCOPES
    if unknown:
        raise RegistrationError(f"Unknown application service scope(s): {sorted(unknown)}")
    if (prefix is None) != (proxy_url is None):
        raise RegistrationError("proxy_prefix and proxy_url must be set together")
    return {"id": doc["id"], "as_token": doc["as_token"], "hs_token": doc["hs_token"],
            "url": doc["url"], "users": users, "proxy_prefix": prefix,
            "proxy_url": proxy_url.rstrip("/") if proxy_url else None, "scopes": set(scopes),
            "rate_limited": doc.get("rate_limited", True)}


def has_dot_segments(path):
    return any(seg in (b".", b"..") for seg in urllib.parse.unquote_to_bytes(path).split(b"/"))


def strip_access_token(uri):
    split = urllib.parse.urlsplit(uri)
    if not split.query:
        return uri
    args = [(k, v) for k, v in urllib.parse.parse_qsl(split.query, keep_blank_values=True)
            if k.lower() != "access_token"]
    return split.path + ("?" + urllib.parse.urlencode(args) if args else "")


def error(status, errcode, msg):
    return status, {"errcode": errcode, "error": msg}


def parse_xmatrix(value):
    if not value.startswith("X-Matrix "):
        return None
    params = {}
    for part in re.findall(r'([a-z]+)=("(?:[^"\\]|\\.)*"|[^,]*)', value[9:]):
        k, v = part
        params[k] = v[1:-1] if v.startswith('"') else v
    return params


def https_request(destination, method, path, body=None, headers=None, timeout=10):
    """HTTPS to another testbed server: its name is looked up in --peer (port 8448 unless the
    name has one), its certificate checked against the testbed CA."""
    host, _, port = destination.partition(":")
    address = ARGS.peers.get(host)
    if not address:
        raise ConnectionError(f"cannot resolve {host}")
    ctx = ssl.create_default_context(cafile=ARGS.ca)
    sock = ctx.wrap_socket(socket.create_connection((address, int(port or 8448)),
                                                    timeout=timeout), server_hostname=host)
    conn = http.client.HTTPSConnection(host, int(port or 8448), context=ctx, timeout=timeout)
    conn.sock = sock
    try:
        h = {"Host": destination}
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def origin_key(origin, key_id):
    status, data = https_request(origin, "GET", "/_matrix/key/v2/server")
    doc = json.loads(data)
    if status != 200 or doc.get("server_name") != origin:
        raise ValueError("no keys")
    raw = doc["verify_keys"][key_id]["key"]
    vk = decode_verify_key_bytes(key_id, decode_base64(raw))
    verify_signed_json(doc, origin, vk)  # self-signed
    return vk


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_test/proxy_requests":
            with LOCK:
                out = list(PROXIED)
                if self.command == "POST":
                    PROXIED.clear()
            return self.reply(200, {"requests": out})
        prefix = REG["proxy_prefix"]
        if prefix:
            pat = r"/_matrix/(client|federation)/(?:unstable/[^/]+|v[^/]+)/%s(?:/.*)?" % (
                re.escape(prefix))
            m = re.fullmatch(pat, path)
            if m and m.group(1) == "client":
                return self.proxy_client(body)
            if m:
                return self.proxy_federation(body)
        if path == FED_PROXY and self.command == "POST":
            return self.reply(*self.fed_proxy(body))
        if re.fullmatch(r"/_matrix/client/(v1|unstable/org\.matrix\.msc4143)/rtc/transports",
                        path) and self.command == "GET":
            return self.reply(*self.transports())
        return self.pass_through(body)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
        self.send_header("Access-Control-Allow-Headers",
                         "X-Requested-With, Content-Type, Authorization")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- the homeserver behind ---------------------------------------------------------------
    def pass_through(self, body):
        u = urllib.parse.urlsplit(ARGS.homeserver)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            return self.reply(502, {"errcode": "M_UNKNOWN", "error": "homeserver down"})
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def whoami(self, token):
        u = urllib.parse.urlsplit(ARGS.homeserver)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request("GET", "/_matrix/client/v3/account/whoami",
                         headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def client_token(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        return q.get("access_token", [None])[0]

    def transports(self):
        """MSC4143 as Synapse serves it from matrix_rtc.transports (not proxied: the path is
        not under the proxy prefix)."""
        token = self.client_token()
        if not token:
            return error(401, "M_MISSING_TOKEN", "Missing access token.")
        status, who = self.whoami(token)
        if status != 200:
            return status, who
        return 200, {"rtc_transports": ARGS.rtc_transports}

    # -- MSC4512 proxying ---------------------------------------------------------------------
    def proxy_client(self, body):
        token = self.client_token()
        if not token:
            return self.reply(*error(401, "M_MISSING_TOKEN", "Missing access token."))
        status, who = self.whoami(token)
        if status != 200:
            return self.reply(status, who)
        return self.forward(body, {"X-Matrix-User-Identifier": who["user_id"]})

    def proxy_federation(self, body):
        auth = [v for k, v in self.headers.items() if k.lower() == "authorization"]
        params = parse_xmatrix(auth[0]) if auth else None
        if not params or "origin" not in params or "key" not in params or "sig" not in params:
            return self.reply(*error(401, "M_UNAUTHORIZED", "Missing Authorization headers"))
        if params.get("destination", ARGS.server_name) != ARGS.server_name:
            return self.reply(*error(401, "M_UNAUTHORIZED", "Wrong destination"))
        origin = params["origin"]
        req = {"method": self.command, "uri": self.path, "origin": origin,
               "destination": ARGS.server_name,
               "signatures": {origin: {params["key"]: params["sig"]}}}
        if body:
            try:
                req["content"] = json.loads(body)
            except ValueError:
                return self.reply(*error(400, "M_NOT_JSON", "Content not JSON."))
        try:
            verify_signed_json(req, origin, origin_key(origin, params["key"]))
        except (SignatureVerifyException, ValueError, KeyError, OSError) as e:
            return self.reply(*error(401, "M_UNAUTHORIZED", f"Invalid signature: {e}"))
        return self.forward(body, {"X-Matrix-Origin": origin})

    def forward(self, body, extra):
        path_only = self.path.split("?", 1)[0]
        if has_dot_segments(path_only.encode()):
            return self.reply(*error(400, "M_INVALID_PARAM", "Request path is not allowed"))
        target = strip_access_token(self.path)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "accept", "accept-language")}
        headers["Authorization"] = f"Bearer {REG['hs_token']}"
        headers.update(extra)
        with LOCK:
            PROXIED.append({"method": self.command, "uri": target, "headers": headers,
                            "time": time.time()})
        u = urllib.parse.urlsplit(REG["proxy_url"])
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=ARGS.proxy_timeout)
        try:
            conn.request(self.command, target, body=body if body else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            print(f"error proxying to the application service: {e}", file=sys.stderr)
            return self.reply(*error(500, "M_UNKNOWN", "Internal server error"))
        finally:
            conn.close()
        conn_hdr = (resp.getheader("Connection") or "").lower()
        strip = HOP_BY_HOP | {h.strip() for h in conn_hdr.split(",") if h.strip()}
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in strip and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- fed_proxy ----------------------------------------------------------------------------
    def fed_proxy(self, body):
        token = self.client_token()
        if not token:
            return error(401, "M_MISSING_TOKEN", "Missing access token.")
        if token != REG["as_token"]:
            status, who = self.whoami(token)
            if status == 200:
                return error(403, "M_FORBIDDEN",
                             "Only application services can use this endpoint")
            return error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
        try:
            req = json.loads(body)
        except ValueError:
            return error(400, "M_NOT_JSON", "Content not JSON.")
        if not isinstance(req, dict):
            return error(400, "M_BAD_JSON", "Content must be a JSON object.")
        for field in ("destination", "method", "path"):
            if req.get(field) is None:
                return error(400, "M_MISSING_PARAM", f"Missing param: {field}")
            if not isinstance(req[field], str):
                return error(400, "M_INVALID_PARAM", f"{field} must be a string")
        if "body" in req and req["body"] is not None and not isinstance(req["body"], dict):
            return error(400, "M_INVALID_PARAM", "body must be an object")
        if "query" in req and req["query"] is not None and not isinstance(req["query"], dict):
            return error(400, "M_INVALID_PARAM", "query must be an object")
        method, path, dest = req["method"], req["path"], req["destination"]
        if method not in ("GET", "PUT", "POST", "DELETE"):
            return error(400, "M_INVALID_PARAM", f"Unsupported method {method}")
        if has_dot_segments(path.encode()):
            return error(403, UNSTABLE_PREFIX + "M_FEDPROXY_PATH_NOT_ALLOWED",
                         "Path must not contain '.' or '..' segments")
        if not re.fullmatch(r"/_matrix/federation/(?:unstable/[^/]+|v[^/]+)/%s(/.*)?" % (
                re.escape(REG["proxy_prefix"] or ""),), path) or not REG["proxy_prefix"]:
            return error(403, UNSTABLE_PREFIX + "M_FEDPROXY_PATH_NOT_ALLOWED",
                         f"Path must be under /_matrix/federation/<version>/"
                         f"{REG['proxy_prefix']}")
        if dest == ARGS.server_name:
            return error(403, UNSTABLE_PREFIX + "M_FEDPROXY_DESTINATION_DENIED",
                         "Cannot target this homeserver itself")
        if not re.fullmatch(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?", dest) or dest in ARGS.deny:
            return error(403, UNSTABLE_PREFIX + "M_FEDPROXY_DESTINATION_DENIED",
                         f"Federation denied with {dest}.")
        uri = path
        if req.get("query"):
            uri += "?" + urllib.parse.urlencode(req["query"], doseq=True)
        content = req.get("body") if method in ("PUT", "POST") else None
        signed = {"method": method, "uri": uri, "origin": ARGS.server_name,
                  "destination": dest}
        if content is not None:
            signed["content"] = content
        sig = sign_json(signed, ARGS.server_name, KEY)["signatures"][ARGS.server_name]
        key_id = f"{KEY.alg}:{KEY.version}"
        auth = (f'X-Matrix origin="{ARGS.server_name}",destination="{dest}",key="{key_id}",'
                f'sig="{sig[key_id]}"')
        try:
            status, data = https_request(dest, method, uri, body=content,
                                         headers={"Authorization": auth}, timeout=60)
        except (OSError, ConnectionError, http.client.HTTPException) as e:
            return error(502, UNSTABLE_PREFIX + "M_FEDPROXY_CONNECTION_FAILED",
                         f"Failed to send request: {e}")
        try:
            out = json.loads(data)
        except ValueError:
            if status == 200:
                return error(502, UNSTABLE_PREFIX + "M_FEDPROXY_CONNECTION_FAILED",
                             "Response was not JSON")
            out = None
        return 200, {"status": status, "content": out}


def main():
    global ARGS, KEY, REG
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--server-name", required=True)
    p.add_argument("--homeserver", required=True)
    p.add_argument("--signing-key", required=True)
    p.add_argument("--registration", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--peer", action="append", default=[])
    p.add_argument("--deny", action="append", default=[])
    p.add_argument("--proxy-timeout", type=float, default=30.0)  # Synapse: 30 s
    p.add_argument("--rtc-transports", type=json.loads, default=[])  # matrix_rtc.transports
    ARGS = p.parse_args()
    ARGS.peers = dict(x.split("=", 1) for x in ARGS.peer)
    with open(ARGS.signing_key) as f:
        KEY = read_signing_keys(f)[0]
    try:
        REG = load_registration(ARGS.registration, ARGS.server_name)
    except RegistrationError as e:
        print(f"synapse_proxy: {e}", file=sys.stderr)
        return 1
    print(f"application service {REG['id']}: proxy_prefix {REG['proxy_prefix']!r} proxy_url "
          f"{REG['proxy_url']!r} scopes {sorted(REG['scopes'])}", flush=True)
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
