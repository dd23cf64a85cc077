/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Application-service mode: the authentication steps for requests Synapse forwards (MSC4512),
 * the fed_proxy client, /_matrix/app/v1/ping, the /versions feature check and the registration
 * file. The endpoints themselves are the same as in homeserver mode (rtc/, delayed/).
 */
#include "mrtc/appservice/appservice.h"

#include <event2/http.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "mrtc/core/log.h"
#include "mrtc/services/services.h"
#include "mrtc/base/util.h"

#define FEDPROXY_RESPONSE_MAX (128 * 1024)
#define TOKEN_BYTES 32

static const char *header(const struct mrtc_request *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

bool mrtc_appservice_check_hs_token(struct mrtc_request *r)
{
	const char *token = mrtc_http_bearer(r);
	const char *hs_token = r->services->config->appservice_hs_token;
	if (!token) {
		mrtc_http_reply_error(r, MRTC_ERR_MISSING_TOKEN, "Missing homeserver access token");
		return false;
	}
	if (!hs_token || !mrtc_str_equal_ct(token, hs_token)) {
		mrtc_request_fail(r, MRTC_ERR_UNKNOWN_TOKEN, "Unrecognised homeserver access token",
				  "the wrong hs_token: only the homeserver may call this listener "
				  "in application-service mode");
		return false;
	}
	return true;
}

bool mrtc_appservice_client_user(struct mrtc_request *r, char ret_user_id[MRTC_ID_MAX + 1])
{
	if (!mrtc_appservice_check_hs_token(r))
		return false;
	const char *user = header(r, "X-Matrix-User-Identifier");
	if (!user || !user[0]) {
		mrtc_http_reply_error(r, MRTC_ERR_UNAUTHORIZED, "Missing request authorization");
		return false;
	}
	const char *server = mrtc_user_id_server(user);
	if (!server || strlen(user) > MRTC_ID_MAX) {
		mrtc_http_reply_error(r, MRTC_ERR_INVALID_PARAM, "Malformed user identifier");
		return false;
	}
	if (strcmp(server, r->services->config->server_name) != 0) {
		mrtc_http_reply_error(r, MRTC_ERR_FORBIDDEN,
				      "Only users of this homeserver can use this endpoint");
		return false;
	}
	memcpy(ret_user_id, user, strlen(user) + 1);
	return true;
}

bool mrtc_appservice_origin(struct mrtc_request *r, char ret_origin[MRTC_SERVER_NAME_MAX + 1])
{
	if (!mrtc_appservice_check_hs_token(r))
		return false;
	const char *origin = header(r, "X-Matrix-Origin");
	if (!origin || !origin[0]) {
		mrtc_http_reply_error(r, MRTC_ERR_UNAUTHORIZED, "Missing request origin");
		return false;
	}
	if (strlen(origin) > MRTC_SERVER_NAME_MAX || !mrtc_server_name_is_valid(origin)) {
		mrtc_http_reply_error(r, MRTC_ERR_INVALID_PARAM, "Malformed request origin");
		return false;
	}
	memcpy(ret_origin, origin, strlen(origin) + 1);
	return true;
}

void mrtc_appservice_ping(struct mrtc_request *r)
{
	if (!mrtc_appservice_check_hs_token(r))
		return;
	struct json_object *body = json_object_new_object();
	mrtc_http_reply_json(r, body ? 200 : 500, body);
	json_object_put(body);
}

/* ---- fed_proxy ---- */

const char *mrtc_fedproxy_refusal_str(enum mrtc_fedproxy_refusal refusal)
{
	switch (refusal) {
	case MRTC_FEDPROXY_RELAYED:
		return "relayed";
	case MRTC_FEDPROXY_NOT_APPSERVICE:
		return "as_token refused";
	case MRTC_FEDPROXY_DESTINATION_DENIED:
		return "destination denied";
	case MRTC_FEDPROXY_PATH_NOT_ALLOWED:
		return "path not allowed";
	case MRTC_FEDPROXY_BAD_PARAM:
		return "bad parameter";
	case MRTC_FEDPROXY_CONNECTION_FAILED:
		return "connection failed";
	case MRTC_FEDPROXY_UNSUPPORTED:
		return "fed_proxy not offered (MSC4512 off)";
	case MRTC_FEDPROXY_FAILED:
		break;
	}
	return "failed";
}

/* True if @errcode is the MSC4512 code @suffix, with its unstable prefix ("IO.ELEMENT.MSC4512."
 * or "IO.ELEMENT.MSC4512_") or as the stable "M_" form. */
static bool is_fedproxy_code(const char *errcode, const char *suffix)
{
	static const char *const prefixes[] = { "IO.ELEMENT.MSC4512.M_", "IO.ELEMENT.MSC4512_",
						"M_" };
	for (size_t i = 0; errcode && i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(errcode, prefixes[i], n) == 0 && strcmp(errcode + n, suffix) == 0)
			return true;
	}
	return false;
}

