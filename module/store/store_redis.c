/* SPDX-License-Identifier: Apache-2.0 */
/* The shared job store: Redis (a hash per job, leases by SET NX; the connection, its credentials
 * and Sentinel live in redis_conn.c). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "mrtc/base/cache.h"
#include "mrtc/core/log.h"
#include "mrtc/store/redis_conn.h"
#include "mrtc/base/util.h"

#define RD_TIMEOUT_MS 250 /* per Redis command, and per reconnection attempt */

/* ---- Redis ---- */

struct rd {
	struct mrtc_redis *conn;
	struct mrtc_cache *held; /* leases we hold, until they would run out: rides out outages */
	char spec[512];		 /* redacted, for /readyz */
};

#define RD_JOBS "mrtc:jobs"
#define RD_HELD_MAX 100000

/* One command; NULL on failure (the connection logs and reconnects). Caller frees. */
#define rd_cmd(r, ...) mrtc_redis_command((r)->conn, __VA_ARGS__)

static enum mrtc_err rd_put(void *self, const struct mrtc_job_record *j)
{
	struct rd *r = self;
	redisReply *rep =
	    rd_cmd(r,
		   "HSET mrtc:job:%s user_id %s room_id %s room_name %s identity %s delay_id %s "
		   "cs_api_url %s sfu_url %s delay_ms %llu created_ms %llu state %d guarded %d",
		   j->key, j->user_id, j->room_id, j->room_name, j->identity, j->delay_id,
		   j->cs_api_url, j->sfu_url, (unsigned long long)j->delay_ms,
		   (unsigned long long)j->created_ms, j->state, j->guarded ? 1 : 0);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	rep = rd_cmd(r, "SADD " RD_JOBS " %s", j->key);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	return MRTC_OK;
}

static enum mrtc_err rd_del(void *self, const char *key)
{
	struct rd *r = self;
	redisReply *rep = rd_cmd(r, "DEL mrtc:job:%s", key);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	rep = rd_cmd(r, "SREM " RD_JOBS " %s", key);
	if (rep)
		freeReplyObject(rep);
	return rep ? MRTC_OK : MRTC_ERR_IO;
}

static void field(redisReply *rep, const char *name, char *dst, size_t size)
{
	for (size_t i = 0; i + 1 < rep->elements; i += 2)
		if (rep->element[i]->str && strcmp(rep->element[i]->str, name) == 0 &&
		    rep->element[i + 1]->str) {
			mrtc_copy(dst, size, rep->element[i + 1]->str); /* "" if too long */
			return;
		}
	dst[0] = '\0';
}

static enum mrtc_err rd_get(void *self, const char *key, struct mrtc_job_record *ret)
{
	struct rd *r = self;
	redisReply *rep = rd_cmd(r, "HGETALL mrtc:job:%s", key);
	if (!rep)
		return MRTC_ERR_IO;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
		freeReplyObject(rep);
		return MRTC_ERR_NOT_FOUND;
	}
	struct mrtc_job_record j = { .state = 0 };
	char num[32];
	if (!mrtc_copy(j.key, sizeof(j.key), key)) {
		freeReplyObject(rep);
		return MRTC_ERR_NOT_FOUND;
	}
	field(rep, "user_id", j.user_id, sizeof(j.user_id));
	field(rep, "room_id", j.room_id, sizeof(j.room_id));
	field(rep, "room_name", j.room_name, sizeof(j.room_name));
	field(rep, "identity", j.identity, sizeof(j.identity));
	field(rep, "delay_id", j.delay_id, sizeof(j.delay_id));
	field(rep, "cs_api_url", j.cs_api_url, sizeof(j.cs_api_url));
	field(rep, "sfu_url", j.sfu_url, sizeof(j.sfu_url));
	field(rep, "delay_ms", num, sizeof(num));
	mrtc_parse_u64(num, 0, UINT64_MAX, &j.delay_ms);
	field(rep, "created_ms", num, sizeof(num));
	mrtc_parse_u64(num, 0, UINT64_MAX, &j.created_ms);
	field(rep, "state", num, sizeof(num));
	j.state = strcmp(num, "1") == 0 ? MRTC_JOB_CONNECTED : MRTC_JOB_WAITING;
	field(rep, "guarded", num, sizeof(num));
	j.guarded = strcmp(num, "0") != 0; /* unknown: guard */
	freeReplyObject(rep);
	*ret = j;
	return MRTC_OK;
}

