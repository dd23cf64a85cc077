/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delayed-leave jobs. Each job is a small state machine driven by one timer: poll the SFU for
 * the participant, restart the delayed event at 80 % of its delay, and send it once the
 * participant is gone (webhook or poll) or never came. Homeserver calls retry with backoff
 * (1 s, x1.5, jitter, at most 60 s) and honour 429. Jobs are written to the store on every
 * change of state; with a shared store each job is driven only by the daemon holding its lease.
 */
#include "mrtc/delayed/delayed.h"

#include <event2/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/matrix/json.h"
#include "mrtc/core/log.h"
#include "mrtc/rtc/rtc.h"
#include "mrtc/main/services.h"
#include "mrtc/store/store.h"
#include "mrtc/base/util.h"

#define MAX_JOBS 100000
#define BACKOFF_START_MS 1000
#define BACKOFF_CAP_MS 60000
#define WATCH_MAX 100000
#define WATCH_BATCH 2000   /* keys taken from the cache at a time by a sweep */
#define WATCH_IN_FLIGHT 64 /* membership checks a sweep keeps in flight */
#define HS_RESPONSE_MAX (256 * 1024)
#define WATCH_KEY_MAX (2 * MRTC_LIVEKIT_NAME_MAX + 24)
#define FORM_MEMO_MAX 64
#define WATCH_PENDING_MAX 1024 /* admissions written to the store in one transaction */
#define WATCH_FLUSH_MS 250     /* at most this long before an admission is in the store */
/* A new token for a participant already watched is written to the store only if it extends the
 * stored expiry by more than this: a client fetching tokens in a loop costs no writes. */
#define WATCH_STORE_SLACK_MS 60000
#define N_FORMS 4 /* (unstable, stable path) x (action in the path, action in the body) */

static const char *const de_paths[2] = {
	"/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
	"/_matrix/client/v1/delayed_events",
};

struct job {
	struct mrtc_delayed *d;
	struct mrtc_job_record rec;
	size_t sfu;    /* index in config->sfus of rec.sfu_url */
	bool sfu_gone; /* rec.sfu_url is no configured SFU (any more) */
	struct event *timer;
	uint64_t next_restart_ms, next_poll_ms, wait_deadline_ms, retry_at_ms;
	uint64_t backoff_ms;
	bool busy, send_pending;
	int form;	    /* index into the N_FORMS management forms */
	bool confirmed;	    /* the homeserver is known to serve j->form */
	bool saw_not_found; /* a form answered a plain 404 (not M_UNRECOGNIZED) */
	bool seen_absent;   /* the last poll: the SFU answered that the participant is not there */
	uint64_t failing_since_ms; /* first of an unbroken run of failed homeserver calls, or 0 */
	int last_status;
	char last_errcode[32];
	struct mrtc_http_call *http;
	struct mrtc_rs_call *rs;
	struct job *prev, *next;
};

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

struct mrtc_delayed {
	struct mrtc_services *s;
	struct mrtc_store *store;
	struct job *jobs;
	size_t n_jobs;
	char owner[33];
	struct event *scan;  /* shared store: take over jobs whose lease ran out */
	struct event *watch; /* membership re-checks */
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
	/* Which MSC4140 management form each homeserver serves (by base URL). */
	struct {
		char url[sizeof(((struct mrtc_job_record *)0)->cs_api_url)];
		int form;
	} memo[FORM_MEMO_MAX];
	size_t memo_next;
};

/* ---- jobs ---- */

static void job_tick(struct job *j);

static struct job *find_job(struct mrtc_delayed *d, const char *key)
{
	for (struct job *j = d->jobs; j; j = j->next)
		if (strcmp(j->rec.key, key) == 0)
			return j;
	return NULL;
}

static void job_unlink_free(struct job *j)
{
	struct mrtc_delayed *d = j->d;
	mrtc_http_call_cancel(j->http);
	mrtc_rs_call_cancel(j->rs);
	if (j->prev)
		j->prev->next = j->next;
	else
		d->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	d->n_jobs--;
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
	d->store->ops->del(d->store->self, j->rec.key);
	d->store->ops->release(d->store->self, j->rec.key, d->owner);
	job_unlink_free(j);
}

static void job_done(struct job *j, const char *why)
{
	job_done_at(j, LOG_INFO, why);
}

static void save(struct job *j)
{
	if (j->d->store->ops->put(j->d->store->self, &j->rec) != MRTC_OK)
		mrtc_log(LOG_ERR, "delayed", NULL, "cannot write the job for %s to the store",
			 j->rec.user_id);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_tick(arg);
}

static void arm(struct job *j, uint64_t at_ms)
{
	uint64_t now = mrtc_monotonic_ms();
	uint64_t in = at_ms > now ? at_ms - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(in / 1000),
			      .tv_usec = (suseconds_t)(in % 1000) * 1000 };
	evtimer_add(j->timer, &tv);
}

static void backoff(struct job *j)
{
	uint64_t jitter = randombytes_uniform((uint32_t)(j->backoff_ms / 4 + 1));
	j->retry_at_ms = mrtc_monotonic_ms() + j->backoff_ms + jitter;
	j->backoff_ms = j->backoff_ms * 3 / 2;
	if (j->backoff_ms > BACKOFF_CAP_MS)
		j->backoff_ms = BACKOFF_CAP_MS;
}

/* Milliseconds a 429 asks us to wait: retry_after_ms in the body, else Retry-After. */
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
	return v ? v : BACKOFF_START_MS;
}

