/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The membership backends: how a remote user's membership of a room (and the room's server
 * ACL) is checked for a federated get_token. One table; each backend is a file of its own
 * (membership_<name>.c) and one row here. The helpers every backend shares: a refused token,
 * an MSC4502 is_joined answer.
 */
#include <string.h>

#include "homeserver_private.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"

extern const struct mrtc_membership_backend mrtc_membership_synapse_admin;
extern const struct mrtc_membership_backend mrtc_membership_msc4502;

/* In MRTC_MEMBERSHIP_BACKEND's documented order; the first is the default. */
static const struct mrtc_membership_backend *const backends[] = {
	&mrtc_membership_synapse_admin,
	&mrtc_membership_msc4502,
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

const struct mrtc_membership_backend *mrtc_membership_backend_find(const char *name)
{
	for (size_t i = 0; name && i < N_BACKENDS; i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

const char *mrtc_membership_backend_list(size_t i, const char **ret_token_var)
{
	if (i >= N_BACKENDS)
		return NULL;
	*ret_token_var = backends[i]->token_var;
	return backends[i]->name;
}

void mrtc_hs_admin_refused(struct mrtc_hs_op *op, int status)
{
	/* A configuration problem, logged once when it is found (and on /readyz); each request
	 * it fails says so in its own line. */
	const char *which = op->hs->cfg.backend->token_label;
	if (!op->hs->stats.admin_misconfigured)
		mrtc_log(LOG_ERR, "homeserver", NULL,
			 "the homeserver refused our %s token (HTTP %d): check the configuration",
			 which, status);
	op->hs->stats.admin_misconfigured = true;
	if (!op->detail[0])
		mrtc_format_shown(op->detail, sizeof(op->detail),
				  "the homeserver refused our %s token (HTTP %d)", which, status);
	op->err = MRTC_ERR_UPSTREAM;
}

void mrtc_hs_joined_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			 struct json_object *doc, bool *out)
{
	if (resp->status == 401 || resp->status == 403) {
		mrtc_hs_admin_refused(op, resp->status);
		return;
	}
	struct json_object *j = NULL;
	if (resp->status == 404)
		return;
	if (resp->status != 200 || !json_object_object_get_ex(doc, "joined", &j) ||
	    !json_object_is_type(j, json_type_boolean)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	op->hs->stats.admin_misconfigured = false;
	*out = json_object_get_boolean(j);
}