enum mrtc_fedproxy_refusal mrtc_fedproxy_parse(int status, const char *body, size_t len,
					       int *ret_status, struct json_object **ret_content)
{
	struct json_object *doc = NULL;
	enum mrtc_fedproxy_refusal out = MRTC_FEDPROXY_FAILED;
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &doc) != MRTC_OK ||
	    !json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
		return (status == 404 || status == 405) ? MRTC_FEDPROXY_UNSUPPORTED
							: MRTC_FEDPROXY_FAILED;
	}
	const char *errcode = mrtc_json_get_string(doc, "errcode");
	if (status == 200) {
		struct json_object *st = NULL, *content = NULL;
		if (json_object_object_get_ex(doc, "status", &st) &&
		    json_object_is_type(st, json_type_int) && json_object_get_int64(st) >= 100 &&
		    json_object_get_int64(st) <= 599) {
			*ret_status = (int)json_object_get_int64(st);
			*ret_content = NULL;
			if (json_object_object_get_ex(doc, "content", &content) &&
			    json_object_is_type(content, json_type_object))
				*ret_content = json_object_get(content);
			out = MRTC_FEDPROXY_RELAYED;
		}
	} else if (status == 401 ||
		   (status == 403 && errcode && strcmp(errcode, "M_FORBIDDEN") == 0)) {
		out = MRTC_FEDPROXY_NOT_APPSERVICE;
	} else if (status == 403 && is_fedproxy_code(errcode, "FEDPROXY_DESTINATION_DENIED")) {
		out = MRTC_FEDPROXY_DESTINATION_DENIED;
	} else if ((status == 403 || status == 400) &&
		   (is_fedproxy_code(errcode, "FEDPROXY_PATH_NOT_ALLOWED") ||
		    is_fedproxy_code(errcode, "FEDPROXY_NO_PROXY_PREFIX"))) {
		out = MRTC_FEDPROXY_PATH_NOT_ALLOWED;
	} else if (status == 400 && errcode &&
		   (strcmp(errcode, "M_MISSING_PARAM") == 0 ||
		    strcmp(errcode, "M_INVALID_PARAM") == 0)) {
		out = MRTC_FEDPROXY_BAD_PARAM;
	} else if (status == 502 && is_fedproxy_code(errcode, "FEDPROXY_CONNECTION_FAILED")) {
		out = MRTC_FEDPROXY_CONNECTION_FAILED;
	} else if ((status == 404 || status == 405) && errcode &&
		   strcmp(errcode, "M_UNRECOGNIZED") == 0) {
		out = MRTC_FEDPROXY_UNSUPPORTED;
	}
	json_object_put(doc);
	return out;
}

struct mrtc_fedproxy_call {
	struct mrtc_http_call *http;
	mrtc_fedproxy_fn done;
	void *ctx;
};

static void fedproxy_answer(void *arg, const struct mrtc_http_response *resp)
{
	struct mrtc_fedproxy_call *call = arg;
	struct mrtc_http_response out = { .err = MRTC_ERR_UPSTREAM, .body = "", .body_len = 0 };
	enum mrtc_fedproxy_refusal refusal = MRTC_FEDPROXY_FAILED;
	struct json_object *content = NULL;
	char *text = NULL;
	char detail[96];
	if (resp->err != MRTC_OK) {
		out.detail = resp->detail ? resp->detail : mrtc_err_str(resp->err);
	} else {
		int status = 0;
		refusal = mrtc_fedproxy_parse(resp->status, resp->body, resp->body_len, &status,
					      &content);
		if (refusal == MRTC_FEDPROXY_RELAYED) {
			/* As a direct call gives it: the status, the body as JSON text ("" when
			 * the destination sent none). */
			out.err = MRTC_OK;
			out.status = status;
			out.content_type = "application/json";
			if (content && mrtc_json_canonical(content, &text, NULL) == MRTC_OK) {
				out.body = text;
				out.body_len = strlen(text);
			}
		} else {
			mrtc_format_shown(detail, sizeof(detail), "fed_proxy answered HTTP %d: %s",
					  resp->status, mrtc_fedproxy_refusal_str(refusal));
			out.detail = detail;
		}
	}
	call->done(call->ctx, &out, refusal);
	json_object_put(content);
	free(text);
	free(call);
}