static void on_action(void *arg, const struct mrtc_http_response *resp, bool sending)
{
	struct job *j = arg;
	j->http = NULL;
	j->busy = false;
	struct json_object *doc = NULL;
	const char *errcode = NULL;
	if (resp->err == MRTC_OK && mrtc_json_parse(resp->body, resp->body_len, 8, &doc) == MRTC_OK)
		errcode = mrtc_json_get_string(doc, "errcode");
	bool unrecognized = errcode && strcmp(errcode, "M_UNRECOGNIZED") == 0;
	if (resp->err == MRTC_OK) {
		j->last_status = resp->status;
		/* Only shown in log lines: a cut errcode is marked. */
		mrtc_format_shown(j->last_errcode, sizeof(j->last_errcode), "%s",
				  errcode ? errcode : "no errcode");
	}
	json_object_put(doc);
	bool is_404 = resp->err == MRTC_OK && resp->status == 404;
	bool is_405 = resp->err == MRTC_OK && resp->status == 405;
	/* A form the homeserver does not serve answers 404 M_UNRECOGNIZED or 405; a form not
	 * confirmed yet may also answer a plain 404. Try the next form before concluding. */
	if (is_404 && !unrecognized)
		j->saw_not_found = true;
	if ((is_405 || (is_404 && (unrecognized || !j->confirmed))) && j->form + 1 < N_FORMS) {
		j->form++;
		j->confirmed = false;
		job_tick(j);
		return;
	}
	if (resp->err == MRTC_OK &&
	    (resp->status == 200 || resp->status == 409 || (is_404 && !unrecognized))) {
		j->confirmed = true;
		memo_put(j->d, j->rec.cs_api_url, j->form);
	}
	if (resp->err == MRTC_OK && resp->status == 200) {
		j->backoff_ms = BACKOFF_START_MS;
		j->saw_not_found = false;
		j->failing_since_ms = 0;
		if (sending) {
			job_done(j, "leave event sent");
			return;
		}
		j->next_restart_ms = mrtc_monotonic_ms() + j->rec.delay_ms * 8 / 10;
	} else if (resp->err == MRTC_OK && resp->status == 409) {
		job_done_at(j, LOG_WARNING,
			    "the delayed event was already finalised the other way (HTTP 409)");
		return;
	} else if (is_404 || is_405) {
		char why[240];
		bool gone = j->saw_not_found;
		if (gone && j->confirmed && !unrecognized && !is_405)
			mrtc_format_shown(why, sizeof(why), "%s (HTTP 404 %s to %s)",
					  sending ? "leave event already sent"
						  : "delayed event gone",
					  j->last_errcode, sending ? "send" : "restart");
		else if (gone)
			mrtc_format_shown(why, sizeof(why),
					  "%s (HTTP 404 to %s; no other management form knows it)",
					  sending ? "leave event already sent"
						  : "delayed event gone",
					  sending ? "send" : "restart");
		else
			mrtc_format_shown(
			    why, sizeof(why),
			    "the homeserver serves no MSC4140 management form (every form "
			    "answered %s to %s; last HTTP %d %s)",
			    "404/405", sending ? "send" : "restart", j->last_status,
			    j->last_errcode);
		job_done_at(j, sending && gone ? LOG_INFO : LOG_WARNING, why);
		return;
	} else if (resp->err == MRTC_OK && resp->status == 429) {
		j->retry_at_ms = mrtc_monotonic_ms() + retry_after(resp);
	} else {
		mrtc_log(LOG_WARNING, "delayed", NULL, "%s for %s failed (%s, HTTP %d): retrying",
			 sending ? "send" : "restart", j->rec.user_id, mrtc_err_str(resp->err),
			 resp->err == MRTC_OK ? resp->status : 0);
		if (!j->failing_since_ms)
			j->failing_since_ms = mrtc_monotonic_ms();
		backoff(j);
	}
	job_tick(j);
}

static void on_restart(void *arg, const struct mrtc_http_response *resp)
{
	on_action(arg, resp, false);
}

static void on_send(void *arg, const struct mrtc_http_response *resp)
{
	on_action(arg, resp, true);
}

/* A management call could not even start: counted as failing (for the give-up), backed off. */
static void act_failed(struct job *j)
{
	if (!j->failing_since_ms)
		j->failing_since_ms = mrtc_monotonic_ms();
	backoff(j);
}

static void act(struct job *j, const char *action)
{
	const struct mrtc_config *c = j->d->s->config;
	char url[3000], body[40], *auth = NULL;
	char *id = evhttp_uriencode(j->rec.delay_id, -1, 0);
	/* With an application-service token, management is authenticated as the user (MSC4140
	 * head requires authentication). Never for a URL a client gave us. */
	bool as_user = c->appservice_token && !j->rec.guarded;
	char *user = as_user ? evhttp_uriencode(j->rec.user_id, -1, 0) : NULL;
	bool in_body = j->form % 2 == 1;
	bool built =
	    id && (!as_user || user) &&
	    mrtc_format(url, sizeof(url), "%s%s/%s%s%s%s%s", j->rec.cs_api_url,
			de_paths[j->form / 2], id, in_body ? "" : "/", in_body ? "" : action,
			as_user ? "?user_id=" : "", as_user ? user : "");
	if (id) {
		sodium_memzero(id, strlen(id));
		free(id);
	}
	free(user);
	if (!built) {
		/* Encoding failed or the URL does not fit: a failure like any other, with backoff,
		 * and the give-up after failing longer than the delay. */
		act_failed(j);
		return;
	}
	if (as_user) {
		size_t al = strlen(c->appservice_token) + 8;
		auth = malloc(al);
		if (!auth || !mrtc_format(auth, al, "Bearer %s", c->appservice_token)) {
			free(auth);
			act_failed(j);
			return;
		}
	}
	if (!(in_body ? mrtc_format(body, sizeof(body), "{\"action\":\"%s\"}", action)
		      : mrtc_copy(body, sizeof(body), "{}"))) {
		free(auth);
		act_failed(j);
		return;
	}
	struct mrtc_http_request req = {
		.method = "POST",
		.content_type = "application/json",
		.authorization = auth,
		.body = body,
		.body_len = strlen(body),
		.timeout_ms = c->homeserver_timeout_s * 1000,
		.max_body = HS_RESPONSE_MAX,
	};
	/* Without an application-service token the delay_id is the capability (MSC4140 as it
	 * was). A URL a client gave us (legacy delegation) goes through the outbound guard. */
	j->http = mrtc_http_fetch(j->d->s->http, j->d->s->dns, url, &req, j->rec.guarded,
				  c->allow_cidrs, c->n_allow_cidrs,
				  strcmp(action, "send") == 0 ? on_send : on_restart, j);
	sodium_memzero(url, sizeof(url));
	if (auth) {
		sodium_memzero(auth, strlen(auth));
		free(auth);
	}
	if (j->http)
		j->busy = true;
	else
		act_failed(j);
}

