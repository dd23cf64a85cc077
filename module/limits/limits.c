/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate-limit decisions shared on Redis (GCRA in one Lua script per decision) with the local
 * token bucket as the fallback. The connection is a state machine on the loop: down (waiting
 * out a backoff), asking a sentinel for the master, probing the master (AUTH, SELECT, ROLE),
 * up. Only when up do decisions go to Redis; any timeout, error or disconnection drops the
 * connection, answers the decisions in flight locally and starts over after a backoff.
 */
#include "mrtc/limits/limits.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/core/metrics.h"

#define BACKOFF_START_MS 100
#define BACKOFF_CAP_MS 2000
#define KEY_MAX 600

/*
 * GCRA (the generic cell rate algorithm): one stored number per key, the theoretical arrival
 * time of the next request (TAT, microseconds of Redis's clock). A request at `now` passes if
 * TAT - now <= interval * (burst - 1): a full bucket of `burst` tokens passes at once, then one
 * token per interval. The key expires when the bucket would be full again.
 * KEYS[1] the bucket; ARGV[1] the interval in microseconds; ARGV[2] the burst.
 * Returns { 1, 0 } or { 0, milliseconds until the next token }.
 */
static const char GCRA[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
			   "local t = redis.call('TIME')\n"
			   "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
			   "local interval = tonumber(ARGV[1])\n"
			   "local tolerance = interval * (tonumber(ARGV[2]) - 1)\n"
			   "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
			   "if tat < now then tat = now end\n"
			   "local wait = tat - now - tolerance\n"
			   "if wait > 0 then return { 0, math.ceil(wait / 1000) } end\n"
			   "tat = tat + interval\n"
			   "redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',\n"
			   "           math.ceil((tat - now) / 1000) + 1)\n"
			   "return { 1, 0 }\n";

enum conn_state {
	CONN_DOWN,     /* no connection; retry_ev waits out the backoff */
	CONN_SENTINEL, /* asking a sentinel for the master */
	CONN_PROBING,  /* connected to the master: AUTH, SELECT, ROLE sent */
	CONN_UP,       /* decisions go to Redis */
	CONN_DISABLED, /* not shared: every decision is local */
};

struct mrtc_limits_take {
	struct mrtc_limits *l;
	struct mrtc_limits_take *prev, *next; /* l->takes */
	struct mrtc_ratelimit *local;
	mrtc_limits_cb cb;
	void *arg;
	struct event ev;    /* local: the deferred answer; shared: the decision's timeout */
	bool answered;	    /* the callback ran or was cancelled */
	bool reply_pending; /* hiredis holds this as privdata: it frees the handle */
	char key[];	    /* the local bucket's key, NUL-terminated */
};

struct mrtc_limits {
	struct event_base *base;
	struct mrtc_redis_spec spec;
	char password[MRTC_REDIS_SECRET_MAX]; /* "" for none; secrets wiped on destroy */
	char sentinel_user[128];
	char sentinel_password[MRTC_REDIS_SECRET_MAX];
	uint64_t timeout_ms;
	char prefix[64];
	enum conn_state state;
	redisAsyncContext *ac; /* NULL when down */
	struct event conn_ev;  /* the backoff or the step's timeout */
	uint64_t backoff_ms;
	size_t next_sentinel;
	bool outage; /* a warning was logged; the next success logs the recovery */
	struct mrtc_limits_take *takes;
	struct mrtc_limits_stats stats;
};

/* ---- decisions ---- */

static void unlink_take(struct mrtc_limits_take *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (t->l->takes == t)
		t->l->takes = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
}

/* Answers @t once (unless cancelled); frees it unless hiredis still holds it. */
static void answer(struct mrtc_limits_take *t, bool allowed, uint64_t retry_ms)
{
	if (t->answered)
		return;
	t->answered = true;
	event_del(&t->ev);
	unlink_take(t);
	mrtc_limits_cb cb = t->cb;
	void *arg = t->arg;
	if (!t->reply_pending)
		free(t);
	cb(arg, allowed, retry_ms);
}

static void answer_locally(struct mrtc_limits_take *t)
{
	if (t->answered)
		return;
	if (t->l->state != CONN_DISABLED)
		t->l->stats.fallbacks++;
	uint64_t retry = 0;
	bool ok = mrtc_ratelimit_take(t->local, t->key, mrtc_monotonic_ms(), &retry);
	answer(t, ok, retry);
}

static void deferred_local(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	answer_locally(arg);
}

/* ---- the connection ---- */

static void conn_start(struct mrtc_limits *l);

static void set_conn_timer(struct mrtc_limits *l, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
			      .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
	event_del(&l->conn_ev);
	event_add(&l->conn_ev, &tv);
}

/* Drops the connection: decisions in flight are answered locally (hiredis calls their
 * callbacks with no reply), and a new attempt follows after the backoff. */
static void conn_fail(struct mrtc_limits *l, const char *why)
{
	if (!l->outage) {
		l->outage = true;
		l->stats.outages++;
		mrtc_log(LOG_WARNING, "limits", NULL,
			 "shared rate limits: Redis unusable (%s); deciding with this daemon's "
			 "own buckets until it is back",
			 why);
	}
	redisAsyncContext *ac = l->ac;
	l->ac = NULL;
	l->state = CONN_DOWN;
	if (l->spec.sentinel)
		l->next_sentinel = (l->next_sentinel + 1) % l->spec.n_nodes;
	set_conn_timer(l, l->backoff_ms);
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : l->backoff_ms * 2;
	if (ac)
		redisAsyncFree(ac); /* deferred by hiredis when inside one of its callbacks */
}

/* The master answered ROLE: decisions go to it again. The outage ends (and the backoff is
 * reset) only with a decision answered, so that a script Redis refuses every time (an ACL
 * without TIME, say) stays one outage instead of flapping. */
static void conn_up(struct mrtc_limits *l)
{
	l->state = CONN_UP;
	event_del(&l->conn_ev);
}

static void decision_answered(struct mrtc_limits *l)
{
	l->backoff_ms = BACKOFF_START_MS;
	if (l->outage) {
		l->outage = false;
		mrtc_log(LOG_NOTICE, "limits", NULL, "shared rate limits: Redis is back");
	}
}

/* Whether a hiredis callback of @ac still concerns the current connection. */
static bool current(struct mrtc_limits *l, const redisAsyncContext *ac)
{
	return l->ac && ac == l->ac;
}

static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_limits *l = arg;
	switch (l->state) {
	case CONN_DOWN:
		conn_start(l);
		return;
	case CONN_SENTINEL:
		conn_fail(l, "no answer from the sentinel in time");
		return;
	case CONN_PROBING:
		conn_fail(l, "no answer from the master in time");
		return;
	case CONN_UP:
	case CONN_DISABLED:
		return;
	}
}

