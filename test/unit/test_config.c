/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration loading: every variable, good and bad values, *_FILE, the problem list. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mrtc/core/config.h"
#include "mrtc/homeserver/membership.h"
#include "vectors.h"

#define MAX_ENV 64

struct env {
	const char *names[MAX_ENV];
	const char *values[MAX_ENV];
	size_t n;
};

static const char *env_get(void *ctx, const char *name)
{
	struct env *e = ctx;
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->names[i], name) == 0)
			return e->values[i];
	return NULL;
}

static void env_set(struct env *e, const char *name, const char *value)
{
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(e->names[i], name) == 0) {
			e->values[i] = value;
			return;
		}
	}
	ck_assert(e->n < MAX_ENV);
	e->names[e->n] = name;
	e->values[e->n++] = value;
}

static void legacy_env(struct env *e)
{
	*e = (struct env){ .n = 0 };
	env_set(e, "LIVEKIT_URL", "wss://sfu.example.org");
	env_set(e, "LIVEKIT_KEY", "devkey");
	env_set(e, "LIVEKIT_SECRET", "devsecret");
}

static char *key_file(void)
{
	return vectors_temp_file("ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n");
}

static void homeserver_env(struct env *e, const char *key_path)
{
	legacy_env(e);
	env_set(e, "MRTC_SERVER_NAME", "hs1.test");
	env_set(e, "MRTC_HOMESERVER_URL", "http://127.0.0.1:8008");
	env_set(e, "MRTC_SIGNING_KEY_FILE", key_path);
	env_set(e, "MRTC_HOMESERVER_ADMIN_TOKEN", "admintoken");
	env_set(e, "MRTC_PUBLIC_BASE_URL", "https://matrix.example.org/");
}

/* Loads with the membership backends @backends; returns the problem text (caller frees) or NULL
 * on success (config in *ret). */
static char *load_with(struct env *e, mrtc_membership_list_fn backends, struct mrtc_config **ret)
{
	struct mrtc_buf problems;
	mrtc_buf_init(&problems);
	*ret = NULL;
	enum mrtc_err err = mrtc_config_load(env_get, e, backends, &problems, ret);
	if (err == MRTC_OK) {
		ck_assert_uint_eq(problems.len, 0);
		mrtc_buf_finish(&problems);
		return NULL;
	}
	ck_assert_int_eq(err, MRTC_ERR_CONFIG);
	ck_assert_ptr_null(*ret);
	ck_assert_uint_gt(problems.len, 0);
	return mrtc_buf_steal(&problems, NULL);
}

/* Loads with homeserver/'s membership backends. */
static char *load(struct env *e, struct mrtc_config **ret)
{
	return load_with(e, mrtc_membership_backend_list, ret);
}

static void assert_problem(struct env *e, const char *name, const char *value, const char *want)
{
	env_set(e, name, value);
	struct mrtc_config *c;
	char *p = load(e, &c);
	ck_assert_msg(p != NULL, "%s=%s accepted", name, value);
	ck_assert_msg(strstr(p, want) != NULL, "%s=%s: problems were: %s", name, value, p);
	free(p);
}

START_TEST(test_config_load_legacy_defaults)
{
	struct env e;
	legacy_env(&e);
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->legacy_only);
	ck_assert_str_eq(c->bind.host, "127.0.0.1");
	ck_assert_uint_eq(c->bind.port, 8080);
	ck_assert_uint_eq(c->admin_bind.port, 8081);
	ck_assert_uint_eq(c->token_ttl_s, 3600);
	ck_assert_int_eq(c->identity, MRTC_IDENTITY_USER_DEVICE_MEMBER);
	ck_assert_str_eq(c->membership_backend, "synapse-admin");
	ck_assert_ptr_null(c->membership_token); /* no homeserver: no backend token */
	ck_assert_uint_eq(c->auth_cache_ttl_s, 60);
	ck_assert_uint_eq(c->membership_cache_ttl_s, 5);
	ck_assert_uint_eq(c->rate_per_second, 5);
	ck_assert_uint_eq(c->rate_burst, 20);
	ck_assert_uint_eq(c->homeserver_timeout_s, 5);
	ck_assert_uint_eq(c->livekit_timeout_s, 5);
	ck_assert_uint_eq(c->federation_timeout_s, 10);
	ck_assert_str_eq(c->livekit_api_url, "https://sfu.example.org");
	ck_assert_str_eq(c->livekit_key, "devkey");
	ck_assert_int_eq(c->log_level, LOG_INFO);
	ck_assert(!c->has_dns_server);
	mrtc_config_destroy(c);
}
END_TEST

