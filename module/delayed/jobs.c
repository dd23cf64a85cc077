/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delayed-leave jobs: the engine. Each job's decisions are job_step.c's pure step function; here
 * its I/O (SFU polls, restarts and sends, leases), one timer per job, the lease scan, and the
 * feature's lifecycle. Jobs are written to the store on every change of state; with a shared
 * store each job is driven only by the daemon holding its lease.
 */
#include "mrtc/delayed/delayed.h"

#include "internal.h"

#include <event2/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "mrtc/core/log.h"
#include "mrtc/delayed/job_step.h"
#include "mrtc/sfu/watch.h"
#include "mrtc/services/services.h"
#include "mrtc/store/async.h"
#include "mrtc/store/store.h"
#include "mrtc/base/util.h"

#define MAX_JOBS 100000
#define FORM_MEMO_MAX 64

const char *const mrtc_delayed_paths[2] = {
	"/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
	"/_matrix/client/v1/delayed_events",
};

/* A job: its record, the step function's state (job_step.h) and the I/O in flight. */
struct job {
	struct mrtc_delayed *d;
	struct mrtc_job_record rec;
	size_t sfu; /* index in config->sfus of rec.sfu_url */
	struct mrtc_job_step_state st;
	struct event *timer;
	enum mrtc_err last_err; /* of the last homeserver call, for the log */
	char last_errcode[32];
	struct mrtc_http_call *http;
	struct mrtc_rs_call *rs;
	struct mrtc_store_call *lease;
	struct job *prev, *next;
};

struct mrtc_delayed {
	struct mrtc_services *s;
	struct mrtc_store_async *store;
	/* The scan (and the first load): renew our leases, list the store, lease the orphans.
	 * One at a time; its keys and records kept between the steps. */
	struct mrtc_store_call *scan_call;
	struct mrtc_store_key *scan_keys;
	struct mrtc_job_record *orphans;
	size_t n_orphans;
	struct job *jobs;
	size_t n_jobs;
	struct mrtc_cache *by_key; /* key -> job (borrowed) */
	char owner[33];
	struct event *scan;	  /* shared store: take over jobs whose lease ran out */
	struct mrtc_watch *watch; /* the membership watch (sfu/), with a homeserver */
	/* Which MSC4140 management form each homeserver serves (by base URL). */
	struct {
		char url[sizeof(((struct mrtc_job_record *)0)->cs_api_url)];
		int form;
	} memo[FORM_MEMO_MAX];
	size_t memo_next;
};

/* ---- jobs ---- */

static void job_run(struct job *j, const struct mrtc_job_event *event);

static struct job *find_job(struct mrtc_delayed *d, const char *key)
{
	return mrtc_cache_get(d->by_key, key, strlen(key), 0);
}

static void job_unlink_free(struct job *j)
{
	struct mrtc_delayed *d = j->d;
	mrtc_http_call_cancel(j->http);
	mrtc_rs_call_cancel(j->rs);
	mrtc_store_call_cancel(j->lease);
	if (j->prev)
		j->prev->next = j->next;
	else
		d->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	d->n_jobs--;
	mrtc_cache_remove(d->by_key, j->rec.key, strlen(j->rec.key));
	if (j->timer)
		event_free(j->timer);
	sodium_memzero(j->rec.delay_id, sizeof(j->rec.delay_id));
	free(j);
}

/* The form the homeserver at @url was last seen to serve, or -1. */
static int memo_get(const struct mrtc_delayed *d, const char *url)
{
	for (size_t i = 0; i < FORM_MEMO_MAX; i++)
		if (d->memo[i].url[0] && strcmp(d->memo[i].url, url) == 0)
			return d->memo[i].form;
	return -1;
}

