/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of module/delayed (jobs.c, delegate.c, webhook.c); private to it. */
#ifndef MRTC_DELAYED_INTERNAL_H
#define MRTC_DELAYED_INTERNAL_H

#include "mrtc/delayed/delayed.h"
#include "mrtc/livekit/livekit.h"
#include "mrtc/store/async.h"

#define MRTC_DELAYED_HS_RESPONSE_MAX (256 * 1024)

/* The MSC4140 management paths: unstable, then stable. */
extern const char *const mrtc_delayed_paths[2];

/* The feature's store (borrowed); only when mrtc_delayed_enabled(). */
struct mrtc_store_async *mrtc_delayed_store(struct mrtc_delayed *delayed);
/* Drives @rec, already written to the store, replacing the job of the same key. */
enum mrtc_err mrtc_delayed_start_stored(struct mrtc_delayed *delayed,
					const struct mrtc_job_record *rec);
/* A verified webhook from the SFUs in the bits of @from: the jobs and the watch act on it. */
void mrtc_delayed_on_webhook(struct mrtc_delayed *delayed, unsigned from,
			     const struct mrtc_webhook *hook);

#endif