/* MRTC_RATE_LIMIT_SHARED: false by default; true needs a Redis store; nothing else is a bool. */
START_TEST(test_config_rate_limit_shared)
{
	struct env e;
	legacy_env(&e);
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(!c->rate_limit_shared);
	mrtc_config_destroy(c);
	env_set(&e, "MRTC_STORE", "redis://127.0.0.1:6379/2");
	env_set(&e, "MRTC_RATE_LIMIT_SHARED", "true");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->rate_limit_shared);
	mrtc_config_destroy(c);
	assert_problem(&e, "MRTC_RATE_LIMIT_SHARED", "yes", "expected true or false");
	assert_problem(&e, "MRTC_RATE_LIMIT_SHARED", "1", "expected true or false");
	env_set(&e, "MRTC_RATE_LIMIT_SHARED", "true");
	assert_problem(&e, "MRTC_STORE", "sqlite:/tmp/x.db", "needs a Redis MRTC_STORE");
	assert_problem(&e, "MRTC_STORE", "none", "needs a Redis MRTC_STORE");
	env_set(&e, "MRTC_STORE", "redis+sentinel://10.0.0.1,10.0.0.2/mymaster");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->rate_limit_shared);
	mrtc_config_destroy(c);
}
END_TEST

/* The store: SQLite in the state directory unless MRTC_STORE says otherwise; "none" is off. */
START_TEST(test_config_default_store)
{
	struct env e;
	legacy_env(&e);
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->store_default && !c->store_off);
	ck_assert_str_eq(c->state_dir, "/var/lib/mrtc-transport");
	ck_assert_str_eq(c->store, "sqlite:/var/lib/mrtc-transport/store.db");
	mrtc_config_destroy(c);
	/* systemd's StateDirectory= (several: the first), then MRTC_STATE_DIR over it. */
	env_set(&e, "STATE_DIRECTORY", "/var/lib/mrtc-transport-a:/var/lib/other");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->store, "sqlite:/var/lib/mrtc-transport-a/store.db");
	mrtc_config_destroy(c);
	env_set(&e, "MRTC_STATE_DIR", "/srv/mrtc/");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->store, "sqlite:/srv/mrtc/store.db");
	mrtc_config_destroy(c);
	env_set(&e, "MRTC_STATE_DIR", "/");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->store, "sqlite:/store.db");
	mrtc_config_destroy(c);
	/* An explicit store wins; none switches delegation off. */
	env_set(&e, "MRTC_STORE", "sqlite:/tmp/jobs.db");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(!c->store_default);
	ck_assert_str_eq(c->store, "sqlite:/tmp/jobs.db");
	mrtc_config_destroy(c);
	env_set(&e, "MRTC_STORE", "none");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->store_off && !c->store_default);
	ck_assert_ptr_null(c->store);
	mrtc_config_destroy(c);
	/* A relative state directory is refused. */
	env_set(&e, "MRTC_STORE", NULL);
	assert_problem(&e, "MRTC_STATE_DIR", "state", "MRTC_STATE_DIR: must be an absolute path");
}
END_TEST