static bool reply_is_error(const redisReply *r)
{
	return !r || r->type == REDIS_REPLY_ERROR;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct mrtc_limits *l = ac->data;
	if (status != REDIS_OK && current(l, ac)) {
		l->ac = NULL; /* hiredis frees it after this callback */
		conn_fail(l, "cannot connect");
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)status;
	struct mrtc_limits *l = ac->data;
	if (current(l, ac)) {
		l->ac = NULL; /* hiredis frees it after this callback */
		conn_fail(l, "connection lost");
	}
}

static redisAsyncContext *connect_to(struct mrtc_limits *l, const char *host, int port)
{
	/* Hosts are addresses or names resolved here; Sentinel answers with addresses. */
	redisAsyncContext *ac = redisAsyncConnect(host, port);
	if (!ac)
		return NULL;
	if (ac->err) {
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = l;
	if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
		redisAsyncFree(ac);
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return ac;
}

static void on_step(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mrtc_limits *l = privdata;
	if (current(l, ac) && reply_is_error(reply))
		conn_fail(l, reply ? "the master refused the credentials or the database"
				   : "connection lost");
}

static void on_role(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mrtc_limits *l = privdata;
	if (!current(l, ac))
		return;
	const redisReply *r = reply;
	if (reply_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "master") != 0) {
		conn_fail(l, r && r->type == REDIS_REPLY_ARRAY ? "not a master" : "ROLE failed");
		return;
	}
	conn_up(l);
}

