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
#define WATCH_PER_ROUND 2000
#define HS_RESPONSE_MAX (256 * 1024)
#define WATCH_KEY_MAX (2 * MRTC_LIVEKIT_NAME_MAX + 2)
#define FORM_MEMO_MAX 64
#define N_FORMS 4 /* (unstable, stable path) x (action in the path, action in the body) */

static const char *const de_paths[2] = {
	"/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
	"/_matrix/client/v1/delayed_events",
};

struct job {
	struct mrtc_delayed *d;
	struct mrtc_job_record rec;
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
	char room_id[256];
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_NAME_MAX + 1];
	char user_id[256];
	bool checking;
};

/* The admitted cache's value, sized to its content (one allocation with its cache entry):
 * "room_id\0room_name\0identity\0user_id\0" after the flag. */
struct watched_entry {
	bool checking;
	char text[];
};

static void watched_unpack(const struct watched_entry *e, struct watched *w)
{
	char *fields[] = { w->room_id, w->room_name, w->identity, w->user_id };
	size_t sizes[] = { sizeof(w->room_id), sizeof(w->room_name), sizeof(w->identity),
			   sizeof(w->user_id) };
	const char *p = e->text;
	for (size_t i = 0; i < 4; i++) {
		size_t n = strlen(p), keep = n < sizes[i] ? n : sizes[i] - 1; /* packed to fit */
		memcpy(fields[i], p, keep);
		fields[i][keep] = '\0';
		p += n + 1;
	}
	w->checking = e->checking;
}

