/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration from the environment. One table lists every variable with its type, default,
 * flags and help; loading, validation, --help and redaction are all driven by it.
 */
#include "mrtc/core/config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <event2/http.h>
#include <fcntl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrtc/matrix/servername.h"
#include "mrtc/store/store.h"
#include "mrtc/base/util.h"

#define SECRET_FILE_MAX 4096

enum var_type {
	T_STRING,
	T_SERVER_NAME,
	T_HTTP_URL,  /* http or https */
	T_HTTPS_URL, /* https only */
	T_WS_URL,
	T_FILE,
	T_HOSTPORT,
	T_IP_PORT,
	T_UINT,
	T_MEMBERSHIP,
	T_IDENTITY,
	T_CIDRS,
	T_SERVER_LIST,
	T_LOG_LEVEL,
	T_LOG_FORMAT,
	T_REFUSED,
	T_STORE,
	T_BOOL,
};

enum var_flags {
	F_SECRET = 1u << 0,	/* never printed; may come from NAME_FILE */
	F_REQUIRED = 1u << 1,	/* required in every mode */
	F_HOMESERVER = 1u << 2, /* one of the three homeserver-mode variables */
	F_SPECIAL = 1u << 3,	/* read by code after the table loop */
	F_SFU = 1u << 4,	/* one of an SFU's numbered variables, read by load_sfus() */
};

struct var {
	const char *name;
	enum var_type type;
	const char *def;
	unsigned flags;
	size_t offset;
	uint64_t min, max;
	const char *help;
};

#define OFF(field) offsetof(struct mrtc_config, field)