static void memo_put(struct mrtc_delayed *d, const char *url, int form)
{
	for (size_t i = 0; i < FORM_MEMO_MAX; i++)
		if (d->memo[i].url[0] && strcmp(d->memo[i].url, url) == 0) {
			d->memo[i].form = form;
			return;
		}
	size_t i = d->memo_next++ % FORM_MEMO_MAX;
	/* Same size as the job's URL: it fits (else nothing is remembered). */
	d->memo[i].form = mrtc_copy(d->memo[i].url, sizeof(d->memo[i].url), url) ? form : 0;
}

/* The job is over: forget it everywhere (logged once, here). */
static void job_done_at(struct job *j, int level, const char *why)
{
	struct mrtc_delayed *d = j->d;
	mrtc_log(level, "delayed", NULL, "job for %s in %s ended: %s", j->rec.user_id,
		 j->rec.room_id, why);
	/* Queued behind any earlier write of the job; a full queue leaves it stored, and the
	 * next daemon to take it up finds the delayed event gone. */
	mrtc_store_del(d->store, j->rec.key, d->owner, NULL, NULL);
	job_unlink_free(j);
}

/* Written in the background: the store's worker logs a failure. */
static void save(struct job *j)
{
	if (!mrtc_store_put(j->d->store, &j->rec, NULL, NULL))
		mrtc_log(LOG_ERR, "delayed", NULL, "cannot write the job for %s to the store",
			 j->rec.user_id);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct job *j = arg;
	job_run(j, &(struct mrtc_job_event){ .kind = MRTC_JOB_EV_TIMER });
}

static void arm(struct job *j, uint64_t at_ms)
{
	uint64_t now = mrtc_monotonic_ms();
	uint64_t in = at_ms > now ? at_ms - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(in / 1000),
			      .tv_usec = (suseconds_t)(in % 1000) * 1000 };
	evtimer_add(j->timer, &tv);
}

/* Milliseconds a 429 asks us to wait: retry_after_ms in the body, else Retry-After (0: none). */
static uint64_t retry_after(const struct mrtc_http_response *resp)
{
	struct json_object *doc = NULL, *ms = NULL;
	uint64_t v = 0;
	if (mrtc_json_parse(resp->body, resp->body_len, 8, &doc) == MRTC_OK &&
	    json_object_object_get_ex(doc, "retry_after_ms", &ms) &&
	    json_object_is_type(ms, json_type_int) && json_object_get_int64(ms) > 0)
		v = (uint64_t)json_object_get_int64(ms);
	json_object_put(doc);
	if (!v && resp->retry_after && mrtc_parse_u64(resp->retry_after, 0, 86400, &v))
		v *= 1000;
	return v;
}

static void on_action(void *arg, const struct mrtc_http_response *resp)
{
	struct job *j = arg;
	j->http = NULL;
	struct json_object *doc = NULL;
	const char *errcode = NULL;
	if (resp->err == MRTC_OK && mrtc_json_parse(resp->body, resp->body_len, 8, &doc) == MRTC_OK)
		errcode = mrtc_json_get_string(doc, "errcode");
	struct mrtc_job_event ev = {
		.kind = MRTC_JOB_EV_ACTION,
		.err = resp->err,
		.status = resp->status,
		.unrecognized = errcode && strcmp(errcode, "M_UNRECOGNIZED") == 0,
		.retry_after_ms =
		    resp->err == MRTC_OK && resp->status == 429 ? retry_after(resp) : 0,
	};
	j->last_err = resp->err;
	if (resp->err == MRTC_OK)
		/* Only shown in log lines: a cut errcode is marked. */
		mrtc_format_shown(j->last_errcode, sizeof(j->last_errcode), "%s",
				  errcode ? errcode : "no errcode");
	json_object_put(doc);
	job_run(j, &ev);
}

