/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The membership watch: the participants we minted tokens for (local and federated, until their
 * token expires), re-checked every MRTC_MEMBERSHIP_RECHECK seconds and on participant_joined;
 * one no longer joined to the Matrix room is removed from its SFU. With a store, the admitted
 * set is kept there too (per SFU url), so a restarted daemon still re-checks them.
 */
#include "mrtc/sfu/watch.h"

#include <sodium.h>

#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/cache.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/services/services.h"
#include "mrtc/matrix/servername.h"

#define WATCH_MAX 100000
#define WATCH_BATCH 2000   /* keys taken from the cache at a time by a sweep */
#define WATCH_IN_FLIGHT 64 /* membership checks a sweep keeps in flight */
/* "sfu|room_name|identity": the index (at most 20 digits), two hashes (the identities the daemon
 * admits are hashes, mrtc_livekit_identity), the separators and the NUL. */
#define WATCH_KEY_MAX (24 + 2 * (MRTC_LIVEKIT_HASH_LEN + 1))
#define WATCH_PENDING_MAX 1024 /* admissions written to the store in one transaction */
#define WATCH_FLUSH_MS 250     /* at most this long before an admission is in the store */
/* A new token for a participant already watched is written to the store only if it extends the
 * stored expiry by more than this: a client fetching tokens in a loop costs no writes. */
#define WATCH_STORE_SLACK_MS 60000

/* An admitted participant, stored inside its cache entry (mrtc_cache_put_copy) and changed there
 * in place; the SFU, room name and identity are in the entry's key (watch_key). */
struct watched {
	uint64_t stored_until_ms; /* wall clock: the expiry the store holds (or will, pending) */
	uint32_t sweep;		  /* the last sweep that took it */
	uint8_t sfu; /* index in config->sfus: where it was admitted, whom to ask to remove it */
	bool checking;
	bool queued;	/* its key waits in the pending queue */
	char strings[]; /* "room_id\0user_id\0", right after the fields (no padding) */
};

_Static_assert(MRTC_SFUS_MAX <= UINT8_MAX, "an SFU index fits the watched entry");

/* The most a value takes (room_id and user_id of at most 255 bytes each). */
#define WATCHED_MAX (sizeof(struct watched) + 2 * 256)

static const char *watched_room_id(const struct watched *w)
{
	return w->strings;
}

static const char *watched_user_id(const struct watched *w)
{
	return w->strings + strlen(w->strings) + 1;
}

/* A watch key split into its parts. */
struct key_parts {
	char buf[WATCH_KEY_MAX];
	size_t sfu;
	const char *room_name, *identity;
};

/* False for a key the watch did not make. */
static bool key_split(const char *key, struct key_parts *ret)
{
	if (!mrtc_copy(ret->buf, sizeof(ret->buf), key))
		return false;
	char *bar = strchr(ret->buf, '|');
	char *bar2 = bar ? strchr(bar + 1, '|') : NULL;
	if (!bar || !bar2)
		return false;
	*bar = *bar2 = '\0';
	ret->sfu = strtoul(ret->buf, NULL, 10);
	ret->room_name = bar + 1;
	ret->identity = bar2 + 1;
	return true;
}

struct mrtc_watch {
	struct mrtc_services *s;
	struct mrtc_store_async *store; /* borrowed, or NULL */
	struct event *watch;		/* membership re-checks */
	struct mrtc_cache *admitted;
	/* The sweep over every admitted participant that each watch period starts (when the
	 * last one has ended): batches of keys not yet taken by this sweep, checked with at most
	 * WATCH_IN_FLIGHT in flight, the next check started as one ends. */
	uint32_t sweep; /* wraps after 2^32 sweeps: one entry skipped in that one, at the most */
	bool sweeping;
	bool stopping;
	char (*batch)[WATCH_KEY_MAX];
	size_t batch_n, batch_i;
	size_t watch_in_flight;
	/* The keys of admissions not yet in the store: written together, so a token costs no
	 * fsync; the records are built from the entries when written (allocated on first use). */
	char (*pending)[WATCH_KEY_MAX];
	size_t n_pending;
	struct event *flush;
	struct mrtc_store_call *watch_load; /* the admitted set read at start */
	/* A shared store: any daemon re-checks any participant, the set read again before each
	 * sweep, each check under a lease per participant (one daemon at a time). */
	char owner[33];
	struct mrtc_store_call *reload;	     /* the set read before a sweep */
	struct mrtc_store_call *batch_lease; /* the leases of the batch's checks */
	bool *batch_held;		     /* per batch key: its check's lease is ours */
	bool unleased; /* the set could not be read: this sweep checks all, without leases */
};