START_TEST(test_config_load_homeserver_full)
{
	char *kf = key_file();
	struct env e;
	homeserver_env(&e, kf);
	env_set(&e, "MRTC_BIND", "[::1]:9000");
	env_set(&e, "MRTC_ADMIN_BIND", ":9001");
	env_set(&e, "LIVEKIT_URL", "ws://sfu.local:7880/");
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "msc4502");
	env_set(&e, "MRTC_APPSERVICE_TOKEN", "astoken");
	env_set(&e, "MRTC_TOKEN_TTL", "600");
	env_set(&e, "MRTC_IDENTITY", "user-member");
	env_set(&e, "MRTC_DNS_SERVER", "127.0.0.1:5353");
	env_set(&e, "MRTC_FEDERATION_ALLOW_CIDRS", "127.0.0.0/8, ::1/128");
	env_set(&e, "MRTC_KEY_NOTARY",
		"hs1.test ed25519:a_x nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
	env_set(&e, "MRTC_AUTH_CACHE_TTL", "0");
	env_set(&e, "MRTC_RATE_PER_SECOND", "100");
	env_set(&e, "MRTC_LIVEKIT_SERVICE_URL", "https://jwt.example.org");
	env_set(&e, "LIVEKIT_FULL_ACCESS_HOMESERVERS", "hs1.test, hs2.test:8448");
	env_set(&e, "MRTC_LOG_LEVEL", "debug");
	env_set(&e, "MRTC_LOG_FORMAT", "json");
	struct mrtc_config *c;
	char *p = load(&e, &c);
	ck_assert_msg(p == NULL, "%s", p);
	ck_assert(!c->legacy_only);
	ck_assert_str_eq(c->server_name, "hs1.test");
	ck_assert_str_eq(c->signing_key->key_id, "ed25519:1");
	ck_assert_str_eq(c->bind.host, "::1");
	ck_assert_uint_eq(c->bind.port, 9000);
	ck_assert_str_eq(c->admin_bind.host, "");
	ck_assert_str_eq(c->livekit_api_url, "http://sfu.local:7880");
	ck_assert_str_eq(c->membership_backend, "msc4502");
	ck_assert_str_eq(c->membership_token, c->appservice_token);
	ck_assert_uint_eq(c->token_ttl_s, 600);
	ck_assert_int_eq(c->identity, MRTC_IDENTITY_USER_MEMBER);
	ck_assert(c->has_dns_server);
	ck_assert_str_eq(c->dns_server.host, "127.0.0.1");
	ck_assert_uint_eq(c->dns_server.port, 5353);
	ck_assert_uint_eq(c->n_allow_cidrs, 2);
	ck_assert_str_eq(c->notary_name, "hs1.test");
	ck_assert_str_eq(c->notary_key.key_id, "ed25519:a_x");
	ck_assert_uint_eq(c->auth_cache_ttl_s, 0);
	ck_assert_uint_eq(c->n_full_access, 2);
	ck_assert_str_eq(c->full_access[1], "hs2.test:8448");
	ck_assert(!c->full_access_all);
	ck_assert_int_eq(c->log_level, LOG_DEBUG);
	ck_assert_int_eq(c->log_format, MRTC_LOG_JSON);
	mrtc_config_destroy(c);
	unlink(kf);
	free(kf);
}
END_TEST

START_TEST(test_config_load_service_url)
{
	char *kf = key_file();
	struct env e;
	homeserver_env(&e, kf);
	struct mrtc_config *c;
	char *p = load(&e, &c);
	ck_assert_msg(p == NULL, "%s", p);
	/* Derived from the public base URL (trailing slashes dropped). */
	ck_assert_str_eq(c->livekit_service_url, "https://matrix.example.org/livekit/jwt");
	mrtc_config_destroy(c);
	/* Neither setting: refused, naming the setting and the clients it would leave out. */
	env_set(&e, "MRTC_PUBLIC_BASE_URL", NULL);
	p = load(&e, &c);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(
	    strstr(p, "MRTC_LIVEKIT_SERVICE_URL: set it or MRTC_PUBLIC_BASE_URL"));
	ck_assert_ptr_nonnull(strstr(p, "matrix-js-sdk 43, Element Call 0.26.1 and Element X"));
	free(p);
	/* The explicit opt-out. */
	env_set(&e, "MRTC_ALLOW_NO_SERVICE_URL", "1");
	p = load(&e, &c);
	ck_assert_msg(p == NULL, "%s", p);
	ck_assert_ptr_null(c->livekit_service_url);
	mrtc_config_destroy(c);
	/* A plain-http public base URL is refused (browsers call it). */
	env_set(&e, "MRTC_ALLOW_NO_SERVICE_URL", NULL);
	env_set(&e, "MRTC_PUBLIC_BASE_URL", "http://matrix.example.org");
	p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_PUBLIC_BASE_URL: not a valid https URL"));
	free(p);
	/* Drop-in mode needs neither. */
	struct env l;
	legacy_env(&l);
	p = load(&l, &c);
	ck_assert_msg(p == NULL, "%s", p);
	ck_assert_ptr_null(c->livekit_service_url);
	mrtc_config_destroy(c);
	unlink(kf);
	free(kf);
}
END_TEST

START_TEST(test_config_load_partial_homeserver_refused)
{
	struct env e;
	legacy_env(&e);
	env_set(&e, "MRTC_SERVER_NAME", "hs1.test");
	struct mrtc_config *c;
	char *p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_HOMESERVER_URL: required"));
	ck_assert_ptr_nonnull(strstr(p, "MRTC_SIGNING_KEY_FILE: required"));
	free(p);
}
END_TEST

