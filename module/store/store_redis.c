/* SPDX-License-Identifier: Apache-2.0 */
/* The shared job store: Redis (a hash per job, leases by SET NX; the connection, its credentials
 * and Sentinel live in redis_conn.c). Every key starts with "mrtc:{<server name>}:" (the server
 * name empty without one), so the daemons of different homeservers share a Redis database
 * without seeing each other's records; the keys of a previous version ("mrtc:jobs"...) are moved
 * into the namespace once, on the first read (rd_migrate). */
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
	char ns[300];		 /* "mrtc:{<server name>}:" */
	char watch[310];	 /* the admitted set's hash: ns "watch" */
	char watch_exp[320];	 /* and its expiries: ns "watch:expiry" */
	char server_name[256];	 /* "" without one */
	bool migrated;		 /* the keys of a previous version were looked at */
};

#define RD_HELD_MAX 100000
/* One command; NULL on failure (the connection logs and reconnects). Caller frees. */
#define rd_cmd(r, ...) mrtc_redis_command((r)->conn, __VA_ARGS__)

/* Moves the records a previous version wrote under keys without a namespace ("mrtc:jobs",
 * "mrtc:job:<key>", "mrtc:watch", "mrtc:watch:expiry") into ours: those of our users (the user
 * ID's server name is ours; all of them without a server name), each key moved atomically (the
 * whole script is). The others are left for their own homeserver's daemons. Leases are not
 * moved: they run out by themselves, and rd_lease respects an old one meanwhile.
 * KEYS: old jobs, new jobs, old watch, old expiries, new watch, new expiries. ARGV: old and new
 * job key prefix, ":<server name>" or "". Returns {jobs moved, left, watch moved, left}. */
static const char migrate_script[] =
    "local sfx = ARGV[3] "
    "local function ours(u) return u and (sfx == '' or (#u > #sfx and "
    "string.sub(u, -#sfx) == sfx)) end "
    "local jm, jl, wm, wl = 0, 0, 0, 0 "
    "for _, k in ipairs(redis.call('smembers', KEYS[1])) do "
    "  local u = redis.call('hget', ARGV[1] .. k, 'user_id') "
    "  if ours(u) then "
    "    if redis.call('renamenx', ARGV[1] .. k, ARGV[2] .. k) == 0 then "
    "      redis.call('del', ARGV[1] .. k) end "
    "    redis.call('srem', KEYS[1], k) redis.call('sadd', KEYS[2], k) jm = jm + 1 "
    "  else jl = jl + 1 end "
    "end "
    "local w = redis.call('hgetall', KEYS[3]) "
    "for i = 1, #w, 2 do "
    "  local f, v = w[i], w[i + 1] "
    "  local sep = string.find(v, '\\031', 1, true) "
    "  local exp = redis.call('zscore', KEYS[4], f) "
    "  if sep and exp and ours(string.sub(v, sep + 1)) then "
    "    redis.call('hsetnx', KEYS[5], f, v) "
    "    if not redis.call('zscore', KEYS[6], f) then redis.call('zadd', KEYS[6], exp, f) end "
    "    redis.call('hdel', KEYS[3], f) redis.call('zrem', KEYS[4], f) wm = wm + 1 "
    "  else wl = wl + 1 end "
    "end "
    "return {jm, jl, wm, wl}";

static void rd_migrate(struct rd *r)
{
	if (r->migrated)
		return;
	char new_jobs[310], old_prefix[] = "mrtc:job:", new_prefix[310], sfx[258];
	if (!mrtc_format(new_jobs, sizeof(new_jobs), "%sjobs", r->ns) ||
	    !mrtc_format(new_prefix, sizeof(new_prefix), "%sjob:", r->ns) ||
	    !mrtc_format(sfx, sizeof(sfx), "%s%s", r->server_name[0] ? ":" : "", r->server_name))
		return; /* cannot happen: the server name fits in 255 */
	const char *argv[] = { "EVAL",
			       migrate_script,
			       "6",
			       "mrtc:jobs",
			       new_jobs,
			       "mrtc:watch",
			       "mrtc:watch:expiry",
			       r->watch,
			       r->watch_exp,
			       old_prefix,
			       new_prefix,
			       sfx };
	size_t len[sizeof(argv) / sizeof(argv[0])];
	for (size_t k = 0; k < sizeof(argv) / sizeof(argv[0]); k++)
		len[k] = strlen(argv[k]);
	redisReply *rep =
	    mrtc_redis_command_argv(r->conn, (int)(sizeof(argv) / sizeof(argv[0])), argv, len);
	if (!rep)
		return; /* Redis unreachable: tried again on the next read */
	r->migrated = true;
	long long n[4] = { 0 };
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < 4 && i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_INTEGER)
			n[i] = rep->element[i]->integer;
	if (rep->type != REDIS_REPLY_ARRAY)
		mrtc_log(LOG_WARNING, "store", NULL,
			 "the keys of a previous version could not be moved into %s: %s", r->ns,
			 rep->str ? rep->str : "unexpected reply");
	else if (n[0] || n[1] || n[2] || n[3])
		mrtc_log(
		    LOG_NOTICE, "store", NULL,
		    "moved %lld delayed-leave jobs and %lld watched participants from the keys "
		    "of a previous version (mrtc:jobs, mrtc:watch) into %s; left there for "
		    "other servers' daemons: %lld jobs, %lld watched participants",
		    n[0], n[2], r->ns, n[1], n[3]);
	freeReplyObject(rep);
}

