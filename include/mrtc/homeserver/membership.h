/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Membership backends (MRTC_MEMBERSHIP_BACKEND): how the homeserver client checks a remote
 * user's membership of a room, whether any of our users is still joined, and the room's server
 * ACL, for a federated get_token. One table (module/homeserver/membership.c); a backend is one
 * file (membership_<name>.c) defining its row: its name, the variable of the token it calls
 * with (required with it, checked by the configuration through mrtc_membership_backend_list),
 * the token's name in logs, and the function that starts its calls.
 */
#ifndef MRTC_MEMBERSHIP_H
#define MRTC_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>

struct mrtc_hs_op;

struct mrtc_membership_backend {
	const char *name;	 /* the MRTC_MEMBERSHIP_BACKEND value */
	const char *token_var;	 /* the configuration variable of its token, required with it */
	const char *token_label; /* the token in logs: "the homeserver refused our <label> token" */
	/* Starts the calls answering @op (a remote membership: user_id and origin set; @room_e
	 * the room, percent-encoded), each counted in op->pending and ending in op->remote or
	 * op->err. False if one could not start (those started still complete). */
	bool (*start)(struct mrtc_hs_op *op, const char *room_e);
};

/* The backend named @name, or NULL. Borrowed, static. */
const struct mrtc_membership_backend *mrtc_membership_backend_find(const char *name);

/* The name of the @i-th backend (0, 1, ... in the documented order) with *@ret_token_var its
 * token variable, or NULL past the last: an mrtc_membership_list_fn for mrtc_config_load(). */
const char *mrtc_membership_backend_list(size_t i, const char **ret_token_var);

#endif
