/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded job store: SQLite (WAL, one row per job, the watch's admitted set in a table). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends.h"
#include "mrtc/core/log.h"
#include "mrtc/base/util.h"

/* ---- SQLite ---- */

struct sq {
	sqlite3 *db;
};

/* One row per participant and SFU: the same room and identity on two SFUs are two rows. */
#define WATCH_TABLE                                                                                \
	"CREATE TABLE IF NOT EXISTS watch (room_name TEXT, identity TEXT, room_id TEXT,"           \
	" user_id TEXT, expires_ms INTEGER, sfu_url TEXT NOT NULL DEFAULT '',"                     \
	" PRIMARY KEY (sfu_url, room_name, identity));"

static const char *const sq_schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    /* 512 KiB of pages cached, not SQLite's 2 MiB: the watch table's index is written at
     * random keys (a hit is rare in either), and the kernel caches the file anyway. */
    "PRAGMA cache_size=-512;"
    "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, user_id TEXT, room_id TEXT,"
    " room_name TEXT, identity TEXT, delay_id TEXT, cs_api_url TEXT, delay_ms INTEGER,"
    " created_ms INTEGER, state INTEGER, guarded INTEGER, sfu_url TEXT);" WATCH_TABLE
    "CREATE INDEX IF NOT EXISTS watch_expiry ON watch (expires_ms);";
/* Stores made before several SFUs lack the column; "duplicate column" is fine. */
static const char *const sq_migrate = "ALTER TABLE jobs ADD COLUMN sfu_url TEXT;";
/* A watch table made before several SFUs has no sfu_url and a key without it: rebuilt, its
 * participants on the first SFU (""). The index follows the old table and is made again. */
static const char *const sq_migrate_watch =
    "BEGIN;"
    "ALTER TABLE watch RENAME TO watch_old;" WATCH_TABLE
    "INSERT INTO watch (room_name, identity, room_id, user_id, expires_ms, sfu_url)"
    " SELECT room_name, identity, room_id, user_id, expires_ms, '' FROM watch_old;"
    "DROP TABLE watch_old;"
    "CREATE INDEX IF NOT EXISTS watch_expiry ON watch (expires_ms);"
    "COMMIT;";

static enum mrtc_err sq_put(void *self, const struct mrtc_job_record *j)
{
	struct sq *s = self;
	sqlite3_stmt *st = NULL;
	enum mrtc_err err = MRTC_ERR_IO;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", -1,
			       &st, NULL) != SQLITE_OK)
		return err;
	const char *texts[] = { j->key,	     j->user_id,  j->room_id,	j->room_name,
				j->identity, j->delay_id, j->cs_api_url };
	for (int i = 0; i < 7; i++)
		sqlite3_bind_text(st, i + 1, texts[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)j->delay_ms);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)j->created_ms);
	sqlite3_bind_int(st, 10, j->state);
	sqlite3_bind_int(st, 11, j->guarded ? 1 : 0);
	sqlite3_bind_text(st, 12, j->sfu_url, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		err = MRTC_OK;
	sqlite3_finalize(st);
	return err;
}

static enum mrtc_err sq_del(void *self, const char *key)
{
	struct sq *s = self;
	sqlite3_stmt *st = NULL;
	enum mrtc_err err = MRTC_ERR_IO;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM jobs WHERE key = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			err = MRTC_OK;
	}
	sqlite3_finalize(st);
	return err;
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	/* Written from the same buffers: a value that does not fit reads as empty. */
	mrtc_copy(dst, size, t ? (const char *)t : "");
}

static void sq_row(sqlite3_stmt *st, struct mrtc_job_record *j)
{
	memset(j, 0, sizeof(*j));
	copy_col(j->key, sizeof(j->key), st, 0);
	copy_col(j->user_id, sizeof(j->user_id), st, 1);
	copy_col(j->room_id, sizeof(j->room_id), st, 2);
	copy_col(j->room_name, sizeof(j->room_name), st, 3);
	copy_col(j->identity, sizeof(j->identity), st, 4);
	copy_col(j->delay_id, sizeof(j->delay_id), st, 5);
	copy_col(j->cs_api_url, sizeof(j->cs_api_url), st, 6);
	j->delay_ms = (uint64_t)sqlite3_column_int64(st, 7);
	j->created_ms = (uint64_t)sqlite3_column_int64(st, 8);
	j->state = sqlite3_column_int(st, 9);
	j->guarded = sqlite3_column_int(st, 10) != 0;
	copy_col(j->sfu_url, sizeof(j->sfu_url), st, 11);
}