static void on_poll(void *arg, enum mrtc_err err, const char *detail)
{
	(void)detail;
	struct job *j = arg;
	j->rs = NULL;
	j->busy = false;
	j->next_poll_ms = mrtc_monotonic_ms() + j->d->s->config->delayed_poll_ms;
	j->seen_absent = err == MRTC_ERR_NOT_FOUND;
	if (err == MRTC_OK && j->rec.state == MRTC_JOB_WAITING) {
		mrtc_log(LOG_INFO, "delayed", NULL, "participant of %s is on the SFU",
			 j->rec.user_id);
		j->rec.state = MRTC_JOB_CONNECTED;
		save(j);
	} else if (err == MRTC_ERR_NOT_FOUND && j->rec.state == MRTC_JOB_CONNECTED) {
		mrtc_log(LOG_INFO, "delayed", NULL, "participant of %s left the SFU",
			 j->rec.user_id);
		j->send_pending = true;
	}
	job_tick(j);
}

static void job_tick(struct job *j)
{
	struct mrtc_delayed *d = j->d;
	if (j->busy)
		return;
	if (j->sfu_gone) {
		/* Nothing can tell when the participant leaves: the homeserver's own timeout
		 * sends the leave once nobody restarts the delayed event. */
		job_done_at(j, LOG_WARNING, "its SFU is not configured any more");
		return;
	}
	uint64_t now = mrtc_monotonic_ms();
	if (d->store->shared && !d->store->ops->lease(d->store->self, j->rec.key, d->owner,
						      d->s->config->lease_ttl_ms)) {
		mrtc_log(LOG_INFO, "delayed", NULL, "job for %s is driven by another daemon now",
			 j->rec.user_id);
		job_unlink_free(j);
		return;
	}
	/* Failing for longer than the delay: the homeserver has sent (or dropped) the event by
	 * itself by now, so retrying longer serves nobody. */
	if (j->failing_since_ms && now - j->failing_since_ms > j->rec.delay_ms + BACKOFF_CAP_MS) {
		job_done_at(j, LOG_WARNING,
			    "homeserver calls kept failing for longer than the delay: giving up");
		return;
	}
	/* The SFU is polled even while homeserver calls back off: a participant must never be
	 * taken for gone because the homeserver was failing. */
	if (now >= j->next_poll_ms && !j->send_pending) {
		j->rs = mrtc_roomservice_get_participant(d->s->sfu_rooms[j->sfu], j->rec.room_name,
							 j->rec.identity, on_poll, j);
		j->busy = j->rs != NULL;
		if (j->busy)
			return;
		j->next_poll_ms = now + d->s->config->delayed_poll_ms;
	}
	/* "Never came" needs the SFU to have said so: a failing poll proves nothing. */
	if (j->rec.state == MRTC_JOB_WAITING && now >= j->wait_deadline_ms && !j->send_pending &&
	    j->seen_absent) {
		mrtc_log(LOG_INFO, "delayed", NULL,
			 "participant of %s never came: sending the leave", j->rec.user_id);
		j->send_pending = true;
	}
	uint64_t at = j->next_poll_ms;
	if (j->retry_at_ms > now) {
		arm(j, j->retry_at_ms < at ? j->retry_at_ms : at);
		return;
	}
	if (j->send_pending) {
		act(j, "send");
		if (!j->busy)
			arm(j, j->retry_at_ms < at ? j->retry_at_ms : at);
		return;
	}
	if (now >= j->next_restart_ms) {
		act(j, "restart");
		if (!j->busy)
			arm(j, j->retry_at_ms < at ? j->retry_at_ms : at);
		return;
	}
	if (j->next_restart_ms < at)
		at = j->next_restart_ms;
	if (j->rec.state == MRTC_JOB_WAITING && j->wait_deadline_ms < at)
		at = j->wait_deadline_ms;
	arm(j, at);
}

/* Starts driving @rec here. The restart comes at once: when it last ran is unknown. */
static struct job *job_start(struct mrtc_delayed *d, const struct mrtc_job_record *rec)
{
	if (d->n_jobs >= MAX_JOBS)
		return NULL;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->d = d;
	j->rec = *rec;
	int sfu = rec->sfu_url[0] ? mrtc_config_sfu_find(d->s->config, rec->sfu_url) : 0;
	j->sfu = sfu < 0 ? 0 : (size_t)sfu;
	j->sfu_gone = sfu < 0;
	j->backoff_ms = BACKOFF_START_MS;
	int form = memo_get(d, rec->cs_api_url);
	j->form = form < 0 ? 0 : form;
	j->confirmed = form >= 0;
	j->timer = evtimer_new(d->s->base, on_timer, j);
	if (!j->timer) {
		free(j);
		return NULL;
	}
	uint64_t now = mrtc_monotonic_ms(), wall = mrtc_now_ms();
	uint64_t wait_end = rec->created_ms + d->s->config->delayed_connect_wait_s * 1000;
	j->wait_deadline_ms = now + (wait_end > wall ? wait_end - wall : 0);
	j->next_restart_ms = now;
	j->next_poll_ms = now;
	j->next = d->jobs;
	if (d->jobs)
		d->jobs->prev = j;
	d->jobs = j;
	d->n_jobs++;
	job_tick(j);
	return j;
}

