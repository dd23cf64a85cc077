/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The asynchronous store: one worker thread per store runs the synchronous backend; calls go
 * through a bounded, mutex-protected queue and come back through a done list, a byte on a
 * self-pipe waking the loop (the signature pool's design, federation/net/verifier.c). Only the
 * loop thread calls callbacks; a call is freed by the loop once done, or by its cancel while
 * still queued.
 */
#include "mrtc/store/async.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrtc/base/util.h"
#include "mrtc/core/log.h"

enum op {
	OP_PUT,
	OP_DEL,
	OP_GET,
	OP_EACH,
	OP_LEASE,
	OP_RELEASE,
	OP_WATCH_PUT,
	OP_WATCH_DEL,
	OP_WATCH_EACH,
	OP_WATCH_PRUNE,
};

enum call_state {
	QUEUED,
	RUNNING,
	DONE
};

struct watch_name {
	char sfu_url[sizeof(((struct mrtc_watch_record *)0)->sfu_url)];
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_NAME_MAX + 1];
};

struct mrtc_store_call {
	struct mrtc_store_call *prev, *next;
	struct mrtc_store_async *a;
	enum op op;
	enum call_state state; /* under the mutex */
	bool cancelled;	       /* under the mutex */
	union {
		mrtc_store_done_fn done;
		mrtc_store_jobs_fn jobs;
		mrtc_store_leases_fn leases;
		mrtc_store_watches_fn watches;
	} cb;
	bool has_cb;
	void *arg;
	enum mrtc_err err;
	char key[MRTC_LIVEKIT_HASH_LEN + 1];
	char owner[64];
	uint64_t ttl_ms, now_ms;
	union {
		struct mrtc_job_record job; /* put; get's answer */
		struct watch_name wn;	    /* watch_del */
	} u;
	/* lease: the keys and the answers; each: the jobs; watch_put/watch_each: the records */
	struct mrtc_store_key *keys;
	bool *held;
	struct mrtc_job_record *jobs;
	struct mrtc_watch_record *w;
	size_t n, cap;
};

struct mrtc_store_async {
	struct mrtc_store *store;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct mrtc_store_call *head, *tail; /* queued */
	struct mrtc_store_call *done;	     /* done, newest first */
	size_t n_pending, queue_max;
	struct mrtc_store_status status; /* the last one seen */
	int pipe_fds[2];
	struct event *wake;
	bool full_logged;
	bool write_failing; /* worker thread only */
};

static void call_free(struct mrtc_store_call *c)
{
	if (!c)
		return;
	if (c->jobs) {
		sodium_memzero(c->jobs, c->n * sizeof(*c->jobs));
		free(c->jobs);
	}
	free(c->keys);
	free(c->held);
	free(c->w);
	sodium_memzero(&c->u, sizeof(c->u));
	free(c);
}

/* ---- the worker thread ---- */

static void collect_job(void *ctx, const struct mrtc_job_record *job)
{
	struct mrtc_store_call *c = ctx;
	if (c->err != MRTC_OK)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct mrtc_job_record *n = malloc(cap * sizeof(*n));
		if (!n) {
			c->err = MRTC_ERR_NOMEM;
			return;
		}
		if (c->jobs) {
			memcpy(n, c->jobs, c->n * sizeof(*n));
			sodium_memzero(c->jobs, c->n * sizeof(*n));
			free(c->jobs);
		}
		c->jobs = n;
		c->cap = cap;
	}
	c->jobs[c->n++] = *job;
}

static void collect_watch(void *ctx, const struct mrtc_watch_record *w)
{
	struct mrtc_store_call *c = ctx;
	if (c->err != MRTC_OK)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct mrtc_watch_record *n = realloc(c->w, cap * sizeof(*n));
		if (!n) {
			c->err = MRTC_ERR_NOMEM;
			return;
		}
		c->w = n;
		c->cap = cap;
	}
	c->w[c->n++] = *w;
}