static enum mrtc_err rd_put(void *self, const struct mrtc_job_record *j)
{
	struct rd *r = self;
	redisReply *rep =
	    rd_cmd(r,
		   "HSET %sjob:%s user_id %s room_id %s room_name %s identity %s delay_id %s "
		   "cs_api_url %s sfu_url %s delay_ms %llu created_ms %llu state %d guarded %d",
		   r->ns, j->key, j->user_id, j->room_id, j->room_name, j->identity, j->delay_id,
		   j->cs_api_url, j->sfu_url, (unsigned long long)j->delay_ms,
		   (unsigned long long)j->created_ms, j->state, j->guarded ? 1 : 0);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	rep = rd_cmd(r, "SADD %sjobs %s", r->ns, j->key);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	return MRTC_OK;
}

static enum mrtc_err rd_del(void *self, const char *key)
{
	struct rd *r = self;
	redisReply *rep = rd_cmd(r, "DEL %sjob:%s", r->ns, key);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	rep = rd_cmd(r, "SREM %sjobs %s", r->ns, key);
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
	redisReply *rep = rd_cmd(r, "HGETALL %sjob:%s", r->ns, key);
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
	rd_migrate(r);
	redisReply *rep = rd_cmd(r, "SMEMBERS %sjobs", r->ns);
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

/* Renews our lease, or takes a free one: one atomic script. A lease another owner holds under the
 * key of a previous version (KEYS[2]: a daemon not yet upgraded) is respected until it runs out. */
static const char lease_script[] =
    "local old = redis.call('get', KEYS[2]) "
    "if old and old ~= ARGV[1] then return 0 end "
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
	redisReply *rep = rd_cmd(r, "EVAL %s 2 %slease:%s mrtc:lease:%s %s %s", lease_script, r->ns,
				 key, key, owner, ttl);
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
	redisReply *rep = rd_cmd(r, "EVAL %s 1 %slease:%s %s", release_script, r->ns, key, owner);
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

/* The admitted set: a hash (r->watch) of "room_name|sfu_url<US>identity" -> "room_id<US>user_id"
 * and a sorted set (r->watch_exp) of the same fields by expiry (wall-clock milliseconds). A URL
 * holds no control character; a field without <US> (made before several SFUs) is on the first
 * SFU (""). */
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
	const char *head[] = { "EVAL", watch_put_script, "2", r->watch, r->watch_exp };
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
	redisReply *rep = rd_cmd(r, "HDEL %s %s", r->watch, f);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	rep = rd_cmd(r, "ZREM %s %s", r->watch_exp, f);
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
	redisReply *rep = rd_cmd(r, "EVAL %s 2 %s %s %llu", watch_prune_script, r->watch,
				 r->watch_exp, (unsigned long long)now_ms);
	if (!rep)
		return MRTC_ERR_IO;
	freeReplyObject(rep);
	return MRTC_OK;
}

static enum mrtc_err rd_watch_each(void *self, uint64_t now_ms, mrtc_store_watch_fn fn, void *ctx)
{
	struct rd *r = self;
	rd_migrate(r);
	if (rd_watch_prune(r, now_ms) != MRTC_OK)
		return MRTC_ERR_IO;
	redisReply *rep = rd_cmd(r, "ZRANGE %s 0 -1 WITHSCORES", r->watch_exp);
	if (!rep)
		return MRTC_ERR_IO;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
		const char *f = rep->element[i]->str, *score = rep->element[i + 1]->str;
		struct mrtc_watch_record w = { .expires_ms = 0 };
		if (!score || !mrtc_parse_u64(score, 0, UINT64_MAX, &w.expires_ms) ||
		    !rd_watch_field_parse(f, &w))
			continue;
		redisReply *v = rd_cmd(r, "HGET %s %s", r->watch, f);
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
	const char *name = opts && opts->server_name ? opts->server_name : "";
	err = MRTC_ERR_CONFIG;
	if (strpbrk(name, "{} \r\n") || !mrtc_copy(r->server_name, sizeof(r->server_name), name) ||
	    !mrtc_format(r->ns, sizeof(r->ns), "mrtc:{%s}:", name) ||
	    !mrtc_format(r->watch, sizeof(r->watch), "%swatch", r->ns) ||
	    !mrtc_format(r->watch_exp, sizeof(r->watch_exp), "%swatch:expiry", r->ns))
		goto out;
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