static const struct var vars[] = {
	{ "MRTC_SERVER_NAME", T_SERVER_NAME, NULL, F_HOMESERVER, OFF(server_name), 0, 0,
	  "the homeserver's server name" },
	{ "MRTC_HOMESERVER_URL", T_HTTP_URL, NULL, F_HOMESERVER, OFF(homeserver_url), 0, 0,
	  "base URL of the homeserver's client-server API as reachable from the daemon" },
	{ "MRTC_SIGNING_KEY_FILE", T_FILE, NULL, F_HOMESERVER, OFF(signing_key_file), 0, 0,
	  "homeserver signing-key file ('ed25519 <version> <seed>'; first line used)" },
	{ "MRTC_BIND", T_HOSTPORT, "127.0.0.1:8080", F_SPECIAL, OFF(bind), 0, 0,
	  "client + federation listener, host:port (LIVEKIT_JWT_BIND accepted as fallback)" },
	{ "MRTC_ADMIN_BIND", T_HOSTPORT, "127.0.0.1:8081", 0, OFF(admin_bind), 0, 0,
	  "admin listener (/healthz, /readyz, /metrics), host:port" },
	{ "LIVEKIT_URL", T_WS_URL, NULL, F_REQUIRED, OFF(livekit_url), 0, 0,
	  "the SFU's public WebSocket URL (wss://...), the url clients send" },
	{ "LIVEKIT_KEY", T_STRING, NULL, F_REQUIRED | F_SECRET | F_SPECIAL, OFF(livekit_key), 0, 0,
	  "LiveKit API key (or LIVEKIT_KEY_FROM_FILE, or LIVEKIT_KEY_FILE as key:secret)" },
	{ "LIVEKIT_SECRET", T_STRING, NULL, F_REQUIRED | F_SECRET | F_SPECIAL, OFF(livekit_secret),
	  0, 0, "LiveKit API secret (or LIVEKIT_SECRET_FROM_FILE)" },
	{ "MRTC_LIVEKIT_API_URL", T_HTTP_URL, NULL, 0, OFF(livekit_api_url), 0, 0,
	  "where the daemon reaches the SFU's RoomService (default: LIVEKIT_URL, ws->http)" },
	{ "LIVEKIT_URL_2", T_WS_URL, NULL, F_SFU, 0, 0, 0,
	  "a second SFU, advertised after the first (LIVEKIT_URL_3 ... LIVEKIT_URL_8 add more, "
	  "in preference order; each needs its _<n> key and secret)" },
	{ "LIVEKIT_KEY_2", T_STRING, NULL, F_SFU | F_SECRET, 0, 0, 0,
	  "API key of SFU 2 (LIVEKIT_KEY_<n> of SFU n)" },
	{ "LIVEKIT_SECRET_2", T_STRING, NULL, F_SFU | F_SECRET, 0, 0, 0,
	  "API secret of SFU 2 (LIVEKIT_SECRET_<n> of SFU n)" },
	{ "MRTC_LIVEKIT_API_URL_2", T_HTTP_URL, NULL, F_SFU, 0, 0, 0,
	  "RoomService URL of SFU 2 (default: LIVEKIT_URL_2, ws->http; MRTC_LIVEKIT_API_URL_<n> "
	  "of SFU n)" },
	{ "MRTC_MEMBERSHIP_BACKEND", T_MEMBERSHIP, "synapse-admin", 0, OFF(membership_backend), 0,
	  0, "synapse-admin or msc4502: how remote users' membership is checked" },
	{ "MRTC_HOMESERVER_ADMIN_TOKEN", T_STRING, NULL, F_SECRET, OFF(homeserver_admin_token), 0,
	  0, "admin access token for the synapse-admin backend" },
	{ "MRTC_APPSERVICE_TOKEN", T_STRING, NULL, F_SECRET, OFF(appservice_token), 0, 0,
	  "application-service as_token: msc4502 backend, delayed events as the user, fed_proxy" },
	{ "MRTC_APPSERVICE_HS_TOKEN", T_STRING, NULL, F_SECRET, OFF(appservice_hs_token), 0, 0,
	  "application-service hs_token: set, the daemon runs behind Synapse's MSC4512 proxy" },
	{ "MRTC_TOKEN_TTL", T_UINT, "3600", 0, OFF(token_ttl_s), 60, 86400,
	  "LiveKit token lifetime, seconds" },
	{ "MRTC_IDENTITY", T_IDENTITY, "user-device-member", 0, OFF(identity), 0, 0,
	  "participant identity: user-device-member or user-member" },
	{ "MRTC_CA_FILE", T_FILE, NULL, 0, OFF(ca_file), 0, 0,
	  "extra PEM CA bundle trusted for outbound TLS" },
	{ "MRTC_DNS_SERVER", T_IP_PORT, NULL, 0, OFF(dns_server), 0, 0,
	  "ip[:port] of the DNS server to use (default: system resolver)" },
	{ "MRTC_FEDERATION_ALLOW_CIDRS", T_CIDRS, NULL, 0, OFF(allow_cidrs), 0, 0,
	  "comma-separated ranges exempt from the outbound private-address block" },
	{ "MRTC_KEY_NOTARY", T_STRING, NULL, 0, OFF(key_notary), 0, 0,
	  "'server_name key_id base64key': notary asked for keys a server does not serve" },
	{ "MRTC_AUTH_CACHE_TTL", T_UINT, "60", 0, OFF(auth_cache_ttl_s), 0, 3600,
	  "seconds a verified access token is remembered" },
	{ "MRTC_MEMBERSHIP_CACHE_TTL", T_UINT, "5", 0, OFF(membership_cache_ttl_s), 0, 300,
	  "seconds a membership answer is remembered" },
	{ "MRTC_RATE_PER_SECOND", T_UINT, "5", 0, OFF(rate_per_second), 1, 1000000,
	  "token-bucket refill per user / origin server, per second" },
	{ "MRTC_RATE_BURST", T_UINT, "20", 0, OFF(rate_burst), 1, 1000000,
	  "token-bucket size per user / origin server" },
	{ "MRTC_RATE_LIMIT_SHARED", T_BOOL, "false", 0, OFF(rate_limit_shared), 0, 0,
	  "true: the rate limits are shared by every daemon on the Redis MRTC_STORE (falling back "
	  "to this daemon's own buckets while Redis is unreachable)" },
	{ "MRTC_HOMESERVER_TIMEOUT", T_UINT, "5", 0, OFF(homeserver_timeout_s), 1, 300,
	  "seconds per homeserver call" },
	{ "MRTC_LIVEKIT_TIMEOUT", T_UINT, "5", 0, OFF(livekit_timeout_s), 1, 300,
	  "seconds per LiveKit RoomService call" },
	{ "MRTC_FEDERATION_TIMEOUT", T_UINT, "10", 0, OFF(federation_timeout_s), 1, 300,
	  "seconds for a whole federation get_token call" },
	{ "MRTC_STORE", T_STORE, NULL, 0, OFF(store), 0, 0,
	  "where delegated delayed-leave jobs and the membership watch live: sqlite:<path>, "
	  "redis://[user[:password]@]host[:port][/db], "
	  "redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db], or none "
	  "(delegate_delayed_leave off); default sqlite:<MRTC_STATE_DIR>/" MRTC_STATE_DB },
	{ "MRTC_STATE_DIR", T_STRING, NULL, 0, OFF(state_dir), 0, 0,
	  "directory of the default SQLite store, created 0700 if missing (default: "
	  "$STATE_DIRECTORY from systemd's StateDirectory=, else " MRTC_STATE_DIR_DEFAULT ")" },
	{ "MRTC_REDIS_PASSWORD", T_STRING, NULL, F_SECRET, OFF(redis_password), 0, 0,
	  "password of the Redis server (Sentinel: of the master) when MRTC_STORE holds none" },
	{ "MRTC_REDIS_SENTINEL_USER", T_STRING, NULL, 0, OFF(redis_sentinel_user), 0, 0,
	  "ACL user the sentinels are asked as (with MRTC_REDIS_SENTINEL_PASSWORD)" },
	{ "MRTC_REDIS_SENTINEL_PASSWORD", T_STRING, NULL, F_SECRET, OFF(redis_sentinel_password), 0,
	  0, "password of the sentinels themselves (default: none)" },
	{ "MRTC_DELAYED_POLL_MS", T_UINT, "2000", 0, OFF(delayed_poll_ms), 100, 60000,
	  "milliseconds between GetParticipant checks of a delegated job" },
	{ "MRTC_DELAYED_CONNECT_WAIT", T_UINT, "60", 0, OFF(delayed_connect_wait_s), 1, 3600,
	  "seconds a delegated job waits for the participant before sending the leave" },
	{ "MRTC_MIN_DELAY_MS", T_UINT, "3600000", 0, OFF(delayed_min_delay_ms), 0, 86400000,
	  "shortest delayed-event timeout accepted for delegation, milliseconds" },
	{ "MRTC_LEASE_TTL_MS", T_UINT, "10000", 0, OFF(lease_ttl_ms), 500, 600000,
	  "milliseconds a daemon holds a job of a shared (Redis) store without renewing" },
	{ "MRTC_MEMBERSHIP_RECHECK", T_UINT, "30", 0, OFF(membership_recheck_s), 1, 3600,
	  "seconds between membership re-checks of admitted participants" },
	{ "MRTC_VERIFY_THREADS", T_UINT, "2", 0, OFF(verify_threads), 0, 64,
	  "threads verifying federation signatures (0: on the event loop)" },
	{ "MRTC_CLIENT_TIMEOUT", T_UINT, "20", 0, OFF(client_timeout_s), 1, 600,
	  "seconds an inbound connection may stay idle or slow before it is closed" },
	{ "MRTC_KEY_FETCH_MAX", T_UINT, "256", 0, OFF(key_fetch_max), 1, 100000,
	  "signing-key fetches in flight at once; more answer 429" },
	{ "MRTC_KEY_FETCH_PER_PEER", T_UINT, "32", 0, OFF(key_fetch_per_peer), 1, 100000,
	  "of them started by one client address; more answer 429" },
	{ "MRTC_INBOUND_MAX", T_UINT, "0", 0, OFF(inbound_max), 0, 10000000,
	  "client connections open at once; more are closed at accept (0: half the descriptor "
	  "limit less 64)" },
	{ "MRTC_OUTBOUND_MAX", T_UINT, "0", 0, OFF(outbound_max), 0, 10000000,
	  "outbound connections open at once; calls that need one more fail (0: half the "
	  "descriptor limit less 64)" },
	{ "MRTC_READINESS_INTERVAL", T_UINT, "10", 0, OFF(readiness_interval_s), 1, 3600,
	  "seconds between readiness probes of the homeserver and the SFU" },
	{ "MRTC_LIVEKIT_SERVICE_URL", T_HTTP_URL, NULL, 0, OFF(livekit_service_url), 0, 0,
	  "public base URL of the OpenID endpoints, advertised as livekit_service_url" },
	{ "MRTC_PUBLIC_BASE_URL", T_HTTPS_URL, NULL, 0, OFF(public_base_url), 0, 0,
	  "public https URL of the homeserver; livekit_service_url is it + " MRTC_SERVICE_PATH },
	{ "MRTC_ALLOW_NO_SERVICE_URL", T_UINT, "0", 0, OFF(allow_no_service_url), 0, 1,
	  "1: run without livekit_service_url (no shipping client finds the transport)" },
	{ "LIVEKIT_FULL_ACCESS_HOMESERVERS", T_SERVER_LIST, NULL, 0, OFF(full_access), 0, 0,
	  "legacy endpoints: comma-separated servers whose users get full access ('*' = all)" },
	{ "MRTC_LOG_LEVEL", T_LOG_LEVEL, "info", 0, OFF(log_level), 0, 0,
	  "debug, info, warn or error" },
	{ "MRTC_LOG_FORMAT", T_LOG_FORMAT, "text", 0, OFF(log_format), 0, 0, "text or json" },
	{ "LIVEKIT_INSECURE_SKIP_VERIFY_TLS", T_REFUSED, NULL, 0, 0, 0, 0,
	  "refused: TLS is always verified; trust a private CA with MRTC_CA_FILE instead" },
};