struct recheck {
	struct mrtc_watch *d;
	struct key_parts k; /* the entry's key, split */
	char key[WATCH_KEY_MAX];
	char room_id[256];
	char user_id[256];
	bool swept; /* started by the sweep (counts in watch_in_flight) */
};

static void sweep_pump(struct mrtc_watch *d);

static void on_removed(void *arg, enum mrtc_err err, const char *detail)
{
	struct recheck *c = arg;
	if (err == MRTC_OK || err == MRTC_ERR_NOT_FOUND)
		mrtc_log(LOG_INFO, "watch", NULL,
			 "%s is no longer joined to %s: removed from the SFU%s", c->user_id,
			 c->room_id, err == MRTC_OK ? "" : " (was not connected)");
	else
		mrtc_log(LOG_WARNING, "watch", NULL, "cannot remove %s from the SFU: %s",
			 c->user_id, detail ? detail : mrtc_err_str(err));
	free(c);
}

static void on_membership(void *arg, enum mrtc_err err, const struct mrtc_remote_membership *m)
{
	struct recheck *c = arg;
	struct mrtc_watch *d = c->d;
	struct watched *w =
	    mrtc_cache_get(d->admitted, c->key, strlen(c->key), mrtc_monotonic_ms());
	if (w)
		w->checking = false;
	if (c->swept) {
		d->watch_in_flight--;
		sweep_pump(d);
	}
	if (err != MRTC_OK || m->user_joined) {
		free(c);
		return;
	}
	mrtc_cache_remove(c->d->admitted, c->key, strlen(c->key));
	if (c->d->store)
		mrtc_store_watch_del(c->d->store, c->d->s->config->sfus[c->k.sfu].url,
				     c->k.room_name, c->k.identity, NULL, NULL);
	if (!mrtc_roomservice_remove_participant(c->d->s->sfu_rooms[c->k.sfu], c->k.room_name,
						 c->k.identity, on_removed, c))
		free(c);
}

/* Starts a membership check of @w; false when none was started. */
static bool check_one(struct mrtc_watch *d, const char *key, struct watched *w, bool swept)
{
	if (w->checking)
		return false;
	struct recheck *c = calloc(1, sizeof(*c));
	if (!c)
		return false;
	c->d = d;
	c->swept = swept;
	if (!mrtc_copy(c->key, sizeof(c->key), key) || !key_split(key, &c->k) ||
	    c->k.sfu >= d->s->config->n_sfus ||
	    !mrtc_copy(c->room_id, sizeof(c->room_id), watched_room_id(w)) ||
	    !mrtc_copy(c->user_id, sizeof(c->user_id), watched_user_id(w))) {
		free(c);
		return false;
	}
	const char *server = mrtc_user_id_server(c->user_id);
	w->checking = true;
	if (!server || !mrtc_hs_remote_membership(d->s->homeserver, c->room_id, c->user_id, server,
						  on_membership, c)) {
		w->checking = false;
		free(c);
		return false;
	}
	if (swept)
		d->watch_in_flight++;
	return true;
}

/* Takes up to WATCH_BATCH keys the current sweep has not taken yet (the sweep number on each
 * entry is the cursor: entries added or removed meanwhile neither stop nor repeat it). */
static void collect(void *ctx, const void *key, size_t len, void *value)
{
	struct mrtc_watch *d = ctx;
	struct watched *w = value;
	if (d->batch_n < WATCH_BATCH && w->sweep != d->sweep && len < sizeof(d->batch[0])) {
		w->sweep = d->sweep;
		memcpy(d->batch[d->batch_n], key, len);
		d->batch[d->batch_n][len] = '\0';
		d->batch_n++;
	}
}

