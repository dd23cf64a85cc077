/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delegated delayed leave (PROTOCOL §2.4) and the SFU side of membership: jobs that keep a
 * user's MSC4140 delayed leave event alive while their participant is on our SFU and send it
 * when they leave; verified LiveKit webhooks that drive the jobs; and a periodic re-check of
 * the participants we admitted, removing from the SFU those no longer joined to the room.
 */
#ifndef MRTC_DELAYED_H
#define MRTC_DELAYED_H

#include "mrtc/http/http.h"

struct mrtc_services;
struct mrtc_delayed;
struct mrtc_store_async;

/* Opens the store (when configured), resumes its jobs, starts the membership watch. */
enum mrtc_err mrtc_delayed_create(struct mrtc_services *services,
				  struct mrtc_delayed **ret_delayed);
void mrtc_delayed_destroy(struct mrtc_delayed *delayed);
/* Shutdown: stops the jobs (they stay stored) and the periodic work. */
void mrtc_delayed_quiesce(struct mrtc_delayed *delayed);

/* Remembers a participant we minted a token for, for the membership watch. */
void mrtc_delayed_admitted(struct mrtc_delayed *delayed, size_t sfu, const char *room_id,
			   const char *room_name, const char *identity, const char *user_id,
			   uint64_t ttl_s);

struct mrtc_job_record;

/* True when delegation is possible (a store is configured). */
bool mrtc_delayed_enabled(const struct mrtc_delayed *delayed);

/* The job store (borrowed), or NULL without one. */
const struct mrtc_store_async *mrtc_delayed_get_store(const struct mrtc_delayed *delayed);

/*
 * Starts the job @rec, replacing the job of the same key, and queues its write to the store
 * (written in the background). Logs without the delay_id. MRTC_ERR_UPSTREAM if the store is not
 * keeping up, MRTC_ERR_INTERNAL if the job cannot start.
 */
enum mrtc_err mrtc_delayed_start_job(struct mrtc_delayed *delayed,
				     const struct mrtc_job_record *rec);

void mrtc_delayed_delegate(struct mrtc_request *r); /* POST …/rtc/livekit/delegate_delayed_leave */
void mrtc_delayed_webhook(struct mrtc_request *r);  /* POST /sfu_webhook */

#endif
