/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration from the environment: the mode (lk-jwt-service drop-in, homeserver, application
 * service), every variable of the table (config_vars.c) parsed by its type (config_value.c), the
 * secrets (config_secret.c), the numbered SFUs, the rules between variables, the derived values
 * (RoomService and service URLs, the default store), and freeing it all. Every problem is
 * collected before the load fails.
 */
#include "mrtc/core/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_table.h"
#include "mrtc/core/storespec.h"
#include "mrtc/base/util.h"

void mrtc_config_problem(struct mrtc_buf *problems, const char *name, const char *fmt, ...)
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

const char *mrtc_config_env(mrtc_getenv_fn getenv_fn, void *ctx, const char *name)
{
	const char *v = getenv_fn(ctx, name);
	return (v && v[0]) ? v : NULL;
}

/* Without MRTC_STORE the store is SQLite in the state directory: MRTC_STATE_DIR, else the first
 * directory of systemd's $STATE_DIRECTORY, else MRTC_STATE_DIR_DEFAULT. */
static void default_store(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
			  struct mrtc_buf *problems)
{
	if (c->store || c->store_off)
		return;
	if (!c->state_dir) {
		const char *sd = mrtc_config_env(getenv_fn, ctx, "STATE_DIRECTORY");
		size_t n = sd ? strcspn(sd, ":") : 0;
		c->state_dir = n ? strndup(sd, n) : strdup(MRTC_STATE_DIR_DEFAULT);
		if (!c->state_dir) {
			mrtc_config_problem(problems, "MRTC_STATE_DIR", "out of memory");
			return;
		}
	}
	size_t n = strlen(c->state_dir);
	while (n > 1 && c->state_dir[n - 1] == '/')
		c->state_dir[--n] = '\0';
	if (c->state_dir[0] != '/') {
		mrtc_config_problem(problems, "MRTC_STATE_DIR", "must be an absolute path");
		return;
	}
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	mrtc_buf_printf(&b, "sqlite:%s%s" MRTC_STATE_DB, c->state_dir, n > 1 ? "/" : "");
	c->store = mrtc_buf_steal(&b, NULL);
	if (!c->store) {
		mrtc_config_problem(problems, "MRTC_STATE_DIR", "out of memory");
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
			mrtc_config_problem(problems, "LIVEKIT_URL_2",
					    "internal error naming SFU %u", n);
			return;
		}
		for (int k = 0; k < 4; k++)
			any = any || mrtc_config_env(getenv_fn, ctx, names[k]);
		for (int k = 0; k < 2; k++)
			any = any || mrtc_config_env(getenv_fn, ctx, files[k]);
		if (!any) {
			if (!gap)
				gap = n;
			continue;
		}
		if (n > MRTC_SFUS_MAX) {
			mrtc_config_problem(problems, names[0], "at most %d SFUs are supported",
					    MRTC_SFUS_MAX);
			break;
		}
		if (gap) {
			mrtc_config_problem(
			    problems, names[0],
			    "LIVEKIT_URL_%u is not set: number the SFUs 2, 3, ... without gaps",
			    gap);
			continue;
		}
		size_t i = c->n_sfus++;
		struct mrtc_sfu_config *u = &c->sfus[i];
		size_t base = OFF(sfus) + i * sizeof(struct mrtc_sfu_config);
		const struct config_var url_var = { .name = names[0],
						    .type = T_WS_URL,
						    .offset = base +
							      offsetof(struct mrtc_sfu_config, url),
						    .help = "" };
		const struct config_var api_var = {
			.name = names[3],
			.type = T_HTTP_URL,
			.offset = base + offsetof(struct mrtc_sfu_config, api_url),
			.help = ""
		};
		const char *url = mrtc_config_env(getenv_fn, ctx, names[0]);
		const char *api = mrtc_config_env(getenv_fn, ctx, names[3]);
		if (!url)
			mrtc_config_problem(problems, names[0], "required: %s or %s is set",
					    names[1], names[2]);
		else
			mrtc_config_parse_value(c, &url_var, url, problems);
		if (u->url && mrtc_config_sfu_find(c, u->url) != (int)i)
			mrtc_config_problem(
			    problems, names[0],
			    "is the URL of SFU %d already: get_token picks the SFU by it",
			    mrtc_config_sfu_find(c, u->url) + 1);
		if (api)
			mrtc_config_parse_value(c, &api_var, api, problems);
		u->key = mrtc_config_secret(getenv_fn, ctx, names[1], problems);
		u->secret = mrtc_config_secret(getenv_fn, ctx, names[2], problems);
		if (!u->key && !mrtc_config_env(getenv_fn, ctx, files[0]))
			mrtc_config_problem(problems, names[1], "required for SFU %u (or %s)", n,
					    files[0]);
		if (!u->secret && !mrtc_config_env(getenv_fn, ctx, files[1]))
			mrtc_config_problem(problems, names[2], "required for SFU %u (or %s)", n,
					    files[1]);
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
				mrtc_config_problem(problems, "MRTC_LIVEKIT_API_URL_2",
						    "out of memory");
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
			mrtc_config_problem(problems, "MRTC_LIVEKIT_SERVICE_URL", "out of memory");
	}
}