#define N_VARS (sizeof(vars) / sizeof(vars[0]))

const char *mrtc_config_process_env(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
problem(struct mrtc_buf *problems, const char *name, const char *fmt, ...);

static void problem(struct mrtc_buf *problems, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	mrtc_buf_printf(problems, "%s: %s%s\n", name, msg,
			(size_t)n >= sizeof(msg) ? "..." : ""); /* a cut message is marked */
}

static const char *env_value(mrtc_getenv_fn getenv_fn, void *ctx, const char *name)
{
	const char *v = getenv_fn(ctx, name);
	return (v && v[0]) ? v : NULL;
}

/* Reads a small secret file, trimming trailing spaces, CR and LF. Caller frees (wipes). */
static char *read_secret_file(const char *path, const char **ret_why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*ret_why = strerror(errno);
		return NULL;
	}
	char *buf = calloc(1, SECRET_FILE_MAX + 1);
	size_t len = 0;
	if (!buf) {
		close(fd);
		*ret_why = "out of memory";
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, SECRET_FILE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*ret_why = strerror(errno);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == SECRET_FILE_MAX) {
			*ret_why = "file too large";
			goto fail;
		}
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (memchr(buf, '\0', len)) {
		sodium_memzero(buf, SECRET_FILE_MAX);
		free(buf);
		*ret_why = "contains a NUL byte";
		return NULL;
	}
	return buf;
fail:
	close(fd);
	sodium_memzero(buf, SECRET_FILE_MAX);
	free(buf);
	return NULL;
}

static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* lk-jwt-service trims spaces, CR and LF around its key and secret. */
static char *dup_trimmed(const char *s, size_t len)
{
	while (len && (*s == ' ' || *s == '\r' || *s == '\n')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	char *out = malloc(len + 1);
	if (out) {
		memcpy(out, s, len);
		out[len] = '\0';
	}
	return out;
}

bool mrtc_hostport_parse(const char *s, bool host_required, struct mrtc_hostport *ret)
{
	struct mrtc_hostport hp = { .port = 0 };
	const char *port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return false;
		size_t n = (size_t)(close - s - 1);
		if (n == 0 || n >= sizeof(hp.host))
			return false;
		memcpy(hp.host, s + 1, n);
		hp.host[n] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, hp.host, &a6) != 1)
			return false;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon)
			return false;
		size_t n = (size_t)(colon - s);
		if (n >= sizeof(hp.host) || memchr(s, ':', n))
			return false;
		memcpy(hp.host, s, n);
		hp.host[n] = '\0';
		if (n && !mrtc_server_name_is_valid(hp.host))
			return false;
		port = colon + 1;
	}
	if (host_required && !hp.host[0])
		return false;
	uint64_t p;
	if (!mrtc_parse_u64(port, 1, 65535, &p))
		return false;
	hp.port = (uint16_t)p;
	*ret = hp;
	return true;
}

static bool ip_port_parse(const char *s, struct mrtc_hostport *ret)
{
	struct mrtc_hostport hp = { .port = 53 };
	struct in_addr a4;
	struct in6_addr a6;
	if (strlen(s) < sizeof(hp.host) &&
	    (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)) {
		memcpy(hp.host, s, strlen(s) + 1);
		*ret = hp;
		return true;
	}
	if (!mrtc_hostport_parse(s, true, &hp))
		return false;
	if (inet_pton(AF_INET, hp.host, &a4) != 1 && inet_pton(AF_INET6, hp.host, &a6) != 1)
		return false;
	*ret = hp;
	return true;
}

/* Calls @fn on each non-empty item of @list, separated by commas and/or white space. */
static bool each_item(const char *list, bool (*fn)(void *ctx, const char *item), void *ctx)
{
	const char *p = list;
	for (;;) {
		p += strspn(p, ", \t\r\n");
		if (!*p)
			return true;
		size_t n = strcspn(p, ", \t\r\n");
		char item[512];
		if (n >= sizeof(item))
			return false;
		memcpy(item, p, n);
		item[n] = '\0';
		if (!fn(ctx, item))
			return false;
		p += n;
	}
}

static bool add_cidr(void *ctx, const char *item)
{
	struct mrtc_config *c = ctx;
	struct mrtc_cidr cidr;
	if (!mrtc_cidr_parse(item, &cidr))
		return false;
	struct mrtc_cidr *n = realloc(c->allow_cidrs, (c->n_allow_cidrs + 1) * sizeof(*n));
	if (!n)
		return false;
	c->allow_cidrs = n;
	c->allow_cidrs[c->n_allow_cidrs++] = cidr;
	return true;
}

