/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job store as the event loop sees it: asynchronous. Each store has one worker thread that
 * runs the synchronous backend (store.h: SQLite, Redis with its Sentinel, credentials and
 * reconnection logic, unchanged); calls are queued to it and their results come back on the
 * event loop through a self-pipe. Nothing here blocks the loop, whatever the store does.
 *
 * The project's asynchronous convention: a start call returns a handle or NULL (NULL: no
 * callback, ever); the callback never runs inside the start call; mrtc_store_call_cancel()
 * means no callback, and a call not yet started is dropped. A start call given no callback
 * (@cb NULL) is fire-and-forget: it returns whether it was queued, the handle must not be
 * kept, and it runs even after its owner is gone (closing the store runs what is queued).
 *
 * The queue is bounded: when it is full (the store is stalled or overloaded) a start call
 * returns NULL at once, and the caller treats that as the store being unreachable.
 */
#ifndef MRTC_STORE_ASYNC_H
#define MRTC_STORE_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/store/store.h"

struct event_base;
struct mrtc_store_async;
struct mrtc_store_call;

#define MRTC_STORE_QUEUE_MAX 8192 /* calls queued to one store's worker at most */

/* A job's key, as the lease call takes them (many at once). */
struct mrtc_store_key {
	char key[MRTC_LIVEKIT_HASH_LEN + 1];
};

typedef void (*mrtc_store_done_fn)(void *arg, enum mrtc_err err);
/* @jobs: borrowed until the callback returns, NULL when @n is 0 (get: one job,
 * MRTC_ERR_NOT_FOUND: none); the same for @w below. */
typedef void (*mrtc_store_jobs_fn)(void *arg, enum mrtc_err err, const struct mrtc_job_record *jobs,
				   size_t n);
/* @held[i]: whether the lease on the i-th key is ours now. */
typedef void (*mrtc_store_leases_fn)(void *arg, const bool *held, size_t n);
typedef void (*mrtc_store_watches_fn)(void *arg, enum mrtc_err err,
				      const struct mrtc_watch_record *w, size_t n);

/* Opens @spec (mrtc_store_open) and starts its worker. @queue_max 0: MRTC_STORE_QUEUE_MAX. */
enum mrtc_err mrtc_store_async_open(struct event_base *base, const char *spec,
				    const struct mrtc_store_options *opts, size_t queue_max,
				    struct mrtc_store_async **ret_store);
/* Runs what is still queued (no callback is called any more), stops the worker, closes the
 * store. Accepts NULL. Every call with a callback must have been cancelled before. */
void mrtc_store_async_close(struct mrtc_store_async *store);

/* Several daemons may use it: leases matter. */
bool mrtc_store_async_is_shared(const struct mrtc_store_async *store);
/* The last status the worker saw (never waits on the store). @store may be NULL ("none"). */
void mrtc_store_async_get_status(const struct mrtc_store_async *store,
				 struct mrtc_store_status *ret_status);
/* Calls waiting in the queue or running now. */
size_t mrtc_store_async_pending(const struct mrtc_store_async *store);

void mrtc_store_call_cancel(struct mrtc_store_call *call); /* accepts NULL */

struct mrtc_store_call *mrtc_store_put(struct mrtc_store_async *store,
				       const struct mrtc_job_record *job, mrtc_store_done_fn cb,
				       void *arg);
/* Deletes the job and, with @owner, releases our lease on it. */
struct mrtc_store_call *mrtc_store_del(struct mrtc_store_async *store, const char *key,
				       const char *owner, mrtc_store_done_fn cb, void *arg);
struct mrtc_store_call *mrtc_store_get(struct mrtc_store_async *store, const char *key,
				       mrtc_store_jobs_fn cb, void *arg);
struct mrtc_store_call *mrtc_store_each(struct mrtc_store_async *store, mrtc_store_jobs_fn cb,
					void *arg);
/* Takes or renews the leases on @n keys for @owner (one call for many: the lease scan). */
struct mrtc_store_call *mrtc_store_lease(struct mrtc_store_async *store,
					 const struct mrtc_store_key *keys, size_t n,
					 const char *owner, uint64_t ttl_ms,
					 mrtc_store_leases_fn cb, void *arg);
struct mrtc_store_call *mrtc_store_release(struct mrtc_store_async *store, const char *key,
					   const char *owner, mrtc_store_done_fn cb, void *arg);
struct mrtc_store_call *mrtc_store_watch_put(struct mrtc_store_async *store,
					     const struct mrtc_watch_record *w, size_t n,
					     mrtc_store_done_fn cb, void *arg);
struct mrtc_store_call *mrtc_store_watch_del(struct mrtc_store_async *store, const char *sfu_url,
					     const char *room_name, const char *identity,
					     mrtc_store_done_fn cb, void *arg);
/* Drops the records expired at @now_ms, then hands back the others. */
struct mrtc_store_call *mrtc_store_watch_each(struct mrtc_store_async *store, uint64_t now_ms,
					      mrtc_store_watches_fn cb, void *arg);
struct mrtc_store_call *mrtc_store_watch_prune(struct mrtc_store_async *store, uint64_t now_ms,
					       mrtc_store_done_fn cb, void *arg);

#endif