/* Starts the management call @action; false when it could not start. */
static bool act(struct job *j, const char *action)
{
	const struct mrtc_config *c = j->d->s->config;
	char url[3000], body[40], *auth = NULL;
	char *id = evhttp_uriencode(j->rec.delay_id, -1, 0);
	/* With an application-service token, management is authenticated as the user (MSC4140
	 * head requires authentication). Never for a URL a client gave us. */
	bool as_user = c->appservice_token && !j->rec.guarded;
	char *user = as_user ? evhttp_uriencode(j->rec.user_id, -1, 0) : NULL;
	bool in_body = j->st.form % 2 == 1;
	bool built =
	    id && (!as_user || user) &&
	    mrtc_format(url, sizeof(url), "%s%s/%s%s%s%s%s", j->rec.cs_api_url,
			mrtc_delayed_paths[j->st.form / 2], id, in_body ? "" : "/",
			in_body ? "" : action, as_user ? "?user_id=" : "", as_user ? user : "");
	if (id) {
		sodium_memzero(id, strlen(id));
		free(id);
	}
	free(user);
	/* Encoding failed or the URL does not fit: a failure like any other, with backoff, and
	 * the give-up after failing longer than the delay. */
	if (!built)
		return false;
	if (as_user) {
		size_t al = strlen(c->appservice_token) + 8;
		auth = malloc(al);
		if (!auth || !mrtc_format(auth, al, "Bearer %s", c->appservice_token)) {
			free(auth);
			return false;
		}
	}
	if (!(in_body ? mrtc_format(body, sizeof(body), "{\"action\":\"%s\"}", action)
		      : mrtc_copy(body, sizeof(body), "{}"))) {
		free(auth);
		return false;
	}
	struct mrtc_http_request req = {
		.method = "POST",
		.content_type = "application/json",
		.authorization = auth,
		.body = body,
		.body_len = strlen(body),
		.timeout_ms = c->homeserver_timeout_s * 1000,
		.max_body = MRTC_DELAYED_HS_RESPONSE_MAX,
	};
	/* Without an application-service token the delay_id is the capability (MSC4140 as it
	 * was). A URL a client gave us (legacy delegation) goes through the outbound guard. */
	j->http = mrtc_http_fetch(j->d->s->http, j->d->s->dns, url, &req, j->rec.guarded,
				  c->allow_cidrs, c->n_allow_cidrs, on_action, j);
	sodium_memzero(url, sizeof(url));
	if (auth) {
		sodium_memzero(auth, strlen(auth));
		free(auth);
	}
	return j->http != NULL;
}

static void on_poll(void *arg, enum mrtc_err err, const char *detail)
{
	(void)detail;
	struct job *j = arg;
	j->rs = NULL;
	job_run(j, &(struct mrtc_job_event){ .kind = MRTC_JOB_EV_POLL, .err = err });
}

static void on_job_lease(void *arg, const bool *held, size_t n)
{
	struct job *j = arg;
	j->lease = NULL;
	job_run(j,
		&(struct mrtc_job_event){ .kind = MRTC_JOB_EV_LEASE, .held = n == 1 && held[0] });
}

/* Ends @j with the log line the step's reason calls for. */
static void job_end(struct job *j, const struct mrtc_job_next *n)
{
	char why[240];
	mrtc_job_end_describe(&j->st, n->end, j->last_errcode, why, sizeof(why));
	job_done_at(j, n->end_is_warning ? LOG_WARNING : LOG_INFO, why);
}

/* The engine: steps @ev through the job's state machine and carries out what it says, feeding
 * back at once the I/O that could not even start. */