static bool add_server(void *ctx, const char *item)
{
	struct mrtc_config *c = ctx;
	if (strcmp(item, "*") == 0) {
		c->full_access_all = true;
		return true;
	}
	if (!mrtc_server_name_is_valid(item))
		return false;
	char **n = realloc(c->full_access, (c->n_full_access + 1) * sizeof(*n));
	if (!n)
		return false;
	c->full_access = n;
	c->full_access[c->n_full_access] = strdup(item);
	return c->full_access[c->n_full_access++] != NULL;
}

/* Checks an absolute URL with one of the allowed schemes and a host. */
static bool url_ok(const char *value, const char *const *schemes)
{
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(value, 0);
	if (!u)
		return false;
	bool ok = false;
	const char *scheme = evhttp_uri_get_scheme(u);
	const char *host = evhttp_uri_get_host(u);
	for (size_t i = 0; scheme && schemes[i]; i++)
		if (strcmp(scheme, schemes[i]) == 0)
			ok = true;
	if (!host || !host[0] || evhttp_uri_get_fragment(u) || evhttp_uri_get_userinfo(u))
		ok = false;
	if (mrtc_has_control(value, strlen(value)) || strchr(value, ' '))
		ok = false;
	evhttp_uri_free(u);
	return ok;
}

static bool ca_file_ok(const char *path)
{
	X509_STORE *store = X509_STORE_new();
	if (!store)
		return false;
	bool ok = X509_STORE_load_locations(store, path, NULL) == 1;
	X509_STORE_free(store);
	return ok;
}

static char **string_field(struct mrtc_config *c, const struct var *v)
{
	return (char **)((char *)c + v->offset);
}

/* Parses @value for @v into @c; returns false (after recording a problem) if invalid. */
static void parse_var(struct mrtc_config *c, const struct var *v, const char *value,
		      struct mrtc_buf *problems)
{
	static const char *const http_schemes[] = { "http", "https", NULL };
	static const char *const https_schemes[] = { "https", NULL };
	static const char *const ws_schemes[] = { "ws", "wss", NULL };
	void *field = (char *)c + v->offset;
	switch (v->type) {
	case T_STRING:
		break;
	case T_SERVER_NAME:
		if (!mrtc_server_name_is_valid(value)) {
			problem(problems, v->name, "not a valid server name (hostname[:port])");
			return;
		}
		break;
	case T_HTTP_URL:
	case T_HTTPS_URL:
	case T_WS_URL:
		if (strlen(value) > MRTC_URL_MAX) {
			problem(problems, v->name, "longer than %d characters", MRTC_URL_MAX);
			return;
		}
		if (v->type == T_WS_URL) {
			if (!url_ok(value, ws_schemes)) {
				problem(problems, v->name, "not a valid ws:// or wss:// URL");
				return;
			}
			break;
		}
		if (!url_ok(value, v->type == T_HTTP_URL ? http_schemes : https_schemes)) {
			problem(problems, v->name, "not a valid %s URL",
				v->type == T_HTTP_URL ? "http(s)" : "https");
			return;
		}
		break;
	case T_FILE:
		if (access(value, R_OK) != 0) {
			problem(problems, v->name, "cannot read %s: %s", value, strerror(errno));
			return;
		}
		break;
	case T_HOSTPORT:
		if (!mrtc_hostport_parse(value, false, field))
			problem(problems, v->name, "expected host:port, [ipv6]:port or :port");
		return;
	case T_IP_PORT:
		if (!ip_port_parse(value, field))
			problem(problems, v->name, "expected an IP address with an optional :port");
		else
			c->has_dns_server = true;
		return;
	case T_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
			*(bool *)field = value[0] == 't';
		else
			problem(problems, v->name, "expected true or false");
		return;
	case T_UINT:
		if (!mrtc_parse_u64(value, v->min, v->max, field))
			problem(problems, v->name, "expected a whole number from %llu to %llu",
				(unsigned long long)v->min, (unsigned long long)v->max);
		return;
	case T_MEMBERSHIP:
		if (strcmp(value, "synapse-admin") == 0)
			c->membership_backend = MRTC_MEMBERSHIP_SYNAPSE_ADMIN;
		else if (strcmp(value, "msc4502") == 0)
			c->membership_backend = MRTC_MEMBERSHIP_MSC4502;
		else
			problem(problems, v->name, "expected synapse-admin or msc4502");
		return;
	case T_IDENTITY:
		if (strcmp(value, "user-device-member") == 0)
			c->identity = MRTC_IDENTITY_USER_DEVICE_MEMBER;
		else if (strcmp(value, "user-member") == 0)
			c->identity = MRTC_IDENTITY_USER_MEMBER;
		else
			problem(problems, v->name, "expected user-device-member or user-member");
		return;
	case T_CIDRS:
		if (!each_item(value, add_cidr, c))
			problem(problems, v->name,
				"expected comma-separated CIDR ranges (a.b.c.d/n, v6/n)");
		return;
	case T_SERVER_LIST:
		if (!each_item(value, add_server, c))
			problem(problems, v->name, "expected '*' or comma-separated server names");
		return;
	case T_LOG_LEVEL:
		if (!mrtc_log_level_parse(value, &c->log_level))
			problem(problems, v->name, "expected debug, info, warn or error");
		return;
	case T_LOG_FORMAT:
		if (strcmp(value, "text") == 0)
			c->log_format = MRTC_LOG_TEXT;
		else if (strcmp(value, "json") == 0)
			c->log_format = MRTC_LOG_JSON;
		else
			problem(problems, v->name, "expected text or json");
		return;
	case T_REFUSED:
		problem(problems, v->name, "%s", v->help);
		return;
	case T_STORE:
		if (strcmp(value, "none") == 0) {
			c->store_off = true;
			return;
		}
		if (!mrtc_store_spec_is_valid(value)) {
			problem(
			    problems, v->name,
			    "expected sqlite:<path>, redis://[user[:password]@]host[:port][/db] "
			    "or redis+sentinel://[user[:password]@]host[:port][,...]/master[/db]"
			    " (percent-encode special characters in the user and password)");
			return;
		}
		break;
	}
	char **s = string_field(c, v);
	free(*s);
	*s = strdup(value);
	if (!*s)
		problem(problems, v->name, "out of memory");
}