static void resume_one(void *ctx, const struct mrtc_job_record *rec)
{
	struct mrtc_delayed *d = ctx;
	if (find_job(d, rec->key))
		return;
	if (d->store->shared &&
	    !d->store->ops->lease(d->store->self, rec->key, d->owner, d->s->config->lease_ttl_ms))
		return;
	mrtc_log(LOG_INFO, "delayed", NULL, "taking up the job for %s in %s", rec->user_id,
		 rec->room_id);
	job_start(d, rec);
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_delayed *d = arg;
	/* Renew what we hold (a busy job does not tick), then take up orphans. */
	for (struct job *j = d->jobs, *next; j; j = next) {
		next = j->next;
		if (!d->store->ops->lease(d->store->self, j->rec.key, d->owner,
					  d->s->config->lease_ttl_ms) &&
		    !j->busy) {
			mrtc_log(LOG_INFO, "delayed", NULL, "lost the lease on the job for %s",
				 j->rec.user_id);
			job_unlink_free(j);
		}
	}
	d->store->ops->each(d->store->self, resume_one, d);
}

/* ---- membership watch ---- */

struct recheck {
	struct mrtc_delayed *d;
	char key[WATCH_KEY_MAX];
	struct watched w;
	bool swept; /* started by the sweep (counts in watch_in_flight) */
};

static void sweep_pump(struct mrtc_delayed *d);

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
	struct mrtc_delayed *d = c->d;
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
		c->d->store->ops->watch_del(c->d->store->self, c->d->s->config->sfus[c->w.sfu].url,
					    c->w.room_name, c->w.identity);
	if (!mrtc_roomservice_remove_participant(c->d->s->sfu_rooms[c->w.sfu], c->w.room_name,
						 c->w.identity, on_removed, c))
		free(c);
}

/* Starts a membership check of @w; false when none was started. */
static bool check_one(struct mrtc_delayed *d, const char *key, struct watched *w, bool swept)
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
	struct mrtc_delayed *d = ctx;
	struct watched *w = value;
	if (d->batch_n < WATCH_BATCH && w->sweep != d->sweep && len < sizeof(d->batch[0])) {
		w->sweep = d->sweep;
		memcpy(d->batch[d->batch_n], key, len);
		d->batch[d->batch_n][len] = '\0';
		d->batch_n++;
	}
}

/* Keeps WATCH_IN_FLIGHT checks of the sweep going until every participant was taken. */
static void sweep_pump(struct mrtc_delayed *d)
{
	uint64_t now = mrtc_monotonic_ms();
	while (d->sweeping && !d->stopping && d->watch_in_flight < WATCH_IN_FLIGHT) {
		if (d->batch_i == d->batch_n) {
			d->batch_n = d->batch_i = 0;
			mrtc_cache_foreach(d->admitted, now, collect, d);
			if (d->batch_n == 0) {
				d->sweeping = false; /* every participant was taken */
				return;
			}
		}
		const char *key = d->batch[d->batch_i++];
		struct watched *w = mrtc_cache_get(d->admitted, key, strlen(key), now);
		if (w)
			check_one(d, key, w, true);
	}
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_delayed *d = arg;
	if (d->sweeping)
		return; /* the last sweep is still walking: it goes on */
	if (!d->batch && !(d->batch = calloc(WATCH_BATCH, sizeof(*d->batch))))
		return;
	if (d->store)
		d->store->ops->watch_prune(d->store->self, mrtc_now_ms());
	d->sweep++;
	d->sweeping = true;
	d->batch_n = d->batch_i = 0;
	sweep_pump(d);
}

/* False when the key does not fit (never with names the daemon made). */
static bool watch_key(char *out, size_t size, size_t sfu, const char *room_name,
		      const char *identity)
{
	return mrtc_format(out, size, "%zu|%s|%s", sfu, room_name, identity);
}

