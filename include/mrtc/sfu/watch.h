/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The membership watch (PROTOCOL §2.5): whom we admitted to an SFU, re-checked periodically and
 * on participant_joined; a participant no longer joined to the Matrix room is removed from the
 * SFU (RemoveParticipant). Kept in the store when there is one (per SFU url), so that a
 * restarted daemon still re-checks the participants it admitted.
 */
#ifndef MRTC_SFU_WATCH_H
#define MRTC_SFU_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/store/async.h"

struct mrtc_services;
struct mrtc_watch;

/* @store (borrowed, may be NULL: in memory only) must outlive the watch; its admitted set is
 * read from it at once. */
enum mrtc_err mrtc_watch_create(struct mrtc_services *services, struct mrtc_store_async *store,
				struct mrtc_watch **ret_watch);
/* Shutdown: no new checks; admissions still pending are queued to the store. */
void mrtc_watch_quiesce(struct mrtc_watch *watch);
void mrtc_watch_destroy(struct mrtc_watch *watch); /* accepts NULL */

/* Remembers a participant we minted a token for on SFU @sfu (index in config->sfus), until its
 * token expires in @ttl_s seconds. @watch may be NULL. */
void mrtc_watch_admitted(struct mrtc_watch *watch, size_t sfu, const char *room_id,
			 const char *room_name, const char *identity, const char *user_id,
			 uint64_t ttl_s);
/* participant_joined from the SFUs in the bits of @from: the participant is re-checked now. */
void mrtc_watch_joined(struct mrtc_watch *watch, unsigned from, const char *room,
		       const char *identity);

#endif