struct mrtc_fedproxy_call *mrtc_fedproxy_request(struct mrtc_services *s, const char *destination,
						 const char *method, const char *path,
						 const struct json_object *content,
						 uint64_t timeout_ms, mrtc_fedproxy_fn done,
						 void *ctx)
{
	const struct mrtc_config *c = s->config;
	struct mrtc_fedproxy_call *call = calloc(1, sizeof(*call));
	struct json_object *req = json_object_new_object();
	char *text = NULL, *url = NULL, *auth = NULL;
	if (!call || !req)
		goto fail;
	json_object_object_add(req, "destination", json_object_new_string(destination));
	json_object_object_add(req, "method", json_object_new_string(method));
	json_object_object_add(req, "path", json_object_new_string(path));
	if (content)
		json_object_object_add(req, "body", json_object_get((struct json_object *)content));
	if (mrtc_json_canonical(req, &text, NULL) != MRTC_OK)
		goto fail;
	size_t ul = strlen(c->homeserver_url) + sizeof(MRTC_FEDPROXY_PATH);
	size_t al = strlen(c->appservice_token) + 8;
	url = malloc(ul);
	auth = malloc(al);
	if (!url || !auth)
		goto fail;
	size_t base = strlen(c->homeserver_url);
	while (base && c->homeserver_url[base - 1] == '/')
		base--;
	if (!mrtc_format(url, ul, "%.*s%s", (int)base, c->homeserver_url, MRTC_FEDPROXY_PATH) ||
	    !mrtc_format(auth, al, "Bearer %s", c->appservice_token))
		goto fail;
	struct mrtc_http_request hr = {
		.method = "POST",
		.content_type = "application/json",
		.authorization = auth,
		.body = text,
		.body_len = strlen(text),
		.timeout_ms = timeout_ms,
		.max_body = FEDPROXY_RESPONSE_MAX,
	};
	call->done = done;
	call->ctx = ctx;
	/* The homeserver is the operator's own: no outbound guard (as homeserver.c). */
	call->http =
	    mrtc_http_fetch(s->http, s->dns, url, &hr, false, NULL, 0, fedproxy_answer, call);
	if (!call->http)
		goto fail;
	sodium_memzero(auth, al);
	free(auth);
	free(url);
	free(text);
	json_object_put(req);
	return call;
fail:
	if (auth) {
		sodium_memzero(auth, strlen(c->appservice_token) + 8);
		free(auth);
	}
	free(url);
	free(text);
	json_object_put(req);
	free(call);
	return NULL;
}

void mrtc_fedproxy_cancel(struct mrtc_fedproxy_call *call)
{
	if (!call)
		return;
	mrtc_http_call_cancel(call->http);
	free(call);
}

/* ---- /versions ---- */

static bool feature(struct json_object *features, const char *name)
{
	struct json_object *v = NULL;
	return json_object_object_get_ex(features, name, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

bool mrtc_appservice_features_parse(const char *body, size_t len,
				    struct mrtc_appservice_features *ret)
{
	struct json_object *doc = NULL, *uf = NULL, *versions = NULL;
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &doc) != MRTC_OK ||
	    !json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "versions", &versions) ||
	    !json_object_is_type(versions, json_type_array)) {
		json_object_put(doc);
		return false;
	}
	struct mrtc_appservice_features f = { .known = true };
	if (json_object_object_get_ex(doc, "unstable_features", &uf) &&
	    json_object_is_type(uf, json_type_object)) {
		f.msc4195 = feature(uf, "io.element.msc4195");
		f.msc4502 = feature(uf, "io.element.msc4502");
		f.msc4502_stable = feature(uf, "io.element.msc4502.stable");
		f.msc4512 = feature(uf, "io.element.msc4512");
	}
	json_object_put(doc);
	*ret = f;
	return true;
}

void mrtc_appservice_features_update(struct mrtc_services *s,
				     const struct mrtc_appservice_features *f)
{
	if (!s->appservice_features && !(s->appservice_features = calloc(1, sizeof(*f))))
		return; /* out of memory: the next /versions answer tries again */
	struct mrtc_appservice_features *old = s->appservice_features;
	static const struct {
		const char *name, *why;
		size_t offset;
	} checks[] = {
		{ "io.element.msc4195", "clients do not find the rtc/livekit endpoints",
		  offsetof(struct mrtc_appservice_features, msc4195) },
		{ "io.element.msc4502",
		  "membership cannot be checked (experimental_features.msc4502_enabled, and the "
		  "registration's io.element.msc4502.scopes)",
		  offsetof(struct mrtc_appservice_features, msc4502) },
		{ "io.element.msc4512",
		  "nothing is proxied to this daemon and fed_proxy is missing "
		  "(experimental_features.msc4512_enabled)",
		  offsetof(struct mrtc_appservice_features, msc4512) },
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		bool now = *(const bool *)((const char *)f + checks[i].offset);
		bool before = *(const bool *)((const char *)old + checks[i].offset);
		if (now && (!old->known || !before))
			mrtc_log(LOG_INFO, "appservice", NULL, "homeserver offers %s",
				 checks[i].name);
		else if (!now && (!old->known || before))
			mrtc_log(LOG_WARNING, "appservice", NULL,
				 "homeserver does not offer %s in /versions unstable_features: %s",
				 checks[i].name, checks[i].why);
	}
	*old = *f;
	/* The stable is_joined only when the unstable one is gone. */
	mrtc_homeserver_set_is_joined_stable(s->homeserver, !f->msc4502 && f->msc4502_stable);
}