static void watch_flush(struct mrtc_delayed *d)
{
	if (!d->n_pending)
		return;
	if (d->store->ops->watch_put(d->store->self, d->pending, d->n_pending) != MRTC_OK)
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
static void watch_queue(struct mrtc_delayed *d, const struct mrtc_watch_record *rec)
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
static struct watched *watch_add(struct mrtc_delayed *d, size_t sfu,
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
static void watch_resume(void *ctx, const struct mrtc_watch_record *rec)
{
	struct mrtc_delayed *d = ctx;
	int sfu = rec->sfu_url[0] ? mrtc_config_sfu_find(d->s->config, rec->sfu_url) : 0;
	if (sfu < 0) {
		mrtc_log(LOG_WARNING, "watch", NULL,
			 "%s in %s was admitted on %s, which is not configured any more: no "
			 "longer watched",
			 rec->user_id, rec->room_id, rec->sfu_url);
		if (d->store)
			d->store->ops->watch_del(d->store->self, rec->sfu_url, rec->room_name,
						 rec->identity);
		return;
	}
	const char *url = d->s->config->sfus[sfu].url;
	if (!watch_add(d, (size_t)sfu, rec) || !d->store || !d->pending ||
	    strcmp(rec->sfu_url, url) == 0)
		return;
	/* Stored under another spelling of the url ("", a trailing slash): from now on under the
	 * configured one, which the removal names. */
	d->store->ops->watch_del(d->store->self, rec->sfu_url, rec->room_name, rec->identity);
	struct mrtc_watch_record again = *rec;
	if (mrtc_copy(again.sfu_url, sizeof(again.sfu_url), url))
		watch_queue(d, &again);
}

void mrtc_delayed_admitted(struct mrtc_delayed *d, size_t sfu, const char *room_id,
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

/* ---- webhooks ---- */

void mrtc_delayed_webhook(struct mrtc_request *r)
{
	struct mrtc_services *s = r->services;
	const char *body;
	size_t len;
	if (mrtc_http_body(r, &body, &len) != MRTC_OK) {
		mrtc_http_reply_error(r, MRTC_ERR_TOO_LARGE, "Request body too large");
		return;
	}
	const char *auth =
	    evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	/* Each SFU signs with its own key and secret: the hook concerns the SFUs whose secret
	 * verifies it (several if they share the key and secret). A hook that verified but whose
	 * body is bad says so rather than 401. */
	struct mrtc_webhook hook;
	enum mrtc_err err = MRTC_ERR_AUTH_MISSING;
	unsigned from = 0; /* bit i: SFU i */
	for (size_t i = 0; auth && i < s->config->n_sfus; i++) {
		const struct mrtc_sfu_config *u = &s->config->sfus[i];
		struct mrtc_livekit_creds creds = { u->key, u->secret };
		struct mrtc_webhook h;
		enum mrtc_err e =
		    mrtc_livekit_webhook_verify(&creds, auth, body, len, mrtc_now_ms() / 1000, &h);
		if (e == MRTC_OK) {
			if (!from)
				hook = h;
			from |= 1u << i;
			err = MRTC_OK;
		} else if (i == 0 ||
			   (err != MRTC_OK && (e == MRTC_ERR_NOT_JSON || e == MRTC_ERR_BAD_JSON))) {
			err = e;
		}
	}
	if (err != MRTC_OK) {
		mrtc_log(LOG_WARNING, "webhook", r->id, "refused an SFU webhook: %s",
			 mrtc_err_str(err));
		mrtc_http_reply_error(r,
				      err == MRTC_ERR_NOT_JSON || err == MRTC_ERR_BAD_JSON
					  ? err
					  : MRTC_ERR_UNAUTHORIZED,
				      "Webhook not accepted");
		return;
	}
	struct mrtc_delayed *d = s->delayed;
	if (d && hook.room[0]) {
		for (struct job *j = d->jobs, *next; j; j = next) {
			next = j->next;
			if (!(from & (1u << j->sfu)) || strcmp(j->rec.room_name, hook.room) != 0)
				continue;
			bool mine = strcmp(j->rec.identity, hook.identity) == 0;
			if (mine && hook.event == MRTC_WEBHOOK_PARTICIPANT_JOINED &&
			    j->rec.state == MRTC_JOB_WAITING) {
				j->rec.state = MRTC_JOB_CONNECTED;
				save(j);
			} else if ((mine &&
				    (hook.event == MRTC_WEBHOOK_PARTICIPANT_LEFT ||
				     hook.event == MRTC_WEBHOOK_PARTICIPANT_CONNECTION_ABORTED)) ||
				   hook.event == MRTC_WEBHOOK_ROOM_FINISHED) {
				j->send_pending = true;
				if (!j->busy) {
					evtimer_del(j->timer);
					job_tick(j);
				}
			}
		}
		bool joined = hook.event == MRTC_WEBHOOK_PARTICIPANT_JOINED && d->admitted;
		for (size_t i = 0; joined && i < s->config->n_sfus; i++) {
			if (!(from & (1u << i)))
				continue;
			char key[WATCH_KEY_MAX];
			struct watched *w =
			    watch_key(key, sizeof(key), i, hook.room, hook.identity)
				? mrtc_cache_get(d->admitted, key, strlen(key), mrtc_monotonic_ms())
				: NULL;
			if (w)
				check_one(d, key, w, false);
		}
	}
	struct json_object *ok = json_object_new_object();
	mrtc_http_reply_json(r, 200, ok);
	json_object_put(ok);
}

bool mrtc_delayed_enabled(const struct mrtc_delayed *d)
{
	return d && d->store;
}

enum mrtc_err mrtc_delayed_start_job(struct mrtc_delayed *d, const struct mrtc_job_record *rec)
{
	if (!mrtc_delayed_enabled(d))
		return MRTC_ERR_INTERNAL;
	/* One job per (room, slot, member, user): the new delegation replaces the old. */
	struct job *old = find_job(d, rec->key);
	if (old)
		job_unlink_free(old);
	if (d->store->ops->put(d->store->self, rec) != MRTC_OK)
		return MRTC_ERR_UPSTREAM; /* the store (Redis) is unreachable: 502 */
	if (!job_start(d, rec))
		return MRTC_ERR_INTERNAL;
	mrtc_log(LOG_INFO, "delayed", NULL, "delayed leave of %s in %s delegated%s", rec->user_id,
		 rec->room_id, old ? " (replacing the previous one)" : "");
	return MRTC_OK;
}

/* ---- the delegation endpoint ---- */

struct delegation {
	struct mrtc_request *r;
	struct mrtc_services *s;
	char *token;
	struct mrtc_whoami who;
	struct mrtc_token_fields f;
	char delay_id[256];
	char device[256];
	int sfu; /* index in config->sfus chosen by the url */
	int path;
	bool single; /* trying GET …/delayed_events/{delay_id} before the list */
	struct mrtc_hs_op *hs_op;
	struct mrtc_http_call *http;
	struct mrtc_limits_take *limit_op;
};

static void dl_free(struct delegation *g)
{
	if (g->token) {
		sodium_memzero(g->token, strlen(g->token));
		free(g->token);
	}
	sodium_memzero(g->delay_id, sizeof(g->delay_id));
	free(g);
}

static void dl_abort(struct mrtc_request *r)
{
	struct delegation *g = r->handler_ctx;
	mrtc_hs_op_cancel(g->hs_op);
	mrtc_http_call_cancel(g->http);
	mrtc_limits_take_cancel(g->limit_op);
	dl_free(g);
}

static void dl_fail(struct delegation *g, enum mrtc_err err, const char *msg)
{
	struct mrtc_request *r = g->r;
	mrtc_log(LOG_INFO, "delayed", r->id, "delegation refused for %s: %s", g->who.user_id, msg);
	r->on_abort = NULL;
	dl_free(g);
	mrtc_http_reply_error(r, err, msg);
}

static void dl_list(struct delegation *g);

/* The delayed event @id in @e (one entry; MSC4140 head or older field names): its delay, or
 * 0 if @e is another event. */
static uint64_t entry_delay(struct json_object *e, const char *id)
{
	struct json_object *dv = NULL;
	const char *eid = mrtc_json_get_string(e, "delay_id");
	if (!eid || strcmp(eid, id) != 0)
		return 0;
	if (!json_object_object_get_ex(e, "delay_ms", &dv))
		json_object_object_get_ex(e, "delay", &dv);
	if (!dv || !json_object_is_type(dv, json_type_int) || json_object_get_int64(dv) <= 0)
		return 0;
	return (uint64_t)json_object_get_int64(dv);
}

/* The entry for @id in a list answer (delayed_events[] or scheduled[]), or NULL. */
static struct json_object *find_entry(struct json_object *doc, const char *id)
{
	struct json_object *list = NULL;
	if (!json_object_object_get_ex(doc, "delayed_events", &list))
		json_object_object_get_ex(doc, "scheduled", &list);
	if (!list || !json_object_is_type(list, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		if (entry_delay(e, id))
			return e;
	}
	return NULL;
}

static void on_list(void *arg, const struct mrtc_http_response *resp)
{
	struct delegation *g = arg;
	g->http = NULL;
	struct json_object *doc = NULL;
	if (resp->err == MRTC_OK)
		mrtc_json_parse(resp->body, resp->body_len, 32, &doc);
	const char *errcode = mrtc_json_get_string(doc, "errcode");
	bool unrecognized =
	    resp->err == MRTC_OK &&
	    ((resp->status == 404 && errcode && strcmp(errcode, "M_UNRECOGNIZED") == 0) ||
	     resp->status == 405);
	if (unrecognized && (g->single || g->path == 0)) {
		json_object_put(doc);
		if (g->single) {
			g->single = false; /* no single-event lookup here: ask for the list */
		} else {
			g->path = 1; /* the homeserver only serves the stable path */
			g->single = true;
		}
		dl_list(g);
		return;
	}
	if (g->single && resp->err == MRTC_OK && resp->status == 404) {
		json_object_put(doc);
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "Unknown `delay_id`");
		return;
	}
	if (resp->err != MRTC_OK || resp->status != 200 ||
	    !json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
		dl_fail(g,
			resp->err == MRTC_OK && resp->status == 401 ? MRTC_ERR_UNKNOWN_TOKEN
								    : MRTC_ERR_UPSTREAM,
			resp->err == MRTC_OK && resp->status == 401
			    ? "Unknown access token"
			    : "Unable to reach the homeserver");
		return;
	}
	struct json_object *e =
	    g->single && entry_delay(doc, g->delay_id) ? doc : find_entry(doc, g->delay_id);
	uint64_t delay = e ? entry_delay(e, g->delay_id) : 0;
	const char *room = e ? mrtc_json_get_string(e, "room_id") : NULL;
	const char *owner = NULL;
	if (e && !(owner = mrtc_json_get_string(e, "sender")))
		owner = mrtc_json_get_string(e, "user_id");
	const struct mrtc_config *c = g->s->config;
	const char *refusal = NULL;
	if (!delay)
		refusal = "Unknown `delay_id`";
	else if (owner && strcmp(owner, g->who.user_id) != 0)
		refusal = "The delayed event belongs to another user";
	else if (!room || strcmp(room, g->f.room_id) != 0)
		refusal = "The delayed event belongs to another room";
	else if (delay < c->delayed_min_delay_ms)
		refusal = "The delayed event's delay is below this service's minimum";
	json_object_put(doc);
	if (refusal) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, refusal);
		return;
	}
	struct mrtc_delayed *d = g->s->delayed;
	struct mrtc_job_record rec = { .delay_ms = delay, .created_ms = mrtc_now_ms() };
	const char *parts[] = { g->f.room_id, g->f.slot_id, g->f.member_id, g->who.user_id };
	enum mrtc_identity_kind kind = c->identity == MRTC_IDENTITY_USER_MEMBER
					   ? MRTC_IDENTITY_KIND_USER_MEMBER
					   : MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER;
	if (mrtc_livekit_hash(parts, 4, rec.key) != MRTC_OK ||
	    mrtc_livekit_room_name(g->f.room_id, g->f.slot_id, rec.room_name) != MRTC_OK ||
	    mrtc_livekit_identity(kind, g->who.user_id, g->device, g->f.member_id, rec.identity) !=
		MRTC_OK) {
		dl_fail(g, MRTC_ERR_BAD_JSON,
			"A device id is required ('member.claimed_device_id')");
		return;
	}
	enum mrtc_err err =
	    mrtc_copy(rec.user_id, sizeof(rec.user_id), g->who.user_id) &&
		    mrtc_copy(rec.room_id, sizeof(rec.room_id), g->f.room_id) &&
		    mrtc_copy(rec.delay_id, sizeof(rec.delay_id), g->delay_id) &&
		    mrtc_copy(rec.cs_api_url, sizeof(rec.cs_api_url), c->homeserver_url) &&
		    mrtc_copy(rec.sfu_url, sizeof(rec.sfu_url), c->sfus[g->sfu].url)
		? mrtc_delayed_start_job(d, &rec)
		: MRTC_ERR_INVALID_PARAM;
	sodium_memzero(&rec, sizeof(rec));
	if (err != MRTC_OK) {
		dl_fail(g, err, "Unable to take the delegation");
		return;
	}
	struct mrtc_request *r = g->r;
	r->on_abort = NULL;
	dl_free(g);
	struct json_object *empty = json_object_new_object();
	mrtc_http_reply_json(r, 200, empty);
	json_object_put(empty);
}

static void dl_list(struct delegation *g)
{
	char url[2600];
	char *id = g->single ? evhttp_uriencode(g->delay_id, -1, 0) : NULL;
	bool built = (!g->single || id) &&
		     mrtc_format(url, sizeof(url), "%s%s%s%s", g->s->config->homeserver_url,
				 de_paths[g->path], g->single ? "/" : "", g->single ? id : "");
	if (id) {
		sodium_memzero(id, strlen(id));
		free(id);
	}
	if (!built) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "`delay_id` is too long");
		return;
	}
	/* Application-service mode has no user token: the as_token acting as the user. */
	const char *token = g->token ? g->token : g->s->config->appservice_token;
	if (!g->token) {
		char *user = evhttp_uriencode(g->who.user_id, -1, 0);
		size_t n = strlen(url);
		bool fits = user && mrtc_format(url + n, sizeof(url) - n, "?user_id=%s", user);
		free(user);
		if (!fits) {
			sodium_memzero(url, sizeof(url));
			dl_fail(g, MRTC_ERR_INVALID_PARAM, "`delay_id` is too long");
			return;
		}
	}
	size_t al = strlen(token) + 8;
	char *auth = malloc(al);
	if (!auth || !mrtc_format(auth, al, "Bearer %s", token)) {
		free(auth);
		sodium_memzero(url, sizeof(url));
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	struct mrtc_http_request req = { .method = "GET",
					 .authorization = auth,
					 .timeout_ms = g->s->config->homeserver_timeout_s * 1000,
					 .max_body = HS_RESPONSE_MAX };
	g->http = mrtc_http_fetch(g->s->http, g->s->dns, url, &req, false, NULL, 0, on_list, g);
	sodium_memzero(url, sizeof(url));
	sodium_memzero(auth, al);
	free(auth);
	if (!g->http)
		dl_fail(g, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver");
}

static void dl_limited(void *arg, bool allowed, uint64_t retry);

static void dl_whoami(void *arg, enum mrtc_err err, const struct mrtc_whoami *who)
{
	struct delegation *g = arg;
	g->hs_op = NULL;
	int status;
	uint64_t retry_ms;
	struct json_object *refusal;
	if (err != MRTC_OK && mrtc_whoami_refusal(err, who, &status, &refusal, &retry_ms)) {
		/* The homeserver's own answer, as on the other client-server endpoints. */
		struct mrtc_request *r = g->r;
		mrtc_log(LOG_INFO, "delayed", r->id,
			 "delegation refused: the homeserver refused the access token (%s)",
			 mrtc_err_str(err));
		r->on_abort = NULL;
		dl_free(g);
		if (status == 429)
			mrtc_http_reply_limited(r, retry_ms);
		else
			mrtc_http_reply_json(r, status, refusal);
		json_object_put(refusal);
		return;
	}
	if (err != MRTC_OK) {
		dl_fail(g, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver");
		return;
	}
	g->who = *who;
	const struct mrtc_config *c = g->s->config;
	const char *server = mrtc_user_id_server(who->user_id);
	if (!server || strcmp(server, c->server_name) != 0) {
		dl_fail(g, MRTC_ERR_FORBIDDEN,
			"Only users of this homeserver can use this endpoint");
		return;
	}
	const char *body, *msg;
	size_t len;
	struct json_object *doc = NULL;
	if (mrtc_http_body(g->r, &body, &len) != MRTC_OK) {
		dl_fail(g, MRTC_ERR_TOO_LARGE, "Request body too large");
		return;
	}
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &doc) != MRTC_OK) {
		dl_fail(g, MRTC_ERR_NOT_JSON, "Body is not valid JSON");
		return;
	}
	/* `url` is required by the newest MSC4195 but older clients omit it: with one SFU
	 * configured, a missing url means ours. */
	struct json_object *uv = NULL;
	if (json_object_is_type(doc, json_type_object) &&
	    (!json_object_object_get_ex(doc, "url", &uv) || !uv))
		json_object_object_add(doc, "url", json_object_new_string(c->livekit_url));
	err = mrtc_token_fields_parse(doc, false, &g->f, &msg);
	struct json_object *dv = NULL;
	if (err == MRTC_OK &&
	    (!json_object_object_get_ex(doc, "delay_id", &dv) ||
	     !json_object_is_type(dv, json_type_string) || !json_object_get_string_len(dv))) {
		err = MRTC_ERR_BAD_JSON;
		msg = "Missing `delay_id`";
	} else if (err == MRTC_OK &&
		   (size_t)json_object_get_string_len(dv) >= sizeof(g->delay_id)) {
		err = MRTC_ERR_INVALID_PARAM;
		msg = "`delay_id` is too long";
	} else if (err == MRTC_OK) {
		mrtc_copy(g->delay_id, sizeof(g->delay_id), json_object_get_string(dv)); /* fits */
	}
	json_object_put(doc);
	if (err != MRTC_OK) {
		dl_fail(g, err, msg);
		return;
	}
	g->sfu = mrtc_config_sfu_find(c, g->f.url);
	if ((g->f.server_name[0] && strcmp(g->f.server_name, c->server_name) != 0) || g->sfu < 0) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM,
			"Only calls on this homeserver's SFU can be delegated here");
		return;
	}
	if (who->device_id[0] && g->f.claimed_device_id[0] &&
	    strcmp(who->device_id, g->f.claimed_device_id) != 0) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM,
			"'member.claimed_device_id' is not the device of the access token");
		return;
	}
	if (!mrtc_copy(g->device, sizeof(g->device),
		       g->f.claimed_device_id[0] ? g->f.claimed_device_id : who->device_id)) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "The device id is too long");
		return;
	}
	g->limit_op =
	    mrtc_limits_take(g->s->limits, g->s->user_limit, "user", who->user_id, dl_limited, g);
	if (!g->limit_op)
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
}