static bool is_shared(const struct mrtc_watch *d)
{
	return d->store && mrtc_store_async_is_shared(d->store);
}

static void on_batch_leased(void *arg, const bool *held, size_t n)
{
	struct mrtc_watch *d = arg;
	d->batch_lease = NULL;
	for (size_t i = 0; i < n && i < d->batch_n; i++)
		d->batch_held[i] = held[i];
	sweep_pump(d);
}

/* Asks for the leases of the batch's checks (a hash of the SFU url, room and identity, apart
 * from the jobs' keys), for most of a watch period: whoever holds one checks that participant
 * this period. None held until the store answers (or if it cannot be asked). */
static void lease_batch(struct mrtc_watch *d, uint64_t now)
{
	memset(d->batch_held, 0, d->batch_n * sizeof(*d->batch_held));
	struct mrtc_store_key *keys = calloc(d->batch_n, sizeof(*keys));
	if (!keys)
		return;
	for (size_t i = 0; i < d->batch_n; i++) {
		struct key_parts k;
		bool ok = key_split(d->batch[i], &k) && k.sfu < d->s->config->n_sfus;
		const char *parts[] = { "watch", ok ? d->s->config->sfus[k.sfu].url : "",
					ok ? k.room_name : "", ok ? k.identity : d->batch[i] };
		if (mrtc_livekit_hash(parts, 4, keys[i].key) != MRTC_OK)
			keys[i].key[0] = '\0';
	}
	uint64_t ttl = d->s->config->membership_recheck_s * 1000 * 3 / 4;
	d->batch_lease = mrtc_store_lease(d->store, keys, d->batch_n, d->owner, ttl ? ttl : 500,
					  on_batch_leased, d);
	free(keys);
}

/* Keeps WATCH_IN_FLIGHT checks of the sweep going until every participant was taken. */
static void sweep_pump(struct mrtc_watch *d)
{
	uint64_t now = mrtc_monotonic_ms();
	while (d->sweeping && !d->stopping && d->watch_in_flight < WATCH_IN_FLIGHT &&
	       !d->batch_lease) {
		if (d->batch_i == d->batch_n) {
			d->batch_n = d->batch_i = 0;
			mrtc_cache_foreach(d->admitted, now, collect, d);
			if (d->batch_n == 0) {
				d->sweeping = false; /* every participant was taken */
				return;
			}
			if (is_shared(d) && !d->unleased) {
				lease_batch(d, now);
				continue; /* the checks start when the leases are known */
			}
		}
		size_t i = d->batch_i++;
		if (is_shared(d) && !d->unleased && !d->batch_held[i])
			continue; /* another daemon checks it this period */
		const char *key = d->batch[i];
		struct watched *w = mrtc_cache_get(d->admitted, key, strlen(key), now);
		if (w)
			check_one(d, key, w, true);
	}
}

static void sweep_start(struct mrtc_watch *d)
{
	d->sweep++;
	d->sweeping = true;
	d->batch_n = d->batch_i = 0;
	sweep_pump(d);
}

static struct watched *watch_add(struct mrtc_watch *d, size_t sfu,
				 const struct mrtc_watch_record *rec);
static bool watch_key(char *out, size_t size, size_t sfu, const char *room_name,
		      const char *identity);

/* The admitted set as the store has it: the participants not yet watched here join the sweep
 * (a store that cannot answer: the sweep goes on with those known here). */