struct mrtc_delayed {
	struct mrtc_services *s;
	struct mrtc_store *store;
	struct job *jobs;
	size_t n_jobs;
	char owner[33];
	struct event *scan;  /* shared store: take over jobs whose lease ran out */
	struct event *watch; /* membership re-checks */
	struct mrtc_cache *admitted;
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
	snprintf(d->memo[i].url, sizeof(d->memo[i].url), "%s", url);
	d->memo[i].form = form;
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
		snprintf(j->last_errcode, sizeof(j->last_errcode), "%s",
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
			snprintf(why, sizeof(why), "%s (HTTP 404 %s to %s)",
				 sending ? "leave event already sent" : "delayed event gone",
				 j->last_errcode, sending ? "send" : "restart");
		else if (gone)
			snprintf(why, sizeof(why),
				 "%s (HTTP 404 to %s; no other management form knows it)",
				 sending ? "leave event already sent" : "delayed event gone",
				 sending ? "send" : "restart");
		else
			snprintf(why, sizeof(why),
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
	int n = id && (!as_user || user)
		    ? snprintf(url, sizeof(url), "%s%s/%s%s%s%s%s", j->rec.cs_api_url,
			       de_paths[j->form / 2], id, in_body ? "" : "/", in_body ? "" : action,
			       as_user ? "?user_id=" : "", as_user ? user : "")
		    : -1;
	if (id) {
		sodium_memzero(id, strlen(id));
		free(id);
	}
	free(user);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		backoff(j);
		return;
	}
	if (as_user) {
		size_t al = strlen(c->appservice_token) + 8;
		auth = malloc(al);
		if (!auth) {
			backoff(j);
			return;
		}
		snprintf(auth, al, "Bearer %s", c->appservice_token);
	}
	if (in_body)
		snprintf(body, sizeof(body), "{\"action\":\"%s\"}", action);
	else
		snprintf(body, sizeof(body), "{}");
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
		backoff(j);
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
		j->rs = mrtc_roomservice_get_participant(d->s->rooms, j->rec.room_name,
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
};

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
	struct watched_entry *w =
	    mrtc_cache_get(c->d->admitted, c->key, strlen(c->key), mrtc_monotonic_ms());
	if (w)
		w->checking = false;
	if (err != MRTC_OK || m->user_joined) {
		free(c);
		return;
	}
	mrtc_cache_remove(c->d->admitted, c->key, strlen(c->key));
	if (!mrtc_roomservice_remove_participant(c->d->s->rooms, c->w.room_name, c->w.identity,
						 on_removed, c))
		free(c);
}

static void check_one(struct mrtc_delayed *d, const char *key, struct watched_entry *w)
{
	if (w->checking)
		return;
	struct recheck *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->d = d;
	snprintf(c->key, sizeof(c->key), "%s", key);
	watched_unpack(w, &c->w);
	const char *server = mrtc_user_id_server(c->w.user_id);
	w->checking = true;
	if (!server || !mrtc_hs_remote_membership(d->s->homeserver, c->w.room_id, c->w.user_id,
						  server, on_membership, c)) {
		w->checking = false;
		free(c);
	}
}

struct round {
	struct mrtc_delayed *d;
	size_t n;
	char (*keys)[WATCH_KEY_MAX];
};

static void collect(void *ctx, const void *key, size_t len, void *value)
{
	(void)value;
	struct round *r = ctx;
	if (r->n < WATCH_PER_ROUND && len < sizeof(r->keys[0])) {
		memcpy(r->keys[r->n], key, len);
		r->keys[r->n][len] = '\0';
		r->n++;
	}
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_delayed *d = arg;
	struct round r = { .d = d, .keys = calloc(WATCH_PER_ROUND, sizeof(*r.keys)) };
	if (!r.keys)
		return;
	uint64_t now = mrtc_monotonic_ms();
	mrtc_cache_foreach(d->admitted, now, collect, &r);
	for (size_t i = 0; i < r.n; i++) {
		struct watched_entry *w =
		    mrtc_cache_get(d->admitted, r.keys[i], strlen(r.keys[i]), now);
		if (w)
			check_one(d, r.keys[i], w);
	}
	free(r.keys);
}

static void watch_key(char *out, size_t size, const char *room_name, const char *identity)
{
	snprintf(out, size, "%s|%s", room_name, identity);
}

void mrtc_delayed_admitted(struct mrtc_delayed *d, const char *room_id, const char *room_name,
			   const char *identity, const char *user_id, uint64_t ttl_s)
{
	if (!d || !d->admitted)
		return;
	char key[WATCH_KEY_MAX];
	watch_key(key, sizeof(key), room_name, identity);
	uint64_t now = mrtc_monotonic_ms();
	/* The same participant again (its key names the room and the user): a longer watch. */
	if (mrtc_cache_refresh(d->admitted, key, strlen(key), now, now + ttl_s * 1000))
		return;
	const struct watched *shape = NULL; /* for sizeof only */
	const char *fields[] = { room_id, room_name, identity, user_id };
	size_t caps[] = { sizeof(shape->room_id), sizeof(shape->room_name), sizeof(shape->identity),
			  sizeof(shape->user_id) };
	char packed[sizeof(struct watched_entry) + sizeof(struct watched)];
	size_t n = sizeof(struct watched_entry);
	for (size_t i = 0; i < 4; i++) {
		size_t len = strlen(fields[i]);
		if (len >= caps[i])
			return; /* validated before minting: cannot happen */
		memcpy(packed + n, fields[i], len + 1);
		n += len + 1;
	}
	((struct watched_entry *)packed)->checking = false;
	mrtc_cache_put_copy(d->admitted, key, strlen(key), packed, n, now + ttl_s * 1000);
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
	struct mrtc_livekit_creds creds = { s->config->livekit_key, s->config->livekit_secret };
	struct mrtc_webhook hook;
	enum mrtc_err err =
	    auth ? mrtc_livekit_webhook_verify(&creds, auth, body, len, mrtc_now_ms() / 1000, &hook)
		 : MRTC_ERR_AUTH_MISSING;
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
			if (strcmp(j->rec.room_name, hook.room) != 0)
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
		if (hook.event == MRTC_WEBHOOK_PARTICIPANT_JOINED && d->admitted) {
			char key[WATCH_KEY_MAX];
			watch_key(key, sizeof(key), hook.room, hook.identity);
			struct watched_entry *w =
			    mrtc_cache_get(d->admitted, key, strlen(key), mrtc_monotonic_ms());
			if (w)
				check_one(d, key, w);
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
	int path;
	bool single; /* trying GET …/delayed_events/{delay_id} before the list */
	struct mrtc_hs_op *hs_op;
	struct mrtc_http_call *http;
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
	snprintf(rec.user_id, sizeof(rec.user_id), "%s", g->who.user_id);
	snprintf(rec.room_id, sizeof(rec.room_id), "%s", g->f.room_id);
	snprintf(rec.delay_id, sizeof(rec.delay_id), "%s", g->delay_id);
	snprintf(rec.cs_api_url, sizeof(rec.cs_api_url), "%s", c->homeserver_url);
	enum mrtc_err err = mrtc_delayed_start_job(d, &rec);
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
	int n = g->single && !id
		    ? -1
		    : snprintf(url, sizeof(url), "%s%s%s%s", g->s->config->homeserver_url,
			       de_paths[g->path], g->single ? "/" : "", g->single ? id : "");
	if (id) {
		sodium_memzero(id, strlen(id));
		free(id);
	}
	if (n < 0 || (size_t)n >= sizeof(url)) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "`delay_id` is too long");
		return;
	}
	/* Application-service mode has no user token: the as_token acting as the user. */
	const char *token = g->token ? g->token : g->s->config->appservice_token;
	if (!g->token) {
		char *user = evhttp_uriencode(g->who.user_id, -1, 0);
		int m = user ? snprintf(url + n, sizeof(url) - (size_t)n, "?user_id=%s", user) : -1;
		free(user);
		if (m < 0 || (size_t)m >= sizeof(url) - (size_t)n) {
			sodium_memzero(url, sizeof(url));
			dl_fail(g, MRTC_ERR_INVALID_PARAM, "`delay_id` is too long");
			return;
		}
	}
	size_t al = strlen(token) + 8;
	char *auth = malloc(al);
	if (!auth) {
		sodium_memzero(url, sizeof(url));
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	snprintf(auth, al, "Bearer %s", token);
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
		snprintf(g->delay_id, sizeof(g->delay_id), "%s", json_object_get_string(dv));
	}
	json_object_put(doc);
	if (err != MRTC_OK) {
		dl_fail(g, err, msg);
		return;
	}
	if ((g->f.server_name[0] && strcmp(g->f.server_name, c->server_name) != 0) ||
	    !mrtc_sfu_url_matches(g->f.url, c->livekit_url)) {
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
	snprintf(g->device, sizeof(g->device), "%s",
		 g->f.claimed_device_id[0] ? g->f.claimed_device_id : who->device_id);
	uint64_t retry;
	if (!mrtc_ratelimit_take(g->s->user_limit, who->user_id, mrtc_monotonic_ms(), &retry)) {
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
		d->admitted = mrtc_cache_create(WATCH_MAX, NULL); /* entries hold their values */
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
	if (d->scan)
		event_del(d->scan);
	if (d->watch)
		event_del(d->watch);
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
	mrtc_cache_destroy(d->admitted);
	mrtc_store_close(d->store);
	free(d);
}

const struct mrtc_store *mrtc_delayed_get_store(const struct mrtc_delayed *d)
{
	return d ? d->store : NULL;
}
