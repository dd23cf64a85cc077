/* SPDX-License-Identifier: Apache-2.0 */
/* The job stores behind one ops struct: the spec, opening the backend it names (store_sqlite.c,
 * store_redis.c), the state directory. */
#include "mrtc/store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends.h"
#include "mrtc/store/redis_conn.h"
#include "mrtc/base/util.h"

static bool is_redis(const char *spec)
{
	return strncmp(spec, "redis://", 8) == 0 || strncmp(spec, "redis+sentinel://", 17) == 0;
}

bool mrtc_store_dir_is_usable(const char *dir, bool create, char *ret_why, size_t size)
{
	int e = 0;
	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
		e = errno;
	struct stat st;
	if (!e && stat(dir, &st) != 0) {
		e = errno;
		if (e == ENOENT && !create) {
			/* It will be created at start: its parent must take it. */
			char parent[4096];
			char *slash =
			    mrtc_copy(parent, sizeof(parent), dir) ? strrchr(parent, '/') : NULL;
			if (slash)
				*(slash == parent ? slash + 1 : slash) = '\0';
			e = !slash			       ? ENAMETOOLONG
			    : stat(parent, &st) != 0	       ? errno
			    : !S_ISDIR(st.st_mode)	       ? ENOTDIR
			    : access(parent, W_OK | X_OK) != 0 ? errno
							       : 0;
			if (e)
				mrtc_format_shown(ret_why, size, "cannot be created: %s",
						  strerror(e));
			return e == 0;
		}
	}
	if (!e && !S_ISDIR(st.st_mode))
		e = ENOTDIR;
	if (!e && access(dir, W_OK | X_OK) != 0)
		e = errno;
	if (e)
		mrtc_format_shown(ret_why, size, "%s: %s",
				  create ? "cannot be created or written" : "not writable",
				  strerror(e));
	return e == 0;
}

enum mrtc_err mrtc_store_open(const char *spec, const struct mrtc_store_options *opts,
			      struct mrtc_store **ret)
{
	struct mrtc_store *st = calloc(1, sizeof(*st));
	if (!st)
		return MRTC_ERR_NOMEM;
	enum mrtc_err err = MRTC_ERR_CONFIG;
	if (strncmp(spec, "sqlite:", 7) == 0 && spec[7])
		err = mrtc_store_sqlite_open(spec + 7, st);
	else if (is_redis(spec))
		err = mrtc_store_redis_open(spec, opts, st);
	if (err != MRTC_OK) {
		free(st);
		return err;
	}
	*ret = st;
	return MRTC_OK;
}

void mrtc_store_get_status(const struct mrtc_store *st, struct mrtc_store_status *ret)
{
	struct mrtc_store_status s = { .kind = "none", .state = "off" };
	if (st)
		st->ops->status(st->self, &s);
	*ret = s;
}

void mrtc_store_close(struct mrtc_store *st)
{
	if (!st)
		return;
	st->ops->destroy(st->self);
	free(st);
}