/* The value of a secret @name, from NAME or NAME_FILE; NULL if neither. Caller frees. */
static char *secret_value(mrtc_getenv_fn getenv_fn, void *ctx, const char *name,
			  struct mrtc_buf *problems)
{
	char file_var[128];
	if (!mrtc_format(file_var, sizeof(file_var), "%s_FILE", name)) {
		problem(problems, name, "name too long");
		return NULL;
	}
	const char *direct = env_value(getenv_fn, ctx, name);
	const char *path = env_value(getenv_fn, ctx, file_var);
	if (direct && path) {
		problem(problems, name, "set both %s and %s; use one", name, file_var);
		return NULL;
	}
	if (direct)
		return strdup(direct);
	if (!path)
		return NULL;
	const char *why = NULL;
	char *s = read_secret_file(path, &why);
	if (!s)
		problem(problems, file_var, "cannot read %s: %s", path, why);
	else if (!s[0]) {
		problem(problems, file_var, "%s is empty", path);
		free(s);
		s = NULL;
	}
	return s;
}

/* LIVEKIT_KEY / LIVEKIT_SECRET with lk-jwt-service's file variants. */
static void load_livekit_credentials(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
				     struct mrtc_buf *problems)
{
	const char *pair = env_value(getenv_fn, ctx, "LIVEKIT_KEY_FILE");
	if (pair) {
		const char *why = NULL;
		char *text = read_secret_file(pair, &why);
		if (!text) {
			problem(problems, "LIVEKIT_KEY_FILE", "cannot read %s: %s", pair, why);
			return;
		}
		char *colon = strchr(text, ':');
		if (!colon || strchr(colon + 1, ':')) {
			problem(problems, "LIVEKIT_KEY_FILE", "expected one line 'key:secret'");
		} else {
			c->livekit_key = dup_trimmed(text, (size_t)(colon - text));
			c->livekit_secret = dup_trimmed(colon + 1, strlen(colon + 1));
		}
		free_secret(text);
	} else {
		const char *names[2][2] = { { "LIVEKIT_KEY", "LIVEKIT_KEY_FROM_FILE" },
					    { "LIVEKIT_SECRET", "LIVEKIT_SECRET_FROM_FILE" } };
		char **dst[2] = { &c->livekit_key, &c->livekit_secret };
		for (int i = 0; i < 2; i++) {
			const char *path = env_value(getenv_fn, ctx, names[i][1]);
			const char *direct = env_value(getenv_fn, ctx, names[i][0]);
			if (path) {
				const char *why = NULL;
				char *text = read_secret_file(path, &why);
				if (!text) {
					problem(problems, names[i][1], "cannot read %s: %s", path,
						why);
					continue;
				}
				*dst[i] = dup_trimmed(text, strlen(text));
				free_secret(text);
			} else if (direct) {
				*dst[i] = dup_trimmed(direct, strlen(direct));
			}
		}
	}
	if (!c->livekit_key || !c->livekit_key[0])
		problem(problems, "LIVEKIT_KEY",
			"required (or LIVEKIT_KEY_FROM_FILE, or LIVEKIT_KEY_FILE)");
	if (!c->livekit_secret || !c->livekit_secret[0])
		problem(problems, "LIVEKIT_SECRET", "required (or LIVEKIT_SECRET_FROM_FILE)");
}

/* Without MRTC_STORE the store is SQLite in the state directory: MRTC_STATE_DIR, else the first
 * directory of systemd's $STATE_DIRECTORY, else MRTC_STATE_DIR_DEFAULT. */
static void default_store(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
			  struct mrtc_buf *problems)
{
	if (c->store || c->store_off)
		return;
	if (!c->state_dir) {
		const char *sd = env_value(getenv_fn, ctx, "STATE_DIRECTORY");
		size_t n = sd ? strcspn(sd, ":") : 0;
		c->state_dir = n ? strndup(sd, n) : strdup(MRTC_STATE_DIR_DEFAULT);
		if (!c->state_dir) {
			problem(problems, "MRTC_STATE_DIR", "out of memory");
			return;
		}
	}
	size_t n = strlen(c->state_dir);
	while (n > 1 && c->state_dir[n - 1] == '/')
		c->state_dir[--n] = '\0';
	if (c->state_dir[0] != '/') {
		problem(problems, "MRTC_STATE_DIR", "must be an absolute path");
		return;
	}
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	mrtc_buf_printf(&b, "sqlite:%s%s" MRTC_STATE_DB, c->state_dir, n > 1 ? "/" : "");
	c->store = mrtc_buf_steal(&b, NULL);
	if (!c->store) {
		problem(problems, "MRTC_STATE_DIR", "out of memory");
		return;
	}
	c->store_default = true;
}

bool mrtc_sfu_url_matches(const char *url, const char *configured)
{
	size_t a = strlen(url), b = strlen(configured);
	if (a && url[a - 1] == '/')
		a--;
	if (b && configured[b - 1] == '/')
		b--;
	return a == b && memcmp(url, configured, a) == 0;
}

int mrtc_config_sfu_find(const struct mrtc_config *c, const char *url)
{
	for (size_t i = 0; i < c->n_sfus; i++)
		if (c->sfus[i].url && mrtc_sfu_url_matches(url, c->sfus[i].url))
			return (int)i;
	return -1;
}

/*
 * The SFUs: the LIVEKIT_* variables are the first, LIVEKIT_URL_<n>, LIVEKIT_KEY_<n>,
 * LIVEKIT_SECRET_<n> (each secret also from NAME_FILE) and MRTC_LIVEKIT_API_URL_<n> the n-th,
 * numbered from 2 without gaps. Every problem is reported, not just the first.
 */
