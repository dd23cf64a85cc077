/* SPDX-License-Identifier: Apache-2.0 */
/* Building and tearing down the components from the configuration (the features that use
 * them are features.c's). */
#include "mrtc/services/services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/core/log.h"
#include "mrtc/base/util.h"

#define RATE_KEYS_MAX 200000
#define ORIGIN_FACTOR 10

enum mrtc_err mrtc_services_create(struct event_base *base, const struct mrtc_config *cfg,
				   struct mrtc_services **ret_services)
{
	struct mrtc_services *s = calloc(1, sizeof(*s));
	if (!s)
		return MRTC_ERR_NOMEM;
	s->base = base;
	s->config = cfg;
	enum mrtc_err err;
	char dns_server[300] = "";
	if (cfg->has_dns_server &&
	    !(strchr(cfg->dns_server.host, ':')
		  ? mrtc_format(dns_server, sizeof(dns_server), "[%s]:%u", cfg->dns_server.host,
				cfg->dns_server.port)
		  : mrtc_format(dns_server, sizeof(dns_server), "%s:%u", cfg->dns_server.host,
				cfg->dns_server.port))) {
		err = MRTC_ERR_INVALID_PARAM;
		goto fail;
	}
	err = mrtc_dns_create(base, cfg->has_dns_server ? dns_server : NULL, 2500, &s->dns);
	if (err != MRTC_OK)
		goto fail;
	struct mrtc_http_client_config hc = { .ca_file = cfg->ca_file,
					      .max_open = (size_t)cfg->outbound_max };
	err = mrtc_http_client_create(base, &hc, &s->http);
	if (err != MRTC_OK)
		goto fail;
	struct mrtc_resolver_config rc = {
		.dns = s->dns,
		.http = s->http,
		.allow = cfg->allow_cidrs,
		.n_allow = cfg->n_allow_cidrs,
		.timeout_ms = cfg->federation_timeout_s * 1000,
	};
	err = mrtc_resolver_create(base, &rc, &s->resolver);
	if (err != MRTC_OK)
		goto fail;
	struct mrtc_fedclient_config fc = {
		.dns = s->dns,
		.http = s->http,
		.resolver = s->resolver,
		.key = cfg->signing_key,
		.origin = cfg->server_name,
		.allow = cfg->allow_cidrs,
		.n_allow = cfg->n_allow_cidrs,
	};
	err = mrtc_fedclient_create(base, &fc, &s->fed);
	if (err != MRTC_OK)
		goto fail;
	for (size_t i = 0; i < cfg->n_sfus; i++) {
		const struct mrtc_sfu_config *u = &cfg->sfus[i];
		struct mrtc_roomservice_config rsc = {
			.http = s->http,
			.dns = s->dns,
			.api_url = u->api_url,
			.creds = { u->key, u->secret },
			.timeout_ms = cfg->livekit_timeout_s * 1000,
			.empty_timeout_s = 300,
			.departure_timeout_s = 20,
		};
		err = mrtc_roomservice_create(base, &rsc, &s->sfu_rooms[i]);
		if (err != MRTC_OK)
			goto fail;
	}
	err = MRTC_ERR_NOMEM;
	s->user_limit = mrtc_ratelimit_create(cfg->rate_per_second, cfg->rate_burst, RATE_KEYS_MAX);
	/* One origin server speaks for many users: it gets ten times a user's allowance. */
	s->origin_limit = mrtc_ratelimit_create(cfg->rate_per_second * ORIGIN_FACTOR,
						cfg->rate_burst * ORIGIN_FACTOR, RATE_KEYS_MAX);
	s->fed_paths = mrtc_cache_create(4096, free);
	s->openid_cache = mrtc_cache_create(100000, free);
	if (!s->user_limit || !s->origin_limit || !s->fed_paths || !s->openid_cache)
		goto fail;
	err = mrtc_limits_create_from_config(base, cfg, &s->limits);
	if (err != MRTC_OK)
		goto fail;
	if (!cfg->legacy_only) {
		err = mrtc_verifier_create(base, (unsigned)cfg->verify_threads, &s->verifier);
		if (err != MRTC_OK)
			goto fail;
		struct mrtc_keyring_config kc = { .fed = s->fed,
						  .timeout_ms = cfg->federation_timeout_s * 1000,
						  .max_fetches = cfg->key_fetch_max,
						  .max_fetches_per_peer = cfg->key_fetch_per_peer };
		if (cfg->notary_name[0]) {
			kc.notary = cfg->notary_name;
			kc.notary_key = cfg->notary_key;
		}
		err = mrtc_keyring_create(base, &kc, &s->keyring);
		if (err != MRTC_OK)
			goto fail;
		struct mrtc_homeserver_config hsc = {
			.http = s->http,
			.dns = s->dns,
			.base_url = cfg->homeserver_url,
			.server_name = cfg->server_name,
			.backend = mrtc_membership_backend_find(cfg->membership_backend),
			.membership_token = cfg->membership_token,
			.appservice_token = cfg->appservice_token,
			.timeout_ms = cfg->homeserver_timeout_s * 1000,
			.auth_ttl_ms = cfg->auth_cache_ttl_s * 1000,
			.membership_ttl_ms = cfg->membership_cache_ttl_s * 1000,
		};
		err = mrtc_homeserver_create(base, &hsc, &s->homeserver);
		if (err != MRTC_OK)
			goto fail;
	}
	mrtc_metrics_init(&s->metrics);
	*ret_services = s;
	return MRTC_OK;
fail:
	mrtc_log(LOG_ERR, "main", NULL, "cannot set up: %s", mrtc_err_str(err));
	mrtc_services_destroy(s);
	return err;
}

void mrtc_services_destroy(struct mrtc_services *s)
{
	if (!s)
		return;
	mrtc_homeserver_destroy(s->homeserver);
	mrtc_keyring_destroy(s->keyring);
	mrtc_verifier_destroy(s->verifier);
	mrtc_cache_destroy(s->fed_paths);
	mrtc_cache_destroy(s->openid_cache);
	mrtc_limits_destroy(s->limits);
	mrtc_ratelimit_destroy(s->user_limit);
	mrtc_ratelimit_destroy(s->origin_limit);
	for (size_t i = 0; i < MRTC_SFUS_MAX; i++)
		mrtc_roomservice_destroy(s->sfu_rooms[i]);
	mrtc_fedclient_destroy(s->fed);
	mrtc_resolver_destroy(s->resolver);
	mrtc_http_client_destroy(s->http);
	mrtc_dns_destroy(s->dns);
	free(s->appservice_features);
	free(s);
}