START_TEST(test_config_load_reports_every_bad_value)
{
	char *kf = key_file();
	struct env e;
	homeserver_env(&e, kf);
	struct {
		const char *name, *value, *want;
	} bad[] = {
		{ "MRTC_SERVER_NAME", "bad name", "MRTC_SERVER_NAME: not a valid server name" },
		{ "MRTC_HOMESERVER_URL", "ftp://x", "MRTC_HOMESERVER_URL: not a valid" },
		{ "MRTC_SIGNING_KEY_FILE", "/nonexistent", "MRTC_SIGNING_KEY_FILE: cannot read" },
		{ "MRTC_BIND", "8080", "MRTC_BIND: expected host:port" },
		{ "MRTC_ADMIN_BIND", "127.0.0.1:99999", "MRTC_ADMIN_BIND: expected host:port" },
		{ "LIVEKIT_URL", "https://sfu.example.org", "LIVEKIT_URL: not a valid ws" },
		{ "MRTC_LIVEKIT_API_URL", "sfu", "MRTC_LIVEKIT_API_URL: not a valid" },
		{ "MRTC_MEMBERSHIP_BACKEND", "ldap", "MRTC_MEMBERSHIP_BACKEND: expected" },
		{ "MRTC_TOKEN_TTL", "59",
		  "MRTC_TOKEN_TTL: expected a whole number from 60 to 86400" },
		{ "MRTC_IDENTITY", "user", "MRTC_IDENTITY: expected" },
		{ "MRTC_CA_FILE", "/nonexistent", "MRTC_CA_FILE: cannot read" },
		{ "MRTC_DNS_SERVER", "dns.example", "MRTC_DNS_SERVER: expected an IP" },
		{ "MRTC_FEDERATION_ALLOW_CIDRS", "10.0.0.0/33",
		  "MRTC_FEDERATION_ALLOW_CIDRS: expected" },
		{ "MRTC_KEY_NOTARY", "hs1.test ed25519:1", "MRTC_KEY_NOTARY: expected" },
		{ "MRTC_AUTH_CACHE_TTL", "-1", "MRTC_AUTH_CACHE_TTL: expected" },
		{ "MRTC_MEMBERSHIP_CACHE_TTL", "301", "MRTC_MEMBERSHIP_CACHE_TTL: expected" },
		{ "MRTC_RATE_PER_SECOND", "0", "MRTC_RATE_PER_SECOND: expected" },
		{ "MRTC_RATE_BURST", "1e3", "MRTC_RATE_BURST: expected" },
		{ "MRTC_HOMESERVER_TIMEOUT", "0", "MRTC_HOMESERVER_TIMEOUT: expected" },
		{ "MRTC_LIVEKIT_TIMEOUT", "5s", "MRTC_LIVEKIT_TIMEOUT: expected" },
		{ "MRTC_FEDERATION_TIMEOUT", " 10", "MRTC_FEDERATION_TIMEOUT: expected" },
		{ "MRTC_LIVEKIT_SERVICE_URL", "https://", "MRTC_LIVEKIT_SERVICE_URL: not a valid" },
		{ "LIVEKIT_FULL_ACCESS_HOMESERVERS", "a.example,bad_name",
		  "LIVEKIT_FULL_ACCESS_HOMESERVERS: expected" },
		{ "MRTC_LOG_LEVEL", "verbose", "MRTC_LOG_LEVEL: expected" },
		{ "MRTC_LOG_FORMAT", "xml", "MRTC_LOG_FORMAT: expected" },
		{ "LIVEKIT_INSECURE_SKIP_VERIFY_TLS", "YES_I_KNOW_WHAT_I_AM_DOING",
		  "LIVEKIT_INSECURE_SKIP_VERIFY_TLS: refused" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct env one;
		homeserver_env(&one, kf);
		assert_problem(&one, bad[i].name, bad[i].value, bad[i].want);
	}
	/* All at once: every problem is listed, each on its own line. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strcmp(bad[i].name, "MRTC_SIGNING_KEY_FILE") != 0)
			env_set(&e, bad[i].name, bad[i].value);
	struct mrtc_config *c;
	char *p = load(&e, &c);
	size_t lines = 0;
	for (const char *q = p; *q; q++)
		lines += *q == '\n';
	ck_assert_uint_ge(lines, sizeof(bad) / sizeof(bad[0]) - 1);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_CA_FILE"));
	free(p);
	unlink(kf);
	free(kf);
}
END_TEST

START_TEST(test_config_load_bad_key_file_contents)
{
	char *kf = vectors_temp_file("ed25519 1 notbase64!\n");
	struct env e;
	homeserver_env(&e, kf);
	struct mrtc_config *c;
	char *p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_SIGNING_KEY_FILE: "));
	ck_assert_ptr_null(strstr(p, "notbase64")); /* the secret seed is never echoed */
	free(p);
	unlink(kf);
	free(kf);
}
END_TEST

START_TEST(test_config_load_secret_files)
{
	char *kf = key_file();
	char *tok = vectors_temp_file("s3cret-admin\n");
	struct env e;
	homeserver_env(&e, kf);
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN", NULL);
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN_FILE", tok);
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->homeserver_admin_token, "s3cret-admin");
	mrtc_config_destroy(c);
	/* Both forms at once, or an unreadable file, are problems. */
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN", "x");
	char *p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_HOMESERVER_ADMIN_TOKEN: set both"));
	free(p);
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN", NULL);
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN_FILE", "/nonexistent");
	p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_HOMESERVER_ADMIN_TOKEN_FILE: cannot read"));
	free(p);
	/* msc4502 needs its own token. */
	homeserver_env(&e, kf);
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "msc4502");
	p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_APPSERVICE_TOKEN: required"));
	free(p);
	unlink(tok);
	free(tok);
	unlink(kf);
	free(kf);
}
END_TEST