static void run(struct mrtc_store *st, struct mrtc_store_call *c)
{
	const struct mrtc_store_ops *o = st->ops;
	enum mrtc_err err = MRTC_OK;
	switch (c->op) {
	case OP_PUT:
		c->err = o->put(st->self, &c->u.job);
		break;
	case OP_DEL:
		c->err = o->del(st->self, c->key);
		if (c->owner[0])
			o->release(st->self, c->key, c->owner);
		break;
	case OP_GET:
		c->err = o->get(st->self, c->key, &c->u.job);
		break;
	case OP_EACH:
		c->err = MRTC_OK;
		err = o->each(st->self, collect_job, c);
		if (c->err == MRTC_OK)
			c->err = err;
		break;
	case OP_LEASE:
		for (size_t i = 0; i < c->n; i++)
			c->held[i] = o->lease(st->self, c->keys[i].key, c->owner, c->ttl_ms);
		break;
	case OP_RELEASE:
		o->release(st->self, c->key, c->owner);
		break;
	case OP_WATCH_PUT:
		c->err = o->watch_put(st->self, c->w, c->n);
		break;
	case OP_WATCH_DEL:
		c->err =
		    o->watch_del(st->self, c->u.wn.sfu_url, c->u.wn.room_name, c->u.wn.identity);
		break;
	case OP_WATCH_EACH:
		c->err = MRTC_OK;
		c->n = 0;
		err = o->watch_each(st->self, c->now_ms, collect_watch, c);
		if (c->err == MRTC_OK)
			c->err = err;
		break;
	case OP_WATCH_PRUNE:
		c->err = o->watch_prune(st->self, c->now_ms);
		break;
	}
}

static const char *op_name(enum op op)
{
	switch (op) {
	case OP_PUT:
		return "a job";
	case OP_DEL:
		return "the end of a job";
	case OP_WATCH_PUT:
		return "admitted participants";
	case OP_WATCH_DEL:
		return "the removal of an admitted participant";
	default:
		return "the watch's expiry";
	}
}

/* A write nobody waits for logs its failure here: the first of a run of failures, and the
 * recovery (worker thread only). */
static void report(struct mrtc_store_async *a, const struct mrtc_store_call *c)
{
	if (c->has_cb || c->op == OP_GET || c->op == OP_EACH || c->op == OP_LEASE ||
	    c->op == OP_RELEASE || c->op == OP_WATCH_EACH)
		return;
	if (c->err != MRTC_OK && !a->write_failing)
		mrtc_log(LOG_ERR, "store", NULL,
			 "cannot write %s to the store (%s)%s%s; further failures are not logged "
			 "until a write succeeds",
			 op_name(c->op), mrtc_err_str(c->err), c->op == OP_PUT ? ": job of " : "",
			 c->op == OP_PUT ? c->u.job.user_id : "");
	else if (c->err == MRTC_OK && a->write_failing)
		mrtc_log(LOG_NOTICE, "store", NULL, "writes to the store succeed again");
	a->write_failing = c->err != MRTC_OK;
}