static void job_run(struct job *j, const struct mrtc_job_event *event)
{
	struct mrtc_delayed *d = j->d;
	struct mrtc_job_event ev = *event;
	for (;;) {
		ev.now_ms = mrtc_monotonic_ms();
		ev.random = randombytes_random();
		struct mrtc_job_next n;
		mrtc_job_step(&j->st, &ev, &n);
		if (n.note == MRTC_JOB_NOTE_CONNECTED)
			mrtc_log(LOG_INFO, "delayed", NULL, "participant of %s is on the SFU",
				 j->rec.user_id);
		else if (n.note == MRTC_JOB_NOTE_LEFT)
			mrtc_log(LOG_INFO, "delayed", NULL, "participant of %s left the SFU",
				 j->rec.user_id);
		else if (n.note == MRTC_JOB_NOTE_RETRYING)
			mrtc_log(LOG_WARNING, "delayed", NULL,
				 "%s for %s failed (%s, HTTP %d): retrying",
				 j->st.sending ? "send" : "restart", j->rec.user_id,
				 mrtc_err_str(j->last_err),
				 j->last_err == MRTC_OK ? j->st.last_status : 0);
		if (n.never_came)
			mrtc_log(LOG_INFO, "delayed", NULL,
				 "participant of %s never came: sending the leave", j->rec.user_id);
		if (n.save) {
			j->rec.state = MRTC_JOB_CONNECTED;
			save(j);
		}
		if (n.form_confirmed)
			memo_put(d, j->rec.cs_api_url, j->st.form);
		memset(&ev, 0, sizeof(ev));
		switch (n.what) {
		case MRTC_JOB_DO_WAIT:
			return;
		case MRTC_JOB_DO_SLEEP:
			arm(j, n.until_ms);
			return;
		case MRTC_JOB_DO_POLL:
			j->rs = mrtc_roomservice_get_participant(
			    d->s->sfu_rooms[j->sfu], j->rec.room_name, j->rec.identity, on_poll, j);
			if (j->rs)
				return;
			ev.kind = MRTC_JOB_EV_POLL_NOT_STARTED;
			break;
		case MRTC_JOB_DO_RESTART:
		case MRTC_JOB_DO_SEND:
			if (act(j, n.what == MRTC_JOB_DO_SEND ? "send" : "restart"))
				return;
			ev.kind = MRTC_JOB_EV_ACTION_NOT_STARTED;
			break;
		case MRTC_JOB_DO_LEASE: {
			struct mrtc_store_key key;
			memcpy(key.key, j->rec.key, sizeof(key.key));
			j->lease = mrtc_store_lease(d->store, &key, 1, d->owner,
						    d->s->config->lease_ttl_ms, on_job_lease, j);
			if (j->lease)
				return;
			ev.kind = MRTC_JOB_EV_LEASE_NOT_STARTED;
			break;
		}
		case MRTC_JOB_DO_END:
			job_end(j, &n);
			return;
		case MRTC_JOB_DO_DROP:
			mrtc_log(LOG_INFO, "delayed", NULL,
				 "job for %s is driven by another daemon now", j->rec.user_id);
			job_unlink_free(j);
			return;
		}
	}
}

/* Starts driving @rec here (@lease_ok_ms: when its lease was taken, or 0). The restart comes at
 * once: when it last ran is unknown. False when it could not start. */
static bool job_start(struct mrtc_delayed *d, const struct mrtc_job_record *rec,
		      uint64_t lease_ok_ms)
{
	if (d->n_jobs >= MAX_JOBS)
		return false;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return false;
	j->d = d;
	j->rec = *rec;
	const struct mrtc_config *c = d->s->config;
	int sfu = rec->sfu_url[0] ? mrtc_config_sfu_find(c, rec->sfu_url) : 0;
	j->sfu = sfu < 0 ? 0 : (size_t)sfu;
	uint64_t now = mrtc_monotonic_ms(), wall = mrtc_now_ms();
	mrtc_job_step_init(&j->st, now);
	j->st.sfu_gone = sfu < 0;
	j->st.delay_ms = rec->delay_ms;
	j->st.poll_ms = c->delayed_poll_ms;
	j->st.lease_ttl_ms = c->lease_ttl_ms;
	j->st.shared = mrtc_store_async_is_shared(d->store);
	j->st.lease_ok_ms = lease_ok_ms;
	j->st.connected = rec->state == MRTC_JOB_CONNECTED;
	int form = memo_get(d, rec->cs_api_url);
	j->st.form = form < 0 ? 0 : form;
	j->st.confirmed = form >= 0;
	uint64_t wait_end = rec->created_ms + c->delayed_connect_wait_s * 1000;
	j->st.wait_deadline_ms = now + (wait_end > wall ? wait_end - wall : 0);
	j->timer = evtimer_new(d->s->base, on_timer, j);
	if (!j->timer) {
		free(j);
		return false;
	}
	if (!mrtc_cache_put(d->by_key, j->rec.key, strlen(j->rec.key), j, UINT64_MAX)) {
		event_free(j->timer);
		free(j);
		return false;
	}
	j->next = d->jobs;
	if (d->jobs)
		d->jobs->prev = j;
	d->jobs = j;
	d->n_jobs++;
	job_run(j, &(struct mrtc_job_event){ .kind = MRTC_JOB_EV_TIMER });
	return true;
}

