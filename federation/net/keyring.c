/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fetching, verifying and caching other servers' signing keys. Servers are found through a hash
 * index (the bounded cache of base/, used as a map) and kept on two recency lists, servers
 * without keys and servers with keys, so that eviction takes the least recently used server
 * without keys first without scanning every server.
 */
#include "mrtc/net/keyring.h"

#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/cache.h"
#include "mrtc/base/util.h"
#include "mrtc/matrix/json.h"

struct mrtc_keyring_op {
	struct mrtc_keyring *kr;
	struct server *srv;
	char key_id[MRTC_KEY_ID_MAX + 1];
	mrtc_keyring_fn cb;
	void *ctx;
	bool cancelled;
	enum mrtc_err result;
	struct event *ev; /* immediate answers */
	struct mrtc_keyring_op *next;
};

struct server {
	struct mrtc_keyring *kr;
	char name[MRTC_SERVER_NAME_MAX + 1];
	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n_keys;
	uint64_t failed_until_ms;  /* monotonic: no fetch before, after a failure */
	uint64_t fetched_until_ms; /* monotonic: no refetch for unknown key ids before */
	struct mrtc_fed_call *fetch;
	char peer[64]; /* who started the fetch in flight, "" if not counted */
	struct mrtc_keyring_op *waiters;
	struct server *older, *newer; /* on its recency list: lru[n_keys > 0] */
	bool listed_keyed;	      /* which of the two lists it is on */
};

/* Least recently used first. */
struct lru {
	struct server *oldest, *newest;
};

struct mrtc_keyring {
	struct event_base *base;
	struct mrtc_keyring_config cfg;
	struct mrtc_cache *index; /* name -> struct server *, never full: we evict first */
	struct lru lru[2];	  /* [0]: servers without keys, [1]: with keys */
	size_t n_servers;
	size_t fetching; /* servers with a fetch in flight */
	struct peer_count {
		char addr[64];
		size_t n;
	} * peers; /* fetches in flight per peer; at most max_fetches entries */
	size_t n_peers;
	struct mrtc_keyring_stats stats;
};

static struct peer_count *peer_of(struct mrtc_keyring *kr, const char *addr)
{
	for (size_t i = 0; i < kr->n_peers; i++)
		if (strcmp(kr->peers[i].addr, addr) == 0)
			return &kr->peers[i];
	return NULL;
}

/* The fetch of @s ends: it no longer counts against the caps. */
static void fetch_ended(struct server *s)
{
	struct mrtc_keyring *kr = s->kr;
	kr->fetching--;
	struct peer_count *p = s->peer[0] ? peer_of(kr, s->peer) : NULL;
	if (p && --p->n == 0)
		*p = kr->peers[--kr->n_peers];
	s->peer[0] = '\0';
}

static void lru_unlink(struct mrtc_keyring *kr, struct server *s)
{
	struct lru *l = &kr->lru[s->listed_keyed];
	if (s->older)
		s->older->newer = s->newer;
	else
		l->oldest = s->newer;
	if (s->newer)
		s->newer->older = s->older;
	else
		l->newest = s->older;
	s->older = s->newer = NULL;
}

/* Links @s as the most recently used of the list its keys put it on. */
static void lru_append(struct mrtc_keyring *kr, struct server *s)
{
	s->listed_keyed = s->n_keys > 0;
	struct lru *l = &kr->lru[s->listed_keyed];
	s->newer = NULL;
	s->older = l->newest;
	if (l->newest)
		l->newest->newer = s;
	else
		l->oldest = s;
	l->newest = s;
}

/* @s was used (or its keys changed): it becomes the most recently used of its list. */
static void touch(struct mrtc_keyring *kr, struct server *s)
{
	lru_unlink(kr, s);
	lru_append(kr, s);
}

static struct server *find(struct mrtc_keyring *kr, const char *name)
{
	struct server *s = mrtc_cache_get(kr->index, name, strlen(name), 0);
	if (s)
		touch(kr, s);
	return s;
}

/* The least recently used server that is not being fetched, one without keys first: an origin
 * nobody verified (a fetch that failed) cannot push out a server whose keys we hold while such
 * entries remain. Skips at most the servers with a fetch in flight (max_fetches). */
static struct server *eviction_victim(struct mrtc_keyring *kr)
{
	for (int keyed = 0; keyed < 2; keyed++)
		for (struct server *s = kr->lru[keyed].oldest; s; s = s->newer)
			if (!s->fetch)
				return s;
	return NULL;
}

static void server_free(struct mrtc_keyring *kr, struct server *s)
{
	lru_unlink(kr, s);
	mrtc_cache_remove(kr->index, s->name, strlen(s->name));
	kr->n_servers--;
	free(s);
}