/* Connects to @host for the step @state, with its timeout, and sends AUTH if @password is
 * set; false (after conn_fail) if that failed already. */
static bool connect_step(struct mrtc_limits *l, enum conn_state state, const char *host, int port,
			 const char *user, const char *password)
{
	l->ac = connect_to(l, host, port);
	if (!l->ac) {
		conn_fail(l, state == CONN_SENTINEL ? "cannot connect to the sentinel"
						    : "cannot connect");
		return false;
	}
	l->state = state;
	set_conn_timer(l, l->timeout_ms);
	int rc = REDIS_OK;
	if (password[0] && user[0])
		rc = redisAsyncCommand(l->ac, on_step, l, "AUTH %s %s", user, password);
	else if (password[0])
		rc = redisAsyncCommand(l->ac, on_step, l, "AUTH %s", password);
	if (rc != REDIS_OK) {
		conn_fail(l, "cannot send AUTH");
		return false;
	}
	return true;
}

static void probe_master(struct mrtc_limits *l, const char *host, int port)
{
	if (!connect_step(l, CONN_PROBING, host, port, l->spec.user, l->password))
		return;
	int rc = REDIS_OK;
	if (l->spec.db)
		rc = redisAsyncCommand(l->ac, on_step, l, "SELECT %d", l->spec.db);
	if (rc == REDIS_OK)
		rc = redisAsyncCommand(l->ac, on_role, l, "ROLE");
	if (rc != REDIS_OK)
		conn_fail(l, "cannot send to the master");
}

static void on_master_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mrtc_limits *l = privdata;
	if (!current(l, ac))
		return;
	const redisReply *r = reply;
	char host[256];
	uint64_t port = 0;
	if (reply_is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    !mrtc_copy(host, sizeof(host), r->element[0]->str) ||
	    !mrtc_parse_u64(r->element[1]->str, 1, 65535, &port)) {
		conn_fail(l, "the sentinel names no master");
		return;
	}
	redisAsyncContext *sentinel = l->ac;
	l->ac = NULL;
	redisAsyncFree(sentinel); /* deferred: we are inside its callback */
	probe_master(l, host, (int)port);
}

static void ask_sentinel(struct mrtc_limits *l)
{
	const struct mrtc_redis_node *n = &l->spec.nodes[l->next_sentinel % l->spec.n_nodes];
	if (!connect_step(l, CONN_SENTINEL, n->host, n->port, l->sentinel_user,
			  l->sentinel_password))
		return;
	if (redisAsyncCommand(l->ac, on_master_addr, l, "SENTINEL get-master-addr-by-name %s",
			      l->spec.master) != REDIS_OK)
		conn_fail(l, "cannot send to the sentinel");
}

static void conn_start(struct mrtc_limits *l)
{
	if (l->spec.sentinel)
		ask_sentinel(l);
	else
		probe_master(l, l->spec.nodes[0].host, l->spec.nodes[0].port);
}

/* ---- shared decisions ---- */

static void on_decision(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mrtc_limits_take *t = privdata;
	struct mrtc_limits *l = t->l;
	t->reply_pending = false;
	if (t->answered) {
		free(t);
		return;
	}
	const redisReply *r = reply;
	if (!r) {
		answer_locally(t); /* the connection is going: conn_fail() was called */
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_INTEGER || r->element[1]->integer < 0) {
		/* Redis's own words (NOPERM, READONLY, ...): no secret in them. */
		char why[160] = "unexpected script answer";
		if (r->type == REDIS_REPLY_ERROR && r->str) {
			char quoted[128];
			mrtc_quote(quoted, sizeof(quoted), r->str, 100);
			mrtc_format_shown(why, sizeof(why), "the script failed: %s", quoted);
		}
		answer_locally(t);
		if (current(l, ac))
			conn_fail(l, why);
		return;
	}
	decision_answered(l);
	bool ok = r->element[0]->integer == 1;
	if (ok)
		l->stats.shared_allowed++;
	else
		l->stats.shared_refused++;
	answer(t, ok, (uint64_t)r->element[1]->integer);
}