static void load_sfus(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
		      struct mrtc_buf *problems)
{
	c->sfus[0] = (struct mrtc_sfu_config){ .url = c->livekit_url,
					       .key = c->livekit_key,
					       .secret = c->livekit_secret };
	c->n_sfus = 1;
	unsigned gap = 0; /* the first unset number */
	for (unsigned n = 2; n <= MRTC_SFUS_MAX + 1; n++) {
		char names[4][40], files[2][48];
		static const char *const stem[4] = { "LIVEKIT_URL", "LIVEKIT_KEY", "LIVEKIT_SECRET",
						     "MRTC_LIVEKIT_API_URL" };
		bool any = false, fits = true;
		for (int k = 0; k < 4; k++) {
			fits = fits && mrtc_format(names[k], sizeof(names[k]), "%s_%u", stem[k], n);
		}
		for (int k = 0; k < 2; k++) {
			fits = fits &&
			       mrtc_format(files[k], sizeof(files[k]), "%s_FILE", names[k + 1]);
		}
		if (!fits) { /* cannot happen: the names are short */
			problem(problems, "LIVEKIT_URL_2", "internal error naming SFU %u", n);
			return;
		}
		for (int k = 0; k < 4; k++)
			any = any || env_value(getenv_fn, ctx, names[k]);
		for (int k = 0; k < 2; k++)
			any = any || env_value(getenv_fn, ctx, files[k]);
		if (!any) {
			if (!gap)
				gap = n;
			continue;
		}
		if (n > MRTC_SFUS_MAX) {
			problem(problems, names[0], "at most %d SFUs are supported", MRTC_SFUS_MAX);
			break;
		}
		if (gap) {
			problem(problems, names[0],
				"LIVEKIT_URL_%u is not set: number the SFUs 2, 3, ... without gaps",
				gap);
			continue;
		}
		size_t i = c->n_sfus++;
		struct mrtc_sfu_config *u = &c->sfus[i];
		size_t base = OFF(sfus) + i * sizeof(struct mrtc_sfu_config);
		const struct var url_var = { .name = names[0],
					     .type = T_WS_URL,
					     .offset = base + offsetof(struct mrtc_sfu_config, url),
					     .help = "" };
		const struct var api_var = { .name = names[3],
					     .type = T_HTTP_URL,
					     .offset =
						 base + offsetof(struct mrtc_sfu_config, api_url),
					     .help = "" };
		const char *url = env_value(getenv_fn, ctx, names[0]);
		const char *api = env_value(getenv_fn, ctx, names[3]);
		if (!url)
			problem(problems, names[0], "required: %s or %s is set", names[1],
				names[2]);
		else
			parse_var(c, &url_var, url, problems);
		if (u->url && mrtc_config_sfu_find(c, u->url) != (int)i)
			problem(problems, names[0],
				"is the URL of SFU %d already: get_token picks the SFU by it",
				mrtc_config_sfu_find(c, u->url) + 1);
		if (api)
			parse_var(c, &api_var, api, problems);
		u->key = secret_value(getenv_fn, ctx, names[1], problems);
		u->secret = secret_value(getenv_fn, ctx, names[2], problems);
		if (!u->key && !env_value(getenv_fn, ctx, files[0]))
			problem(problems, names[1], "required for SFU %u (or %s)", n, files[0]);
		if (!u->secret && !env_value(getenv_fn, ctx, files[1]))
			problem(problems, names[2], "required for SFU %u (or %s)", n, files[1]);
	}
}

static char *derive_api_url(const char *ws);

/* Each SFU's RoomService URL and the livekit_service_url advertised for it. */
static void derive_sfu_urls(struct mrtc_config *c, struct mrtc_buf *problems)
{
	c->sfus[0].api_url = c->livekit_api_url;
	c->sfus[0].service_url = c->livekit_service_url;
	for (size_t i = 1; i < c->n_sfus; i++) {
		struct mrtc_sfu_config *u = &c->sfus[i];
		if (u->url && !u->api_url) {
			u->api_url = derive_api_url(u->url);
			if (!u->api_url)
				problem(problems, "MRTC_LIVEKIT_API_URL_2", "out of memory");
		}
		if (!c->livekit_service_url)
			continue;
		const char *s = c->livekit_service_url;
		size_t n = strlen(s);
		while (n && s[n - 1] == '/')
			n--;
		size_t len = n + 24;
		u->service_url = malloc(len);
		if (!u->service_url ||
		    !mrtc_format(u->service_url, len, "%.*s/%zu", (int)n, s, i + 1))
			problem(problems, "MRTC_LIVEKIT_SERVICE_URL", "out of memory");
	}
}

/* The Redis credentials outside MRTC_STORE must fit it. */
static void check_redis_credentials(const struct mrtc_config *c, struct mrtc_buf *problems)
{
	bool redis = c->store && strncmp(c->store, "redis", 5) == 0;
	bool sentinel = c->store && strncmp(c->store, "redis+sentinel:", 15) == 0;
	if (c->redis_password && !redis)
		problem(problems, "MRTC_REDIS_PASSWORD",
			"set, but MRTC_STORE is not a Redis store");
	else if (c->redis_password && mrtc_store_spec_has_password(c->store))
		problem(problems, "MRTC_REDIS_PASSWORD",
			"MRTC_STORE holds a password already; use one of them");
	if (redis && mrtc_store_spec_has_user(c->store) && !c->redis_password &&
	    !mrtc_store_spec_has_password(c->store))
		problem(problems, "MRTC_STORE",
			"names a Redis user but no password (give user:password@ or "
			"MRTC_REDIS_PASSWORD[_FILE])");
	if (c->rate_limit_shared && !redis)
		problem(problems, "MRTC_RATE_LIMIT_SHARED",
			"true needs a Redis MRTC_STORE (redis:// or redis+sentinel://)");
	if ((c->redis_sentinel_password || c->redis_sentinel_user) && !sentinel)
		problem(problems,
			c->redis_sentinel_password ? "MRTC_REDIS_SENTINEL_PASSWORD"
						   : "MRTC_REDIS_SENTINEL_USER",
			"set, but MRTC_STORE is not a redis+sentinel:// store");
	if (c->redis_sentinel_user && !c->redis_sentinel_password)
		problem(problems, "MRTC_REDIS_SENTINEL_USER",
			"needs MRTC_REDIS_SENTINEL_PASSWORD[_FILE]");
}

static char *derive_api_url(const char *ws)
{
	const char *rest;
	const char *scheme;
	if (strncmp(ws, "wss://", 6) == 0) {
		scheme = "https://";
		rest = ws + 6;
	} else {
		scheme = "http://";
		rest = ws + 5;
	}
	size_t n = strlen(rest);
	while (n && rest[n - 1] == '/')
		n--;
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	mrtc_buf_puts(&b, scheme);
	mrtc_buf_append(&b, rest, n);
	return mrtc_buf_steal(&b, NULL);
}