static void on_reloaded(void *arg, enum mrtc_err err, const struct mrtc_watch_record *recs,
			size_t n)
{
	struct mrtc_watch *d = arg;
	d->reload = NULL;
	/* Redis unreachable: no lease could be taken either, and a participant must not go
	 * unchecked, so this daemon checks all it knows. */
	d->unleased = err != MRTC_OK;
	uint64_t now = mrtc_monotonic_ms();
	for (size_t i = 0; err == MRTC_OK && i < n; i++) {
		const struct mrtc_watch_record *rec = &recs[i];
		int sfu = rec->sfu_url[0] ? mrtc_config_sfu_find(d->s->config, rec->sfu_url) : 0;
		char key[WATCH_KEY_MAX];
		if (sfu >= 0 &&
		    watch_key(key, sizeof(key), (size_t)sfu, rec->room_name, rec->identity) &&
		    !mrtc_cache_get(d->admitted, key, strlen(key), now))
			watch_add(d, (size_t)sfu, rec);
	}
	sweep_start(d);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_watch *d = arg;
	if (d->sweeping || d->reload)
		return; /* the last sweep is still walking (or waiting for the set): it goes on */
	if (!d->batch && !(d->batch = calloc(WATCH_BATCH, sizeof(*d->batch))))
		return;
	if (!d->batch_held && !(d->batch_held = calloc(WATCH_BATCH, sizeof(*d->batch_held))))
		return;
	if (is_shared(d)) {
		/* Participants other daemons admitted too (also those of a daemon gone). */
		d->reload = mrtc_store_watch_each(d->store, mrtc_now_ms(), on_reloaded, d);
		if (d->reload)
			return;
		d->unleased = true; /* the store is not keeping up */
	} else if (d->store) {
		mrtc_store_watch_prune(d->store, mrtc_now_ms(), NULL, NULL);
	}
	sweep_start(d);
}

/* "sfu|room_name|identity" (built without printf: once per get_token). False when the key does
 * not fit (never with names the daemon made). */
static bool watch_key(char *out, size_t size, size_t sfu, const char *room_name,
		      const char *identity)
{
	char digits[24];
	size_t d = sizeof(digits);
	do
		digits[--d] = (char)('0' + sfu % 10);
	while ((sfu /= 10) && d > 0);
	size_t nd = sizeof(digits) - d, a = strlen(room_name), b = strlen(identity);
	if (nd + a + b + 3 > size)
		return false;
	memcpy(out, digits + d, nd);
	out[nd] = '|';
	memcpy(out + nd + 1, room_name, a);
	out[nd + 1 + a] = '|';
	memcpy(out + nd + 2 + a, identity, b + 1);
	return true;
}

/* Writes the queued admissions: each as its entry is now (one gone meanwhile, removed or
 * expired, is not written). */
static void watch_flush(struct mrtc_watch *d)
{
	if (!d->n_pending)
		return;
	struct mrtc_watch_record *recs = malloc(d->n_pending * sizeof(*recs));
	size_t n = 0;
	uint64_t now = mrtc_monotonic_ms();
	for (size_t i = 0; i < d->n_pending; i++) {
		const char *key = d->pending[i];
		struct watched *w = mrtc_cache_get(d->admitted, key, strlen(key), now);
		if (!w || !w->queued)
			continue; /* gone, or already taken by this flush */
		w->queued = false;
		if (!recs)
			continue;
		struct key_parts k;
		struct mrtc_watch_record *r = &recs[n];
		r->expires_ms = w->stored_until_ms;
		if (key_split(key, &k) && k.sfu < d->s->config->n_sfus &&
		    mrtc_copy(r->sfu_url, sizeof(r->sfu_url), d->s->config->sfus[k.sfu].url) &&
		    mrtc_copy(r->room_name, sizeof(r->room_name), k.room_name) &&
		    mrtc_copy(r->identity, sizeof(r->identity), k.identity) &&
		    mrtc_copy(r->room_id, sizeof(r->room_id), watched_room_id(w)) &&
		    mrtc_copy(r->user_id, sizeof(r->user_id), watched_user_id(w)))
			n++;
	}
	/* Written in the background: the store's worker logs a failure. */
	if (!recs || (n && !mrtc_store_watch_put(d->store, recs, n, NULL, NULL)))
		mrtc_log(LOG_ERR, "watch", NULL,
			 "cannot write %zu admitted participants to the store: a restart "
			 "forgets them",
			 d->n_pending);
	free(recs);
	d->n_pending = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	watch_flush(arg);
}

/* Queues the entry @w under @key for the store's next batch. */
static void watch_queue(struct mrtc_watch *d, const char *key, struct watched *w)
{
	if (w->queued)
		return; /* written as it is when its turn comes */
	if (!d->pending && !(d->pending = malloc(WATCH_PENDING_MAX * sizeof(*d->pending))))
		return;
	if (d->n_pending == WATCH_PENDING_MAX)
		watch_flush(d);
	if (!mrtc_copy(d->pending[d->n_pending], sizeof(d->pending[0]), key))
		return;
	d->n_pending++;
	w->queued = true;
	if (d->n_pending == 1) {
		struct timeval tv = { .tv_usec = WATCH_FLUSH_MS * 1000 };
		event_add(d->flush, &tv);
	}
}