static void decision_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_limits_take *t = arg;
	struct mrtc_limits *l = t->l;
	answer_locally(t); /* t stays allocated: hiredis still holds it */
	if (l->state == CONN_UP)
		conn_fail(l, "a decision took longer than its timeout");
}

static bool send_decision(struct mrtc_limits_take *t, const char *scope, const char *key)
{
	struct mrtc_limits *l = t->l;
	uint64_t per_second, burst;
	mrtc_ratelimit_get_params(t->local, &per_second, &burst);
	uint64_t interval_us = per_second < 1000000 ? 1000000 / per_second : 1;
	char name[KEY_MAX], interval[24], burst_s[24];
	if (!mrtc_format(name, sizeof(name), "%s%s:%s", l->prefix, scope, key) ||
	    !mrtc_format(interval, sizeof(interval), "%llu", (unsigned long long)interval_us) ||
	    !mrtc_format(burst_s, sizeof(burst_s), "%llu", (unsigned long long)burst))
		return false;
	const char *argv[] = { "EVAL", GCRA, "1", name, interval, burst_s };
	size_t lens[6];
	for (size_t i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	event_assign(&t->ev, l->base, -1, 0, decision_timeout, t);
	if (redisAsyncCommandArgv(l->ac, on_decision, t, 6, argv, lens) != REDIS_OK)
		return false;
	t->reply_pending = true;
	struct timeval tv = { .tv_sec = (time_t)(l->timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(l->timeout_ms % 1000) * 1000 };
	event_add(&t->ev, &tv);
	return true;
}

struct mrtc_limits_take *mrtc_limits_take(struct mrtc_limits *l, struct mrtc_ratelimit *local,
					  const char *scope, const char *key, mrtc_limits_cb cb,
					  void *arg)
{
	size_t len = strlen(key);
	struct mrtc_limits_take *t = calloc(1, sizeof(*t) + len + 1);
	if (!t)
		return NULL;
	memcpy(t->key, key, len + 1);
	t->l = l;
	t->local = local;
	t->cb = cb;
	t->arg = arg;
	t->next = l->takes;
	if (l->takes)
		l->takes->prev = t;
	l->takes = t;
	if (l->state == CONN_UP && send_decision(t, scope, key))
		return t;
	/* Local: answered on the next turn of the loop. */
	event_assign(&t->ev, l->base, -1, 0, deferred_local, t);
	event_active(&t->ev, 0, 0);
	return t;
}

void mrtc_limits_take_cancel(struct mrtc_limits_take *t)
{
	if (!t || t->answered)
		return;
	t->answered = true;
	event_del(&t->ev);
	unlink_take(t);
	if (!t->reply_pending)
		free(t);
	/* else the reply (or the connection's end) frees it; the command itself is one short
	 * script already on its way and cannot be taken back. */
}

/* ---- lifetime, statistics ---- */

enum mrtc_err mrtc_limits_create(const struct mrtc_limits_config *c, struct mrtc_limits **ret)
{
	struct mrtc_limits *l = calloc(1, sizeof(*l));
	if (!l)
		return MRTC_ERR_NOMEM;
	l->base = c->base;
	l->timeout_ms = c->timeout_ms ? c->timeout_ms : MRTC_LIMITS_TIMEOUT_MS;
	l->backoff_ms = BACKOFF_START_MS;
	l->state = CONN_DISABLED;
	event_assign(&l->conn_ev, c->base, -1, 0, conn_timeout, l);
	if (!mrtc_copy(l->prefix, sizeof(l->prefix), c->key_prefix ? c->key_prefix : "mrtc:rl:")) {
		mrtc_limits_destroy(l);
		return MRTC_ERR_INVALID_PARAM;
	}
	if (c->redis) {
		l->spec = *c->redis;
		const char *pw = c->password		  ? c->password
				 : c->redis->has_password ? c->redis->password
							  : NULL;
		sodium_memzero(l->spec.password, sizeof(l->spec.password));
		if (!mrtc_copy(l->password, sizeof(l->password), pw ? pw : "") ||
		    !mrtc_copy(l->sentinel_user, sizeof(l->sentinel_user),
			       c->sentinel_user ? c->sentinel_user : "") ||
		    !mrtc_copy(l->sentinel_password, sizeof(l->sentinel_password),
			       c->sentinel_password ? c->sentinel_password : "")) {
			mrtc_limits_destroy(l);
			return MRTC_ERR_INVALID_PARAM;
		}
		l->stats.shared = true;
		l->state = CONN_DOWN;
		conn_start(l);
	}
	*ret = l;
	return MRTC_OK;
}

enum mrtc_err mrtc_limits_create_from_config(struct event_base *base, const struct mrtc_config *cfg,
					     struct mrtc_limits **ret)
{
	struct mrtc_limits_config lc = { .base = base };
	struct mrtc_redis_spec *spec = NULL;
	if (cfg->rate_limit_shared) {
		spec = calloc(1, sizeof(*spec));
		if (!spec)
			return MRTC_ERR_NOMEM;
		/* Validated at start: MRTC_RATE_LIMIT_SHARED=true needs a Redis MRTC_STORE. */
		if (!cfg->store || !mrtc_redis_spec_parse(cfg->store, spec)) {
			free(spec);
			return MRTC_ERR_INVALID_PARAM;
		}
		lc.redis = spec;
		lc.password = cfg->redis_password;
		lc.sentinel_user = cfg->redis_sentinel_user;
		lc.sentinel_password = cfg->redis_sentinel_password;
	}
	enum mrtc_err err = mrtc_limits_create(&lc, ret);
	if (spec) {
		mrtc_redis_spec_wipe(spec);
		free(spec);
	}
	return err;
}

void mrtc_limits_destroy(struct mrtc_limits *l)
{
	if (!l)
		return;
	event_del(&l->conn_ev);
	/* Outstanding decisions end without a callback. */
	while (l->takes)
		mrtc_limits_take_cancel(l->takes);
	redisAsyncContext *ac = l->ac;
	l->ac = NULL;
	l->state = CONN_DISABLED;
	if (ac)
		redisAsyncFree(ac);    /* frees the cancelled handles it still held */
	sodium_memzero(l, sizeof(*l)); /* the credentials */
	free(l);
}

void mrtc_limits_get_stats(const struct mrtc_limits *l, struct mrtc_limits_stats *ret)
{
	*ret = l->stats;
	ret->up = l->state == CONN_UP;
}

void mrtc_limits_write_metrics(const struct mrtc_limits *l, struct mrtc_buf *b)
{
	struct mrtc_limits_stats st;
	mrtc_limits_get_stats(l, &st);
	mrtc_buf_puts(b, "# HELP mrtc_rate_limit_decisions_total Rate-limit decisions, by where "
			 "they were made (shared: Redis; fallback: this daemon's buckets while "
			 "Redis was unusable; local: not shared).\n"
			 "# TYPE mrtc_rate_limit_decisions_total counter\n");
	mrtc_buf_printf(
	    b,
	    "mrtc_rate_limit_decisions_total{where=\"shared\",result=\"allowed\"} %llu\n"
	    "mrtc_rate_limit_decisions_total{where=\"shared\",result=\"refused\"} %llu\n"
	    "mrtc_rate_limit_decisions_total{where=\"fallback\",result=\"any\"} %llu\n",
	    (unsigned long long)st.shared_allowed, (unsigned long long)st.shared_refused,
	    (unsigned long long)st.fallbacks);
	mrtc_metrics_write_one(b, "mrtc_rate_limit_shared_outages_total", "counter",
			       "Times the shared rate limits' Redis became unusable.", NULL,
			       (double)st.outages);
	mrtc_metrics_write_one(b, "mrtc_rate_limit_shared_up", "gauge",
			       "Whether rate-limit decisions go to Redis now (0 when not shared).",
			       NULL, st.up ? 1 : 0);
}