static struct server *find_or_add(struct mrtc_keyring *kr, const char *name)
{
	struct server *s = find(kr, name);
	if (s)
		return s;
	if (kr->n_servers >= kr->cfg.max_servers) {
		struct server *victim = eviction_victim(kr);
		if (!victim)
			return NULL;
		server_free(kr, victim);
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->kr = kr;
	memcpy(s->name, name, strlen(name) + 1);
	if (!mrtc_cache_put(kr->index, s->name, strlen(s->name), s, UINT64_MAX)) {
		free(s);
		return NULL;
	}
	lru_append(kr, s);
	kr->n_servers++;
	return s;
}

static enum mrtc_err key_state(const struct server *s, const char *key_id, uint8_t *ret_pk)
{
	uint64_t now = mrtc_now_ms();
	for (size_t i = 0; i < s->n_keys; i++) {
		if (strcmp(s->keys[i].key_id, key_id) != 0)
			continue;
		if (s->keys[i].expires_ms < now)
			return MRTC_ERR_KEY_EXPIRED;
		if (ret_pk)
			memcpy(ret_pk, s->keys[i].public_key, MRTC_ED25519_PK_LEN);
		return MRTC_OK;
	}
	return MRTC_ERR_UNKNOWN_KEY;
}

enum mrtc_err mrtc_keyring_lookup(void *keyring, const char *origin, const char *key_id,
				  uint8_t ret_public_key[MRTC_ED25519_PK_LEN])
{
	struct mrtc_keyring *kr = keyring;
	struct server *s = find(kr, origin);
	enum mrtc_err err = s ? key_state(s, key_id, ret_public_key) : MRTC_ERR_UNKNOWN_KEY;
	if (err == MRTC_OK)
		kr->stats.hits++;
	return err;
}

void mrtc_keyring_add(struct mrtc_keyring *kr, const char *server,
		      const struct mrtc_verify_key *keys, size_t n)
{
	struct server *s = find_or_add(kr, server);
	if (!s)
		return;
	if (n > MRTC_SERVER_KEYS_MAX)
		n = MRTC_SERVER_KEYS_MAX;
	memcpy(s->keys, keys, n * sizeof(*keys));
	s->n_keys = n;
	touch(kr, s); /* onto the list its keys now put it on */
}

static void op_free(struct mrtc_keyring_op *op)
{
	if (op->ev)
		event_free(op->ev);
	free(op);
}

static void answer_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_keyring_op *op = arg;
	if (!op->cancelled)
		op->cb(op->ctx, op->result);
	op_free(op);
}

/* Answers @op with @result on the next loop turn (never inside the start call); NULL if out of
 * memory (@op freed). */
static struct mrtc_keyring_op *answer_soon(struct mrtc_keyring *kr, struct mrtc_keyring_op *op,
					   enum mrtc_err result)
{
	op->result = result;
	op->ev = event_new(kr->base, -1, 0, answer_now, op);
	if (!op->ev) {
		free(op);
		return NULL;
	}
	event_active(op->ev, 0, 0);
	return op;
}

static void on_keys(void *arg, const struct mrtc_http_response *resp);
static void on_notary_keys(void *arg, const struct mrtc_http_response *resp);

/* The JSON body of a 200 response, or NULL with *ret_err set. */
static struct json_object *response_json(const struct mrtc_http_response *resp,
					 enum mrtc_err *ret_err)
{
	struct json_object *doc = NULL;
	*ret_err = resp->err;
	if (*ret_err == MRTC_OK && resp->status != 200)
		*ret_err = MRTC_ERR_UPSTREAM;
	if (*ret_err == MRTC_OK && mrtc_json_parse(resp->body, resp->body_len, 16, &doc) != MRTC_OK)
		*ret_err = MRTC_ERR_UPSTREAM;
	return doc;
}

static void store_keys(struct server *s, const struct mrtc_verify_key *keys, size_t n)
{
	memcpy(s->keys, keys, n * sizeof(keys[0]));
	s->n_keys = n;
	touch(s->kr, s); /* onto the list its keys now put it on */
	/* Unknown key ids do not trigger a new fetch per request. */
	s->fetched_until_ms = mrtc_monotonic_ms() + s->kr->cfg.failure_ttl_ms;
}