static enum mrtc_err sq_get(void *self, const char *key, struct mrtc_job_record *ret)
{
	struct sq *s = self;
	sqlite3_stmt *st = NULL;
	enum mrtc_err err = MRTC_ERR_IO;
	if (sqlite3_prepare_v2(s->db, "SELECT * FROM jobs WHERE key = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			sq_row(st, ret);
			err = MRTC_OK;
		} else if (rc == SQLITE_DONE) {
			err = MRTC_ERR_NOT_FOUND;
		}
	}
	sqlite3_finalize(st);
	return err;
}

static enum mrtc_err sq_each(void *self, mrtc_store_each_fn fn, void *ctx)
{
	struct sq *s = self;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT * FROM jobs", -1, &st, NULL) != SQLITE_OK)
		return MRTC_ERR_IO;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mrtc_job_record j;
		sq_row(st, &j);
		fn(ctx, &j);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? MRTC_OK : MRTC_ERR_IO;
}

static bool sq_lease(void *self, const char *key, const char *owner, uint64_t ttl_ms)
{
	(void)self;
	(void)key;
	(void)owner;
	(void)ttl_ms;
	return true; /* one daemon per database file */
}

static void sq_release(void *self, const char *key, const char *owner)
{
	(void)self;
	(void)key;
	(void)owner;
}

static void sq_destroy(void *self)
{
	struct sq *s = self;
	sqlite3_close(s->db);
	free(s);
}

static void sq_status(void *self, struct mrtc_store_status *ret)
{
	struct sq *s = self;
	const char *path = sqlite3_db_filename(s->db, "main");
	ret->kind = "sqlite";
	mrtc_format_shown(ret->spec, sizeof(ret->spec), "sqlite:%s", path ? path : "");
	ret->state = "open";
}

/* One statement with texts @t[0..n_t) and integer @i bound after them; true if it ran. */
static bool sq_exec(struct sq *s, const char *sql, const char *const *t, int n_t, uint64_t i)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		for (int k = 0; k < n_t; k++)
			sqlite3_bind_text(st, k + 1, t[k], -1, SQLITE_STATIC);
		if (sqlite3_bind_parameter_count(st) > n_t)
			sqlite3_bind_int64(st, n_t + 1, (sqlite3_int64)i);
		ok = sqlite3_step(st) == SQLITE_DONE;
	}
	sqlite3_finalize(st);
	return ok;
}

/*
 * The batch in one transaction and one prepared statement. An update in place (upsert) rather
 * than INSERT OR REPLACE, which deletes the row and inserts it again in the table and both
 * indexes: a token refreshing a watched participant only moves its expiry (about 30 % less
 * CPU a row on a table of 100 000 participants, measured with SQLite 3.40).
 */
static enum mrtc_err sq_watch_put(void *self, const struct mrtc_watch_record *w, size_t n)
{
	struct sq *s = self;
	sqlite3_stmt *st = NULL;
	bool ok = sqlite3_prepare_v2(s->db,
				     "INSERT INTO watch (room_name, identity, room_id, user_id,"
				     " sfu_url, expires_ms) VALUES (?,?,?,?,?,?)"
				     " ON CONFLICT (sfu_url, room_name, identity) DO UPDATE SET"
				     " room_id = excluded.room_id, user_id = excluded.user_id,"
				     " expires_ms = excluded.expires_ms",
				     -1, &st, NULL) == SQLITE_OK &&
		  sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	bool begun = ok;
	for (size_t i = 0; ok && i < n; i++) {
		const char *t[] = { w[i].room_name, w[i].identity, w[i].room_id, w[i].user_id,
				    w[i].sfu_url };
		for (int k = 0; k < 5; k++)
			sqlite3_bind_text(st, k + 1, t[k], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)w[i].expires_ms);
		ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_reset(st) == SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (begun)
		ok = sqlite3_exec(s->db, ok ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) ==
			 SQLITE_OK &&
		     ok;
	return ok ? MRTC_OK : MRTC_ERR_IO;
}

