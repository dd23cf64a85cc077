/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where delegated delayed-leave jobs live so that they survive a restart (PROTOCOL §2.4):
 * "sqlite:<path>" (embedded, one daemon) or "redis://host[:port][/db]" (shared by several
 * daemons, each job driven by one of them at a time through a lease). A struct of function
 * pointers is the seam; both stores implement it.
 *
 * Store calls are synchronous: SQLite writes a local file, and Redis is asked with a 250 ms
 * timeout per command, so a Redis outage costs the event loop at most that per call.
 */
#ifndef MRTC_STORE_H
#define MRTC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "mrtc/base/err.h"
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
	uint64_t delay_ms;
	uint64_t created_ms; /* wall clock */
	int state;
	bool guarded; /* cs_api_url came from a client: the outbound guard applies */
};

typedef void (*mrtc_store_each_fn)(void *ctx, const struct mrtc_job_record *job);

struct mrtc_store_ops {
	enum mrtc_err (*put)(void *self, const struct mrtc_job_record *job);
	enum mrtc_err (*del)(void *self, const char *key);
	enum mrtc_err (*get)(void *self, const char *key, struct mrtc_job_record *ret_job);
	enum mrtc_err (*each)(void *self, mrtc_store_each_fn fn, void *ctx);
	/* Takes or renews the lease on @key for @owner; false if another owner holds it. */
	bool (*lease)(void *self, const char *key, const char *owner, uint64_t ttl_ms);
	void (*release)(void *self, const char *key, const char *owner);
	void (*destroy)(void *self);
};

struct mrtc_store {
	const struct mrtc_store_ops *ops;
	void *self;
	bool shared; /* several daemons may use it: leases matter */
};

/* Opens @spec. MRTC_ERR_CONFIG for a spec of unknown form; MRTC_ERR_IO if unreachable. */
enum mrtc_err mrtc_store_open(const char *spec, struct mrtc_store **ret_store);
void mrtc_store_close(struct mrtc_store *store);

/* True if @spec has one of the accepted forms (configuration validation). */
bool mrtc_store_spec_is_valid(const char *spec);

#endif
