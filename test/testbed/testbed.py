#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The federation testbed: two homeservers on one machine, with real DNS (dnsmasq), real TLS (a
CA made at start with openssl), a real reverse proxy (nginx, with the operator configuration from
module/deploy/), a test homeserver and a stand-in SFU per server, optionally LiveKit's own server
per server (livekit=True, behind wss://sfu.<name>; livekit={"hs1.test": 2, ...} runs that many per
server, the further ones behind wss://sfu<n>.<name> as the daemon's SFU n), and optionally
mrtc-transportd per server. Integration tests, benchmarks and the demo start and stop it; `testbed.py up` runs it for
manual use. Everything lives in one temporary folder that is removed on a clean stop and kept
(with every log) when a test fails.

Names (all resolved by the testbed's dnsmasq only):
  hs1.test, hs2.test      A records, each on its own loopback address; nginx on 443 and 8448
  wk.test                 .well-known on its own address delegates to hs2.test:8448
  wknoport.test           .well-known delegates to srvtarget.test (no port) -> SRV -> hs2
  srv.test                SRV _matrix-fed._tcp -> hs2.test:8448 (no well-known)
  oldsrv.test             only the deprecated SRV _matrix._tcp -> hs2.test:8448
  redirect.test           .well-known answers 302 to wk.test's
  redirectpriv.test       .well-known answers 302 to https://private.test/ (must be refused)
  bigwk.test              .well-known body over 50 KiB (must be ignored)
  garbage.test            answers every federation request on 8448 with a body that is not JSON
  huge.test               answers every federation request on 8448 with a 200 KiB JSON body
  wrongcert.test          A record to hs2's address; the certificate does not name it
  private.test            resolves to a private (10.x) address, for the outbound guard
  slow.test, <any>.slow.test  A records to an address of their own where nothing listens
                          unless a test starts a server there (Testbed.slow_address)
  <any>.fresh.test        A records to hs1's address: as many distinct servers as a test needs,
                          served by hs1's homeserver with hs1's key (see homeserver.py)
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from signedjson.key import read_signing_keys
from signedjson.sign import sign_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(ROOT, "module", "deploy")
PY = "/usr/bin/python3"
LIVEKIT_KEY = "APItestbed"


# Ports handed out by this process: the kernel may give the same free port twice while the
# first taker has not bound it yet (a LiveKit server once found its port taken by a homeserver of
# its own testbed that way). They are drawn below the kernel's ephemeral range (32768 and up on
# Linux): a port from that range, free when drawn, can become the local end of any process's
# outgoing connection before its server binds it (a LiveKit server in CI found its port "already
# in use" that way).
_handed_out = set()
_PORTS = range(10000, 32768)


def _fresh_port(kind, host):
    for _ in range(256):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no fresh port")


def free_port(host="127.0.0.1"):
    return _fresh_port(socket.SOCK_STREAM, host)


def free_udp_port(host):
    return _fresh_port(socket.SOCK_DGRAM, host)


def livekit_binary():
    """The livekit-server that test/deps.sh (mrtc_install_livekit) installed, or None."""
    found = [os.environ.get("MRTC_LIVEKIT_SERVER", ""),
             "/var/cache/mrtc-transport/go/bin/livekit-server",
             os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                          "mrtc-transport", "go", "bin", "livekit-server"),
             shutil.which("livekit-server") or ""]
    return next((f for f in found if f and os.access(f, os.X_OK)), None)


def x_matrix(key, origin, destination, uri, content, method="POST", header_destination=True):
    """The Authorization header a homeserver sends: X-Matrix with @origin's signature (signedjson)
    over the request, with or without the destination parameter."""
    req = {"method": method, "uri": uri, "origin": origin, "destination": destination,
           "content": content}
    sig = sign_json(req, origin, key)["signatures"][origin][f"{key.alg}:{key.version}"]
    dest = f',destination="{destination}"' if header_destination else ""
    return f'X-Matrix origin="{origin}"{dest},key="{key.alg}:{key.version}",sig="{sig}"'


def wait_for(check, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} ({last})")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class LiveKitServer:
    """One real LiveKit server beside a homeserver: SFU @n of that homeserver's daemon (1: the
    LIVEKIT_URL variables, n > 1: LIVEKIT_URL_<n> ...), with its own key and secret, signalling
    and RoomService on @port, ICE over TCP on @tcp_port and over UDP on @udp_port. Clients reach
    it at wss://sfu.<hs> (n = 1) or wss://sfu<n>.<hs> through that homeserver's nginx."""

    def __init__(self, hs, n, key, secret, svc):
        self.hs, self.n, self.key, self.secret, self.svc = hs, n, key, secret, svc
        self.host = f"sfu.{hs}" if n == 1 else f"sfu{n}.{hs}"
        self.port = free_port(svc)
        # LiveKit binds its ICE ports on every address: free on all of them.
        self.tcp_port = free_port("0.0.0.0")
        self.udp_port = free_udp_port("0.0.0.0")
        self.proc = None
        self.starts = 0  # each start logs to its own file: livekit[<n>]-<hs>[.<start>].log

    @property
    def name(self):
        return f"livekit-{self.hs}" if self.n == 1 else f"livekit{self.n}-{self.hs}"

    @property
    def url(self):
        """What the daemon advertises and puts in its answers."""
        return f"wss://{self.host}"

    @property
    def api_url(self):
        """RoomService and signalling, plain HTTP on loopback."""
        return f"http://{self.svc}:{self.port}"

    @property
    def ws_url(self):
        """Signalling for @livekit/rtc-node participants, without nginx and TLS."""
        return f"ws://{self.svc}:{self.port}"


class LiveKitClients:
    """test/testbed/lkclient.mjs: @livekit/rtc-node participants and livekit-server-sdk's
    RoomServiceClient in one Node process; calling it sends one command and returns the answer.
    rtc-node's own log lines go to @log."""

    def __init__(self, log):
        self.p = subprocess.Popen(["node", os.path.join(HERE, "lkclient.mjs")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                  text=True, cwd=HERE)
        self.log = log

    def __call__(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("lkclient.mjs exited")
            if line.startswith("@@ "):
                return json.loads(line[3:])
            self.log.write(line)  # rtc-node's own log lines

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Server:
    """One homeserver of the testbed and what stands beside it."""

    def __init__(self, name, address, svc):
        self.name = name
        self.address = address
        self.svc = svc  # the testbed's own loopback address for its internal services
        self.hs_port = free_port(svc)
        self.sfu_port = free_port(svc)
        self.secret = "secret-" + name + "-" + os.urandom(8).hex()
        self.admin_token = "admin-" + os.urandom(6).hex()
        self.appservice_token = "as-" + os.urandom(6).hex()
        self.mrtc = None  # harness.Daemon when started (the first of mrtcs)
        # Several daemons for this homeserver behind one nginx upstream (instances > 1): they
        # need a shared MRTC_STORE (extra_env or start_daemons()) to share jobs and limits.
        self.instances = 1
        self.mrtcs = []
        self.killed = []  # daemons a test killed on purpose (their exit is not a failure)
        self.extra_env = {}  # this server's own daemon variables, over start_daemons()
        # Application-service mode: synapse_proxy.py (Synapse's MSC4512 proxy and fed_proxy)
        # stands in front of the test homeserver, and the daemon is registered with it.
        self.appservice = False
        self.proxy_port = free_port(svc)
        self.deny = []  # destinations its fed_proxy refuses (federation_domain_whitelist)
        self.proxy_timeout = 30  # Synapse's limit for the application service's answer
        # The real LiveKit servers beside it (Testbed(livekit=...)), SFU 1 first.
        self.livekits = []

    def signing_key(self):
        """This homeserver's Ed25519 signing key (signedjson's key object)."""
        with open(self.signing_key_file) as f:
            return read_signing_keys(f)[0]

    # SFU 1's real LiveKit server (None without one): signalling and RoomService on lk_port,
    # ICE over TCP on lk_tcp_port, ICE over UDP on lk_udp_port.
    @property
    def lk_port(self):
        return self.livekits[0].port if self.livekits else None

    @property
    def lk_tcp_port(self):
        return self.livekits[0].tcp_port if self.livekits else None

    @property
    def lk_udp_port(self):
        return self.livekits[0].udp_port if self.livekits else None

    @property
    def proxy_url(self):
        return f"http://{self.svc}:{self.proxy_port}"

    @property
    def hs_url(self):
        return f"http://{self.svc}:{self.hs_port}"

    @property
    def sfu_url(self):
        return f"http://{self.svc}:{self.sfu_port}"

    @property
    def livekit_url(self):
        return f"wss://sfu.{self.name}"

    @property
    def lk_api_url(self):
        """The real LiveKit server's RoomService and signalling, plain HTTP on loopback."""
        return f"http://{self.svc}:{self.lk_port}"


class Testbed:
    def __init__(self, mrtc_binary=None, state=None, keep=False, appservice=(), livekit=False):
        self.dir = tempfile.mkdtemp(prefix="mrtc-testbed-")
        os.chmod(self.dir, 0o755)  # nginx workers (user nobody) serve files from it
        self.mrtc_binary = mrtc_binary
        self.keep = keep
        self.procs = []
        base = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}."
        self.base = base
        # Every service of this testbed listens on its own loopback addresses, so that testbeds
        # running in parallel cannot take each other's ports between free_port() and bind().
        self.svc = base + "1"
        self.servers = {"hs1.test": Server("hs1.test", base + "11", self.svc),
                        "hs2.test": Server("hs2.test", base + "12", self.svc)}
        for name in appservice:
            self.servers[name].appservice = True
        self.wk_address = base + "13"
        self.slow_address = base + "14"
        self.dns_port = free_port(self.svc)
        self.state = state or {}
        self.ca = os.path.join(self.dir, "ca.pem")
        # A folder of static files for browser clients (test/clients/): when set, each nginx
        # serves it at /_client/. (The daemon's OpenID endpoints are at /livekit/jwt/ through the
        # operator snippet always.)
        self.client_root = None
        # livekit=True: one real LiveKit server per homeserver (start_livekit), which the
        # daemons' RoomService calls then reach instead of the stand-in SFU (sfu.mjs still runs,
        # at sfu_url, for tests that need a fault), and sfu.<name> on 443 (nginx, TLS, WebSocket)
        # for clients. livekit={name: count}: that many per homeserver (others: none, their
        # daemons call the stand-in), each further one SFU n of that homeserver's daemon, with
        # its own key and secret (given to the daemon in files, as an operator keeps them).
        self.livekit = bool(livekit)
        counts = livekit if isinstance(livekit, dict) else {
            name: int(bool(livekit)) for name in self.servers}
        for name, count in counts.items():
            s = self.servers[name]
            for n in range(1, count + 1):
                key, secret = (LIVEKIT_KEY, s.secret) if n == 1 else (
                    f"APIsfu{n}", f"secret-{name}-{n}-" + os.urandom(8).hex())
                s.livekits.append(LiveKitServer(name, n, key, secret, self.svc))

    # -- helpers -----------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, name, cmd, env=None):
        log = open(self.path(name + ".log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        self.procs.append((name, p, log))
        return p

    def hs(self, name):
        return self.servers[name]

    # -- parts -------------------------------------------------------------------------------
    def make_pki(self):
        names = ["hs1.test", "hs2.test", "wk.test", "wknoport.test", "srv.test", "oldsrv.test",
                 "srvtarget.test", "sfu.hs1.test", "sfu.hs2.test", "redirect.test",
                 "redirectpriv.test", "bigwk.test", "private.test", "garbage.test", "huge.test",
                 "*.fresh.test", "slow.test", "*.slow.test"]
        names += [lk.host for s in self.servers.values() for lk in s.livekits if lk.n > 1]
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=mrtc testbed CA", "-keyout",
             self.path("ca.key"), "-out", self.ca])
        san = ",".join([f"DNS:{n}" for n in names] +
                       [f"IP:{s.address}" for s in self.servers.values()])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=hs.test", "-keyout", self.path("server.key"), "-out",
             self.path("server.csr")])
        with open(self.path("ext.cnf"), "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", self.path("server.csr"), "-CA", self.ca,
             "-CAkey", self.path("ca.key"), "-CAcreateserial", "-days", "2", "-extfile",
             self.path("ext.cnf"), "-out", self.path("server.pem")])

    def start_dns(self):
        hs2 = self.hs("hs2.test").address
        args = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--user=root",
                "--bind-interfaces", f"--listen-address={self.svc}", f"--port={self.dns_port}",
                "--local=/test/", "--log-queries", f"--log-facility={self.path('dns-queries.log')}",
                f"--pid-file={self.path('dnsmasq.pid')}"]
        for s in self.servers.values():
            args.append(f"--host-record={s.name},{s.address}")
            args.append(f"--host-record=sfu.{s.name},{s.address}")
            args += [f"--host-record={lk.host},{s.address}" for lk in s.livekits if lk.n > 1]
        args += [f"--host-record=wk.test,{self.wk_address}",
                 f"--host-record=wknoport.test,{self.wk_address}",
                 f"--host-record=redirect.test,{self.wk_address}",
                 f"--host-record=redirectpriv.test,{self.wk_address}",
                 f"--host-record=bigwk.test,{self.wk_address}",
                 f"--host-record=garbage.test,{self.wk_address}",
                 f"--host-record=huge.test,{self.wk_address}",
                 f"--host-record=srvtarget.test,{hs2}",
                 f"--host-record=wrongcert.test,{hs2}",
                 "--host-record=private.test,10.11.12.13",
                 f"--address=/fresh.test/{self.hs('hs1.test').address}",
                 f"--address=/slow.test/{self.slow_address}",
                 "--srv-host=_matrix-fed._tcp.srv.test,hs2.test,8448,10,5",
                 "--srv-host=_matrix-fed._tcp.srvtarget.test,hs2.test,8448,10,5",
                 "--srv-host=_matrix._tcp.oldsrv.test,hs2.test,8448,10,5"]
        self.spawn("dnsmasq", args)
        wait_for(lambda: self.dig("hs1.test") == [self.hs("hs1.test").address], "dnsmasq")

    def dig(self, name, rtype="A"):
        out = run(["dig", "+short", "+time=1", "+tries=1", f"@{self.svc}", "-p",
                   str(self.dns_port), name, rtype]).stdout
        return [line for line in out.splitlines() if line]

    def start_homeservers(self):
        for s in self.servers.values():
            key = self.path(f"{s.name}.signing.key")
            with open(key, "w") as f:
                f.write(f"ed25519 a_{s.name[:3]} " +
                        __import__("base64").b64encode(os.urandom(32)).decode().rstrip("=") + "\n")
            s.signing_key_file = key
            state = {"users": {}, "rooms": {}, "openid": {}, "admin_token": s.admin_token,
                     "appservice_token": s.appservice_token}
            state.update(self.state.get(s.name, {}))
            with open(self.path(f"{s.name}.state.json"), "w") as f:
                json.dump(state, f)
            self.spawn(f"homeserver-{s.name}", [PY, os.path.join(HERE, "homeserver.py"), "--port",
                       str(s.hs_port), "--host", self.svc, "--server-name", s.name, "--signing-key", key, "--state",
                       self.path(f"{s.name}.state.json")])
            self.spawn(f"sfu-{s.name}", ["node", os.path.join(HERE, "sfu.mjs"), "--port",
                       str(s.sfu_port), "--host", self.svc, "--key", LIVEKIT_KEY,
                       "--secret", s.secret])
        for s in self.servers.values():
            wait_for(lambda s=s: urllib.request.urlopen(s.hs_url + "/_test/state").status == 200,
                     f"homeserver {s.name}")
            wait_for(lambda s=s: urllib.request.urlopen(s.sfu_url + "/_test/rooms").status == 200,
                     f"SFU {s.name}")

    def start_nginx(self):
        """One nginx per homeserver, as each operator runs one, with module/deploy/ as is."""
        with open(self.path("big-wellknown.json"), "w") as f:
            f.write('{"m.server":"hs2.test:8448","padding":"' + "x" * 60000 + '"}')
        with open(self.path("huge.json"), "w") as f:
            f.write('{"jwt":"a.b.c","padding":"' + "x" * 200000 + '"}')
        wk = f"""
    server {{
        listen {self.wk_address}:443 ssl;
        server_name wk.test wknoport.test redirect.test redirectpriv.test bigwk.test;
        ssl_certificate {self.path('server.pem')};
        ssl_certificate_key {self.path('server.key')};
        location = /.well-known/matrix/server {{
            default_type application/json;
            if ($host = wk.test) {{ return 200 '{{"m.server":"hs2.test:8448"}}'; }}
            if ($host = redirect.test) {{ return 302 https://wk.test/.well-known/matrix/server; }}
            if ($host = redirectpriv.test) {{ return 302 https://private.test/.well-known/matrix/server; }}
            if ($host = bigwk.test) {{ rewrite ^ /big-wellknown.json last; }}
            return 200 '{{"m.server":"srvtarget.test"}}';
        }}
        location = /big-wellknown.json {{ root {self.dir}; default_type application/json; }}
    }}
    server {{
        listen {self.wk_address}:8448 ssl;
        server_name garbage.test;
        ssl_certificate {self.path('server.pem')};
        ssl_certificate_key {self.path('server.key')};
        location / {{ default_type application/json; return 200 'this is {{ not json'; }}
    }}
    server {{
        listen {self.wk_address}:8448 ssl;
        server_name huge.test;
        ssl_certificate {self.path('server.pem')};
        ssl_certificate_key {self.path('server.key')};
        root {self.dir};
        default_type application/json;
        location = /huge.json {{ }}
        # POST to a static file is 405: error_page redirects internally as GET.
        location / {{ error_page 405 =200 /huge.json; try_files /huge.json =404; }}
    }}"""
        for i, s in enumerate(self.servers.values()):
            conf_dir = self.path(f"nginx-{s.name}")
            os.makedirs(os.path.join(conf_dir, "tmp"))
            for f in ("nginx-mrtc.conf", "nginx-mrtc-appservice.conf", "mrtc-proxy-params.conf"):
                shutil.copy(os.path.join(DEPLOY, f), conf_dir)
            # None: nginx says 502. Several: one upstream, as an operator runs them.
            ports = [d.port for d in s.mrtcs] if s.mrtcs else [free_port(self.svc)]
            mrtc_servers = " ".join(f"server {self.svc}:{p};" for p in ports)
            conf = f"""
worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {conf_dir}/access.log;
    client_body_temp_path {conf_dir}/tmp/body;
    proxy_temp_path {conf_dir}/tmp/proxy;
    fastcgi_temp_path {conf_dir}/tmp/fastcgi;
    uwsgi_temp_path {conf_dir}/tmp/uwsgi;
    scgi_temp_path {conf_dir}/tmp/scgi;
    upstream homeserver {{ server {self.svc}:{s.proxy_port if s.appservice else s.hs_port}; keepalive 8; }}
    upstream mrtc_transport {{ {mrtc_servers} keepalive 8; }}
    server {{
        listen {s.address}:443 ssl;
        listen {s.address}:8448 ssl;
        server_name {s.name} srv.test oldsrv.test srvtarget.test wrongcert.test;
        ssl_certificate {self.path('server.pem')};
        ssl_certificate_key {self.path('server.key')};
        include {'nginx-mrtc-appservice.conf' if s.appservice else 'nginx-mrtc.conf'};
        {self.client_locations() if self.client_root else ''}
        location / {{
            proxy_pass http://homeserver;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
    {''.join(self.sfu_server(s, lk) for lk in s.livekits)}
    {wk if i == 0 else ''}
}}
"""
            path = os.path.join(conf_dir, "nginx.conf")
            with open(path, "w") as f:
                f.write(conf)
            run(["nginx", "-t", "-p", conf_dir, "-c", path])
            self.spawn(f"nginx-{s.name}", ["nginx", "-p", conf_dir, "-c", path, "-g",
                                           "daemon off;"])
        for s in self.servers.values():
            wait_for(lambda s=s: self.curl(s.name, "/_test/state", port=443)[0] == 200,
                     f"nginx for {s.name}")

    def client_locations(self):
        return f"""
        location /_client/ {{ alias {self.client_root}/; include /etc/nginx/mime.types; }}"""

    def sfu_server(self, s, lk):
        return f"""
    server {{
        listen {s.address}:443 ssl;
        server_name {lk.host};
        ssl_certificate {self.path('server.pem')};
        ssl_certificate_key {self.path('server.key')};
        location / {{
            proxy_pass {lk.api_url};
            proxy_http_version 1.1;
            proxy_read_timeout 300s;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
        }}
    }}"""

    def mrtc_env(self, s, **extra):
        env = {
            "MRTC_SERVER_NAME": s.name,
            "MRTC_HOMESERVER_URL": s.hs_url,
            "MRTC_SIGNING_KEY_FILE": s.signing_key_file,
            "MRTC_HOMESERVER_ADMIN_TOKEN": s.admin_token,
            "LIVEKIT_URL": s.livekit_url,
            "LIVEKIT_KEY": LIVEKIT_KEY,
            "LIVEKIT_SECRET": s.secret,
            "MRTC_LIVEKIT_API_URL": s.lk_api_url if s.livekits else s.sfu_url,
            "MRTC_CA_FILE": self.ca,
            "MRTC_DNS_SERVER": f"{self.svc}:{self.dns_port}",
            "MRTC_FEDERATION_ALLOW_CIDRS": "127.0.0.0/8",
            "MRTC_PUBLIC_BASE_URL": f"https://{s.name}",
        }
        for lk in s.livekits[1:]:
            n = lk.n
            env.update({f"LIVEKIT_URL_{n}": lk.url, f"MRTC_LIVEKIT_API_URL_{n}": lk.api_url,
                        f"LIVEKIT_KEY_{n}_FILE": self.secret_file(f"{lk.name}.key", lk.key),
                        f"LIVEKIT_SECRET_{n}_FILE": self.secret_file(f"{lk.name}.secret",
                                                                     lk.secret)})
        if s.appservice:
            # The homeserver authenticates and signs: no key, no admin token, and every call
            # (is_joined, fed_proxy, delayed events) goes to "Synapse".
            del env["MRTC_SIGNING_KEY_FILE"], env["MRTC_HOMESERVER_ADMIN_TOKEN"]
            env["MRTC_HOMESERVER_URL"] = s.proxy_url
        env.update(extra)
        env.update(s.extra_env)
        return env

    def secret_file(self, name, value):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
        return path

    def start_appservice(self, s, daemon):
        """Registers @daemon with the server's Synapse stand-in, the way an operator does: the
        daemon writes the registration, "Synapse" reads it (refusing to start on a bad one)."""
        sys.path.insert(0, HERE)
        from synapse_proxy import load_registration
        reg = self.path(f"{s.name}.registration.yaml")
        out = run([self.mrtc_binary, "--print-appservice-registration",
                   f"http://{daemon.host}:{daemon.port}"],
                  env={"MRTC_SERVER_NAME": s.name, "PATH": os.environ.get("PATH", "")}).stdout
        with open(reg, "w") as f:
            f.write(out)
        r = load_registration(reg, s.name)
        s.as_token, s.hs_token = r["as_token"], r["hs_token"]
        daemon.env["MRTC_APPSERVICE_TOKEN"] = s.as_token
        daemon.env["MRTC_APPSERVICE_HS_TOKEN"] = s.hs_token
        state = json.load(urllib.request.urlopen(s.hs_url + "/_test/state"))
        state["appservice_token"] = s.as_token
        state.setdefault("unstable_features", {}).update(
            {"io.element.msc4195": True, "io.element.msc4502": True, "io.element.msc4512": True})
        urllib.request.urlopen(urllib.request.Request(
            s.hs_url + "/_test/state", data=json.dumps(state).encode(), method="POST"))
        peers = [f"--peer={o.name}={o.address}" for o in self.servers.values() if o is not s]
        self.spawn(f"synapse-{s.name}", [PY, os.path.join(HERE, "synapse_proxy.py"), "--port",
                   str(s.proxy_port), "--host", self.svc, "--server-name", s.name,
                   "--homeserver", s.hs_url, "--signing-key", s.signing_key_file,
                   "--registration", reg, "--ca", self.ca] + peers +
                   [f"--deny={d}" for d in s.deny] + [f"--proxy-timeout={s.proxy_timeout}",
                   "--rtc-transports=" + json.dumps([{
                       "type": "livekit", "url": s.livekit_url,
                       "livekit_service_url": f"https://{s.name}/livekit/jwt"}])])
        wait_for(lambda: urllib.request.urlopen(s.proxy_url + "/_test/proxy_requests").status
                 == 200, f"synapse_proxy for {s.name}")

    def start_daemons(self, **extra):
        sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
        from harness import Daemon
        for s in self.servers.values():
            s.mrtc, s.mrtcs = None, []
            for i in range(s.instances):
                # Each daemon keeps its default store in its own state directory here.
                tag = s.name if i == 0 else f"{s.name}-{i + 1}"
                env = dict({"MRTC_STATE_DIR": self.path(f"state-mrtc-{tag}")},
                           **self.mrtc_env(s, **extra))
                d = Daemon(self.mrtc_binary, env, name=f"mrtc-{tag}", host=self.svc)
                d.log.close()
                os.unlink(d.log.name)
                d.log = open(self.path(f"mrtc-{tag}.log"), "w")
                if s.appservice and i == 0:
                    self.start_appservice(s, d)
                elif s.appservice:
                    d.env.update({k: s.mrtc.env[k] for k in ("MRTC_APPSERVICE_TOKEN",
                                                             "MRTC_APPSERVICE_HS_TOKEN")})
                d.start()
                s.mrtcs.append(d)
                s.mrtc = s.mrtc or d

    # -- client helpers ----------------------------------------------------------------------
    def curl(self, name, path, port=443, method="GET", headers=(), data=None, address=None):
        """HTTPS through nginx with the testbed CA; returns (status, body)."""
        s = self.servers.get(name)
        addr = address or (s.address if s else self.wk_address)
        cmd = ["curl", "-sS", "--cacert", self.ca, "--max-time", "10", "-o", "-", "-w",
               "\n%{http_code}", "-X", method, "--resolve", f"{name}:{port}:{addr}",
               f"https://{name}:{port}{path}"]
        for h in headers:
            cmd += ["-H", h]
        if data is not None:
            cmd += ["--data-binary", data]
        r = subprocess.run(cmd, capture_output=True, text=True)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    # -- lifecycle ---------------------------------------------------------------------------
    def start_redis(self):
        """A Redis server on a free loopback port (shared job store tests)."""
        self.redis_port = free_port(self.svc)
        self.spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind",
                             self.svc, "--save", "", "--appendonly", "no", "--dir", self.dir])
        wait_for(lambda: subprocess.run(["redis-cli", "-h", self.svc, "-p", str(self.redis_port),
                                         "ping"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 "redis")
        return f"redis://{self.svc}:{self.redis_port}"

    def start_livekit(self, lk, webhook_url=None, wait=True):
        """LiveKit's own server @lk (a LiveKitServer), in production configuration (no --dev)
        written here: its API key and secret, rooms only by CreateRoom (as PROTOCOL.md §4.4 asks
        of an SFU the daemon serves), webhooks to @webhook_url (default: its homeserver's
        daemon's /sfu_webhook), signed with its key, everything on the testbed's loopback address.
        ICE: the host candidate is the testbed's address (node_ip) on the TCP port, which listens
        on every address, and the UDP port. Started again after stop_livekit, it has the same
        ports and configuration. @wait false: returns at once (then wait_livekit)."""
        binary = livekit_binary()
        if not binary:
            raise RuntimeError("livekit-server not installed: run `source test/deps.sh; "
                               "mrtc_install_livekit`")
        s = self.servers[lk.hs]
        if webhook_url is None and s.mrtc:
            webhook_url = f"http://{s.mrtc.host}:{s.mrtc.port}/sfu_webhook"
        conf = {
            "port": lk.port,
            "bind_addresses": [self.svc],
            "rtc": {"tcp_port": lk.tcp_port, "udp_port": lk.udp_port,
                    "use_external_ip": False, "node_ip": self.svc,
                    # Loopback only: tests send nothing beyond it.
                    "interfaces": {"includes": ["lo"]}, "enable_loopback_candidate": True},
            "keys": {lk.key: lk.secret},
            "room": {"auto_create": False},
            "logging": {"level": "info"},
        }
        if webhook_url:
            conf["webhook"] = {"api_key": lk.key, "urls": [webhook_url]}
        path = self.path(f"{lk.name}.yaml")
        with open(path, "w") as f:
            json.dump(conf, f, indent=1)  # JSON is YAML
        os.chmod(path, 0o600)
        lk.starts += 1
        lk.proc = self.spawn(lk.name if lk.starts == 1 else f"{lk.name}.{lk.starts}",
                             [binary, "--config", path])
        if wait:
            self.wait_livekit(lk)

    def wait_livekit(self, lk):
        wait_for(lambda: urllib.request.urlopen(lk.api_url + "/").status == 200,
                 f"{lk.name}", timeout=30)

    def stop_livekit(self, lk):
        """Kills LiveKit server @lk at once (SIGKILL: an SFU that went down, no goodbye to its
        participants or webhooks); start_livekit(lk) starts it again, with no rooms."""
        os.killpg(lk.proc.pid, signal.SIGKILL)
        lk.proc.wait()

    def livekit_server(self, which):
        """@which: a LiveKitServer, or a homeserver's name for its SFU 1."""
        return which if isinstance(which, LiveKitServer) else self.servers[which].livekits[0]

    def livekit_api(self, which, method, body=None, grant=None):
        """Calls RoomService @method (Twirp, JSON) on the real LiveKit server @which (see
        livekit_server) with a service token of @grant (default: roomList, roomAdmin) signed
        with that server's key and secret."""
        import jwt  # python3-jwt
        lk = self.livekit_server(which)
        now = int(time.time())
        token = jwt.encode({"iss": lk.key, "nbf": now, "exp": now + 60,
                            "video": grant or {"roomList": True, "roomAdmin": True}},
                           lk.secret, algorithm="HS256")
        req = urllib.request.Request(
            f"{lk.api_url}/twirp/livekit.RoomService/{method}",
            data=json.dumps(body or {}).encode(), method="POST",
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def livekit_rooms(self, which):
        """{room name: Room} from ListRooms on the real LiveKit server @which."""
        return {r["name"]: r for r in self.livekit_api(which, "ListRooms").get("rooms", [])}

    def livekit_validate(self, which, token):
        """What the real LiveKit server @which says of a participant token before any WebRTC:
        (status, body) of its /rtc/validate (200 "success"; 401 a token it does not accept;
        404 a room that does not exist)."""
        url = f"{self.livekit_server(which).api_url}/rtc/validate?access_token={token}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def livekit_log_lines(self, which, what):
        """The lines of the real LiveKit server @which's logs (every start) that contain
        @what."""
        lk = self.livekit_server(which)
        out = []
        for start in range(1, lk.starts + 1):
            name = lk.name if start == 1 else f"{lk.name}.{start}"
            with open(self.path(name + ".log")) as f:
                out += [line for line in f if what in line]
        return out

    def start(self, with_daemons=False, **daemon_env):
        try:
            self.make_pki()
            self.start_dns()
            self.start_homeservers()
            if with_daemons:
                self.start_daemons(**daemon_env)
            livekits = [lk for s in self.servers.values() for lk in s.livekits]
            for lk in livekits:  # all at once: each takes a while to start
                self.start_livekit(lk, wait=False)
            for lk in livekits:
                self.wait_livekit(lk)
            self.start_nginx()
        except Exception:
            self.stop(failed=True)
            raise
        return self

    def stop(self, failed=False):
        """Stops everything; raises if a daemon exited non-zero or a sanitizer reported."""
        problems = []
        for s in self.servers.values():
            for d in s.mrtcs or ([s.mrtc] if s.mrtc else []):
                try:
                    rc = d.stop()
                    if rc != 0 and d not in s.killed:
                        problems.append(f"mrtc-transportd for {s.name} exited with {rc}")
                except RuntimeError as e:
                    problems.append(str(e))
                logs = d.logs()
                for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:"):
                    if marker in logs:
                        problems.append(f"{marker} in the log of {s.name}")
                d.log.close()
            s.mrtc, s.mrtcs = None, []
        failed = failed or bool(problems)
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            log.close()
        self.procs = []
        if failed or self.keep:
            print(f"testbed logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise RuntimeError("; ".join(problems))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(failed=exc_type is not None)


def main():
    """`testbed.py up [--livekit] [path/to/mrtc-transportd]`: run until Ctrl-C, printing how to
    reach it; --livekit adds LiveKit's own server per homeserver."""
    args = sys.argv[1:]
    livekit = "--livekit" in args
    args = [a for a in args if a != "--livekit"]
    if not args or args[0] != "up":
        print(__doc__)
        print("usage: testbed.py up [--livekit] [mrtc-transportd binary]")
        return 2
    binary = args[1] if len(args) > 1 else None
    tb = Testbed(mrtc_binary=binary, keep=True, livekit=livekit).start(
        with_daemons=binary is not None)
    h1, h2 = tb.hs("hs1.test"), tb.hs("hs2.test")
    if livekit:
        print(f"LiveKit    hs1.test {h1.lk_api_url}  hs2.test {h2.lk_api_url} "
              f"(key {LIVEKIT_KEY}, secrets in {tb.dir}/livekit-*.yaml)")
    print(f"""testbed up in {tb.dir}
  DNS        dig @{tb.svc} -p {tb.dns_port} SRV _matrix-fed._tcp.srv.test
  hs1.test   {h1.address} (nginx 443/8448)  homeserver {h1.hs_url}  SFU {h1.sfu_url}
  hs2.test   {h2.address} (nginx 443/8448)  homeserver {h2.hs_url}  SFU {h2.sfu_url}
  CA         {tb.ca}
examples:
  curl --cacert {tb.ca} --resolve hs1.test:443:{h1.address} https://hs1.test/_matrix/key/v2/server
  curl --cacert {tb.ca} --resolve hs2.test:8448:{h2.address} https://hs2.test:8448/_matrix/federation/v1/openid/userinfo?access_token=x
  curl -X POST {h1.hs_url}/_test/patch -d '{{"room":"!r:hs1.test","member":"@alice:hs1.test","membership":"join"}}'
Ctrl-C stops everything.""")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        tb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
