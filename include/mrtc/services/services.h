/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Everything the endpoints use, built once from the configuration: DNS, the HTTPS client, the
 * Matrix resolver and federation client, the keyring, the homeserver client, the RoomService
 * client and the rate limiters. Passed explicitly; read-only configuration.
 *
 * Its own folder, below the features and above the components: every feature reads it, and it
 * names no feature (the pointers the features set are declared, not included).
 */
#ifndef MRTC_SERVICES_H
#define MRTC_SERVICES_H

#include "mrtc/base/cache.h"
#include "mrtc/core/config.h"
#include "mrtc/net/fedclient.h"
#include "mrtc/homeserver/homeserver.h"
#include "mrtc/net/keyring.h"
#include "mrtc/core/metrics.h"
#include "mrtc/core/ratelimit.h"
#include "mrtc/limits/limits.h"
#include "mrtc/livekit/roomservice.h"
#include "mrtc/net/verifier.h"

struct mrtc_services {
	struct event_base *base;
	const struct mrtc_config *config;
	struct mrtc_dns *dns;
	struct mrtc_http_client *http;
	struct mrtc_resolver *resolver;
	struct mrtc_fedclient *fed;
	struct mrtc_keyring *keyring; /* NULL in lk-jwt-service drop-in mode */
	struct mrtc_verifier *verifier;
	struct mrtc_homeserver *homeserver;		   /* NULL in lk-jwt-service drop-in mode */
	struct mrtc_roomservice *sfu_rooms[MRTC_SFUS_MAX]; /* by index in config->sfus */
	struct mrtc_ratelimit *user_limit;
	struct mrtc_ratelimit *origin_limit;
	struct mrtc_limits *limits; /* decides with user_limit / origin_limit, or shared on Redis */
	struct mrtc_cache *fed_paths;	 /* destination -> which get_token path it serves */
	struct mrtc_cache *openid_cache; /* SHA-256(token, server) -> user id (legacy flow) */
	struct mrtc_metrics metrics;
	struct mrtc_readiness *readiness; /* the ops feature's, set by features.c */
	struct mrtc_delayed *delayed;	  /* the delayed feature's, set by features.c */
	/* Application-service mode: the homeserver's last /versions answer, allocated by
	 * appservice/ when the first one is read (NULL before). */
	struct mrtc_appservice_features *appservice_features;
	struct {
		uint64_t tokens_local, tokens_federated, tokens_legacy;
		uint64_t fed_out_ok, fed_out_forbidden, fed_out_invalid, fed_out_failed;
		uint64_t fed_in_ok, fed_in_refused;
		uint64_t sig_ok, sig_bad;
		uint64_t rate_limited;
	} counters;
};

enum mrtc_err mrtc_services_create(struct event_base *base, const struct mrtc_config *config,
				   struct mrtc_services **ret_services);
void mrtc_services_destroy(struct mrtc_services *services);

#endif
