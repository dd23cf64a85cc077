/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where delegated delayed-leave jobs live so that they survive a restart (PROTOCOL §2.4):
 * "sqlite:<path>" (embedded, one daemon) or a Redis spec (shared by several daemons, each job
 * driven by one of them at a time through a lease): "redis://[user[:password]@]host[:port][/db]"
 * or "redis+sentinel://[user[:password]@]host[:port][,...]/master-name[/db]" (redis_conn.h).
 * A struct of function pointers is the seam; both stores implement it.
 *
 * These calls are synchronous: SQLite writes a local file, and Redis is asked with a 250 ms
 * timeout per command (and per reconnection attempt, after which it backs off and fails at
 * once). They run only on the store's worker thread (async.h); the event loop uses async.h.
 */
#ifndef MRTC_STORE_H
#define MRTC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/core/storespec.h"
#include "mrtc/livekit/livekit.h"

enum mrtc_job_state {
	MRTC_JOB_WAITING = 0,	/* the participant has not been seen on the SFU yet */
	MRTC_JOB_CONNECTED = 1, /* seen: keep the delayed event alive until they leave */
};

struct mrtc_job_record {
	char key[MRTC_LIVEKIT_HASH_LEN + 1]; /* hash of (room_id, slot_id, member_id, user_id) */
	char user_id[256];
	char room_id[256];
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_NAME_MAX + 1];
	char delay_id[256]; /* a capability: never logged */
	char cs_api_url[2049];
	char sfu_url[2049]; /* the SFU the participant is on (its LIVEKIT_URL); "": the first */
	uint64_t delay_ms;
	uint64_t created_ms; /* wall clock */
	int state;
	bool guarded; /* cs_api_url came from a client: the outbound guard applies */
};

/* What /readyz says about the store: no secret in it. */
struct mrtc_store_status {
	const char *kind;  /* "sqlite", "redis", "redis-sentinel" or "none" (static) */
	char spec[512];	   /* MRTC_STORE with the password redacted */
	char address[300]; /* Redis: the server or the master last found, "host:port" */
	const char *state; /* "open", "connected", "unreachable", "credentials refused"... */
	char detail[128];  /* why the last Redis attempt failed ("" if it did not) */
	bool refused;	   /* the credentials were refused: a configuration error */
};

typedef void (*mrtc_store_each_fn)(void *ctx, const struct mrtc_job_record *job);

/* A participant the membership watch admitted: re-checked until @expires_ms, kept in the store
 * so that a restarted daemon still removes them from the SFU when they leave the room. One per
 * (sfu_url, room_name, identity). */
struct mrtc_watch_record {
	char room_id[256];
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_NAME_MAX + 1];
	char user_id[256];
	char sfu_url[2049];  /* the SFU they were admitted on (its LIVEKIT_URL); "": the first */
	uint64_t expires_ms; /* wall clock */
};

typedef void (*mrtc_store_watch_fn)(void *ctx, const struct mrtc_watch_record *w);

struct mrtc_store_ops {
	enum mrtc_err (*put)(void *self, const struct mrtc_job_record *job);
	enum mrtc_err (*del)(void *self, const char *key);
	enum mrtc_err (*get)(void *self, const char *key, struct mrtc_job_record *ret_job);
	enum mrtc_err (*each)(void *self, mrtc_store_each_fn fn, void *ctx);
	/* Takes or renews the lease on @key for @owner; false if another owner holds it. */
	bool (*lease)(void *self, const char *key, const char *owner, uint64_t ttl_ms);
	void (*release)(void *self, const char *key, const char *owner);
	void (*destroy)(void *self);
	void (*status)(void *self, struct mrtc_store_status *ret_status);
	/* The watch's admitted set: @n records written at once (one transaction in SQLite). */
	enum mrtc_err (*watch_put)(void *self, const struct mrtc_watch_record *w, size_t n);
	enum mrtc_err (*watch_del)(void *self, const char *sfu_url, const char *room_name,
				   const char *identity);
	/* Drops the records expired at @now_ms (wall clock), then calls @fn for each other one. */
	enum mrtc_err (*watch_each)(void *self, uint64_t now_ms, mrtc_store_watch_fn fn, void *ctx);
	/* Drops the records expired at @now_ms. */
	enum mrtc_err (*watch_prune)(void *self, uint64_t now_ms);
};

struct mrtc_store {
	const struct mrtc_store_ops *ops;
	void *self;
	bool shared; /* several daemons may use it: leases matter */
};

/* Credentials from outside the spec (all may be NULL). */
struct mrtc_store_options {
	const char *redis_password;	     /* when the spec holds none */
	const char *redis_sentinel_user;     /* for the sentinels themselves */
	const char *redis_sentinel_password; /* for the sentinels themselves */
	/* Redis: the homeserver whose records these are (MRTC_SERVER_NAME; NULL or "" in the
	 * lk-jwt-service drop-in mode): every key is in "mrtc:{<server name>}:". */
	const char *server_name;
};

/* Opens @spec (@opts may be NULL). MRTC_ERR_CONFIG for a spec of unknown form; MRTC_ERR_IO if
 * SQLite cannot open the file. An unreachable Redis is not an error: it is retried on use. */
enum mrtc_err mrtc_store_open(const char *spec, const struct mrtc_store_options *opts,
			      struct mrtc_store **ret_store);
void mrtc_store_close(struct mrtc_store *store);

/* Whether @dir can hold the SQLite store: a writable directory, or (unless @create) one its
 * parent can take. With @create, makes it (mode 0700) if missing. On false writes why to
 * @ret_why ("not writable: Permission denied"...). */
bool mrtc_store_dir_is_usable(const char *dir, bool create, char *ret_why, size_t size);

/* @store may be NULL (no store: kind "none"). */
void mrtc_store_get_status(const struct mrtc_store *store, struct mrtc_store_status *ret_status);

#endif