static enum mrtc_err rd_each(void *self, mrtc_store_each_fn fn, void *ctx)
{
	struct rd *r = self;
	redisReply *rep = rd_cmd(r, "SMEMBERS " RD_JOBS);
	if (!rep)
		return MRTC_ERR_IO;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
		struct mrtc_job_record j;
		if (rep->element[i]->str && strlen(rep->element[i]->str) < sizeof(j.key) &&
		    rd_get(r, rep->element[i]->str, &j) == MRTC_OK)
			fn(ctx, &j);
	}
	freeReplyObject(rep);
	return MRTC_OK;
}

/* Renews our lease, or takes a free one: one atomic script. */
static const char lease_script[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) "
    "elseif redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 "
    "else return 0 end";
static const char release_script[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end";

static bool rd_lease(void *self, const char *key, const char *owner, uint64_t ttl_ms)
{
	struct rd *r = self;
	char ttl[24];
	if (!mrtc_format(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms))
		return false; /* cannot happen: any 64-bit number fits */
	uint64_t now = mrtc_monotonic_ms();
	redisReply *rep = rd_cmd(r, "EVAL %s 1 mrtc:lease:%s %s %s", lease_script, key, owner, ttl);
	if (!rep) {
		/* Redis cannot say (a failover, an outage): a lease we hold is still ours until
		 * it would run out, so the job goes on meanwhile instead of being dropped. */
		return mrtc_cache_get(r->held, key, strlen(key), now) != NULL;
	}
	bool ok = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	char *mark = ok ? malloc(1) : NULL;
	if (ok && mark)
		mrtc_cache_put(r->held, key, strlen(key), mark, now + ttl_ms - ttl_ms / 10);
	else
		mrtc_cache_remove(r->held, key, strlen(key));
	return ok;
}

static void rd_release(void *self, const char *key, const char *owner)
{
	struct rd *r = self;
	mrtc_cache_remove(r->held, key, strlen(key));
	redisReply *rep = rd_cmd(r, "EVAL %s 1 mrtc:lease:%s %s", release_script, key, owner);
	if (rep)
		freeReplyObject(rep);
}

static void rd_destroy(void *self)
{
	struct rd *r = self;
	if (!r)
		return;
	mrtc_redis_destroy(r->conn);
	mrtc_cache_destroy(r->held);
	free(r);
}

static void rd_status(void *self, struct mrtc_store_status *ret)
{
	struct rd *r = self;
	struct mrtc_redis_status st;
	mrtc_redis_get_status(r->conn, &st);
	ret->kind = strncmp(r->spec, "redis+sentinel:", 15) == 0 ? "redis-sentinel" : "redis";
	mrtc_format_shown(ret->spec, sizeof(ret->spec), "%s", r->spec);
	mrtc_format_shown(ret->address, sizeof(ret->address), "%s", st.address);
	mrtc_format_shown(ret->detail, sizeof(ret->detail), "%s", st.detail);
	ret->state = mrtc_redis_state_str(st.state);
	ret->refused = st.state == MRTC_REDIS_AUTH_REFUSED;
}

/* The admitted set: a hash RD_WATCH of "room_name|sfu_url<US>identity" -> "room_id<US>user_id"
 * and a sorted set RD_WATCH_EXP of the same fields by expiry (wall-clock milliseconds). A URL
 * holds no control character; a field without <US> (made before several SFUs) is on the first
 * SFU (""). */
#define RD_WATCH "mrtc:watch"
#define RD_WATCH_EXP "mrtc:watch:expiry"
#define RD_SEP "\x1f"
#define RD_WATCH_FIELD_MAX (MRTC_LIVEKIT_HASH_LEN + 2049 + MRTC_LIVEKIT_NAME_MAX + 3)

static bool rd_watch_field(char *out, size_t size, const char *sfu_url, const char *room_name,
			   const char *identity)
{
	return mrtc_format(out, size, "%s|%s" RD_SEP "%s", room_name, sfu_url, identity);
}

/* Splits a field into @w's room_name, sfu_url and identity; false if it does not fit. */
static bool rd_watch_field_parse(const char *f, struct mrtc_watch_record *w)
{
	const char *bar = f ? strchr(f, '|') : NULL;
	if (!bar || (size_t)(bar - f) >= sizeof(w->room_name))
		return false;
	memcpy(w->room_name, f, (size_t)(bar - f));
	w->room_name[bar - f] = '\0';
	const char *rest = bar + 1, *sep = strchr(rest, RD_SEP[0]);
	if (!sep)
		return mrtc_copy(w->sfu_url, sizeof(w->sfu_url), "") &&
		       mrtc_copy(w->identity, sizeof(w->identity), rest);
	if ((size_t)(sep - rest) >= sizeof(w->sfu_url))
		return false;
	memcpy(w->sfu_url, rest, (size_t)(sep - rest));
	w->sfu_url[sep - rest] = '\0';
	return mrtc_copy(w->identity, sizeof(w->identity), sep + 1);
}

/* ARGV: field, value, expiry for each record: both keys in one atomic round trip. */
static const char watch_put_script[] =
    "for i = 1, #ARGV, 3 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) "
    "redis.call('zadd', KEYS[2], ARGV[i + 2], ARGV[i]) end return 1";

static enum mrtc_err rd_watch_put(void *self, const struct mrtc_watch_record *w, size_t n)
{
	struct rd *r = self;
	if (n == 0)
		return MRTC_OK;
	size_t argc = 5 + 3 * n;
	const char **argv = calloc(argc, sizeof(*argv));
	size_t *len = calloc(argc, sizeof(*len));
	char(*text)[3][RD_WATCH_FIELD_MAX] = calloc(n, sizeof(*text));
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (!argv || !len || !text)
		goto out;
	const char *head[] = { "EVAL", watch_put_script, "2", RD_WATCH, RD_WATCH_EXP };
	for (size_t k = 0; k < 5; k++)
		argv[k] = head[k];
	err = MRTC_ERR_INVALID_PARAM;
	for (size_t i = 0; i < n; i++) {
		if (!rd_watch_field(text[i][0], sizeof(text[i][0]), w[i].sfu_url, w[i].room_name,
				    w[i].identity) ||
		    !mrtc_format(text[i][1], sizeof(text[i][1]), "%s" RD_SEP "%s", w[i].room_id,
				 w[i].user_id) ||
		    !mrtc_format(text[i][2], sizeof(text[i][2]), "%llu",
				 (unsigned long long)w[i].expires_ms))
			goto out;
		for (size_t k = 0; k < 3; k++)
			argv[5 + 3 * i + k] = text[i][k];
	}
	for (size_t k = 0; k < argc; k++)
		len[k] = strlen(argv[k]);
	redisReply *rep = mrtc_redis_command_argv(r->conn, (int)argc, argv, len);
	err = rep ? MRTC_OK : MRTC_ERR_IO;
	if (rep)
		freeReplyObject(rep);
out:
	free(argv);
	free(len);
	free(text);
	return err;
}

static enum mrtc_err rd_watch_del(void *self, const char *sfu_url, const char *room_name,
				  const char *identity)
{
	struct rd *r = self;
	char f[RD_WATCH_FIELD_MAX];
	if (!rd_watch_field(f, sizeof(f), sfu_url, room_name, identity))
		return MRTC_ERR_INVALID_PARAM;
	redisReply *rep = rd_cmd(r, "HDEL " RD_WATCH " %s", f);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	rep = rd_cmd(r, "ZREM " RD_WATCH_EXP " %s", f);
	if (rep)
		freeReplyObject(rep);
	return rep ? MRTC_OK : MRTC_ERR_IO;
}

/* Drops the expired fields of both keys in one atomic script. */
static const char watch_prune_script[] =
    "local gone = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1], 'limit', 0, 1000) "
    "for _, f in ipairs(gone) do redis.call('hdel', KEYS[1], f) "
    "redis.call('zrem', KEYS[2], f) end return #gone";

static enum mrtc_err rd_watch_prune(void *self, uint64_t now_ms)
{
	struct rd *r = self;
	redisReply *rep = rd_cmd(r, "EVAL %s 2 " RD_WATCH " " RD_WATCH_EXP " %llu",
				 watch_prune_script, (unsigned long long)now_ms);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	return MRTC_OK;
}

static enum mrtc_err rd_watch_each(void *self, uint64_t now_ms, mrtc_store_watch_fn fn, void *ctx)
{
	struct rd *r = self;
	if (rd_watch_prune(r, now_ms) != MRTC_OK)
		return MRTC_ERR_IO;
	redisReply *rep = rd_cmd(r, "ZRANGE " RD_WATCH_EXP " 0 -1 WITHSCORES");
	if (!rep)
		return MRTC_ERR_IO;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
		const char *f = rep->element[i]->str, *score = rep->element[i + 1]->str;
		struct mrtc_watch_record w = { .expires_ms = 0 };
		if (!score || !mrtc_parse_u64(score, 0, UINT64_MAX, &w.expires_ms) ||
		    !rd_watch_field_parse(f, &w))
			continue;
		redisReply *v = rd_cmd(r, "HGET " RD_WATCH " %s", f);
		const char *sep = v && v->str ? strchr(v->str, RD_SEP[0]) : NULL;
		if (sep && (size_t)(sep - v->str) < sizeof(w.room_id) &&
		    strlen(sep + 1) < sizeof(w.user_id)) {
			memcpy(w.room_id, v->str, (size_t)(sep - v->str));
			if (mrtc_copy(w.user_id, sizeof(w.user_id), sep + 1))
				fn(ctx, &w);
		}
		if (v)
			freeReplyObject(v);
	}
	freeReplyObject(rep);
	return MRTC_OK;
}