/* Asks the notary for @s's keys after a direct fetch failed; false when there is none. */
static bool ask_notary(struct server *s)
{
	struct mrtc_keyring *kr = s->kr;
	if (!kr->cfg.notary || strcmp(kr->cfg.notary, s->name) == 0)
		return false;
	char *name = evhttp_uriencode(s->name, -1, 0);
	if (!name)
		return false;
	char target[sizeof("/_matrix/key/v2/query/") + 3 * MRTC_SERVER_NAME_MAX];
	bool fits = mrtc_format(target, sizeof(target), "/_matrix/key/v2/query/%s", name);
	free(name);
	if (!fits)
		return false;
	kr->stats.notary_fetches++;
	s->fetch = mrtc_fed_request(
	    kr->cfg.fed, kr->cfg.notary, "GET", target, NULL, false, kr->cfg.timeout_ms,
	    MRTC_KEY_RESPONSE_MAX * MRTC_NOTARY_ENTRIES_MAX, on_notary_keys, s);
	return s->fetch != NULL;
}

/* Ends the fetch of @s's keys with @err and answers every waiter. */
static void finish(struct server *s, enum mrtc_err err)
{
	struct mrtc_keyring *kr = s->kr;
	struct mrtc_keyring_op *op = s->waiters;
	s->waiters = NULL;
	fetch_ended(s);
	/* Our own connection cap (MRTC_ERR_LIMIT_EXCEEDED) says nothing about the server. */
	if (err != MRTC_OK && err != MRTC_ERR_LIMIT_EXCEEDED) {
		kr->stats.fetch_failures++;
		s->failed_until_ms = mrtc_monotonic_ms() + kr->cfg.failure_ttl_ms;
	}
	while (op) {
		struct mrtc_keyring_op *next = op->next;
		enum mrtc_err e = err == MRTC_OK ? key_state(s, op->key_id, NULL) : err;
		if (!op->cancelled)
			op->cb(op->ctx, e);
		op_free(op);
		op = next;
	}
}

/* Verifies and stores a key response, direct or (@notarised) from the notary. */
static enum mrtc_err take_keys(struct server *s, const struct mrtc_http_response *resp,
			       bool notarised)
{
	const struct mrtc_keyring_config *cfg = &s->kr->cfg;
	enum mrtc_err err;
	struct json_object *doc = response_json(resp, &err);
	if (err == MRTC_OK) {
		struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
		size_t n = 0;
		if (notarised)
			err = mrtc_server_keys_verify_notarised(doc, s->name, cfg->notary,
								&cfg->notary_key, mrtc_now_ms(),
								keys, MRTC_SERVER_KEYS_MAX, &n);
		else
			err = mrtc_server_keys_verify(doc, s->name, mrtc_now_ms(), keys,
						      MRTC_SERVER_KEYS_MAX, &n);
		if (err == MRTC_OK)
			store_keys(s, keys, n);
	}
	json_object_put(doc);
	return err;
}

static void on_keys(void *arg, const struct mrtc_http_response *resp)
{
	struct server *s = arg;
	s->fetch = NULL;
	enum mrtc_err err = take_keys(s, resp, false);
	/*
	 * A response that verified but lacks the key id asked for is an answer, not a failure;
	 * anything else may be a server that is down, so the notary gets a chance.
	 */
	if (err != MRTC_OK && err != MRTC_ERR_LIMIT_EXCEEDED && ask_notary(s))
		return;
	finish(s, err);
}

static void on_notary_keys(void *arg, const struct mrtc_http_response *resp)
{
	struct server *s = arg;
	s->fetch = NULL;
	enum mrtc_err err = take_keys(s, resp, true);
	if (err != MRTC_OK)
		s->kr->stats.notary_failures++;
	finish(s, err);
}

struct mrtc_keyring_op *mrtc_keyring_ensure(struct mrtc_keyring *kr, const char *origin,
					    const char *key_id, mrtc_keyring_fn cb, void *ctx)
{
	return mrtc_keyring_ensure_from(kr, NULL, origin, key_id, cb, ctx);
}