/* ---- registration ---- */

static bool random_token(char out[2 * TOKEN_BYTES + 1])
{
	uint8_t raw[TOKEN_BYTES];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, 2 * TOKEN_BYTES + 1, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	return true;
}

/* Writes @s into @b as a regex matching it literally. */
static void regex_escape(struct mrtc_buf *b, const char *s)
{
	for (; *s; s++) {
		if (strchr(".^$*+?()[]{}|\\", *s))
			mrtc_buf_putc(b, '\\');
		mrtc_buf_putc(b, *s);
	}
}

enum mrtc_err mrtc_appservice_write_registration(FILE *out, const char *server_name,
						 const char *proxy_url)
{
	if (!mrtc_server_name_is_valid(server_name))
		return MRTC_ERR_INVALID_PARAM;
	if (strncmp(proxy_url, "http://", 7) != 0 && strncmp(proxy_url, "https://", 8) != 0)
		return MRTC_ERR_INVALID_PARAM;
	if (mrtc_has_control(proxy_url, strlen(proxy_url)) || strpbrk(proxy_url, " \"'#\\?"))
		return MRTC_ERR_INVALID_PARAM;
	size_t url_len = strlen(proxy_url);
	while (url_len && proxy_url[url_len - 1] == '/')
		url_len--;
	char as_token[2 * TOKEN_BYTES + 1], hs_token[2 * TOKEN_BYTES + 1];
	random_token(as_token);
	random_token(hs_token);
	struct mrtc_buf re;
	mrtc_buf_init(&re);
	mrtc_buf_puts(&re, "@.*:");
	regex_escape(&re, server_name);
	fprintf(
	    out,
	    "# Application-service registration for mrtc-transportd (MSC4512 + MSC4502).\n"
	    "# Synapse 1.161/1.162 reads the prefixed io.element.* keys below; un-prefixed\n"
	    "# keys or the stable scope URN are not recognised by them.\n"
	    "id: mrtc-transport\n"
	    "# No transactions wanted: the daemon needs no event traffic.\n"
	    "url: null\n"
	    "as_token: \"%s\"\n"
	    "hs_token: \"%s\"\n"
	    "sender_localpart: \"_mrtc_transport\"\n"
	    "rate_limited: false\n"
	    "namespaces:\n"
	    "  users:\n"
	    "    # Membership is asked for local users only; not exclusive: users stay theirs.\n"
	    "    - exclusive: false\n"
	    "      regex: '%s'\n"
	    "  rooms: []\n"
	    "  aliases: []\n"
	    "io.element.msc4512.proxy_prefix: \"rtc/livekit\"\n"
	    "io.element.msc4512.proxy_url: \"%.*s\"\n"
	    "io.element.msc4502.scopes: [\"" MRTC_IS_JOINED_SCOPE "\"]\n"
	    "#\n"
	    "# The matching mrtc-transportd environment (keep the tokens secret):\n"
	    "#   MRTC_SERVER_NAME=%s\n"
	    "#   MRTC_APPSERVICE_TOKEN=%s\n"
	    "#   MRTC_APPSERVICE_HS_TOKEN=%s\n"
	    "# and MRTC_HOMESERVER_URL, LIVEKIT_URL, LIVEKIT_KEY, LIVEKIT_SECRET as usual;\n"
	    "# no MRTC_SIGNING_KEY_FILE. Synapse's homeserver.yaml needs:\n"
	    "#   app_service_config_files: [<this file>]\n"
	    "#   experimental_features: {msc4512_enabled: true, msc4502_enabled: true}\n",
	    as_token, hs_token, re.data ? re.data : "", (int)url_len, proxy_url, server_name,
	    as_token, hs_token);
	sodium_memzero(as_token, sizeof(as_token));
	sodium_memzero(hs_token, sizeof(hs_token));
	bool failed = re.failed;
	mrtc_buf_finish(&re);
	return failed || ferror(out) ? MRTC_ERR_IO : MRTC_OK;
}