/* The Redis credentials outside MRTC_STORE must fit it. */
static void check_redis_credentials(const struct mrtc_config *c, struct mrtc_buf *problems)
{
	bool redis = c->store && strncmp(c->store, "redis", 5) == 0;
	bool sentinel = c->store && strncmp(c->store, "redis+sentinel:", 15) == 0;
	if (c->redis_password && !redis)
		mrtc_config_problem(problems, "MRTC_REDIS_PASSWORD",
				    "set, but MRTC_STORE is not a Redis store");
	else if (c->redis_password && mrtc_store_spec_has_password(c->store))
		mrtc_config_problem(problems, "MRTC_REDIS_PASSWORD",
				    "MRTC_STORE holds a password already; use one of them");
	if (redis && mrtc_store_spec_has_user(c->store) && !c->redis_password &&
	    !mrtc_store_spec_has_password(c->store))
		mrtc_config_problem(problems, "MRTC_STORE",
				    "names a Redis user but no password (give user:password@ or "
				    "MRTC_REDIS_PASSWORD[_FILE])");
	if (c->rate_limit_shared && !redis)
		mrtc_config_problem(
		    problems, "MRTC_RATE_LIMIT_SHARED",
		    "true needs a Redis MRTC_STORE (redis:// or redis+sentinel://)");
	if ((c->redis_sentinel_password || c->redis_sentinel_user) && !sentinel)
		mrtc_config_problem(problems,
				    c->redis_sentinel_password ? "MRTC_REDIS_SENTINEL_PASSWORD"
							       : "MRTC_REDIS_SENTINEL_USER",
				    "set, but MRTC_STORE is not a redis+sentinel:// store");
	if (c->redis_sentinel_user && !c->redis_sentinel_password)
		mrtc_config_problem(problems, "MRTC_REDIS_SENTINEL_USER",
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
			mrtc_config_problem(
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
		mrtc_config_problem(problems, "MRTC_PUBLIC_BASE_URL", "out of memory");
}

/* Application-service mode: both tokens, distinct, and membership through MSC4502 only. */
static void check_appservice(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
			     struct mrtc_buf *problems)
{
	if (!c->appservice_token)
		mrtc_config_problem(
		    problems, "MRTC_APPSERVICE_TOKEN",
		    "required in application-service mode: the registration's as_token "
		    "(is_joined, fed_proxy, delayed events)");
	if (c->appservice_token && c->appservice_hs_token &&
	    strcmp(c->appservice_token, c->appservice_hs_token) == 0)
		mrtc_config_problem(
		    problems, "MRTC_APPSERVICE_HS_TOKEN",
		    "must differ from MRTC_APPSERVICE_TOKEN (as_token and hs_token are two "
		    "secrets)");
	const char *backend = mrtc_config_env(getenv_fn, ctx, "MRTC_MEMBERSHIP_BACKEND");
	if (backend && strcmp(backend, "msc4502") != 0)
		mrtc_config_problem(
		    problems, "MRTC_MEMBERSHIP_BACKEND",
		    "application-service mode checks membership with MSC4502 is_joined only; "
		    "unset it or set msc4502");
	if (mrtc_config_env(getenv_fn, ctx, "MRTC_HOMESERVER_ADMIN_TOKEN") ||
	    mrtc_config_env(getenv_fn, ctx, "MRTC_HOMESERVER_ADMIN_TOKEN_FILE"))
		mrtc_config_problem(problems, "MRTC_HOMESERVER_ADMIN_TOKEN",
				    "not used in application-service mode; unset it");
	free(c->membership_backend);
	c->membership_backend = strdup("msc4502");
	if (!c->membership_backend)
		mrtc_config_problem(problems, "MRTC_MEMBERSHIP_BACKEND", "out of memory");
}

/* The token variable of the backend @name among @backends, or NULL if there is none such. */
static const char *backend_token_var(mrtc_membership_list_fn backends, const char *name)
{
	const char *var = NULL, *n;
	for (size_t i = 0; name && (n = backends(i, &var)) != NULL; i++)
		if (strcmp(n, name) == 0)
			return var;
	return NULL;
}

/* MRTC_MEMBERSHIP_BACKEND names a backend: else a problem listing them ("a, b or c"). */
static void check_backend_name(const struct mrtc_config *c, const struct config_var *v,
			       mrtc_membership_list_fn backends, struct mrtc_buf *problems)
{
	if (!c->membership_backend || backend_token_var(backends, c->membership_backend))
		return;
	struct mrtc_buf names;
	mrtc_buf_init(&names);
	const char *var, *n;
	for (size_t i = 0; (n = backends(i, &var)) != NULL; i++) {
		const char *next = backends(i + 1, &var);
		mrtc_buf_printf(&names, "%s%s", i == 0 ? "" : next ? ", " : " or ", n);
	}
	mrtc_config_problem(problems, v->name, "expected %s",
			    names.data && !names.failed ? names.data : "a membership backend");
	mrtc_buf_finish(&names);
}

/* The backend's token: the value of its token variable, required with it (in application-
 * service mode check_appservice() reports a missing as_token already). */
static void resolve_backend_token(struct mrtc_config *c, mrtc_membership_list_fn backends,
				  struct mrtc_buf *problems)
{
	const char *var = backend_token_var(backends, c->membership_backend);
	if (!var)
		return; /* reported by check_backend_name() */
	for (size_t i = 0; i < mrtc_config_n_vars; i++) {
		const struct config_var *v = &mrtc_config_vars[i];
		if (v->type == T_STRING && strcmp(v->name, var) == 0) {
			c->membership_token = *mrtc_config_string_field(c, v);
			break;
		}
	}
	if (!c->membership_token && !c->appservice)
		mrtc_config_problem(problems, var, "required with MRTC_MEMBERSHIP_BACKEND=%s",
				    c->membership_backend);
}

const char *mrtc_config_mode_name(const struct mrtc_config *c)
{
	return c->appservice	? "application service"
	       : c->legacy_only ? "lk-jwt-service drop-in"
				: "homeserver";
}

enum mrtc_err mrtc_config_load(mrtc_getenv_fn getenv_fn, void *ctx,
			       mrtc_membership_list_fn backends, struct mrtc_buf *problems,
			       struct mrtc_config **ret_config)
{
	struct mrtc_config *c = calloc(1, sizeof(*c));
	if (!c)
		return MRTC_ERR_NOMEM;
	size_t problems_before = problems->len;

	int hs_set = 0;
	for (size_t i = 0; i < mrtc_config_n_vars; i++)
		if ((mrtc_config_vars[i].flags & F_HOMESERVER) &&
		    mrtc_config_env(getenv_fn, ctx, mrtc_config_vars[i].name))
			hs_set++;
	c->legacy_only = hs_set == 0;
	c->appservice = mrtc_config_env(getenv_fn, ctx, "MRTC_APPSERVICE_HS_TOKEN") ||
			mrtc_config_env(getenv_fn, ctx, "MRTC_APPSERVICE_HS_TOKEN_FILE");
	if (c->appservice)
		c->legacy_only = false;

	for (size_t i = 0; i < mrtc_config_n_vars; i++) {
		const struct config_var *v = &mrtc_config_vars[i];
		if (v->flags & F_SFU)
			continue;
		if (v->flags & F_SPECIAL && v->flags & F_SECRET)
			continue;
		const char *value = mrtc_config_env(getenv_fn, ctx, v->name);
		char *secret = NULL;
		if (v->flags & F_SECRET) {
			secret = mrtc_config_secret(getenv_fn, ctx, v->name, problems);
			value = secret;
		}
		char jwt_port_bind[16];
		if (!value && strcmp(v->name, "MRTC_BIND") == 0) {
			/* lk-jwt-service's names: LIVEKIT_JWT_BIND, or the older LIVEKIT_JWT_PORT.
			 */
			const char *jb = mrtc_config_env(getenv_fn, ctx, "LIVEKIT_JWT_BIND");
			const char *jp = mrtc_config_env(getenv_fn, ctx, "LIVEKIT_JWT_PORT");
			if (jb && jp)
				mrtc_config_problem(
				    problems, "LIVEKIT_JWT_PORT",
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
			mrtc_config_problem(problems, v->name, "required");
		bool key_var = strcmp(v->name, "MRTC_SIGNING_KEY_FILE") == 0;
		if (c->appservice && key_var && value)
			mrtc_config_problem(
			    problems, v->name,
			    "not used in application-service mode (MRTC_APPSERVICE_HS_TOKEN "
			    "set): the homeserver signs federation requests (fed_proxy) and "
			    "checks incoming signatures; unset it");
		else if (c->appservice && !value && (v->flags & F_HOMESERVER) && !key_var)
			mrtc_config_problem(
			    problems, v->name,
			    "required in application-service mode (MRTC_APPSERVICE_HS_TOKEN "
			    "set)");
		else if (!c->appservice && !value && (v->flags & F_HOMESERVER) && hs_set > 0)
			mrtc_config_problem(
			    problems, v->name,
			    "required when any of MRTC_SERVER_NAME, MRTC_HOMESERVER_URL, "
			    "MRTC_SIGNING_KEY_FILE is set");
		if (!value)
			value = v->def;
		if (value)
			mrtc_config_parse_value(c, v, value, problems);
		if (v->type == T_MEMBERSHIP)
			check_backend_name(c, v, backends, problems);
		mrtc_config_free_secret(secret);
	}
	mrtc_config_load_livekit(c, getenv_fn, ctx, problems);
	load_sfus(c, getenv_fn, ctx, problems);

	if (c->signing_key_file && problems->len == problems_before) {
		enum mrtc_err err =
		    mrtc_signing_key_load_file(c->signing_key_file, &c->signing_key);
		if (err != MRTC_OK)
			mrtc_config_problem(
			    problems, "MRTC_SIGNING_KEY_FILE",
			    "%s is not a signing-key file 'ed25519 <version> <seed>' (%s)",
			    c->signing_key_file, mrtc_err_str(err));
	}
	if (c->key_notary && !mrtc_notary_spec_parse(c->key_notary, c->notary_name, &c->notary_key))
		mrtc_config_problem(
		    problems, "MRTC_KEY_NOTARY",
		    "expected '<server_name> ed25519:<version> <unpadded base64 public key>'");
	if (c->ca_file && !mrtc_config_ca_file_is_usable(c->ca_file))
		mrtc_config_problem(problems, "MRTC_CA_FILE",
				    "%s holds no PEM certificate OpenSSL can load", c->ca_file);
	if (c->appservice)
		check_appservice(c, getenv_fn, ctx, problems);
	if (!c->legacy_only)
		resolve_backend_token(c, backends, problems);
	default_store(c, getenv_fn, ctx, problems);
	check_redis_credentials(c, problems);
	if (c->bind.port && c->admin_bind.port == c->bind.port &&
	    strcmp(c->bind.host, c->admin_bind.host) == 0)
		mrtc_config_problem(problems, "MRTC_ADMIN_BIND", "must differ from MRTC_BIND");
	if (!c->legacy_only)
		derive_service_url(c, problems);
	if (c->livekit_url && !c->livekit_api_url) {
		c->livekit_api_url = derive_api_url(c->livekit_url);
		if (!c->livekit_api_url)
			mrtc_config_problem(problems, "MRTC_LIVEKIT_API_URL", "out of memory");
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
		mrtc_config_free_secret(u->key);
		mrtc_config_free_secret(u->secret);
		free(u->api_url);
		free(u->service_url);
	}
	for (size_t i = 0; i < mrtc_config_n_vars; i++) {
		const struct config_var *v = &mrtc_config_vars[i];
		if (v->flags & F_SFU)
			continue;
		switch (v->type) {
		case T_STRING:
		case T_SERVER_NAME:
		case T_HTTP_URL:
		case T_HTTPS_URL:
		case T_WS_URL:
		case T_FILE:
		case T_MEMBERSHIP:
		case T_STORE:
			mrtc_config_free_secret(*mrtc_config_string_field(c, v));
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