/*
 * Homeserver mode: livekit_service_url is what every shipping client selects a transport by
 * (matrix-js-sdk 43's isLivekitTransportConfig, Element Call 0.26.1, ruma's type for Element
 * X), so it is MRTC_LIVEKIT_SERVICE_URL, or MRTC_PUBLIC_BASE_URL + MRTC_SERVICE_PATH, or the
 * operator opted out explicitly.
 */
static void derive_service_url(struct mrtc_config *c, struct mrtc_buf *problems)
{
	if (c->livekit_service_url || !c->public_base_url) {
		if (!c->livekit_service_url && !c->allow_no_service_url)
			problem(
			    problems, "MRTC_LIVEKIT_SERVICE_URL",
			    "set it or MRTC_PUBLIC_BASE_URL: without livekit_service_url in "
			    "/rtc/transports, matrix-js-sdk 43, Element Call 0.26.1 and Element X "
			    "find no usable transport (MISSING_MATRIX_RTC_TRANSPORT); "
			    "MRTC_ALLOW_NO_SERVICE_URL=1 runs without it");
		return;
	}
	size_t n = strlen(c->public_base_url);
	while (n > 0 && c->public_base_url[n - 1] == '/')
		n--;
	size_t len = n + sizeof(MRTC_SERVICE_PATH);
	c->livekit_service_url = malloc(len);
	if (!c->livekit_service_url || !mrtc_format(c->livekit_service_url, len, "%.*s%s", (int)n,
						    c->public_base_url, MRTC_SERVICE_PATH))
		problem(problems, "MRTC_PUBLIC_BASE_URL", "out of memory");
}

/* Application-service mode: both tokens, distinct, and membership through MSC4502 only. */
static void check_appservice(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
			     struct mrtc_buf *problems)
{
	if (!c->appservice_token)
		problem(problems, "MRTC_APPSERVICE_TOKEN",
			"required in application-service mode: the registration's as_token "
			"(is_joined, fed_proxy, delayed events)");
	if (c->appservice_token && c->appservice_hs_token &&
	    strcmp(c->appservice_token, c->appservice_hs_token) == 0)
		problem(problems, "MRTC_APPSERVICE_HS_TOKEN",
			"must differ from MRTC_APPSERVICE_TOKEN (as_token and hs_token are two "
			"secrets)");
	const char *backend = env_value(getenv_fn, ctx, "MRTC_MEMBERSHIP_BACKEND");
	if (backend && strcmp(backend, "msc4502") != 0)
		problem(problems, "MRTC_MEMBERSHIP_BACKEND",
			"application-service mode checks membership with MSC4502 is_joined only; "
			"unset it or set msc4502");
	if (env_value(getenv_fn, ctx, "MRTC_HOMESERVER_ADMIN_TOKEN") ||
	    env_value(getenv_fn, ctx, "MRTC_HOMESERVER_ADMIN_TOKEN_FILE"))
		problem(problems, "MRTC_HOMESERVER_ADMIN_TOKEN",
			"not used in application-service mode; unset it");
	c->membership_backend = MRTC_MEMBERSHIP_MSC4502;
}

const char *mrtc_config_mode_name(const struct mrtc_config *c)
{
	return c->appservice	? "application service"
	       : c->legacy_only ? "lk-jwt-service drop-in"
				: "homeserver";
}

enum mrtc_err mrtc_config_load(mrtc_getenv_fn getenv_fn, void *ctx, struct mrtc_buf *problems,
			       struct mrtc_config **ret_config)
{
	struct mrtc_config *c = calloc(1, sizeof(*c));
	if (!c)
		return MRTC_ERR_NOMEM;
	size_t problems_before = problems->len;

	int hs_set = 0;
	for (size_t i = 0; i < N_VARS; i++)
		if ((vars[i].flags & F_HOMESERVER) && env_value(getenv_fn, ctx, vars[i].name))
			hs_set++;
	c->legacy_only = hs_set == 0;
	c->appservice = env_value(getenv_fn, ctx, "MRTC_APPSERVICE_HS_TOKEN") ||
			env_value(getenv_fn, ctx, "MRTC_APPSERVICE_HS_TOKEN_FILE");
	if (c->appservice)
		c->legacy_only = false;

	for (size_t i = 0; i < N_VARS; i++) {
		const struct var *v = &vars[i];
		if (v->flags & F_SFU)
			continue;
		if (v->flags & F_SPECIAL && v->flags & F_SECRET)
			continue;
		const char *value = env_value(getenv_fn, ctx, v->name);
		char *secret = NULL;
		if (v->flags & F_SECRET) {
			secret = secret_value(getenv_fn, ctx, v->name, problems);
			value = secret;
		}
		char jwt_port_bind[16];
		if (!value && strcmp(v->name, "MRTC_BIND") == 0) {
			/* lk-jwt-service's names: LIVEKIT_JWT_BIND, or the older LIVEKIT_JWT_PORT.
			 */
			const char *jb = env_value(getenv_fn, ctx, "LIVEKIT_JWT_BIND");
			const char *jp = env_value(getenv_fn, ctx, "LIVEKIT_JWT_PORT");
			if (jb && jp)
				problem(problems, "LIVEKIT_JWT_PORT",
					"must not be set together with LIVEKIT_JWT_BIND");
			value = jb;
			if (!value && jp) {
				/* A longer port is refused by MRTC_BIND's check. */
				value = mrtc_format(jwt_port_bind, sizeof(jwt_port_bind), ":%s", jp)
					    ? jwt_port_bind
					    : jp;
			}
		}
		if (!value && (v->flags & F_REQUIRED))
			problem(problems, v->name, "required");
		bool key_var = strcmp(v->name, "MRTC_SIGNING_KEY_FILE") == 0;
		if (c->appservice && key_var && value)
			problem(problems, v->name,
				"not used in application-service mode (MRTC_APPSERVICE_HS_TOKEN "
				"set): the homeserver signs federation requests (fed_proxy) and "
				"checks incoming signatures; unset it");
		else if (c->appservice && !value && (v->flags & F_HOMESERVER) && !key_var)
			problem(problems, v->name,
				"required in application-service mode (MRTC_APPSERVICE_HS_TOKEN "
				"set)");
		else if (!c->appservice && !value && (v->flags & F_HOMESERVER) && hs_set > 0)
			problem(problems, v->name,
				"required when any of MRTC_SERVER_NAME, MRTC_HOMESERVER_URL, "
				"MRTC_SIGNING_KEY_FILE is set");
		if (!value)
			value = v->def;
		if (value)
			parse_var(c, v, value, problems);
		free_secret(secret);
	}
	load_livekit_credentials(c, getenv_fn, ctx, problems);
	load_sfus(c, getenv_fn, ctx, problems);