START_TEST(test_config_load_livekit_credential_files)
{
	char *pair = vectors_temp_file(" pairkey : pairsecret \n");
	char *k = vectors_temp_file("filekey\r\n");
	char *s = vectors_temp_file("filesecret\n");
	char *bad = vectors_temp_file("a:b:c\n");
	struct env e;
	legacy_env(&e);
	env_set(&e, "LIVEKIT_KEY_FILE", pair);
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->livekit_key, "pairkey");
	ck_assert_str_eq(c->livekit_secret, "pairsecret");
	mrtc_config_destroy(c);

	legacy_env(&e);
	env_set(&e, "LIVEKIT_KEY", NULL);
	env_set(&e, "LIVEKIT_SECRET", NULL);
	env_set(&e, "LIVEKIT_KEY_FROM_FILE", k);
	env_set(&e, "LIVEKIT_SECRET_FROM_FILE", s);
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->livekit_key, "filekey");
	ck_assert_str_eq(c->livekit_secret, "filesecret");
	mrtc_config_destroy(c);

	legacy_env(&e);
	env_set(&e, "LIVEKIT_KEY_FILE", bad);
	char *p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "LIVEKIT_KEY_FILE: expected one line 'key:secret'"));
	free(p);

	legacy_env(&e);
	env_set(&e, "LIVEKIT_SECRET", NULL);
	env_set(&e, "LIVEKIT_URL", NULL);
	p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "LIVEKIT_SECRET: required"));
	ck_assert_ptr_nonnull(strstr(p, "LIVEKIT_URL: required"));
	free(p);
	const char *files[] = { pair, k, s, bad };
	for (int i = 0; i < 4; i++) {
		unlink(files[i]);
		free((char *)files[i]);
	}
}
END_TEST

START_TEST(test_config_load_bind_fallback_and_clash)
{
	struct env e;
	legacy_env(&e);
	env_set(&e, "LIVEKIT_JWT_BIND", ":8090");
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->bind.host, "");
	ck_assert_uint_eq(c->bind.port, 8090);
	mrtc_config_destroy(c);
	env_set(&e, "MRTC_BIND", "127.0.0.1:7000");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_uint_eq(c->bind.port, 7000);
	mrtc_config_destroy(c);
	assert_problem(&e, "MRTC_ADMIN_BIND", "127.0.0.1:7000", "must differ from MRTC_BIND");
	legacy_env(&e);
	env_set(&e, "LIVEKIT_JWT_PORT", "8091");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_str_eq(c->bind.host, "");
	ck_assert_uint_eq(c->bind.port, 8091);
	mrtc_config_destroy(c);
	assert_problem(&e, "LIVEKIT_JWT_BIND", ":8092", "LIVEKIT_JWT_PORT: must not be set");
	legacy_env(&e);
	env_set(&e, "LIVEKIT_FULL_ACCESS_HOMESERVERS", " a.example  b.example,c.example ");
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_uint_eq(c->n_full_access, 3);
	ck_assert_str_eq(c->full_access[2], "c.example");
	mrtc_config_destroy(c);
}
END_TEST

START_TEST(test_config_print_help_redacts_secrets)
{
	struct env e;
	legacy_env(&e);
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN", "supersecret-admin");
	env_set(&e, "LIVEKIT_URL", "wss://visible.example");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mrtc_config_print_help(f, "mrtc-transportd", env_get, &e);
	fclose(f);
	ck_assert_ptr_null(strstr(buf, "devsecret"));
	ck_assert_ptr_null(strstr(buf, "supersecret-admin"));
	ck_assert_ptr_nonnull(strstr(buf, "wss://visible.example"));
	ck_assert_ptr_nonnull(strstr(buf, "LIVEKIT_SECRET"));
	ck_assert_ptr_nonnull(strstr(buf, "now: set"));
	ck_assert_ptr_nonnull(strstr(buf, "MRTC_FEDERATION_TIMEOUT"));
	free(buf);
}
END_TEST

