/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's configuration: one struct, filled from environment variables through one table
 * that also drives --help and secret redaction. Validated completely at load; read-only after.
 */
#ifndef MRTC_CONFIG_H
#define MRTC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mrtc/base/buf.h"
#include "mrtc/base/err.h"
#include "mrtc/matrix/guard.h"
#include "mrtc/core/log.h"
#include "mrtc/matrix/serverkeys.h"
#include "mrtc/matrix/servername.h"
#include "mrtc/matrix/signing.h"

enum mrtc_identity_format {
	MRTC_IDENTITY_USER_DEVICE_MEMBER,
	MRTC_IDENTITY_USER_MEMBER,
};

struct mrtc_hostport {
	char host[256]; /* "" = every address; IPv6 without brackets */
	uint16_t port;
};

/* SFUs: LIVEKIT_URL etc. are the first; LIVEKIT_URL_<n> etc. (n = 2 .. MRTC_SFUS_MAX) more. */
#define MRTC_SFUS_MAX 8

/* One LiveKit deployment. Index 0 borrows the LIVEKIT_* strings; the others own theirs. */
struct mrtc_sfu_config {
	char *url;	   /* ws(s):// URL clients connect to; picks the SFU in get_token */
	char *key;	   /* API key */
	char *secret;	   /* API secret */
	char *api_url;	   /* RoomService base URL (derived from url when not set) */
	char *service_url; /* livekit_service_url advertised for it: <service>[/<n>]; may be NULL */
};

struct mrtc_config {
	bool legacy_only; /* none of the homeserver variables set: lk-jwt-service drop-in mode */
	bool appservice;  /* MRTC_APPSERVICE_HS_TOKEN set: behind Synapse's MSC4512 proxy */
	char *server_name;
	char *homeserver_url;
	char *signing_key_file;
	struct mrtc_signing_key *signing_key; /* loaded from signing_key_file */
	struct mrtc_hostport bind;
	struct mrtc_hostport admin_bind;
	char *livekit_url;
	char *livekit_key;
	char *livekit_secret;
	char *livekit_api_url;	      /* derived from livekit_url when not set */
	char *membership_backend;     /* MRTC_MEMBERSHIP_BACKEND: a name the backend list holds */
	const char *membership_token; /* borrowed: the value of that backend's token variable */
	char *homeserver_admin_token;
	char *appservice_token;	   /* as_token: is_joined, fed_proxy, delayed events */
	char *appservice_hs_token; /* hs_token: what the homeserver sends us */
	uint64_t token_ttl_s;
	enum mrtc_identity_format identity;
	char *ca_file;
	bool has_dns_server;
	struct mrtc_hostport dns_server;
	struct mrtc_cidr *allow_cidrs;
	size_t n_allow_cidrs;
	char *key_notary;			    /* "server_name key_id base64key" as set */
	char notary_name[MRTC_SERVER_NAME_MAX + 1]; /* parsed from it; "" when unset */
	struct mrtc_verify_key notary_key;
	uint64_t auth_cache_ttl_s;
	uint64_t membership_cache_ttl_s;
	uint64_t rate_per_second;
	uint64_t rate_burst;
	bool rate_limit_shared; /* MRTC_RATE_LIMIT_SHARED: buckets in the Redis store */
	uint64_t homeserver_timeout_s;
	uint64_t livekit_timeout_s;
	uint64_t federation_timeout_s;
	uint64_t readiness_interval_s;
	uint64_t client_timeout_s;
	uint64_t key_fetch_max;
	uint64_t key_fetch_per_peer;
	uint64_t inbound_max;  /* 0 until sized from the descriptor limit at start */
	uint64_t outbound_max; /* likewise */
	uint64_t verify_threads;
	char *store;	    /* may hold a Redis password: print only through mrtc_store_spec_redact;
			     * NULL only with MRTC_STORE=none */
	bool store_off;	    /* MRTC_STORE=none: delegation off */
	bool store_default; /* MRTC_STORE unset: SQLite in state_dir */
	char *state_dir;    /* MRTC_STATE_DIR, or the default when store_default */
	char *redis_password;
	char *redis_sentinel_user;
	char *redis_sentinel_password;
	uint64_t delayed_poll_ms;
	uint64_t delayed_connect_wait_s;
	uint64_t delayed_min_delay_ms;
	uint64_t lease_ttl_ms;
	uint64_t membership_recheck_s;
	char *livekit_service_url; /* set, or derived from public_base_url + MRTC_SERVICE_PATH */
	char *public_base_url;
	uint64_t allow_no_service_url; /* 1: homeserver mode may run without livekit_service_url */
	bool full_access_all;
	char **full_access; /* server names */
	size_t n_full_access;
	int log_level;
	enum mrtc_log_format log_format;
	struct mrtc_sfu_config sfus[MRTC_SFUS_MAX]; /* in preference order */
	size_t n_sfus;				    /* at least 1 once loaded */
};