static void dl_limited(void *arg, bool allowed, uint64_t retry)
{
	struct delegation *g = arg;
	g->limit_op = NULL;
	if (!allowed) {
		struct mrtc_request *r = g->r;
		r->on_abort = NULL;
		dl_free(g);
		mrtc_http_reply_limited(r, retry);
		return;
	}
	g->single = true;
	dl_list(g);
}

/* The request's delegation context, or NULL after replying. */
static struct delegation *dl_new(struct mrtc_request *r)
{
	struct delegation *g = calloc(1, sizeof(*g));
	if (!g) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return NULL;
	}
	g->r = r;
	g->s = r->services;
	r->handler_ctx = g;
	r->on_abort = dl_abort;
	return g;
}

/* Application-service mode: the homeserver authenticated the user (no device, no token). */
static void delegate_from_homeserver(struct mrtc_request *r)
{
	struct mrtc_whoami who = { .soft_logout = -1 };
	if (!mrtc_appservice_client_user(r, who.user_id))
		return;
	struct delegation *g = dl_new(r);
	if (g)
		dl_whoami(g, MRTC_OK, &who);
}

void mrtc_delayed_delegate(struct mrtc_request *r)
{
	if (r->services->config->appservice) {
		delegate_from_homeserver(r);
		return;
	}
	const char *token = mrtc_http_bearer(r);
	if (!token) {
		mrtc_http_reply_error(r, MRTC_ERR_MISSING_TOKEN, "Missing access token");
		return;
	}
	struct delegation *g = dl_new(r);
	if (!g)
		return;
	if (!(g->token = strdup(token))) {
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	g->hs_op = mrtc_hs_whoami(g->s->homeserver, g->token, dl_whoami, g);
	if (!g->hs_op)
		dl_fail(g, MRTC_ERR_INTERNAL, "Cannot ask the homeserver");
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
	if (s->homeserver) {
		d->admitted = mrtc_cache_create(WATCH_MAX, free);
		d->watch = event_new(s->base, -1, EV_PERSIST, on_watch, d);
		struct timeval tv = { .tv_sec = (time_t)c->membership_recheck_s };
		if (!d->admitted || !d->watch || event_add(d->watch, &tv) != 0)
			goto fail;
	}
	if (c->store) {
		struct mrtc_store_options so = {
			.redis_password = c->redis_password,
			.redis_sentinel_user = c->redis_sentinel_user,
			.redis_sentinel_password = c->redis_sentinel_password,
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
		err = mrtc_store_open(c->store, &so, &d->store);
		if (err != MRTC_OK)
			goto fail;
		err = MRTC_ERR_NOMEM;
		d->scan = event_new(s->base, -1, EV_PERSIST, on_scan, d);
		struct timeval tv = { .tv_sec = (time_t)(c->lease_ttl_ms / 3000),
				      .tv_usec =
					  (suseconds_t)((c->lease_ttl_ms / 3) % 1000) * 1000 };
		if (!d->scan || (d->store->shared && event_add(d->scan, &tv) != 0))
			goto fail;
		d->store->ops->each(d->store->self, resume_one, d);
		if (d->admitted) {
			/* The watch outlives a restart: its admitted set is in the store. */
			d->pending = calloc(WATCH_PENDING_MAX, sizeof(*d->pending));
			d->flush = event_new(s->base, -1, 0, on_flush, d);
			if (!d->pending || !d->flush)
				goto fail;
			d->store->ops->watch_each(d->store->self, mrtc_now_ms(), watch_resume, d);
		}
	}
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
	d->stopping = true;		  /* no new membership checks */
	if (d->scan)
		event_del(d->scan);
	if (d->watch)
		event_del(d->watch);
	if (d->flush) {
		event_del(d->flush);
		watch_flush(d);
	}
}

void mrtc_delayed_destroy(struct mrtc_delayed *d)
{
	if (!d)
		return;
	while (d->jobs)
		job_unlink_free(d->jobs); /* they stay in the store for the next start */
	if (d->scan)
		event_free(d->scan);
	if (d->watch)
		event_free(d->watch);
	if (d->flush) {
		event_free(d->flush);
		watch_flush(d);
	}
	free(d->pending);
	mrtc_cache_destroy(d->admitted);
	mrtc_store_close(d->store);
	free(d->batch);
	free(d);
}

const struct mrtc_store *mrtc_delayed_get_store(const struct mrtc_delayed *d)
{
	return d ? d->store : NULL;
}