/* Puts one admitted participant on SFU @sfu under @key into the watch, until @expires_ms
 * (wall clock): one allocation, the value built here. The entry, or NULL. */
static struct watched *watch_put(struct mrtc_watch *d, const char *key, size_t sfu,
				 const char *room_id, const char *user_id, uint64_t expires_ms)
{
	uint64_t wall = mrtc_now_ms();
	size_t a = strlen(room_id), b = strlen(user_id);
	if (expires_ms <= wall || a > 255 || b > 255)
		return NULL;
	_Alignas(MRTC_CACHE_VALUE_ALIGN) unsigned char buf[WATCHED_MAX];
	struct watched *w = (struct watched *)buf;
	*w = (struct watched){ .stored_until_ms = expires_ms, .sfu = (uint8_t)sfu };
	memcpy(w->strings, room_id, a + 1);
	memcpy(w->strings + a + 1, user_id, b + 1);
	uint64_t until = mrtc_monotonic_ms() + (expires_ms - wall);
	size_t len = strlen(key);
	size_t size = offsetof(struct watched, strings) + a + b + 2;
	if (!mrtc_cache_put_copy(d->admitted, key, len, w, size, until))
		return NULL;
	return mrtc_cache_get(d->admitted, key, len, mrtc_monotonic_ms());
}

/* A record from the store into the watch, on SFU @sfu; the entry, or NULL. */
static struct watched *watch_add(struct mrtc_watch *d, size_t sfu,
				 const struct mrtc_watch_record *rec)
{
	char key[WATCH_KEY_MAX];
	if (!watch_key(key, sizeof(key), sfu, rec->room_name, rec->identity))
		return NULL;
	return watch_put(d, key, sfu, rec->room_id, rec->user_id, rec->expires_ms);
}

/* A participant from the store: on the SFU of its url ("": the first), as jobs are, so a
 * renumbered configuration still finds it; on an SFU no longer configured, dropped. */
static void watch_resume(struct mrtc_watch *d, const struct mrtc_watch_record *rec)
{
	int sfu = rec->sfu_url[0] ? mrtc_config_sfu_find(d->s->config, rec->sfu_url) : 0;
	if (sfu < 0) {
		mrtc_log(LOG_WARNING, "watch", NULL,
			 "%s in %s was admitted on %s, which is not configured any more: no "
			 "longer watched",
			 rec->user_id, rec->room_id, rec->sfu_url);
		if (d->store)
			mrtc_store_watch_del(d->store, rec->sfu_url, rec->room_name, rec->identity,
					     NULL, NULL);
		return;
	}
	const char *url = d->s->config->sfus[sfu].url;
	char key[WATCH_KEY_MAX];
	if (!watch_key(key, sizeof(key), (size_t)sfu, rec->room_name, rec->identity))
		return;
	struct watched *w =
	    watch_put(d, key, (size_t)sfu, rec->room_id, rec->user_id, rec->expires_ms);
	if (!w || !d->store || strcmp(rec->sfu_url, url) == 0)
		return;
	/* Stored under another spelling of the url ("", a trailing slash): from now on under the
	 * configured one, which the removal names. */
	mrtc_store_watch_del(d->store, rec->sfu_url, rec->room_name, rec->identity, NULL, NULL);
	watch_queue(d, key, w);
}

static void on_watch_loaded(void *arg, enum mrtc_err err, const struct mrtc_watch_record *w,
			    size_t n)
{
	struct mrtc_watch *d = arg;
	d->watch_load = NULL;
	if (err != MRTC_OK)
		mrtc_log(
		    LOG_ERR, "watch", NULL,
		    "cannot read the admitted participants from the store (%s): those admitted "
		    "before the restart are not re-checked",
		    mrtc_err_str(err));
	for (size_t i = 0; i < n; i++)
		watch_resume(d, &w[i]);
}