/* The default store: SQLite, this file in the state directory. */
#define MRTC_STATE_DB "store.db"
#define MRTC_STATE_DIR_DEFAULT "/var/lib/mrtc-transport"

/* The path under MRTC_PUBLIC_BASE_URL where the proxy snippet serves the OpenID endpoints. */
#define MRTC_SERVICE_PATH "/livekit/jwt"

/* The longest operator URL (homeserver, SFU, service URLs) accepted: every buffer a URL is built
 * in has room for it and the longest path appended. */
#define MRTC_URL_MAX 1024

/* True if @url names the SFU @configured: exact match after dropping one trailing '/'. */
bool mrtc_sfu_url_matches(const char *url, const char *configured);

/*
 * The index in @c->sfus of the SFU whose url is @url (a trailing slash ignored), or -1. The
 * number of an SFU in variable names and service URLs is its index + 1.
 */
int mrtc_config_sfu_find(const struct mrtc_config *c, const char *url);

/* Returns the value of environment variable @name, or NULL. */
typedef const char *(*mrtc_getenv_fn)(void *ctx, const char *name);

/* An mrtc_getenv_fn reading the process environment. */
const char *mrtc_config_process_env(void *ctx, const char *name);

/*
 * The membership backends as the configuration sees them: the name of the @i-th (0, 1, ...)
 * with *@ret_token_var the variable of the token it needs, or NULL past the last. The backends
 * are homeserver/'s (mrtc_membership_backend_list); the loader is handed the list.
 */
typedef const char *(*mrtc_membership_list_fn)(size_t i, const char **ret_token_var);

/*
 * Builds the configuration from the variables @getenv returns, MRTC_MEMBERSHIP_BACKEND checked
 * against @backends. Every problem is appended to
 * @problems as one line "NAME: what is wrong" and all of them are collected before returning
 * MRTC_ERR_CONFIG. On success *ret_config is a new configuration (caller frees with
 * mrtc_config_destroy()).
 */
enum mrtc_err mrtc_config_load(mrtc_getenv_fn getenv_fn, void *ctx,
			       mrtc_membership_list_fn backends, struct mrtc_buf *problems,
			       struct mrtc_config **ret_config);

/* Frees @config, wiping its secrets; accepts NULL and half-built configurations. */
void mrtc_config_destroy(struct mrtc_config *config);

/*
 * Writes the --help text to @out: every variable with its default, whether it is required,
 * and its current value from @getenv (secrets only as "set"/"unset").
 */
void mrtc_config_print_help(FILE *out, const char *argv0, mrtc_getenv_fn getenv_fn, void *ctx);

/* "application service", "homeserver" or "lk-jwt-service drop-in": the mode @config runs in. */
const char *mrtc_config_mode_name(const struct mrtc_config *config);

/* Parses "host:port", "[v6]:port" or ":port". */
bool mrtc_hostport_parse(const char *s, bool host_required, struct mrtc_hostport *ret);

#endif
