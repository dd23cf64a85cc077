#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small test homeserver: the parts of the Matrix client-server, admin and federation APIs that
mrtc-transportd calls, with the real API's status codes and error shapes.

State (users, rooms, memberships, ACLs, OpenID tokens, delayed events) comes from a JSON file and
can be changed mid-test through /_test/* control endpoints. Every request is logged, so tests can
assert what the daemon asked (and what it did not). Not product code.

Usage: homeserver.py --port P --server-name NAME --signing-key FILE --state FILE
"""
import argparse
import json
import os
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from signedjson.key import (encode_verify_key_base64, generate_signing_key, get_verify_key,
                            read_signing_keys)
from signedjson.sign import sign_json

LOCK = threading.Lock()
STATE = {}
MODE = {"mode": "normal", "delay": 0.0}
REQUESTS = []
ARGS = None
KEY = None


def matrix_error(status, errcode, error):
    return status, {"errcode": errcode, "error": error}


def wildcard_user(token):
    """With "wildcard_users" in the state, any token wild_<x> is the user @wild_<x> (benchmarks
    fill the daemon's caches with them)."""
    if STATE.get("wildcard_users") and token and token.startswith("wild_") and token.isascii():
        return {"user_id": f"@{token}:{ARGS.server_name}", "device_id": "WILD"}
    return None


def bearer(headers, query):
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:]
    return query.get("access_token", [None])[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet; requests go to REQUESTS instead
        pass

    def send_json(self, status, body, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = parsed.path
        if path.startswith("/_test/"):
            status, out = self.control(method, path, body)
            return self.send_json(status, out)
        with LOCK:
            REQUESTS.append({"method": method, "path": path, "query": parsed.query,
                             "time": time.time()})
            mode, delay = MODE["mode"], MODE["delay"]
        if mode == "down":
            self.close_connection = True
            self.connection.close()
            return
        if delay:
            time.sleep(delay)
        if mode == "500":
            return self.send_json(500, {"errcode": "M_UNKNOWN", "error": "Internal error"})
        if mode == "garbage":
            return self.send_json(200, None, raw=b"{not json")
        token = bearer(self.headers, query)
        with LOCK:
            status, out = self.route(method, path, query, token, body)
        self.send_json(status, out)

    do_GET = lambda self: self.handle_any("GET")  # noqa: E731
    do_POST = lambda self: self.handle_any("POST")  # noqa: E731
    do_PUT = lambda self: self.handle_any("PUT")  # noqa: E731

    # -- control ---------------------------------------------------------------------------
    def control(self, method, path, body):
        with LOCK:
            if path == "/_test/state" and method == "POST":
                STATE.clear()
                STATE.update(json.loads(body))
                return 200, {}
            if path == "/_test/state":
                return 200, STATE
            if path == "/_test/patch" and method == "POST":
                # {"room": id, "member": user, "membership": m} or {"room": id, "acl": {...}|None}
                p = json.loads(body)
                if "token" in p:  # {"token": t, "whoami_error": {"status": s, "body": b}|None}
                    STATE["users"][p["token"]]["whoami_error"] = p["whoami_error"]
                    return 200, {}
                room = STATE.setdefault("rooms", {}).setdefault(p["room"], {"members": {}})
                if "member" in p:
                    room["members"][p["member"]] = p["membership"]
                if "acl" in p:
                    room["acl"] = p["acl"]
                return 200, {}
            if path == "/_test/delayed" and method == "POST":
                # {"delay_id": id, "user_id": u, "delay": ms[, "state": s]}
                p = json.loads(body)
                ev = STATE.setdefault("delayed_events", {}).setdefault(p["delay_id"], {})
                ev.update({"user_id": p["user_id"], "delay": p["delay"],
                           "state": p.get("state", "scheduled")})
                if "room_id" in p:
                    ev["room_id"] = p["room_id"]
                return 200, ev
            if path == "/_test/delayed_mode" and method == "POST":
                # {"dialect": "old"|"new", "form": "path"|"body"|"both", "single": b, "auth": b}
                STATE["delayed_mode"] = json.loads(body)
                return 200, STATE["delayed_mode"]
            if path == "/_test/delayed":
                return 200, STATE.get("delayed_events", {})
            if path == "/_test/mode" and method == "POST":
                MODE.update(json.loads(body))
                return 200, MODE
            if path == "/_test/requests":
                out = list(REQUESTS)
                if method == "POST":
                    REQUESTS.clear()
                return 200, {"requests": out}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}

    # -- API ---------------------------------------------------------------------------------
    def route(self, method, path, query, token, body):
        users = STATE.get("users", {})
        rooms = STATE.get("rooms", {})
        if path == "/.well-known/matrix/server" and "well_known" in STATE:
            return 200, STATE["well_known"]
        if path == "/_matrix/client/versions":
            return 200, {"versions": ["v1.11"],
                         "unstable_features": STATE.get("unstable_features", {})}
        if path == "/_matrix/key/v2/server":
            if STATE.get("key_mode") == "unavailable":
                return matrix_error(503, "M_UNKNOWN", "Key server unavailable")
            return 200, self.server_keys()
        if path.startswith("/_matrix/key/v2/query/") and method == "GET":
            return 200, self.notary_keys(urllib.parse.unquote(path[len("/_matrix/key/v2/query/"):]))
        if path == "/_matrix/federation/v1/openid/userinfo":
            user = STATE.get("openid", {}).get(token or "")
            if not user:
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Access Token unknown or expired")
            return 200, {"sub": user}
        if path == "/_matrix/client/v3/account/whoami":
            if not token:
                return matrix_error(401, "M_MISSING_TOKEN", "Missing access token")
            u = users.get(token) or wildcard_user(token)
            if not u:
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            if u.get("whoami_error"):  # {"status": 403, "body": {...}}: answered as given
                return u["whoami_error"]["status"], u["whoami_error"]["body"]
            out = {"user_id": u["user_id"]}
            if u.get("device_id"):
                out["device_id"] = u["device_id"]
            return 200, out
        m = re.fullmatch(r"/_matrix/client/v3/user/([^/]+)/openid/request_token", path)
        if m and method == "POST":
            # As Synapse: only for oneself; the token is then known to federation userinfo.
            u = users.get(token or "")
            if not u:
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            if urllib.parse.unquote(m.group(1)) != u["user_id"]:
                return matrix_error(403, "M_FORBIDDEN", "Cannot request tokens for other users.")
            oid = "oid_" + os.urandom(12).hex()
            STATE.setdefault("openid", {})[oid] = u["user_id"]
            return 200, {"access_token": oid, "token_type": "Bearer",
                         "matrix_server_name": ARGS.server_name, "expires_in": 3600}
        m = re.fullmatch(r"/_matrix/client/v3/rooms/([^/]+)/state/([^/]+)/([^/]*)", path)
        if m and method == "PUT" and "org.matrix.msc4140.delay" in query:
            # MSC4140: a state event scheduled with a delay (the widget host sends its
            # participants' delayed leave through here); restart/send/cancel as below.
            u = users.get(token or "")
            if not u:
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            delay_id = "syd_" + os.urandom(8).hex()
            STATE.setdefault("delayed_events", {})[delay_id] = {
                "user_id": u["user_id"], "room_id": urllib.parse.unquote(m.group(1)),
                "delay": int(query["org.matrix.msc4140.delay"][0]), "state": "scheduled",
                "type": urllib.parse.unquote(m.group(2)),
                "state_key": urllib.parse.unquote(m.group(3)), "scheduled_at": time.time()}
            return 200, {"delay_id": delay_id}
        m = re.fullmatch(r"/_matrix/client/v3/rooms/([^/]+)/state/m\.room\.member/([^/]+)", path)
        if m:
            u = users.get(token or "") or wildcard_user(token)
            if not u:
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            room_id, user_id = (urllib.parse.unquote(x) for x in m.groups())
            room = rooms.get(room_id)
            if room and room.get("wildcard_members") and u["user_id"].startswith("@wild_"):
                return 200, {"membership": "join"}
            me = room and room["members"].get(u["user_id"])
            if not room or me not in ("join", "leave", "ban"):
                return matrix_error(403, "M_FORBIDDEN",
                                    f"User {u['user_id']} not in room {room_id}")
            membership = room["members"].get(user_id)
            if membership is None:
                return matrix_error(404, "M_NOT_FOUND", "Event not found.")
            return 200, {"membership": membership}
        m = re.fullmatch(r"/_synapse/admin/v1/rooms/([^/]+)/(members|state)", path)
        if m:
            if token != STATE.get("admin_token"):
                if token in users:
                    return matrix_error(403, "M_FORBIDDEN", "You are not a server admin")
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            room_id = urllib.parse.unquote(m.group(1))
            room = rooms.get(room_id)
            if room is None:
                return matrix_error(404, "M_NOT_FOUND", "Room not found")
            if m.group(2) == "members":
                joined = [u for u, ms in room["members"].items() if ms == "join"]
                return 200, {"members": joined, "total": len(joined)}
            events = []
            if room.get("acl") is not None and query.get("type", [""])[0] in ("", "m.room.server_acl"):
                events.append({"type": "m.room.server_acl", "state_key": "",
                               "content": room["acl"], "room_id": room_id})
            return 200, {"state": events}
        # MSC4502: the unstable path, and the stable one when STATE["is_joined_stable"]; with
        # STATE["is_joined_unstable"] False the unstable one is gone (a later Synapse).
        m = re.fullmatch(r"/_matrix/client/(unstable/io\.element\.msc4502|v3)/rooms/([^/]+)/"
                         r"is_joined", path)
        if m and (STATE.get("is_joined_stable") if m.group(1) == "v3"
                  else STATE.get("is_joined_unstable", True)):
            if token != STATE.get("appservice_token"):
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            STATE.setdefault("is_joined_calls", []).append(
                {"path": m.group(1), "query": {k: v[0] for k, v in query.items()}})
            if ("mxid" in query) == ("server_name" in query):
                return matrix_error(400, "M_INVALID_PARAM",
                                    "Exactly one of mxid or server_name is required")
            room = rooms.get(urllib.parse.unquote(m.group(2)), {"members": {}})
            if "mxid" in query:
                return 200, {"joined": room["members"].get(query["mxid"][0]) == "join"}
            if "server_name" in query:
                sn = query["server_name"][0]
                return 200, {"joined": any(ms == "join" and u.split(":", 1)[1] == sn
                                           for u, ms in room["members"].items())}
            return matrix_error(400, "M_MISSING_PARAM", "mxid or server_name required")
        m = re.fullmatch(r"/_matrix/client/(?:v1|unstable/org\.matrix\.msc4140)/delayed_events"
                         r"(?:/([^/]+)(?:/(restart|send|cancel))?)?", path)
        if m:
            return self.delayed_events(method, m.group(1), m.group(2), query, token, body)
        return matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request")

    # -- MSC4140 delayed events ----------------------------------------------------------------
    # STATE["delayed_mode"] picks what this homeserver speaks: "dialect" "old" (scheduled[],
    # delay, running_since) or "new" (delayed_events[], delay_ms, scheduled_at); "form" "path"
    # (POST …/{id}/{action}), "body" (POST …/{id} {"action"}) or "both"; "single": serve
    # GET …/{id}; "auth": management needs the owner's token or the appservice token with
    # ?user_id= of the owner; "fail_management": restart/send answer 500. An event in state
    # "finalised" answers 409. Defaults: the old
    # dialect, path form, no single lookup, no authentication.
    def delayed_events(self, method, delay_id, action, query, token, body):
        mode = STATE.get("delayed_mode", {})
        new = mode.get("dialect") == "new"
        form = mode.get("form", "path")
        users = STATE.get("users", {})
        events = STATE.setdefault("delayed_events", {})

        def entry(k, e):
            now = int(time.time() * 1000)
            out = {"delay_id": k, "room_id": e.get("room_id", ""),
                   "type": "org.matrix.msc3401.call.member", "state_key": "", "content": {}}
            out.update({"delay_ms": e["delay"], "scheduled_at": now} if new else
                       {"delay": e["delay"], "running_since": now})
            return out
        if method == "GET":
            u = users.get(token or "")
            if token and token == STATE.get("appservice_token") and "user_id" in query:
                u = {"user_id": query["user_id"][0]}  # an application service as the user
            if delay_id and not mode.get("single"):
                return matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request")
            if not u:
                return matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
            if delay_id:
                e = events.get(urllib.parse.unquote(delay_id))
                if not e or e["user_id"] != u["user_id"] or e.get("state") != "scheduled":
                    return matrix_error(404, "M_NOT_FOUND", "Delayed event not found")
                return 200, entry(urllib.parse.unquote(delay_id), e)
            mine = [entry(k, e) for k, e in events.items()
                    if e["user_id"] == u["user_id"] and e.get("state") == "scheduled"]
            return 200, {"delayed_events" if new else "scheduled": mine}
        if method != "POST" or not delay_id:
            return matrix_error(405, "M_UNRECOGNIZED", "Unrecognized request")
        if mode.get("fail_management"):  # restart and send answer 500
            return matrix_error(500, "M_UNKNOWN", "Internal error")
        if action and form == "body" or not action and form == "path":
            return matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request")
        if not action:
            try:
                action = json.loads(body or b"{}").get("action")
            except ValueError:
                action = None
            if action not in ("restart", "send", "cancel"):
                return matrix_error(400, "M_INVALID_PARAM", "Bad action")
        ev = events.get(urllib.parse.unquote(delay_id))
        if mode.get("auth"):
            as_ok = (token and token == STATE.get("appservice_token") and ev and
                     query.get("user_id", [None])[0] == ev["user_id"])
            u = users.get(token or "")
            if not as_ok and not (u and ev and u["user_id"] == ev["user_id"]):
                return matrix_error(401, "M_MISSING_TOKEN", "Authentication required")
        if ev is not None:
            ev.setdefault("requests", []).append({"action": action, "query": query})
        if ev and ev.get("state") == "finalised":
            ev.setdefault("refused", []).append({"action": action, "time": time.time()})
            return matrix_error(409, "M_UNKNOWN", "Delayed event already finalised")
        if not ev or ev.get("state") != "scheduled":
            return matrix_error(404, "M_NOT_FOUND", "Delayed event not found")
        ev.setdefault("actions", []).append({"action": action, "time": time.time()})
        if action == "send":
            ev["state"] = "sent"
        elif action == "cancel":
            ev["state"] = "cancelled"
        return 200, {}

    def notary_keys(self, server):
        """As a notary (Synapse's /_matrix/key/v2/query/{serverName}): the key responses held
        for @server in STATE["notary"] (as fetched from it), each with our signature added.
        notary_mode in the state: normal, forged (our signature by another key), unsigned."""
        mode = STATE.get("notary_mode", "normal")
        out = []
        for entry in STATE.get("notary", {}).get(server, []):
            entry = json.loads(json.dumps(entry))
            if mode == "forged":
                entry = sign_json(entry, ARGS.server_name, generate_signing_key(KEY.version))
            elif mode != "unsigned":
                entry = sign_json(entry, ARGS.server_name, KEY)
            out.append(entry)
        return {"server_keys": out}

    def server_keys(self):
        """key_mode in the state: normal, expired (valid_until in the past), long (30 days),
        forged (signature by another key), wrong_name (another server_name)."""
        mode = STATE.get("key_mode", "normal")
        validity = {"expired": -60000, "long": 30 * 86400 * 1000}.get(mode, 3600000)
        name = "someone-else.test" if mode == "wrong_name" else ARGS.server_name
        # The testbed's <any>.fresh.test names all reach hs1: each is a server of its own that
        # signs with hs1's key, so a test has as many servers with uncached keys as it needs.
        host = (self.headers.get("Host") or "").split(":")[0]
        if host.endswith(".fresh.test"):
            name = host
        obj = {
            "server_name": name,
            "verify_keys": {f"{KEY.alg}:{KEY.version}": {
                "key": encode_verify_key_base64(get_verify_key(KEY))}},
            "old_verify_keys": {},
            "valid_until_ts": int(time.time() * 1000) + validity,
        }
        if mode == "forged":
            other = generate_signing_key(KEY.version)
            return sign_json(obj, name, other)
        return sign_json(obj, name, KEY)


def main():
    global ARGS, KEY
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--server-name", required=True)
    p.add_argument("--signing-key", required=True)
    p.add_argument("--state", required=True)
    ARGS = p.parse_args()
    with open(ARGS.signing_key) as f:
        KEY = read_signing_keys(f)[0]
    with open(ARGS.state) as f:
        STATE.update(json.load(f))
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops bursts
    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
