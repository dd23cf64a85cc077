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
#define WATCH_KEY_MAX (2 * MRTC_LIVEKIT_NAME_MAX + 24)
#define WATCH_PENDING_MAX 1024 /* admissions written to the store in one transaction */
#define WATCH_FLUSH_MS 250     /* at most this long before an admission is in the store */
/* A new token for a participant already watched is written to the store only if it extends the
 * stored expiry by more than this: a client fetching tokens in a loop costs no writes. */
#define WATCH_STORE_SLACK_MS 60000

struct watched {
	size_t sfu; /* index in config->sfus: where it was admitted, whom to ask to remove it */
	char room_id[256];
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_NAME_MAX + 1];
	char user_id[256];
	bool checking;
	uint64_t sweep;		  /* the last sweep that took it */
	uint64_t stored_until_ms; /* wall clock: the expiry the store holds (or will, pending) */
};

struct mrtc_watch {
	struct mrtc_services *s;
	struct mrtc_store_async *store; /* borrowed, or NULL */
	struct event *watch;		/* membership re-checks */
	struct mrtc_cache *admitted;
	/* The sweep over every admitted participant that each watch period starts (when the
	 * last one has ended): batches of keys not yet taken by this sweep, checked with at most
	 * WATCH_IN_FLIGHT in flight, the next check started as one ends. */
	uint64_t sweep;
	bool sweeping;
	bool stopping;
	char (*batch)[WATCH_KEY_MAX];
	size_t batch_n, batch_i;
	size_t watch_in_flight;
	/* Admissions not yet in the store: written together, so a token costs no fsync. */
	struct mrtc_watch_record *pending;
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
	char key[WATCH_KEY_MAX];
	struct watched w;
	bool swept; /* started by the sweep (counts in watch_in_flight) */
};

static void sweep_pump(struct mrtc_watch *d);