START_TEST(test_config_cidr_and_hostport)
{
	struct mrtc_cidr c;
	const uint8_t lo[4] = { 127, 0, 0, 9 }, ten[4] = { 10, 1, 2, 3 };
	ck_assert(mrtc_cidr_parse("127.0.0.0/8", &c));
	ck_assert(mrtc_cidr_contains(&c, AF_INET, lo));
	ck_assert(!mrtc_cidr_contains(&c, AF_INET, ten));
	ck_assert(mrtc_cidr_parse("10.1.2.3/32", &c));
	ck_assert(mrtc_cidr_contains(&c, AF_INET, ten));
	ck_assert(mrtc_cidr_parse("0.0.0.0/0", &c));
	ck_assert(mrtc_cidr_contains(&c, AF_INET, ten));
	ck_assert(mrtc_cidr_parse("fd00::/8", &c));
	uint8_t v6[16] = { 0xfd, 1 };
	ck_assert(mrtc_cidr_contains(&c, AF_INET6, v6));
	ck_assert(!mrtc_cidr_contains(&c, AF_INET, ten));
	static const char *const bad[] = { "127.0.0.1", "1.2.3.4/33", "::/129",	   "x/8",
					   "/8",	"1.2.3.4/",   "1.2.3.4/08" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!mrtc_cidr_parse(bad[i], &c), "accepted %s", bad[i]);
	struct mrtc_hostport hp;
	ck_assert(mrtc_hostport_parse("localhost:80", true, &hp));
	ck_assert(!mrtc_hostport_parse(":80", true, &hp));
	ck_assert(!mrtc_hostport_parse("[::1]80", false, &hp));
	ck_assert(!mrtc_hostport_parse("a:b:80", false, &hp));
	ck_assert(!mrtc_hostport_parse("host:0", false, &hp));
}
END_TEST

START_TEST(test_config_load_appservice)
{
	struct env e;
	legacy_env(&e);
	env_set(&e, "MRTC_SERVER_NAME", "hs1.test");
	env_set(&e, "MRTC_HOMESERVER_URL", "http://127.0.0.1:8008");
	env_set(&e, "MRTC_PUBLIC_BASE_URL", "https://matrix.example.org/");
	env_set(&e, "MRTC_APPSERVICE_TOKEN", "astoken");
	env_set(&e, "MRTC_APPSERVICE_HS_TOKEN", "hstoken");
	struct mrtc_config *c;
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->appservice);
	ck_assert(!c->legacy_only);
	ck_assert_ptr_null(c->signing_key);
	ck_assert_str_eq(c->membership_backend, "msc4502");
	ck_assert_str_eq(c->membership_token, c->appservice_token);
	ck_assert_str_eq(c->appservice_hs_token, "hstoken");
	ck_assert_str_eq(mrtc_config_mode_name(c), "application service");
	mrtc_config_destroy(c);

	char *key = key_file();
	assert_problem(&e, "MRTC_SIGNING_KEY_FILE", key,
		       "MRTC_SIGNING_KEY_FILE: not used in application-service mode");
	env_set(&e, "MRTC_SIGNING_KEY_FILE", NULL);
	assert_problem(&e, "MRTC_APPSERVICE_TOKEN", "hstoken",
		       "MRTC_APPSERVICE_HS_TOKEN: must differ from MRTC_APPSERVICE_TOKEN");
	assert_problem(&e, "MRTC_APPSERVICE_TOKEN", NULL,
		       "MRTC_APPSERVICE_TOKEN: required in application-service mode");
	env_set(&e, "MRTC_APPSERVICE_TOKEN", "astoken");
	assert_problem(&e, "MRTC_MEMBERSHIP_BACKEND", "synapse-admin",
		       "MRTC_MEMBERSHIP_BACKEND: application-service mode");
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "msc4502");
	assert_problem(&e, "MRTC_HOMESERVER_ADMIN_TOKEN", "admintoken",
		       "MRTC_HOMESERVER_ADMIN_TOKEN: not used in application-service mode");
	env_set(&e, "MRTC_HOMESERVER_ADMIN_TOKEN", NULL);
	assert_problem(&e, "MRTC_HOMESERVER_URL", NULL,
		       "MRTC_HOMESERVER_URL: required in application-service mode");
	env_set(&e, "MRTC_HOMESERVER_URL", "http://127.0.0.1:8008");
	/* hs_token from a file. */
	char *hs_file = vectors_temp_file("filehstoken\n");
	env_set(&e, "MRTC_APPSERVICE_HS_TOKEN", NULL);
	env_set(&e, "MRTC_APPSERVICE_HS_TOKEN_FILE", hs_file);
	ck_assert_ptr_null(load(&e, &c));
	ck_assert(c->appservice);
	ck_assert_str_eq(c->appservice_hs_token, "filehstoken");
	mrtc_config_destroy(c);
	unlink(hs_file);
	free(hs_file);
	unlink(key);
	free(key);
}
END_TEST

