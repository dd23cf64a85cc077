/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LiveKit's RoomService over Twirp JSON (PROTOCOL §4.4): CreateRoom (idempotent; rooms known
 * to exist are remembered briefly), GetParticipant and RemoveParticipant, each with a short-
 * lived service token carrying only the grant it needs and a timeout. Results tell "absent"
 * (MRTC_ERR_NOT_FOUND) from "SFU unreachable or failing" (MRTC_ERR_UPSTREAM/TIMEOUT/...).
 */
#ifndef MRTC_ROOMSERVICE_H
#define MRTC_ROOMSERVICE_H

#include "mrtc/net/httpclient.h"
#include "mrtc/livekit/livekit.h"

#define MRTC_ROOM_KNOWN_TTL_MS 60000
#define MRTC_ROOM_KNOWN_MAX 65536 /* rooms remembered (about 100 bytes each when used) */

struct mrtc_roomservice;
struct mrtc_rs_call;

struct mrtc_roomservice_config {
	struct mrtc_http_client *http;
	struct mrtc_dns *dns;
	const char *api_url; /* http(s)://host[:port][/prefix], no trailing slash */
	struct mrtc_livekit_creds creds;
	uint64_t timeout_ms;
	uint32_t empty_timeout_s;     /* CreateRoom empty_timeout (300) */
	uint32_t departure_timeout_s; /* CreateRoom departure_timeout (20) */
};

struct mrtc_roomservice_stats {
	uint64_t ok, not_found, failed, known_room_hits;
	uint64_t last_ok_ms; /* monotonic time of the last answer from the SFU, 0 if none */
};

/* @detail (may be NULL) says why, for the log. */
typedef void (*mrtc_rs_fn)(void *ctx, enum mrtc_err err, const char *detail);

enum mrtc_err mrtc_roomservice_create(struct event_base *base,
				      const struct mrtc_roomservice_config *config,
				      struct mrtc_roomservice **ret_rs);
void mrtc_roomservice_destroy(struct mrtc_roomservice *rs);
void mrtc_roomservice_get_stats(const struct mrtc_roomservice *rs,
				struct mrtc_roomservice_stats *ret_stats);

struct mrtc_rs_call *mrtc_roomservice_create_room(struct mrtc_roomservice *rs, const char *room,
						  mrtc_rs_fn cb, void *ctx);
/* MRTC_OK: present; MRTC_ERR_NOT_FOUND: absent. */
struct mrtc_rs_call *mrtc_roomservice_get_participant(struct mrtc_roomservice *rs, const char *room,
						      const char *identity, mrtc_rs_fn cb,
						      void *ctx);
struct mrtc_rs_call *mrtc_roomservice_remove_participant(struct mrtc_roomservice *rs,
							 const char *room, const char *identity,
							 mrtc_rs_fn cb, void *ctx);
/* A cheap authenticated call (ListRooms of one unlikely name) that proves the SFU answers. */
struct mrtc_rs_call *mrtc_roomservice_probe(struct mrtc_roomservice *rs, mrtc_rs_fn cb, void *ctx);
/* Every start call above follows mrtc/base/async.h. Cancel: no callback, and the call stops
 * (its connection closed, or the immediate answer dropped). Accepts NULL. */
void mrtc_rs_call_cancel(struct mrtc_rs_call *call);

/*
 * Pure: the outcome of a RoomService response (@status, @body, @content_type), with a short
 * reason in @detail (size >= 128).
 */
enum mrtc_err mrtc_roomservice_classify(int status, const char *body, size_t len,
					const char *content_type, char *detail, size_t size);

#endif