void mrtc_watch_admitted(struct mrtc_watch *d, size_t sfu, const char *room_id,
			 const char *room_name, const char *identity, const char *user_id,
			 uint64_t ttl_s)
{
	if (!d || !d->admitted || sfu >= d->s->config->n_sfus)
		return;
	uint64_t wall = mrtc_now_ms(), now = mrtc_monotonic_ms();
	uint64_t expires_ms = wall + ttl_s * 1000;
	char key[WATCH_KEY_MAX];
	if (!watch_key(key, sizeof(key), sfu, room_name, identity))
		return; /* names longer than the watch holds: not watched */
	size_t len = strlen(key);
	struct watched *w = mrtc_cache_get(d->admitted, key, len, now);
	if (w && strcmp(watched_room_id(w), room_id) == 0 &&
	    strcmp(watched_user_id(w), user_id) == 0) {
		/* Watched already: only its lifetime moves (no allocation). */
		mrtc_cache_refresh(d->admitted, key, len, now, now + ttl_s * 1000);
	} else {
		uint64_t stored = w ? w->stored_until_ms : 0;
		if (!(w = watch_put(d, key, sfu, room_id, user_id, expires_ms)))
			return;
		w->stored_until_ms = stored;
	}
	if (!d->store || w->stored_until_ms + WATCH_STORE_SLACK_MS >= expires_ms)
		return; /* the store holds nearly as long already */
	w->stored_until_ms = expires_ms;
	watch_queue(d, key, w);
}

void mrtc_watch_joined(struct mrtc_watch *d, unsigned from, const char *room, const char *identity)
{
	for (size_t i = 0; d && i < d->s->config->n_sfus; i++) {
		if (!(from & (1u << i)))
			continue;
		char key[WATCH_KEY_MAX];
		struct watched *w =
		    watch_key(key, sizeof(key), i, room, identity)
			? mrtc_cache_get(d->admitted, key, strlen(key), mrtc_monotonic_ms())
			: NULL;
		if (w)
			check_one(d, key, w, false);
	}
}

enum mrtc_err mrtc_watch_create(struct mrtc_services *s, struct mrtc_store_async *store,
				struct mrtc_watch **ret)
{
	struct mrtc_watch *d = calloc(1, sizeof(*d));
	if (!d)
		return MRTC_ERR_NOMEM;
	d->s = s;
	d->store = store;
	uint8_t rnd[16];
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(d->owner, sizeof(d->owner), rnd, sizeof(rnd));
	d->admitted = mrtc_cache_create(WATCH_MAX, NULL);
	d->watch = event_new(s->base, -1, EV_PERSIST, on_watch, d);
	struct timeval tv = { .tv_sec = (time_t)s->config->membership_recheck_s };
	if (!d->admitted || !d->watch || event_add(d->watch, &tv) != 0)
		goto fail;
	if (store) {
		d->flush = event_new(s->base, -1, 0, on_flush, d);
		if (!d->flush)
			goto fail;
		d->watch_load = mrtc_store_watch_each(store, mrtc_now_ms(), on_watch_loaded, d);
	}
	*ret = d;
	return MRTC_OK;
fail:
	mrtc_watch_destroy(d);
	return MRTC_ERR_NOMEM;
}

void mrtc_watch_quiesce(struct mrtc_watch *d)
{
	if (!d)
		return;
	d->stopping = true; /* no new membership checks */
	mrtc_store_call_cancel(d->watch_load);
	d->watch_load = NULL;
	mrtc_store_call_cancel(d->reload);
	d->reload = NULL;
	mrtc_store_call_cancel(d->batch_lease);
	d->batch_lease = NULL;
	if (d->watch)
		event_del(d->watch);
	if (d->flush) {
		event_del(d->flush);
		watch_flush(d);
	}
}

void mrtc_watch_destroy(struct mrtc_watch *d)
{
	if (!d)
		return;
	mrtc_store_call_cancel(d->watch_load);
	mrtc_store_call_cancel(d->reload);
	mrtc_store_call_cancel(d->batch_lease);
	if (d->watch)
		event_free(d->watch);
	if (d->flush) {
		event_free(d->flush);
		watch_flush(d);
	}
	free(d->pending);
	mrtc_cache_destroy(d->admitted);
	free(d->batch);
	free(d->batch_held);
	free(d);
}