/* ---- the lease scan: renew ours, list the store, take up the orphans (one at a time) ---- */

static void scan_finish(struct mrtc_delayed *d)
{
	mrtc_store_call_cancel(d->scan_call);
	d->scan_call = NULL;
	free(d->scan_keys);
	d->scan_keys = NULL;
	if (d->orphans) {
		sodium_memzero(d->orphans, d->n_orphans * sizeof(*d->orphans));
		free(d->orphans);
	}
	d->orphans = NULL;
	d->n_orphans = 0;
}

static void take_up(struct mrtc_delayed *d, const struct mrtc_job_record *rec, uint64_t now)
{
	if (find_job(d, rec->key))
		return; /* delegated here meanwhile */
	mrtc_log(LOG_INFO, "delayed", NULL, "taking up the job for %s in %s", rec->user_id,
		 rec->room_id);
	job_start(d, rec, mrtc_store_async_is_shared(d->store) ? now : 0);
}

static void on_orphans_leased(void *arg, const bool *held, size_t n)
{
	struct mrtc_delayed *d = arg;
	d->scan_call = NULL;
	uint64_t now = mrtc_monotonic_ms();
	for (size_t i = 0; i < n && i < d->n_orphans; i++)
		if (held[i])
			take_up(d, &d->orphans[i], now);
	scan_finish(d);
}

static void on_listed(void *arg, enum mrtc_err err, const struct mrtc_job_record *jobs, size_t n)
{
	struct mrtc_delayed *d = arg;
	d->scan_call = NULL;
	if (err != MRTC_OK || !n) {
		scan_finish(d);
		return; /* a failed read is logged by the store; the next scan tries again */
	}
	d->orphans = malloc(n * sizeof(*d->orphans));
	d->scan_keys = malloc(n * sizeof(*d->scan_keys));
	if (!d->orphans || !d->scan_keys) {
		scan_finish(d);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!find_job(d, jobs[i].key)) {
			d->orphans[d->n_orphans] = jobs[i];
			memcpy(d->scan_keys[d->n_orphans].key, jobs[i].key, sizeof(jobs[i].key));
			d->n_orphans++;
		}
	uint64_t now = mrtc_monotonic_ms();
	if (!mrtc_store_async_is_shared(d->store)) {
		for (size_t i = 0; i < d->n_orphans; i++)
			take_up(d, &d->orphans[i], now);
		scan_finish(d);
		return;
	}
	if (d->n_orphans)
		d->scan_call = mrtc_store_lease(d->store, d->scan_keys, d->n_orphans, d->owner,
						d->s->config->lease_ttl_ms, on_orphans_leased, d);
	if (!d->scan_call)
		scan_finish(d);
}

static void scan_list(struct mrtc_delayed *d)
{
	d->scan_call = mrtc_store_each(d->store, on_listed, d);
}