START_TEST(test_config_load_sfus)
{
	char *kf = key_file();
	char *secret3 = vectors_temp_file("third-secret\n");
	struct env e;
	homeserver_env(&e, kf);
	struct mrtc_config *c;
	/* One SFU: the LIVEKIT_* variables, nothing else. */
	ck_assert_ptr_null(load(&e, &c));
	ck_assert_uint_eq(c->n_sfus, 1);
	ck_assert_ptr_eq(c->sfus[0].url, c->livekit_url);
	ck_assert_ptr_eq(c->sfus[0].secret, c->livekit_secret);
	ck_assert_ptr_eq(c->sfus[0].service_url, c->livekit_service_url);
	mrtc_config_destroy(c);
	env_set(&e, "LIVEKIT_URL_2", "wss://sfu2.example.org/");
	env_set(&e, "LIVEKIT_KEY_2", "key2");
	env_set(&e, "LIVEKIT_SECRET_2", "secret2");
	env_set(&e, "LIVEKIT_URL_3", "ws://sfu3.example.org:7880");
	env_set(&e, "LIVEKIT_KEY_3", "key3");
	env_set(&e, "LIVEKIT_SECRET_3_FILE", secret3);
	env_set(&e, "MRTC_LIVEKIT_API_URL_3", "http://10.0.0.3:7880");
	char *p = load(&e, &c);
	ck_assert_msg(p == NULL, "%s", p);
	ck_assert_uint_eq(c->n_sfus, 3);
	ck_assert_str_eq(c->sfus[1].url, "wss://sfu2.example.org/");
	ck_assert_str_eq(c->sfus[1].key, "key2");
	ck_assert_str_eq(c->sfus[1].secret, "secret2");
	ck_assert_str_eq(c->sfus[1].api_url, "https://sfu2.example.org");
	ck_assert_str_eq(c->sfus[1].service_url, "https://matrix.example.org/livekit/jwt/2");
	ck_assert_str_eq(c->sfus[2].secret, "third-secret");
	ck_assert_str_eq(c->sfus[2].api_url, "http://10.0.0.3:7880");
	ck_assert_str_eq(c->sfus[2].service_url, "https://matrix.example.org/livekit/jwt/3");
	ck_assert_int_eq(mrtc_config_sfu_find(c, "wss://sfu.example.org/"), 0);
	ck_assert_int_eq(mrtc_config_sfu_find(c, "wss://sfu2.example.org"), 1);
	ck_assert_int_eq(mrtc_config_sfu_find(c, "ws://sfu3.example.org:7880"), 2);
	ck_assert_int_eq(mrtc_config_sfu_find(c, "wss://sfu3.example.org:7880"), -1);
	ck_assert_int_eq(mrtc_config_sfu_find(c, ""), -1);
	mrtc_config_destroy(c);
	/* Every problem is named. */
	env_set(&e, "LIVEKIT_KEY_2", NULL);
	assert_problem(&e, "LIVEKIT_SECRET_2", NULL, "LIVEKIT_SECRET_2: required for SFU 2");
	p = load(&e, &c);
	ck_assert_ptr_nonnull(strstr(p, "LIVEKIT_KEY_2: required for SFU 2"));
	free(p);
	env_set(&e, "LIVEKIT_KEY_2", "key2");
	env_set(&e, "LIVEKIT_SECRET_2", "secret2");
	assert_problem(&e, "LIVEKIT_URL_2", "https://sfu2.example.org", "LIVEKIT_URL_2");
	assert_problem(&e, "LIVEKIT_URL_2", "wss://sfu.example.org",
		       "LIVEKIT_URL_2: is the URL of SFU 1 already");
	assert_problem(&e, "LIVEKIT_URL_2", NULL,
		       "LIVEKIT_URL_2: required: LIVEKIT_KEY_2 or LIVEKIT_SECRET_2 is set");
	env_set(&e, "LIVEKIT_KEY_2", NULL);
	env_set(&e, "LIVEKIT_SECRET_2", NULL);
	assert_problem(&e, "LIVEKIT_URL_2", NULL,
		       "LIVEKIT_URL_3: LIVEKIT_URL_2 is not set: number the SFUs");
	env_set(&e, "LIVEKIT_URL_3", NULL);
	env_set(&e, "LIVEKIT_KEY_3", NULL);
	env_set(&e, "LIVEKIT_SECRET_3_FILE", NULL);
	env_set(&e, "MRTC_LIVEKIT_API_URL_3", NULL);
	assert_problem(&e, "MRTC_LIVEKIT_API_URL_2", "http://10.0.0.2:7880",
		       "LIVEKIT_URL_2: required");
	env_set(&e, "MRTC_LIVEKIT_API_URL_2", NULL);
	assert_problem(&e, "LIVEKIT_SECRET_2_FILE", "/nonexistent/secret",
		       "LIVEKIT_SECRET_2_FILE: cannot read /nonexistent/secret");
	unlink(secret3);
	free(secret3);
	unlink(kf);
	free(kf);
}
END_TEST

