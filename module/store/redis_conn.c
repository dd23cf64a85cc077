/* SPDX-License-Identifier: Apache-2.0 */
/* The Redis connection of the shared store: spec, credentials, Sentinel discovery, backoff. */
#include "mrtc/store/redis_conn.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "mrtc/core/log.h"
#include "mrtc/base/util.h"

#define BACKOFF_START_MS 100
#define BACKOFF_CAP_MS 2000
#define ROLE_RECHECK_MS 1000 /* Sentinel: how often the master in use is checked again */

/* ---- the connection ---- */

struct mrtc_redis {
	struct mrtc_redis_spec spec;
	char *password; /* NULL: none */
	char *sentinel_user, *sentinel_password;
	uint64_t timeout_ms;
	redisContext *c;
	struct mrtc_redis_node master; /* the node connected to, or last found */
	size_t next_sentinel;
	uint64_t next_attempt_ms, backoff_ms, verified_ms;
	enum mrtc_redis_state state;
	char detail[128];
	char logged[128]; /* the last failure logged, to log each once */
	bool was_connected;
};

const char *mrtc_redis_state_str(enum mrtc_redis_state state)
{
	switch (state) {
	case MRTC_REDIS_CONNECTING:
		return "connecting";
	case MRTC_REDIS_CONNECTED:
		return "connected";
	case MRTC_REDIS_UNREACHABLE:
		return "unreachable";
	case MRTC_REDIS_AUTH_REFUSED:
		return "credentials refused";
	case MRTC_REDIS_NO_MASTER:
		return "no master";
	}
	return "unknown";
}

static char *dup_or_null(const char *s)
{
	return s && s[0] ? strdup(s) : NULL;
}

static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

struct mrtc_redis *mrtc_redis_create(const struct mrtc_redis_spec *spec,
				     const struct mrtc_redis_options *opts)
{
	struct mrtc_redis *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->spec = *spec;
	const char *pw = opts->password	      ? opts->password
			 : spec->has_password ? spec->password
					      : NULL;
	r->password = dup_or_null(pw);
	r->sentinel_user = dup_or_null(opts->sentinel_user);
	r->sentinel_password = dup_or_null(opts->sentinel_password);
	sodium_memzero(r->spec.password, sizeof(r->spec.password));
	r->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 250;
	r->backoff_ms = BACKOFF_START_MS;
	r->state = MRTC_REDIS_CONNECTING;
	r->master = spec->sentinel ? (struct mrtc_redis_node){ .port = 0 } : spec->nodes[0];
	if ((pw && !r->password) || (opts->sentinel_user && !r->sentinel_user) ||
	    (opts->sentinel_password && !r->sentinel_password)) {
		mrtc_redis_destroy(r);
		return NULL;
	}
	return r;
}

void mrtc_redis_destroy(struct mrtc_redis *r)
{
	if (!r)
		return;
	if (r->c)
		redisFree(r->c);
	free_secret(r->password);
	free_secret(r->sentinel_password);
	free(r->sentinel_user);
	free(r);
}

static struct timeval remaining(uint64_t deadline_ms)
{
	uint64_t now = mrtc_monotonic_ms();
	uint64_t left = deadline_ms > now ? deadline_ms - now : 1;
	return (struct timeval){ .tv_sec = (time_t)(left / 1000),
				 .tv_usec = (suseconds_t)(left % 1000) * 1000 };
}

