/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration's one table: every variable with its type, default, flags, limits and help
 * line. The loader (config.c) walks it, and --help is printed from it here: secrets only as
 * "set"/"unset", the store spec with its password redacted, other values quoted and capped.
 */
#include <stdio.h>
#include <stdlib.h>

#include "config_table.h"
#include "mrtc/core/storespec.h"
#include "mrtc/base/util.h"

const struct config_var mrtc_config_vars[] = {
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

const size_t mrtc_config_n_vars = sizeof(mrtc_config_vars) / sizeof(mrtc_config_vars[0]);

const char *mrtc_config_process_env(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
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
	for (size_t i = 0; i < mrtc_config_n_vars; i++) {
		const struct config_var *v = &mrtc_config_vars[i];
		const char *value = mrtc_config_env(getenv_fn, ctx, v->name);
		char shown[96];
		if (v->flags & F_SECRET) {
			char file_var[128];
			bool set =
			    value || (mrtc_format(file_var, sizeof(file_var), "%s_FILE", v->name) &&
				      mrtc_config_env(getenv_fn, ctx, file_var));
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