static void on_renewed(void *arg, const bool *held, size_t n)
{
	struct mrtc_delayed *d = arg;
	d->scan_call = NULL;
	uint64_t now = mrtc_monotonic_ms();
	for (size_t i = 0; i < n; i++) {
		struct job *j = find_job(d, d->scan_keys[i].key);
		if (!j)
			continue; /* ended meanwhile */
		if (held[i]) {
			j->st.lease_ok_ms = now;
		} else if (!j->st.busy) {
			mrtc_log(LOG_INFO, "delayed", NULL, "lost the lease on the job for %s",
				 j->rec.user_id);
			job_unlink_free(j);
		}
	}
	scan_finish(d);
	scan_list(d);
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_delayed *d = arg;
	if (d->scan_call)
		return; /* the last scan is still waiting on the store */
	if (!d->n_jobs) {
		scan_list(d);
		return;
	}
	/* Renew what we hold (a busy job does not tick), then take up orphans. */
	d->scan_keys = malloc(d->n_jobs * sizeof(*d->scan_keys));
	if (!d->scan_keys)
		return;
	size_t n = 0;
	for (struct job *j = d->jobs; j; j = j->next)
		memcpy(d->scan_keys[n++].key, j->rec.key, sizeof(j->rec.key));
	d->scan_call = mrtc_store_lease(d->store, d->scan_keys, n, d->owner,
					d->s->config->lease_ttl_ms, on_renewed, d);
	if (!d->scan_call)
		scan_finish(d);
}

bool mrtc_delayed_enabled(const struct mrtc_delayed *d)
{
	return d && d->store;
}

/* Drives @rec (written to the store) here, replacing the job of the same key. */
enum mrtc_err mrtc_delayed_start_stored(struct mrtc_delayed *d, const struct mrtc_job_record *rec)
{
	/* One job per (room, slot, member, user): the new delegation replaces the old. */
	struct job *old = find_job(d, rec->key);
	if (old)
		job_unlink_free(old);
	if (!job_start(d, rec, 0))
		return MRTC_ERR_INTERNAL;
	mrtc_log(LOG_INFO, "delayed", NULL, "delayed leave of %s in %s delegated%s", rec->user_id,
		 rec->room_id, old ? " (replacing the previous one)" : "");
	return MRTC_OK;
}

enum mrtc_err mrtc_delayed_start_job(struct mrtc_delayed *d, const struct mrtc_job_record *rec)
{
	if (!mrtc_delayed_enabled(d))
		return MRTC_ERR_INTERNAL;
	if (!mrtc_store_put(d->store, rec, NULL, NULL))
		return MRTC_ERR_UPSTREAM; /* the store is not keeping up: 502 */
	return mrtc_delayed_start_stored(d, rec);
}

/* ---- lifecycle ---- */

enum mrtc_err mrtc_delayed_create(struct mrtc_services *s, struct mrtc_delayed **ret)
{
	struct mrtc_delayed *d = calloc(1, sizeof(*d));
	if (!d)
		return MRTC_ERR_NOMEM;
	d->s = s;
	uint8_t rnd[16];
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(d->owner, sizeof(d->owner), rnd, sizeof(rnd));
	const struct mrtc_config *c = s->config;
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (c->store) {
		struct mrtc_store_options so = {
			.redis_password = c->redis_password,
			.redis_sentinel_user = c->redis_sentinel_user,
			.redis_sentinel_password = c->redis_sentinel_password,
			.server_name = c->server_name,
		};
		char why[160];
		if (c->store_default &&
		    !mrtc_store_dir_is_usable(c->state_dir, true, why, sizeof(why))) {
			mrtc_log(
			    LOG_ERR, "store", NULL,
			    "the state directory %s (MRTC_STATE_DIR) %s; make it writable, set "
			    "MRTC_STATE_DIR or MRTC_STORE, or switch delegation off with "
			    "MRTC_STORE=none",
			    c->state_dir, why);
			err = MRTC_ERR_IO;
			goto fail;
		}
		d->by_key = mrtc_cache_create(MAX_JOBS, NULL);
		if (!d->by_key)
			goto fail;
		err = mrtc_store_async_open(s->base, c->store, &so, 0, &d->store);
		if (err != MRTC_OK)
			goto fail;
		err = MRTC_ERR_NOMEM;
		d->scan = event_new(s->base, -1, EV_PERSIST, on_scan, d);
		struct timeval tv = { .tv_sec = (time_t)(c->lease_ttl_ms / 3000),
				      .tv_usec =
					  (suseconds_t)((c->lease_ttl_ms / 3) % 1000) * 1000 };
		if (!d->scan ||
		    (mrtc_store_async_is_shared(d->store) && event_add(d->scan, &tv) != 0))
			goto fail;
		scan_list(d); /* the jobs of the last run, taken up when the store answers */
	}
	/* The watch outlives a restart when there is a store: its admitted set is in it. */
	if (s->homeserver && (err = mrtc_watch_create(s, d->store, &d->watch)) != MRTC_OK)
		goto fail;
	*ret = d;
	return MRTC_OK;
fail:
	mrtc_delayed_destroy(d);
	return err;
}