/* Why a step failed, for the status and the log: never a secret. */
struct failure {
	enum mrtc_redis_state state;
	char detail[128];
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
fail(struct failure *f, enum mrtc_redis_state state, const char *fmt, ...);

static void fail(struct failure *f, enum mrtc_redis_state state, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char text[sizeof(f->detail)];
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* Only shown: a cut is marked, as mrtc_format_shown() does. */
	mrtc_format_shown(f->detail, sizeof(f->detail), "%s%s", n < 0 ? "" : text,
			  n >= 0 && (size_t)n >= sizeof(text) ? "..." : "");
	f->state = state;
}

/* The first word of an error reply (WRONGPASS, NOPERM, READONLY...): Redis's text after it
 * is harmless, but the code is all a log needs. */
static void error_code(const redisReply *rep, char *out, size_t size)
{
	size_t n = rep->str ? strcspn(rep->str, " \r\n") : 0;
	if (n > 32)
		n = 32;
	mrtc_format_shown(out, size, "%.*s", (int)n, rep->str ? rep->str : "");
}

static redisContext *open_node(const struct mrtc_redis_node *node, uint64_t deadline,
			       const char *what, struct failure *f)
{
	redisContext *c = redisConnectWithTimeout(node->host, node->port, remaining(deadline));
	if (!c || c->err) {
		fail(f, MRTC_REDIS_UNREACHABLE, "%s %s:%d: %s", what, node->host, node->port,
		     c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	return c;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static redisReply *
call(redisContext *c, uint64_t deadline, const char *fmt, ...);

/* One command within the attempt's budget. */
static redisReply *call(redisContext *c, uint64_t deadline, const char *fmt, ...)
{
	if (redisSetTimeout(c, remaining(deadline)) != REDIS_OK)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	return rep;
}

static bool is_auth_error(const char *code)
{
	return strcmp(code, "WRONGPASS") == 0 || strcmp(code, "NOAUTH") == 0;
}

/* AUTH (when there is a password), then PING: proves the credentials either way. */
static bool authenticate(redisContext *c, const char *user, const char *password, uint64_t deadline,
			 const char *what, const struct mrtc_redis_node *node, struct failure *f)
{
	redisReply *rep = NULL;
	if (password)
		rep = user && user[0] ? call(c, deadline, "AUTH %s %s", user, password)
				      : call(c, deadline, "AUTH %s", password);
	else
		rep = call(c, deadline, "PING");
	if (!rep) {
		fail(f, MRTC_REDIS_UNREACHABLE, "%s %s:%d: %s", what, node->host, node->port,
		     c->errstr[0] ? c->errstr : "no answer");
		return false;
	}
	bool ok = rep->type != REDIS_REPLY_ERROR;
	if (!ok) {
		char code[40];
		error_code(rep, code, sizeof(code));
		/* Any error to AUTH (WRONGPASS; ERR when no password is set) or to the PING
		 * (NOAUTH) is a refusal of what we were configured with. */
		fail(f, MRTC_REDIS_AUTH_REFUSED, "%s %s:%d refused the credentials (%s)", what,
		     node->host, node->port, code);
	}
	freeReplyObject(rep);
	return ok;
}

/* ROLE: true if the node says it is a master. A user without the right to ask is believed. */
static bool is_master(redisContext *c, uint64_t deadline, const struct mrtc_redis_node *node,
		      struct failure *f)
{
	redisReply *rep = call(c, deadline, "ROLE");
	if (!rep) {
		fail(f, MRTC_REDIS_UNREACHABLE, "master %s:%d: %s", node->host, node->port,
		     c->errstr[0] ? c->errstr : "no answer");
		return false;
	}
	bool ok;
	if (rep->type == REDIS_REPLY_ERROR) {
		char code[40];
		error_code(rep, code, sizeof(code));
		ok = strcmp(code, "NOPERM") == 0;
		if (!ok)
			fail(f, MRTC_REDIS_UNREACHABLE, "master %s:%d answered ROLE with %s",
			     node->host, node->port, code);
	} else {
		ok = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
		     rep->element[0]->type == REDIS_REPLY_STRING &&
		     strcmp(rep->element[0]->str, "master") == 0;
		if (!ok)
			fail(f, MRTC_REDIS_NO_MASTER, "%s:%d is not a master (%s)", node->host,
			     node->port,
			     rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
				     rep->element[0]->str
				 ? rep->element[0]->str
				 : "no role");
	}
	freeReplyObject(rep);
	return ok;
}

/* Asks one sentinel for the master's address. */
static bool ask_sentinel(struct mrtc_redis *r, const struct mrtc_redis_node *sentinel,
			 uint64_t deadline, struct mrtc_redis_node *ret, struct failure *f)
{
	redisContext *c = open_node(sentinel, deadline, "sentinel", f);
	if (!c)
		return false;
	bool ok = false;
	if (!r->sentinel_password || authenticate(c, r->sentinel_user, r->sentinel_password,
						  deadline, "sentinel", sentinel, f)) {
		redisReply *rep =
		    call(c, deadline, "SENTINEL get-master-addr-by-name %s", r->spec.master);
		if (!rep) {
			fail(f, MRTC_REDIS_UNREACHABLE, "sentinel %s:%d: %s", sentinel->host,
			     sentinel->port, c->errstr[0] ? c->errstr : "no answer");
		} else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
			   rep->element[0]->type == REDIS_REPLY_STRING &&
			   rep->element[1]->type == REDIS_REPLY_STRING) {
			uint64_t port;
			ok = mrtc_parse_u64(rep->element[1]->str, 1, 65535, &port) &&
			     mrtc_copy(ret->host, sizeof(ret->host), rep->element[0]->str);
			if (ok) {
				ret->port = (int)port;
			} else {
				fail(f, MRTC_REDIS_NO_MASTER, "sentinel %s:%d gave a bad address",
				     sentinel->host, sentinel->port);
			}
		} else {
			char code[40] = "no such master";
			if (rep->type == REDIS_REPLY_ERROR)
				error_code(rep, code, sizeof(code));
			fail(f,
			     rep->type == REDIS_REPLY_ERROR && is_auth_error(code)
				 ? MRTC_REDIS_AUTH_REFUSED
				 : MRTC_REDIS_NO_MASTER,
			     "sentinel %s:%d knows no master '%s' (%s)", sentinel->host,
			     sentinel->port, r->spec.master, code);
		}
		if (rep)
			freeReplyObject(rep);
	}
	redisFree(c);
	return ok;
}

/* Connects to @node as the data server: AUTH, ROLE (Sentinel), SELECT. */
static redisContext *open_server(struct mrtc_redis *r, const struct mrtc_redis_node *node,
				 uint64_t deadline, struct failure *f)
{
	const char *what = r->spec.sentinel ? "master" : "server";
	redisContext *c = open_node(node, deadline, what, f);
	if (!c)
		return NULL;
	if (!authenticate(c, r->spec.user, r->password, deadline, what, node, f) ||
	    (r->spec.sentinel && !is_master(c, deadline, node, f)))
		goto fail;
	if (r->spec.db) {
		redisReply *rep = call(c, deadline, "SELECT %d", r->spec.db);
		bool ok = rep && rep->type == REDIS_REPLY_STATUS;
		if (!ok)
			fail(f, MRTC_REDIS_UNREACHABLE, "%s %s:%d: SELECT %d failed", what,
			     node->host, node->port, r->spec.db);
		if (rep)
			freeReplyObject(rep);
		if (!ok)
			goto fail;
	}
	return c;
fail:
	redisFree(c);
	return NULL;
}

static void drop(struct mrtc_redis *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

/* The attempt failed: remember why, log it once, back off. */
static void failed(struct mrtc_redis *r, const struct failure *f)
{
	drop(r);
	r->state = f->state;
	mrtc_format_shown(r->detail, sizeof(r->detail), "%s", f->detail);
	uint64_t now = mrtc_monotonic_ms();
	r->next_attempt_ms = now + r->backoff_ms;
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : r->backoff_ms * 2;
	if (strcmp(r->logged, f->detail) != 0) {
		mrtc_format_shown(r->logged, sizeof(r->logged), "%s", f->detail);
		if (f->state == MRTC_REDIS_AUTH_REFUSED)
			mrtc_log(LOG_ERR, "store", NULL,
				 "Redis: %s: check the user and password of MRTC_STORE, "
				 "MRTC_REDIS_PASSWORD and MRTC_REDIS_SENTINEL_PASSWORD",
				 f->detail);
		else
			mrtc_log(LOG_WARNING, "store", NULL, "Redis %s: %s; retrying with backoff",
				 mrtc_redis_state_str(f->state), f->detail);
	}
}

static void connected(struct mrtc_redis *r, const struct mrtc_redis_node *node)
{
	bool moved = strcmp(r->master.host, node->host) != 0 || r->master.port != node->port;
	if (!r->was_connected || r->state != MRTC_REDIS_CONNECTED || moved) {
		if (r->spec.sentinel)
			mrtc_log(LOG_INFO, "store", NULL,
				 "Redis: connected to master '%s' at %s:%d (from Sentinel)",
				 r->spec.master, node->host, node->port);
		else
			mrtc_log(LOG_INFO, "store", NULL, "Redis: connected to %s:%d", node->host,
				 node->port);
	}
	r->master = *node;
	r->state = MRTC_REDIS_CONNECTED;
	r->detail[0] = r->logged[0] = '\0';
	r->backoff_ms = BACKOFF_START_MS;
	r->verified_ms = mrtc_monotonic_ms();
	r->was_connected = true;
}

bool mrtc_redis_connect(struct mrtc_redis *r)
{
	if (r->c)
		return true;
	uint64_t now = mrtc_monotonic_ms();
	if (now < r->next_attempt_ms)
		return false;
	uint64_t deadline = now + r->timeout_ms;
	struct failure f = { .state = MRTC_REDIS_UNREACHABLE };
	if (!r->spec.sentinel) {
		r->c = open_server(r, &r->spec.nodes[0], deadline, &f);
		if (r->c)
			connected(r, &r->spec.nodes[0]);
		else
			failed(r, &f);
		return r->c != NULL;
	}
	/* Sentinels in turn, from the one that last answered, within the one budget. */
	for (size_t i = 0; i < r->spec.n_nodes && mrtc_monotonic_ms() < deadline; i++) {
		size_t idx = (r->next_sentinel + i) % r->spec.n_nodes;
		struct mrtc_redis_node master;
		if (!ask_sentinel(r, &r->spec.nodes[idx], deadline, &master, &f))
			continue;
		r->c = open_server(r, &master, deadline, &f);
		if (r->c) {
			r->next_sentinel = idx;
			connected(r, &master);
			return true;
		}
		r->next_sentinel = idx + 1; /* it may be behind: ask the next one next time */
		if (f.state != MRTC_REDIS_NO_MASTER)
			break; /* an answer we cannot use: wait for the failover to progress */
	}
	if (mrtc_monotonic_ms() >= deadline && !f.detail[0])
		fail(&f, MRTC_REDIS_UNREACHABLE, "no sentinel answered in %llu ms",
		     (unsigned long long)r->timeout_ms);
	failed(r, &f);
	return false;
}

/*
 * Sentinel: whether the master in use is still the one the sentinels name, and still says it is
 * a master. Both matter: after a planned switchover (SENTINEL FAILOVER) the old master goes on
 * saying "master" and taking writes, that the new one never sees, until the sentinels convert
 * it, seconds later. A sentinel that does not answer proves nothing: ROLE decides then.
 */
static bool still_master(struct mrtc_redis *r, struct failure *f)
{
	uint64_t deadline = mrtc_monotonic_ms() + r->timeout_ms;
	struct mrtc_redis_node named;
	struct failure ignored = { .state = MRTC_REDIS_UNREACHABLE };
	const struct mrtc_redis_node *sentinel = &r->spec.nodes[r->next_sentinel % r->spec.n_nodes];
	if (ask_sentinel(r, sentinel, deadline, &named, &ignored) &&
	    (strcmp(named.host, r->master.host) != 0 || named.port != r->master.port)) {
		fail(f, MRTC_REDIS_NO_MASTER,
		     "the sentinels name %s:%d as the master now, not %s:%d", named.host,
		     named.port, r->master.host, r->master.port);
		return false;
	}
	return is_master(r->c, deadline, &r->master, f);
}

/* Connected, and (Sentinel) still on the master: ready for a command with our timeout. */
static bool command_ready(struct mrtc_redis *r)
{
	if (!mrtc_redis_connect(r))
		return false;
	struct failure f = { .state = MRTC_REDIS_UNREACHABLE };
	uint64_t now = mrtc_monotonic_ms();
	if (r->spec.sentinel && now - r->verified_ms >= ROLE_RECHECK_MS) {
		if (!still_master(r, &f)) {
			failed(r, &f);
			r->next_attempt_ms = 0; /* rediscover on the next call */
			return false;
		}
		r->verified_ms = now;
	}
	struct timeval tv = { .tv_sec = (time_t)(r->timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(r->timeout_ms % 1000) * 1000 };
	redisSetTimeout(r->c, tv);
	return true;
}

/* @rep (taken) if it is an answer; NULL, noting the failure, if none or an error. */
static redisReply *command_reply(struct mrtc_redis *r, redisReply *rep)
{
	struct failure f = { .state = MRTC_REDIS_UNREACHABLE };
	if (!rep) {
		fail(&f, MRTC_REDIS_UNREACHABLE, "%s:%d: %s", r->master.host, r->master.port,
		     r->c->errstr[0] ? r->c->errstr : "no answer");
		failed(r, &f);
		return NULL;
	}
	if (rep->type != REDIS_REPLY_ERROR)
		return rep;
	char code[40];
	error_code(rep, code, sizeof(code));
	freeReplyObject(rep);
	if (strcmp(code, "READONLY") == 0 || strcmp(code, "MASTERDOWN") == 0 ||
	    strcmp(code, "LOADING") == 0 || strcmp(code, "NOAUTH") == 0) {
		/* A failover (or a restart) under us: find the master again. */
		fail(&f,
		     strcmp(code, "NOAUTH") == 0 ? MRTC_REDIS_AUTH_REFUSED : MRTC_REDIS_NO_MASTER,
		     "%s:%d answered %s", r->master.host, r->master.port, code);
		failed(r, &f);
		if (f.state != MRTC_REDIS_AUTH_REFUSED)
			r->next_attempt_ms = 0;
	} else if (strcmp(r->logged, code) != 0) {
		mrtc_format_shown(r->logged, sizeof(r->logged), "%s", code);
		mrtc_log(LOG_ERR, "store", NULL, "Redis %s:%d refused a command: %s",
			 r->master.host, r->master.port, code);
	}
	return NULL;
}

redisReply *mrtc_redis_command(struct mrtc_redis *r, const char *fmt, ...)
{
	if (!command_ready(r))
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(r->c, fmt, ap);
	va_end(ap);
	return command_reply(r, rep);
}

redisReply *mrtc_redis_command_argv(struct mrtc_redis *r, int argc, const char **argv,
				    const size_t *argvlen)
{
	if (!command_ready(r))
		return NULL;
	return command_reply(r, redisCommandArgv(r->c, argc, argv, argvlen));
}

void mrtc_redis_get_status(const struct mrtc_redis *r, struct mrtc_redis_status *ret)
{
	struct mrtc_redis_status st = { .state = r->state };
	if (r->master.port)
		mrtc_format_shown(st.address, sizeof(st.address), "%s%s%s:%d",
				  strchr(r->master.host, ':') ? "[" : "", r->master.host,
				  strchr(r->master.host, ':') ? "]" : "", r->master.port);
	mrtc_format_shown(st.detail, sizeof(st.detail), "%s", r->detail);
	*ret = st;
}