static const struct mrtc_store_ops rd_ops = {
	rd_put,	    rd_del,    rd_get,	     rd_each,	   rd_lease,	  rd_release,
	rd_destroy, rd_status, rd_watch_put, rd_watch_del, rd_watch_each, rd_watch_prune,
};

enum mrtc_err mrtc_store_redis_open(const char *spec, const struct mrtc_store_options *opts,
				    struct mrtc_store *store)
{
	struct mrtc_redis_spec *parsed = calloc(1, sizeof(*parsed));
	struct rd *r = calloc(1, sizeof(*r));
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (!parsed || !r)
		goto out;
	err = MRTC_ERR_CONFIG;
	if (!mrtc_redis_spec_parse(spec, parsed))
		goto out;
	err = MRTC_ERR_NOMEM;
	struct mrtc_redis_options ro = {
		.password = opts ? opts->redis_password : NULL,
		.sentinel_user = opts ? opts->redis_sentinel_user : NULL,
		.sentinel_password = opts ? opts->redis_sentinel_password : NULL,
		.timeout_ms = RD_TIMEOUT_MS,
	};
	r->conn = mrtc_redis_create(parsed, &ro);
	r->held = mrtc_cache_create(RD_HELD_MAX, free);
	if (!r->conn || !r->held)
		goto out;
	mrtc_redis_spec_redact(spec, r->spec, sizeof(r->spec));
	/* A shared store may come up after us: an unreachable one is retried on use (the
	 * connection logs why once), so only a malformed spec fails here. */
	mrtc_redis_connect(r->conn);
	store->ops = &rd_ops;
	store->self = r;
	store->shared = true;
	r = NULL;
	err = MRTC_OK;
out:
	if (parsed) {
		mrtc_redis_spec_wipe(parsed);
		free(parsed);
	}
	rd_destroy(r);
	return err;
}
