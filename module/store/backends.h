/* SPDX-License-Identifier: Apache-2.0 */
/* The two backends of store.h, private to module/store: each fills @store (ops, self, shared). */
#ifndef MRTC_STORE_BACKENDS_H
#define MRTC_STORE_BACKENDS_H

#include "mrtc/store/store.h"

/* MRTC_ERR_IO when SQLite cannot open or migrate @path (logged). */
enum mrtc_err mrtc_store_sqlite_open(const char *path, struct mrtc_store *store);
/* MRTC_ERR_CONFIG for a malformed @spec; an unreachable Redis is retried on use. */
enum mrtc_err mrtc_store_redis_open(const char *spec, const struct mrtc_store_options *opts,
				    struct mrtc_store *store);

#endif
