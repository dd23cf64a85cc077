/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ed25519 work off the event loop: prepared X-Matrix checks run on a small pool of threads and
 * their results come back on the loop. With no threads, checks run on the loop itself.
 */
#ifndef MRTC_VERIFIER_H
#define MRTC_VERIFIER_H

#include <event2/event.h>

#include "mrtc/matrix/xmatrix.h"

struct mrtc_verifier;
struct mrtc_verify_job;

/* Called on the loop with the check's result; the check is finished by then. */
typedef void (*mrtc_verify_fn)(void *ctx, enum mrtc_err err, const char *origin);

/* @threads: 0 verifies on the loop; otherwise that many worker threads (at most 64). */
enum mrtc_err mrtc_verifier_create(struct event_base *base, unsigned threads,
				   struct mrtc_verifier **ret_verifier);
/* Stops the workers; jobs still queued are dropped without callback. Accepts NULL. */
void mrtc_verifier_destroy(struct mrtc_verifier *verifier);

/* Takes ownership of @check (its contents). NULL on OOM (the check is finished then). */
struct mrtc_verify_job *mrtc_verifier_submit(struct mrtc_verifier *verifier,
					     struct mrtc_xmatrix_check *check, mrtc_verify_fn cb,
					     void *ctx);
/* The callback will not be called. Accepts NULL. */
void mrtc_verify_job_cancel(struct mrtc_verify_job *job);

#endif