	if (c->signing_key_file && problems->len == problems_before) {
		enum mrtc_err err =
		    mrtc_signing_key_load_file(c->signing_key_file, &c->signing_key);
		if (err != MRTC_OK)
			problem(problems, "MRTC_SIGNING_KEY_FILE",
				"%s is not a signing-key file 'ed25519 <version> <seed>' (%s)",
				c->signing_key_file, mrtc_err_str(err));
	}
	if (c->key_notary && !mrtc_notary_spec_parse(c->key_notary, c->notary_name, &c->notary_key))
		problem(problems, "MRTC_KEY_NOTARY",
			"expected '<server_name> ed25519:<version> <unpadded base64 public key>'");
	if (c->ca_file && !ca_file_ok(c->ca_file))
		problem(problems, "MRTC_CA_FILE", "%s holds no PEM certificate OpenSSL can load",
			c->ca_file);
	if (c->appservice)
		check_appservice(c, getenv_fn, ctx, problems);
	else if (!c->legacy_only) {
		if (c->membership_backend == MRTC_MEMBERSHIP_SYNAPSE_ADMIN &&
		    !c->homeserver_admin_token)
			problem(problems, "MRTC_HOMESERVER_ADMIN_TOKEN",
				"required with MRTC_MEMBERSHIP_BACKEND=synapse-admin");
		if (c->membership_backend == MRTC_MEMBERSHIP_MSC4502 && !c->appservice_token)
			problem(problems, "MRTC_APPSERVICE_TOKEN",
				"required with MRTC_MEMBERSHIP_BACKEND=msc4502");
	}
	default_store(c, getenv_fn, ctx, problems);
	check_redis_credentials(c, problems);
	if (c->bind.port && c->admin_bind.port == c->bind.port &&
	    strcmp(c->bind.host, c->admin_bind.host) == 0)
		problem(problems, "MRTC_ADMIN_BIND", "must differ from MRTC_BIND");
	if (!c->legacy_only)
		derive_service_url(c, problems);
	if (c->livekit_url && !c->livekit_api_url) {
		c->livekit_api_url = derive_api_url(c->livekit_url);
		if (!c->livekit_api_url)
			problem(problems, "MRTC_LIVEKIT_API_URL", "out of memory");
	}
	derive_sfu_urls(c, problems);
	if (problems->len != problems_before || problems->failed) {
		mrtc_config_destroy(c);
		return MRTC_ERR_CONFIG;
	}
	*ret_config = c;
	return MRTC_OK;
}

void mrtc_config_destroy(struct mrtc_config *c)
{
	if (!c)
		return;
	for (size_t i = 1; i < c->n_sfus; i++) {
		struct mrtc_sfu_config *u = &c->sfus[i];
		free(u->url);
		free_secret(u->key);
		free_secret(u->secret);
		free(u->api_url);
		free(u->service_url);
	}
	for (size_t i = 0; i < N_VARS; i++) {
		const struct var *v = &vars[i];
		if (v->flags & F_SFU)
			continue;
		switch (v->type) {
		case T_STRING:
		case T_SERVER_NAME:
		case T_HTTP_URL:
		case T_HTTPS_URL:
		case T_WS_URL:
		case T_FILE:
		case T_STORE:
			free_secret(*string_field(c, v));
			break;
		default:
			break;
		}
	}
	mrtc_signing_key_destroy(c->signing_key);
	free(c->allow_cidrs);
	for (size_t i = 0; i < c->n_full_access; i++)
		free(c->full_access[i]);
	free(c->full_access);
	free(c);
}

void mrtc_config_print_help(FILE *out, const char *argv0, mrtc_getenv_fn getenv_fn, void *ctx)
{
	fprintf(
	    out,
	    "Usage: %s [--help | --version | --check-config |\n"
	    "       --print-appservice-registration [proxy_url]]\n"
	    "\n"
	    "MatrixRTC LiveKit transport service (MSC4195) for a Matrix homeserver.\n"
	    "Configuration comes from environment variables; secrets may also be read from a\n"
	    "file named by NAME_FILE. (*) marks the homeserver variables: with none of them set\n"
	    "the daemon serves only the lk-jwt-service compatible endpoints.\n"
	    "\n"
	    "  --help          this text, with the current value of every variable\n"
	    "  --version       print the version and exit\n"
	    "  --check-config  validate the configuration, print every problem, exit non-zero on "
	    "any\n"
	    "  --print-appservice-registration [proxy_url]\n"
	    "                  write a Synapse application-service registration (MSC4512,\n"
	    "                  MSC4502) for MRTC_SERVER_NAME with new tokens, and the matching\n"
	    "                  environment; proxy_url defaults to http://<MRTC_BIND>\n"
	    "\n",
	    argv0);
	for (size_t i = 0; i < N_VARS; i++) {
		const struct var *v = &vars[i];
		const char *value = env_value(getenv_fn, ctx, v->name);
		char shown[96];
		if (v->flags & F_SECRET) {
			char file_var[128];
			bool set =
			    value || (mrtc_format(file_var, sizeof(file_var), "%s_FILE", v->name) &&
				      env_value(getenv_fn, ctx, file_var));
			mrtc_copy(shown, sizeof(shown), set ? "set" : "unset");
		} else if (value && v->type == T_STORE) {
			char redacted[512];
			mrtc_store_spec_redact(value, redacted, sizeof(redacted));
			mrtc_quote(shown, sizeof(shown), redacted, 64);
		} else if (value) {
			mrtc_quote(shown, sizeof(shown), value, 64);
		} else {
			mrtc_copy(shown, sizeof(shown), "unset");
		}
		fprintf(out, "  %s%s\n      %s\n      default: %s%s; now: %s\n", v->name,
			(v->flags & F_HOMESERVER) ? " (*)" : "", v->help, v->def ? v->def : "none",
			(v->flags & F_REQUIRED) ? ", required" : "", shown);
	}
}