/* Three backends of a test list: the loader knows backends only through the list it is given. */
static const char *three_backends(size_t i, const char **ret_token_var)
{
	static const char *const rows[][2] = { { "alpha", "MRTC_HOMESERVER_ADMIN_TOKEN" },
					       { "beta", "MRTC_APPSERVICE_TOKEN" },
					       { "gamma", "MRTC_NOT_A_VARIABLE" } };
	if (i >= sizeof(rows) / sizeof(rows[0]))
		return NULL;
	*ret_token_var = rows[i][1];
	return rows[i][0];
}

START_TEST(test_config_load_membership_backend_list)
{
	char *key = key_file();
	struct env e;
	homeserver_env(&e, key);
	struct mrtc_config *c;
	/* The default name (synapse-admin) is not in this list: refused, naming every row. */
	char *p = load_with(&e, three_backends, &c);
	ck_assert_ptr_nonnull(p);
	ck_assert_msg(strstr(p, "MRTC_MEMBERSHIP_BACKEND: expected alpha, beta or gamma\n"), "%s",
		      p);
	free(p);
	/* A listed backend: its token variable is required with it, and becomes its token. */
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "beta");
	p = load_with(&e, three_backends, &c);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p, "MRTC_APPSERVICE_TOKEN: required with MRTC_MEMBERSHIP_BACKEND=beta\n");
	free(p);
	env_set(&e, "MRTC_APPSERVICE_TOKEN", "as-token");
	ck_assert_ptr_null(load_with(&e, three_backends, &c));
	ck_assert_str_eq(c->membership_backend, "beta");
	ck_assert_str_eq(c->membership_token, "as-token");
	mrtc_config_destroy(c);
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "alpha");
	ck_assert_ptr_null(load_with(&e, three_backends, &c));
	ck_assert_str_eq(c->membership_token, "admintoken");
	mrtc_config_destroy(c);
	/* A row naming a variable the table does not hold can never be satisfied. */
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "gamma");
	p = load_with(&e, three_backends, &c);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p, "MRTC_NOT_A_VARIABLE: required with MRTC_MEMBERSHIP_BACKEND=gamma\n");
	free(p);
	/* Names are exact. */
	env_set(&e, "MRTC_MEMBERSHIP_BACKEND", "Alpha");
	p = load_with(&e, three_backends, &c);
	ck_assert_ptr_nonnull(strstr(p, "MRTC_MEMBERSHIP_BACKEND: expected alpha, beta or gamma"));
	free(p);
	unlink(key);
	free(key);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	const TTest *tests[] = {
		test_config_load_legacy_defaults,
		test_config_default_store,
		test_config_rate_limit_shared,
		test_config_load_homeserver_full,
		test_config_load_service_url,
		test_config_load_partial_homeserver_refused,
		test_config_load_reports_every_bad_value,
		test_config_load_bad_key_file_contents,
		test_config_load_secret_files,
		test_config_load_livekit_credential_files,
		test_config_load_bind_fallback_and_clash,
		test_config_print_help_redacts_secrets,
		test_config_cidr_and_hostport,
		test_config_load_appservice,
		test_config_load_sfus,
		test_config_load_membership_backend_list,
	};
	vectors_add_tests(s, "config", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