static void on_removed(void *arg, enum mrtc_err err, const char *detail)
{
	struct recheck *c = arg;
	if (err == MRTC_OK || err == MRTC_ERR_NOT_FOUND)
		mrtc_log(LOG_INFO, "watch", NULL,
			 "%s is no longer joined to %s: removed from the SFU%s", c->w.user_id,
			 c->w.room_id, err == MRTC_OK ? "" : " (was not connected)");
	else
		mrtc_log(LOG_WARNING, "watch", NULL, "cannot remove %s from the SFU: %s",
			 c->w.user_id, detail ? detail : mrtc_err_str(err));
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
		mrtc_store_watch_del(c->d->store, c->d->s->config->sfus[c->w.sfu].url,
				     c->w.room_name, c->w.identity, NULL, NULL);
	if (!mrtc_roomservice_remove_participant(c->d->s->sfu_rooms[c->w.sfu], c->w.room_name,
						 c->w.identity, on_removed, c))
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
	if (!mrtc_copy(c->key, sizeof(c->key), key)) {
		free(c);
		return false;
	}
	c->w = *w;
	const char *server = mrtc_user_id_server(w->user_id);
	w->checking = true;
	if (!server || !mrtc_hs_remote_membership(d->s->homeserver, w->room_id, w->user_id, server,
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
		struct watched *w =
		    mrtc_cache_get(d->admitted, d->batch[i], strlen(d->batch[i]), now);
		const char *parts[] = { "watch", w ? d->s->config->sfus[w->sfu].url : "",
					w ? w->room_name : "", w ? w->identity : d->batch[i] };
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

/* False when the key does not fit (never with names the daemon made). */
static bool watch_key(char *out, size_t size, size_t sfu, const char *room_name,
		      const char *identity)
{
	return mrtc_format(out, size, "%zu|%s|%s", sfu, room_name, identity);
}

static void watch_flush(struct mrtc_watch *d)
{
	if (!d->n_pending)
		return;
	/* Written in the background: the store's worker logs a failure. */
	if (!mrtc_store_watch_put(d->store, d->pending, d->n_pending, NULL, NULL))
		mrtc_log(LOG_ERR, "watch", NULL,
			 "cannot write %zu admitted participants to the store: a restart "
			 "forgets them",
			 d->n_pending);
	d->n_pending = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	watch_flush(arg);
}

/* Queues @rec for the store's next batch. */
static void watch_queue(struct mrtc_watch *d, const struct mrtc_watch_record *rec)
{
	if (d->n_pending == WATCH_PENDING_MAX)
		watch_flush(d);
	d->pending[d->n_pending++] = *rec;
	if (d->n_pending == 1) {
		struct timeval tv = { .tv_usec = WATCH_FLUSH_MS * 1000 };
		event_add(d->flush, &tv);
	}
}

/* Puts one admitted participant on SFU @sfu into the watch (@expires_ms is wall clock); the
 * entry, or NULL. */
static struct watched *watch_add(struct mrtc_watch *d, size_t sfu,
				 const struct mrtc_watch_record *rec)
{
	uint64_t wall = mrtc_now_ms();
	if (rec->expires_ms <= wall)
		return NULL;
	struct watched *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->sfu = sfu;
	w->stored_until_ms = rec->expires_ms;
	char key[WATCH_KEY_MAX];
	if (!mrtc_copy(w->room_id, sizeof(w->room_id), rec->room_id) ||
	    !mrtc_copy(w->room_name, sizeof(w->room_name), rec->room_name) ||
	    !mrtc_copy(w->identity, sizeof(w->identity), rec->identity) ||
	    !mrtc_copy(w->user_id, sizeof(w->user_id), rec->user_id) ||
	    !watch_key(key, sizeof(key), sfu, rec->room_name, rec->identity)) {
		free(w);
		return NULL;
	}
	uint64_t until = mrtc_monotonic_ms() + (rec->expires_ms - wall);
	if (!mrtc_cache_put(d->admitted, key, strlen(key), w, until))
		return NULL;
	return w;
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
	if (!watch_add(d, (size_t)sfu, rec) || !d->store || !d->pending ||
	    strcmp(rec->sfu_url, url) == 0)
		return;
	/* Stored under another spelling of the url ("", a trailing slash): from now on under the
	 * configured one, which the removal names. */
	mrtc_store_watch_del(d->store, rec->sfu_url, rec->room_name, rec->identity, NULL, NULL);
	struct mrtc_watch_record again = *rec;
	if (mrtc_copy(again.sfu_url, sizeof(again.sfu_url), url))
		watch_queue(d, &again);
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
	struct mrtc_watch_record rec = { .expires_ms = mrtc_now_ms() + ttl_s * 1000 };
	char key[WATCH_KEY_MAX];
	if (!mrtc_copy(rec.sfu_url, sizeof(rec.sfu_url), d->s->config->sfus[sfu].url) ||
	    !mrtc_copy(rec.room_id, sizeof(rec.room_id), room_id) ||
	    !mrtc_copy(rec.room_name, sizeof(rec.room_name), room_name) ||
	    !mrtc_copy(rec.identity, sizeof(rec.identity), identity) ||
	    !mrtc_copy(rec.user_id, sizeof(rec.user_id), user_id) ||
	    !watch_key(key, sizeof(key), sfu, room_name, identity))
		return; /* names longer than the watch holds: not watched */
	struct watched *old = mrtc_cache_get(d->admitted, key, strlen(key), mrtc_monotonic_ms());
	uint64_t stored = old ? old->stored_until_ms : 0;
	struct watched *w = watch_add(d, sfu, &rec);
	if (!w || !d->store || !d->pending)
		return;
	if (stored + WATCH_STORE_SLACK_MS >= rec.expires_ms) {
		w->stored_until_ms = stored; /* the store holds nearly as long already */
		return;
	}
	watch_queue(d, &rec);
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
	d->admitted = mrtc_cache_create(WATCH_MAX, free);
	d->watch = event_new(s->base, -1, EV_PERSIST, on_watch, d);
	struct timeval tv = { .tv_sec = (time_t)s->config->membership_recheck_s };
	if (!d->admitted || !d->watch || event_add(d->watch, &tv) != 0)
		goto fail;
	if (store) {
		d->pending = calloc(WATCH_PENDING_MAX, sizeof(*d->pending));
		d->flush = event_new(s->base, -1, 0, on_flush, d);
		if (!d->pending || !d->flush)
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
