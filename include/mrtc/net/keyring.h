/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Other servers' signing keys (PROTOCOL §5.4): fetched from /_matrix/key/v2/server on demand
 * (or from a notary with a pinned key when that fails), verified, cached per (server, key id) until
 * min(valid_until_ts, fetch + 7 days); concurrent fetches for a server are coalesced, failures
 * remembered briefly, the cache bounded.
 */
#ifndef MRTC_KEYRING_H
#define MRTC_KEYRING_H

#include "mrtc/net/fedclient.h"
#include "mrtc/matrix/serverkeys.h"

#define MRTC_KEY_RESPONSE_MAX (64 * 1024)

struct mrtc_keyring;
struct mrtc_keyring_op;

struct mrtc_keyring_config {
	struct mrtc_fedclient *fed;
	size_t max_servers;	     /* 0: 4096 */
	uint64_t failure_ttl_ms;     /* 0: 30 s */
	uint64_t timeout_ms;	     /* 0: 10 s */
	size_t max_fetches;	     /* key fetches in flight at once; 0: 256 */
	size_t max_fetches_per_peer; /* of them started by one peer address; 0: 32 */
	/*
	 * Optional notary (e.g. our own homeserver): when fetching a server's keys directly
	 * fails, they are asked of @notary at /_matrix/key/v2/query/{server} and accepted only
	 * with a valid self-signature and a signature by the pinned @notary_key. NULL: none.
	 */
	const char *notary;
	struct mrtc_verify_key notary_key;
};

struct mrtc_keyring_stats {
	uint64_t fetches, fetch_failures, hits, misses;
	uint64_t notary_fetches, notary_failures;
	size_t servers;
	size_t fetching;
	uint64_t fetches_refused; /* over max_fetches: MRTC_ERR_LIMIT_EXCEEDED */
};

enum mrtc_err mrtc_keyring_create(struct event_base *base, const struct mrtc_keyring_config *cfg,
				  struct mrtc_keyring **ret_keyring);
void mrtc_keyring_destroy(struct mrtc_keyring *keyring);
void mrtc_keyring_get_stats(const struct mrtc_keyring *keyring,
			    struct mrtc_keyring_stats *ret_stats);

/*
 * An mrtc_key_lookup_fn over the cache (@keyring is the struct mrtc_keyring): MRTC_OK with
 * the key, MRTC_ERR_UNKNOWN_KEY, or MRTC_ERR_KEY_EXPIRED. Never does I/O.
 */
enum mrtc_err mrtc_keyring_lookup(void *keyring, const char *origin, const char *key_id,
				  uint8_t ret_public_key[MRTC_ED25519_PK_LEN]);

/* @err: MRTC_OK when the key is now cached and current; else why not. */
typedef void (*mrtc_keyring_fn)(void *ctx, enum mrtc_err err);

/*
 * Makes sure key @key_id of @origin is cached, fetching the server's keys when it is not (or
 * has expired) and no fetch failed in the last failure_ttl. The callback runs from the loop.
 */
struct mrtc_keyring_op *mrtc_keyring_ensure(struct mrtc_keyring *keyring, const char *origin,
					    const char *key_id, mrtc_keyring_fn cb, void *ctx);
void mrtc_keyring_cancel(struct mrtc_keyring_op *op);

/* mrtc_keyring_ensure() on behalf of the client at @peer (an address; NULL: not counted per
 * peer): a fetch it would start beyond max_fetches_per_peer is refused like one beyond
 * max_fetches (MRTC_ERR_LIMIT_EXCEEDED). */
struct mrtc_keyring_op *mrtc_keyring_ensure_from(struct mrtc_keyring *keyring, const char *peer,
						 const char *origin, const char *key_id,
						 mrtc_keyring_fn cb, void *ctx);

/* Adds @keys of @server directly (our own keys, tests). */
void mrtc_keyring_add(struct mrtc_keyring *keyring, const char *server,
		      const struct mrtc_verify_key *keys, size_t n);

#endif
