/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inbound X-Matrix step: header checks on the loop, the origin's key through the keyring,
 * the Ed25519 work through the verifier. Failures found inside start are delivered from an
 * immediate event, so that the callback never runs inside it.
 */
#include "mrtc/net/inbound.h"

#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrtc/base/util.h"
#include "mrtc/matrix/xmatrix.h"

struct mrtc_inbound {
	struct mrtc_inbound_env env;
	char *method, *uri, *server_name;
	struct json_object *body; /* a reference */
	char *auth[MRTC_INBOUND_AUTH_MAX];
	size_t n_auth;
	char origin[MRTC_SERVER_NAME_MAX + 1];
	mrtc_inbound_fn cb;
	void *ctx;
	struct mrtc_keyring_op *key_op;
	struct mrtc_verify_job *job;
	struct event *later; /* delivers a failure found inside start */
	struct mrtc_inbound_result result;
};

static void step_free(struct mrtc_inbound *st)
{
	mrtc_keyring_cancel(st->key_op);
	mrtc_verify_job_cancel(st->job);
	if (st->later)
		event_free(st->later);
	for (size_t i = 0; i < st->n_auth; i++)
		free(st->auth[i]);
	free(st->method);
	free(st->uri);
	free(st->server_name);
	json_object_put(st->body);
	free(st);
}

static void finish(struct mrtc_inbound *st, enum mrtc_err err, const char *message)
{
	st->key_op = NULL; /* finished or never started: nothing left to cancel */
	st->job = NULL;
	st->result.err = err;
	st->result.origin = st->origin;
	st->result.message = err == MRTC_OK ? NULL : message;
	st->cb(st->ctx, &st->result);
	step_free(st);
}

static void deliver_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_inbound *st = arg;
	finish(st, st->result.err, st->result.message);
}

/* A failure found inside start: delivered from the loop. */
static void fail_soon(struct mrtc_inbound *st, enum mrtc_err err, const char *message)
{
	st->result.err = err;
	st->result.message = message;
	event_active(st->later, 0, 0);
}

static void on_verified(void *arg, enum mrtc_err err, const char *origin)
{
	struct mrtc_inbound *st = arg;
	st->job = NULL;
	if (err != MRTC_OK) {
		st->result.bad_signature = true;
		finish(st, MRTC_ERR_BAD_SIGNATURE, "Request signature is not valid");
		return;
	}
	mrtc_copy(st->origin, sizeof(st->origin), origin); /* a server name: fits */
	finish(st, MRTC_OK, NULL);
}

/* Everything but the Ed25519 checks here; those run on the verifier's threads. @soon: inside
 * start, where failures wait for the loop. */
static void verify(struct mrtc_inbound *st, bool soon)
{
	void (*fail)(struct mrtc_inbound *, enum mrtc_err, const char *) =
	    soon ? fail_soon : finish;
	struct mrtc_xmatrix_check check;
	enum mrtc_err err = mrtc_xmatrix_prepare(st->method, st->uri, st->body, st->server_name,
						 (const char *const *)st->auth, st->n_auth,
						 mrtc_keyring_lookup, st->env.keyring, &check);
	if (err != MRTC_OK) {
		st->result.bad_signature = true;
		fail(st, err == MRTC_ERR_AUTH_MALFORMED ? err : MRTC_ERR_BAD_SIGNATURE,
		     "Request signature is not valid");
		return;
	}
	st->job = mrtc_verifier_submit(st->env.verifier, &check, on_verified, st);
	if (!st->job)
		fail(st, MRTC_ERR_NOMEM, "Out of memory");
}

static void on_key(void *arg, enum mrtc_err err)
{
	struct mrtc_inbound *st = arg;
	st->key_op = NULL;
	if (err == MRTC_ERR_LIMIT_EXCEEDED) {
		/* Too many key fetches in flight, overall or from this peer. */
		st->result.retry_after_ms = 1000;
		finish(st, err, "Too many key fetches in flight");
		return;
	}
	/* Otherwise verification reports a missing or expired key. */
	verify(st, false);
}

/* Copies the Authorization values; the first X-Matrix one, or NULL. False on OOM. */
static bool collect_auth(struct mrtc_inbound *st, const struct evkeyvalq *headers,
			 const char **ret_first, bool *ret_too_many)
{
	*ret_first = NULL;
	*ret_too_many = false;
	for (const struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next) {
		if (strcasecmp(h->key, "Authorization") != 0)
			continue;
		if (st->n_auth == MRTC_INBOUND_AUTH_MAX) {
			*ret_too_many = true;
			return true;
		}
		st->auth[st->n_auth] = strdup(h->value);
		if (!st->auth[st->n_auth])
			return false;
		if (!*ret_first && strncasecmp(h->value, "X-Matrix ", 9) == 0)
			*ret_first = st->auth[st->n_auth];
		st->n_auth++;
	}
	return true;
}

struct mrtc_inbound *mrtc_inbound_start(const struct mrtc_inbound_env *env,
					const struct mrtc_inbound_request *req, mrtc_inbound_fn cb,
					void *ctx)
{
	struct mrtc_inbound *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->env = *env;
	st->cb = cb;
	st->ctx = ctx;
	st->body = req->body ? json_object_get(req->body) : NULL;
	st->method = strdup(req->method);
	st->uri = strdup(req->uri);
	st->server_name = strdup(req->server_name);
	st->later = event_new(env->base, -1, 0, deliver_later, st);
	const char *first = NULL;
	bool too_many = false;
	if (!st->method || !st->uri || !st->server_name || !st->later ||
	    !collect_auth(st, req->headers, &first, &too_many)) {
		step_free(st);
		return NULL;
	}
	if (too_many) {
		fail_soon(st, MRTC_ERR_AUTH_MALFORMED, "Too many Authorization headers");
		return st;
	}
	struct mrtc_xmatrix_auth a;
	enum mrtc_err err = first ? mrtc_xmatrix_parse(first, &a) : MRTC_ERR_AUTH_MISSING;
	if (err != MRTC_OK) {
		fail_soon(st, err,
			  err == MRTC_ERR_AUTH_MISSING ? "Missing X-Matrix authorization"
						       : "Malformed X-Matrix authorization");
		return st;
	}
	mrtc_copy(st->origin, sizeof(st->origin), a.origin); /* a parsed server name: fits */
	if (a.destination[0] && strcmp(a.destination, req->server_name) != 0) {
		st->result.bad_signature = true;
		fail_soon(st, MRTC_ERR_WRONG_DESTINATION, "Request is addressed to another server");
		return st;
	}
	uint8_t pk[MRTC_ED25519_PK_LEN];
	if (mrtc_keyring_lookup(env->keyring, a.origin, a.key, pk) == MRTC_OK) {
		verify(st, true);
		return st;
	}
	st->key_op =
	    mrtc_keyring_ensure_from(env->keyring, req->peer && req->peer[0] ? req->peer : NULL,
				     a.origin, a.key, on_key, st);
	if (!st->key_op)
		fail_soon(st, MRTC_ERR_UNKNOWN_KEY, "Unknown signing key");
	return st;
}

void mrtc_inbound_cancel(struct mrtc_inbound *st)
{
	if (st)
		step_free(st);
}