struct mrtc_keyring_op *mrtc_keyring_ensure_from(struct mrtc_keyring *kr, const char *peer,
						 const char *origin, const char *key_id,
						 mrtc_keyring_fn cb, void *ctx)
{
	if (peer && strlen(peer) >= sizeof(((struct server *)0)->peer))
		peer = NULL;
	struct peer_count *pc = peer ? peer_of(kr, peer) : NULL;
	if (!mrtc_server_name_is_valid(origin) || strlen(key_id) > MRTC_KEY_ID_MAX)
		return NULL;
	struct mrtc_keyring_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->kr = kr;
	op->cb = cb;
	op->ctx = ctx;
	memcpy(op->key_id, key_id, strlen(key_id) + 1);
	struct server *s = find(kr, origin);
	if ((!s || (!s->fetch && key_state(s, key_id, NULL) != MRTC_OK &&
		    s->failed_until_ms <= mrtc_monotonic_ms() &&
		    s->fetched_until_ms <= mrtc_monotonic_ms())) &&
	    (kr->fetching >= kr->cfg.max_fetches ||
	     (pc && pc->n >= kr->cfg.max_fetches_per_peer))) {
		/* A new fetch would be needed and the cap is reached: answered at once, nothing
		 * added to the cache. */
		kr->stats.fetches_refused++;
		return answer_soon(kr, op, MRTC_ERR_LIMIT_EXCEEDED);
	}
	if (!s)
		s = find_or_add(kr, origin);
	if (!s) {
		free(op);
		return NULL;
	}
	enum mrtc_err state = key_state(s, key_id, NULL);
	uint64_t now = mrtc_monotonic_ms();
	bool recently_failed = s->failed_until_ms > now || s->fetched_until_ms > now;
	if (state == MRTC_OK || (recently_failed && !s->fetch)) {
		return answer_soon(kr, op,
				   state == MRTC_OK || state == MRTC_ERR_KEY_EXPIRED
				       ? state
				       : MRTC_ERR_UNKNOWN_KEY);
	}
	kr->stats.misses++;
	op->srv = s;
	op->next = s->waiters;
	s->waiters = op;
	if (!s->fetch) {
		kr->stats.fetches++;
		s->fetch =
		    mrtc_fed_request(kr->cfg.fed, origin, "GET", "/_matrix/key/v2/server", NULL,
				     false, kr->cfg.timeout_ms, MRTC_KEY_RESPONSE_MAX, on_keys, s);
		if (!s->fetch) {
			s->waiters = op->next;
			free(op);
			return NULL;
		}
		kr->fetching++;
		if (peer && !pc && kr->n_peers < kr->cfg.max_fetches) {
			pc = &kr->peers[kr->n_peers++];
			memcpy(pc->addr, peer, strlen(peer) + 1);
			pc->n = 0;
		}
		if (pc) {
			pc->n++;
			memcpy(s->peer, peer, strlen(peer) + 1);
		}
	}
	return op;
}

void mrtc_keyring_cancel(struct mrtc_keyring_op *op)
{
	if (!op)
		return;
	op->cancelled = true;
	/* A fetch nobody waits for any more is cancelled: it stops holding a connection and
	 * counting against max_fetches. */
	struct server *s = op->srv;
	if (!s || !s->fetch)
		return;
	for (struct mrtc_keyring_op *w = s->waiters; w; w = w->next)
		if (!w->cancelled)
			return;
	mrtc_fed_call_cancel(s->fetch);
	s->fetch = NULL;
	fetch_ended(s);
	struct mrtc_keyring_op *w = s->waiters;
	s->waiters = NULL;
	while (w) {
		struct mrtc_keyring_op *next = w->next;
		op_free(w);
		w = next;
	}
}

enum mrtc_err mrtc_keyring_create(struct event_base *base, const struct mrtc_keyring_config *cfg,
				  struct mrtc_keyring **ret_keyring)
{
	struct mrtc_keyring *kr = calloc(1, sizeof(*kr));
	if (!kr)
		return MRTC_ERR_NOMEM;
	kr->base = base;
	kr->cfg = *cfg;
	if (!kr->cfg.max_servers)
		kr->cfg.max_servers = 4096;
	if (!kr->cfg.failure_ttl_ms)
		kr->cfg.failure_ttl_ms = 30000;
	if (!kr->cfg.timeout_ms)
		kr->cfg.timeout_ms = 10000;
	if (!kr->cfg.max_fetches)
		kr->cfg.max_fetches = 256;
	if (!kr->cfg.max_fetches_per_peer)
		kr->cfg.max_fetches_per_peer = 32;
	kr->peers = calloc(kr->cfg.max_fetches, sizeof(*kr->peers));
	kr->index = mrtc_cache_create(kr->cfg.max_servers + 1, NULL);
	if (!kr->peers || !kr->index) {
		mrtc_cache_destroy(kr->index);
		free(kr->peers);
		free(kr);
		return MRTC_ERR_NOMEM;
	}
	*ret_keyring = kr;
	return MRTC_OK;
}

void mrtc_keyring_get_stats(const struct mrtc_keyring *kr, struct mrtc_keyring_stats *ret)
{
	*ret = kr->stats;
	ret->servers = kr->n_servers;
	ret->fetching = kr->fetching;
}

void mrtc_keyring_destroy(struct mrtc_keyring *kr)
{
	if (!kr)
		return;
	for (int keyed = 0; keyed < 2; keyed++)
		while (kr->lru[keyed].oldest) {
			struct server *s = kr->lru[keyed].oldest;
			mrtc_fed_call_cancel(s->fetch);
			while (s->waiters) {
				struct mrtc_keyring_op *op = s->waiters;
				s->waiters = op->next;
				op_free(op);
			}
			server_free(kr, s);
		}
	mrtc_cache_destroy(kr->index);
	free(kr->peers);
	free(kr);
}