void mrtc_delayed_quiesce(struct mrtc_delayed *d)
{
	if (!d)
		return;
	while (d->jobs)
		job_unlink_free(d->jobs); /* they stay in the store for the next start */
	scan_finish(d);
	if (d->scan)
		event_del(d->scan);
	mrtc_watch_quiesce(d->watch);
}

void mrtc_delayed_destroy(struct mrtc_delayed *d)
{
	if (!d)
		return;
	mrtc_delayed_quiesce(d);
	if (d->scan)
		event_free(d->scan);
	mrtc_watch_destroy(d->watch);	  /* queues its last writes */
	mrtc_store_async_close(d->store); /* after the last write was queued */
	mrtc_cache_destroy(d->by_key);
	free(d);
}

const struct mrtc_store_async *mrtc_delayed_get_store(const struct mrtc_delayed *d)
{
	return d ? d->store : NULL;
}

struct mrtc_store_async *mrtc_delayed_store(struct mrtc_delayed *d)
{
	return d->store;
}

void mrtc_delayed_admitted(struct mrtc_delayed *d, size_t sfu, const char *room_id,
			   const char *room_name, const char *identity, const char *user_id,
			   uint64_t ttl_s)
{
	if (d)
		mrtc_watch_admitted(d->watch, sfu, room_id, room_name, identity, user_id, ttl_s);
}

/* A verified webhook (webhook.c) about @hook->room, from the SFUs in the bits of @from. */
void mrtc_delayed_on_webhook(struct mrtc_delayed *d, unsigned from, const struct mrtc_webhook *hook)
{
	for (struct job *j = d->jobs, *next; j; j = next) {
		next = j->next;
		if (!(from & (1u << j->sfu)) || strcmp(j->rec.room_name, hook->room) != 0)
			continue;
		bool mine = strcmp(j->rec.identity, hook->identity) == 0;
		if (mine && hook->event == MRTC_WEBHOOK_PARTICIPANT_JOINED && !j->st.connected) {
			job_run(j, &(struct mrtc_job_event){ .kind = MRTC_JOB_EV_JOINED });
		} else if ((mine && (hook->event == MRTC_WEBHOOK_PARTICIPANT_LEFT ||
				     hook->event == MRTC_WEBHOOK_PARTICIPANT_CONNECTION_ABORTED)) ||
			   hook->event == MRTC_WEBHOOK_ROOM_FINISHED) {
			job_run(j, &(struct mrtc_job_event){ .kind = MRTC_JOB_EV_LEFT });
		}
	}
	if (hook->event == MRTC_WEBHOOK_PARTICIPANT_JOINED)
		mrtc_watch_joined(d->watch, from, hook->room, hook->identity);
}