static enum mrtc_err sq_watch_del(void *self, const char *sfu_url, const char *room_name,
				  const char *identity)
{
	const char *t[] = { sfu_url, room_name, identity };
	return sq_exec(self,
		       "DELETE FROM watch WHERE sfu_url = ? AND room_name = ? AND identity = ?", t,
		       3, 0)
		   ? MRTC_OK
		   : MRTC_ERR_IO;
}

static enum mrtc_err sq_watch_prune(void *self, uint64_t now_ms)
{
	return sq_exec(self, "DELETE FROM watch WHERE expires_ms <= ?", NULL, 0, now_ms)
		   ? MRTC_OK
		   : MRTC_ERR_IO;
}

static enum mrtc_err sq_watch_each(void *self, uint64_t now_ms, mrtc_store_watch_fn fn, void *ctx)
{
	struct sq *s = self;
	if (sq_watch_prune(s, now_ms) != MRTC_OK)
		return MRTC_ERR_IO;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT room_name, identity, room_id, user_id, expires_ms, sfu_url "
			       "FROM watch",
			       -1, &st, NULL) != SQLITE_OK)
		return MRTC_ERR_IO;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mrtc_watch_record w = { .expires_ms = 0 };
		copy_col(w.room_name, sizeof(w.room_name), st, 0);
		copy_col(w.identity, sizeof(w.identity), st, 1);
		copy_col(w.room_id, sizeof(w.room_id), st, 2);
		copy_col(w.user_id, sizeof(w.user_id), st, 3);
		w.expires_ms = (uint64_t)sqlite3_column_int64(st, 4);
		copy_col(w.sfu_url, sizeof(w.sfu_url), st, 5);
		fn(ctx, &w);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? MRTC_OK : MRTC_ERR_IO;
}

static const struct mrtc_store_ops sq_ops = {
	sq_put,	    sq_del,    sq_get,	     sq_each,	   sq_lease,	  sq_release,
	sq_destroy, sq_status, sq_watch_put, sq_watch_del, sq_watch_each, sq_watch_prune,
};

enum mrtc_err mrtc_store_sqlite_open(const char *path, struct mrtc_store *store)
{
	struct sq *s = calloc(1, sizeof(*s));
	if (!s)
		return MRTC_ERR_NOMEM;
	char *msg = NULL;
	/* The store holds delay_id capabilities: the database is created (or tightened) 0600
	 * before SQLite opens it, and the umask covers the -wal/-shm files the schema creates
	 * (SQLite gives them the database file's mode, less the umask). */
	mode_t old_mask = umask(077);
	int fd = path[0] == ':' || strncmp(path, "file:", 5) == 0
		     ? -1
		     : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)fchmod(fd, 0600);
		close(fd);
	}
	bool ok = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ==
		      SQLITE_OK &&
		  sqlite3_busy_timeout(s->db, 250) == SQLITE_OK &&
		  sqlite3_exec(s->db, sq_schema, NULL, NULL, &msg) == SQLITE_OK;
	if (ok) {
		sqlite3_exec(s->db, sq_migrate, NULL, NULL, NULL);
		sqlite3_stmt *probe = NULL;
		if (sqlite3_prepare_v2(s->db, "SELECT sfu_url FROM watch LIMIT 0", -1, &probe,
				       NULL) != SQLITE_OK) {
			ok = sqlite3_exec(s->db, sq_migrate_watch, NULL, NULL, &msg) == SQLITE_OK;
			if (!ok)
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			else
				mrtc_log(LOG_NOTICE, "store", NULL,
					 "the watch table now records the SFU of each participant "
					 "(those already in it: the first)");
		}
		sqlite3_finalize(probe);
	}
	umask(old_mask);
	if (!ok) {
		mrtc_log(LOG_ERR, "store", NULL, "cannot open the SQLite store: %s",
			 msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		sqlite3_close(s->db);
		free(s);
		return MRTC_ERR_IO;
	}
	store->ops = &sq_ops;
	store->self = s;
	return MRTC_OK;
}