static void *worker(void *arg)
{
	struct mrtc_store_async *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->head && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (!a->head)
			break; /* stopping, and nothing left to run */
		struct mrtc_store_call *c = a->head;
		a->head = c->next;
		if (a->head)
			a->head->prev = NULL;
		else
			a->tail = NULL;
		c->state = RUNNING;
		pthread_mutex_unlock(&a->mu);
		run(a->store, c);
		report(a, c);
		struct mrtc_store_status st;
		mrtc_store_get_status(a->store, &st);
		pthread_mutex_lock(&a->mu);
		a->status = st;
		a->n_pending--;
		c->state = DONE;
		c->prev = NULL;
		c->next = a->done;
		a->done = c;
		char one = 1;
		/* A full pipe already guarantees a wake-up. */
		while (write(a->pipe_fds[1], &one, 1) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- the loop side ---- */

static void deliver(struct mrtc_store_call *c)
{
	switch (c->op) {
	case OP_GET:
		c->cb.jobs(c->arg, c->err, c->err == MRTC_OK ? &c->u.job : NULL,
			   c->err == MRTC_OK ? 1 : 0);
		break;
	case OP_EACH:
		c->cb.jobs(c->arg, c->err, c->jobs, c->err == MRTC_OK ? c->n : 0);
		break;
	case OP_LEASE:
		c->cb.leases(c->arg, c->held, c->n);
		break;
	case OP_WATCH_EACH:
		c->cb.watches(c->arg, c->err, c->w, c->err == MRTC_OK ? c->n : 0);
		break;
	default:
		c->cb.done(c->arg, c->err);
		break;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct mrtc_store_async *a = arg;
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&a->mu);
	struct mrtc_store_call *list = a->done, *fifo = NULL;
	a->done = NULL;
	pthread_mutex_unlock(&a->mu);
	while (list) { /* oldest first */
		struct mrtc_store_call *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct mrtc_store_call *c = fifo;
		fifo = c->next;
		/* A callback may cancel a call further on this list: it is only marked. */
		pthread_mutex_lock(&a->mu);
		bool cancelled = c->cancelled;
		pthread_mutex_unlock(&a->mu);
		if (!cancelled && c->has_cb)
			deliver(c);
		call_free(c);
	}
}

void mrtc_store_call_cancel(struct mrtc_store_call *c)
{
	if (!c)
		return;
	struct mrtc_store_async *a = c->a;
	pthread_mutex_lock(&a->mu);
	if (c->state != QUEUED) {
		c->cancelled = true; /* running or done: the loop frees it, without a callback */
		pthread_mutex_unlock(&a->mu);
		return;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		a->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		a->tail = c->prev;
	a->n_pending--;
	pthread_mutex_unlock(&a->mu);
	call_free(c);
}

static struct mrtc_store_call *call_new(struct mrtc_store_async *a, enum op op, bool has_cb,
					void *arg)
{
	if (!a)
		return NULL;
	struct mrtc_store_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->a = a;
	c->op = op;
	c->has_cb = has_cb;
	c->arg = arg;
	return c;
}

/* Queues @c (taking ownership); NULL when the queue is full. */
static struct mrtc_store_call *submit(struct mrtc_store_call *c)
{
	if (!c)
		return NULL;
	struct mrtc_store_async *a = c->a;
	pthread_mutex_lock(&a->mu);
	if (a->n_pending >= a->queue_max || a->stop) {
		bool log = !a->full_logged;
		a->full_logged = true;
		pthread_mutex_unlock(&a->mu);
		if (log)
			mrtc_log(
			    LOG_ERR, "store", NULL,
			    "the store is not keeping up (%zu calls waiting): failing new calls "
			    "until it does",
			    a->queue_max);
		call_free(c);
		return NULL;
	}
	if (a->full_logged && a->n_pending < a->queue_max / 2) {
		a->full_logged = false;
		mrtc_log(LOG_NOTICE, "store", NULL, "the store is keeping up again");
	}
	c->state = QUEUED;
	c->prev = a->tail;
	c->next = NULL;
	if (a->tail)
		a->tail->next = c;
	else
		a->head = c;
	a->tail = c;
	a->n_pending++;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return c;
}

static bool copy_key(struct mrtc_store_call *c, const char *key, const char *owner)
{
	if (!mrtc_copy(c->key, sizeof(c->key), key) ||
	    (owner && !mrtc_copy(c->owner, sizeof(c->owner), owner))) {
		call_free(c);
		return false;
	}
	return true;
}

struct mrtc_store_call *mrtc_store_put(struct mrtc_store_async *a,
				       const struct mrtc_job_record *job, mrtc_store_done_fn cb,
				       void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_PUT, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.done = cb;
	c->u.job = *job;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_del(struct mrtc_store_async *a, const char *key,
				       const char *owner, mrtc_store_done_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_DEL, cb != NULL, arg);
	if (!c || !copy_key(c, key, owner))
		return NULL;
	c->cb.done = cb;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_get(struct mrtc_store_async *a, const char *key,
				       mrtc_store_jobs_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_GET, cb != NULL, arg);
	if (!c || !copy_key(c, key, NULL))
		return NULL;
	c->cb.jobs = cb;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_each(struct mrtc_store_async *a, mrtc_store_jobs_fn cb,
					void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_EACH, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.jobs = cb;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_lease(struct mrtc_store_async *a,
					 const struct mrtc_store_key *keys, size_t n,
					 const char *owner, uint64_t ttl_ms,
					 mrtc_store_leases_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_LEASE, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.leases = cb;
	c->ttl_ms = ttl_ms;
	c->n = n;
	c->keys = malloc((n ? n : 1) * sizeof(*c->keys));
	c->held = calloc(n ? n : 1, sizeof(*c->held));
	if (!c->keys || !c->held || !mrtc_copy(c->owner, sizeof(c->owner), owner)) {
		call_free(c);
		return NULL;
	}
	if (n)
		memcpy(c->keys, keys, n * sizeof(*c->keys));
	return submit(c);
}

struct mrtc_store_call *mrtc_store_release(struct mrtc_store_async *a, const char *key,
					   const char *owner, mrtc_store_done_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_RELEASE, cb != NULL, arg);
	if (!c || !copy_key(c, key, owner))
		return NULL;
	c->cb.done = cb;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_watch_put(struct mrtc_store_async *a,
					     const struct mrtc_watch_record *w, size_t n,
					     mrtc_store_done_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_WATCH_PUT, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.done = cb;
	c->w = malloc((n ? n : 1) * sizeof(*c->w));
	if (!c->w) {
		call_free(c);
		return NULL;
	}
	if (n)
		memcpy(c->w, w, n * sizeof(*w));
	c->n = n;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_watch_del(struct mrtc_store_async *a, const char *sfu_url,
					     const char *room_name, const char *identity,
					     mrtc_store_done_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_WATCH_DEL, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.done = cb;
	if (!mrtc_copy(c->u.wn.sfu_url, sizeof(c->u.wn.sfu_url), sfu_url) ||
	    !mrtc_copy(c->u.wn.room_name, sizeof(c->u.wn.room_name), room_name) ||
	    !mrtc_copy(c->u.wn.identity, sizeof(c->u.wn.identity), identity)) {
		call_free(c);
		return NULL;
	}
	return submit(c);
}

struct mrtc_store_call *mrtc_store_watch_each(struct mrtc_store_async *a, uint64_t now_ms,
					      mrtc_store_watches_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_WATCH_EACH, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.watches = cb;
	c->now_ms = now_ms;
	return submit(c);
}

struct mrtc_store_call *mrtc_store_watch_prune(struct mrtc_store_async *a, uint64_t now_ms,
					       mrtc_store_done_fn cb, void *arg)
{
	struct mrtc_store_call *c = call_new(a, OP_WATCH_PRUNE, cb != NULL, arg);
	if (!c)
		return NULL;
	c->cb.done = cb;
	c->now_ms = now_ms;
	return submit(c);
}

/* ---- lifecycle ---- */

enum mrtc_err mrtc_store_async_open(struct event_base *base, const char *spec,
				    const struct mrtc_store_options *opts, size_t queue_max,
				    struct mrtc_store_async **ret)
{
	struct mrtc_store_async *a = calloc(1, sizeof(*a));
	if (!a)
		return MRTC_ERR_NOMEM;
	a->pipe_fds[0] = a->pipe_fds[1] = -1;
	a->queue_max = queue_max ? queue_max : MRTC_STORE_QUEUE_MAX;
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (pthread_mutex_init(&a->mu, NULL) != 0) {
		free(a);
		return err;
	}
	if (pthread_cond_init(&a->cv, NULL) != 0) {
		pthread_mutex_destroy(&a->mu);
		free(a);
		return err;
	}
	err = mrtc_store_open(spec, opts, &a->store);
	if (err != MRTC_OK)
		goto fail;
	mrtc_store_get_status(a->store, &a->status);
	err = MRTC_ERR_IO;
	if (pipe(a->pipe_fds) != 0)
		goto fail;
	for (int i = 0; i < 2; i++) {
		fcntl(a->pipe_fds[i], F_SETFL, fcntl(a->pipe_fds[i], F_GETFL) | O_NONBLOCK);
		fcntl(a->pipe_fds[i], F_SETFD, FD_CLOEXEC);
	}
	a->wake = event_new(base, a->pipe_fds[0], EV_READ | EV_PERSIST, on_wake, a);
	if (!a->wake || event_add(a->wake, NULL) != 0)
		goto fail;
	if (pthread_create(&a->thread, NULL, worker, a) != 0)
		goto fail;
	a->started = true;
	*ret = a;
	return MRTC_OK;
fail:
	mrtc_store_async_close(a);
	return err;
}

void mrtc_store_async_close(struct mrtc_store_async *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->mu);
		a->stop = true; /* the worker runs what is queued, then ends */
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	for (struct mrtc_store_call *c = a->head, *next; c; c = next) {
		next = c->next;
		call_free(c);
	}
	for (struct mrtc_store_call *c = a->done, *next; c; c = next) {
		next = c->next;
		call_free(c);
	}
	if (a->wake)
		event_free(a->wake);
	for (int i = 0; i < 2; i++)
		if (a->pipe_fds[i] >= 0)
			close(a->pipe_fds[i]);
	mrtc_store_close(a->store);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

bool mrtc_store_async_is_shared(const struct mrtc_store_async *a)
{
	return a && a->store->shared;
}

void mrtc_store_async_get_status(const struct mrtc_store_async *a, struct mrtc_store_status *ret)
{
	if (!a) {
		mrtc_store_get_status(NULL, ret);
		return;
	}
	struct mrtc_store_async *m = (struct mrtc_store_async *)a; /* the mutex only */
	pthread_mutex_lock(&m->mu);
	*ret = a->status;
	pthread_mutex_unlock(&m->mu);
}

size_t mrtc_store_async_pending(const struct mrtc_store_async *a)
{
	if (!a)
		return 0;
	struct mrtc_store_async *m = (struct mrtc_store_async *)a;
	pthread_mutex_lock(&m->mu);
	size_t n = a->n_pending;
	pthread_mutex_unlock(&m->mu);
	return n;
}
