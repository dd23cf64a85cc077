/* SPDX-License-Identifier: Apache-2.0 */
/* Routing, error-to-status mapping, CORS headers, request-path extraction and request
 * states. */
#include <check.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/http/http.h"
#include "mrtc/http/server.h"
#include "vectors.h"

static void handler_a(struct mrtc_request *r)
{
	(void)r;
}

static void handler_b(struct mrtc_request *r)
{
	(void)r;
}

static const struct mrtc_route routes[] = {
	{ "/healthz", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, handler_a, "healthz" },
	{ "/_matrix/client/v1/rtc/transports", EVHTTP_REQ_GET, handler_b, "transports" },
	{ "/get_token", EVHTTP_REQ_POST, handler_a, "legacy_get_token" },
};

START_TEST(test_route_find_matches)
{
	const struct mrtc_route *r = NULL;
	ck_assert_int_eq(mrtc_route_find(routes, 3, "/healthz", EVHTTP_REQ_HEAD, &r),
			 MRTC_ROUTE_FOUND);
	ck_assert_str_eq(r->name, "healthz");
	ck_assert_int_eq(
	    mrtc_route_find(routes, 3, "/_matrix/client/v1/rtc/transports", EVHTTP_REQ_GET, &r),
	    MRTC_ROUTE_FOUND);
	ck_assert(r->handler == handler_b);
	ck_assert_int_eq(mrtc_route_find(routes, 3, "/get_token", EVHTTP_REQ_GET, &r),
			 MRTC_ROUTE_NO_METHOD);
	ck_assert_int_eq(mrtc_route_find(routes, 3, "/get_token/", EVHTTP_REQ_POST, &r),
			 MRTC_ROUTE_NO_PATH);
	ck_assert_int_eq(mrtc_route_find(routes, 3, "/GET_TOKEN", EVHTTP_REQ_POST, &r),
			 MRTC_ROUTE_NO_PATH);
	ck_assert_int_eq(
	    mrtc_route_find(routes, 3, "/_matrix/client/v1/rtc/transports%2F", EVHTTP_REQ_GET, &r),
	    MRTC_ROUTE_NO_PATH);
}
END_TEST

START_TEST(test_http_status_mapping)
{
	static const struct {
		enum mrtc_err err;
		int status;
		const char *code;
	} cases[] = {
		{ MRTC_ERR_NOT_JSON, 400, "M_NOT_JSON" },
		{ MRTC_ERR_BAD_JSON, 400, "M_BAD_JSON" },
		{ MRTC_ERR_INVALID_PARAM, 400, "M_INVALID_PARAM" },
		{ MRTC_ERR_TOO_LARGE, 413, "M_TOO_LARGE" },
		{ MRTC_ERR_MISSING_TOKEN, 401, "M_MISSING_TOKEN" },
		{ MRTC_ERR_UNKNOWN_TOKEN, 401, "M_UNKNOWN_TOKEN" },
		{ MRTC_ERR_FORBIDDEN, 403, "M_FORBIDDEN" },
		{ MRTC_ERR_AUTH_MISSING, 401, "M_UNAUTHORIZED" },
		{ MRTC_ERR_AUTH_MALFORMED, 400, "M_UNAUTHORIZED" },
		{ MRTC_ERR_BAD_SIGNATURE, 401, "M_UNAUTHORIZED" },
		{ MRTC_ERR_UNKNOWN_KEY, 401, "M_UNAUTHORIZED" },
		{ MRTC_ERR_KEY_EXPIRED, 401, "M_UNAUTHORIZED" },
		{ MRTC_ERR_WRONG_DESTINATION, 401, "M_UNAUTHORIZED" },
		{ MRTC_ERR_UNSUPPORTED, 401, "M_UNAUTHORIZED" },
		{ MRTC_ERR_NOT_FOUND, 404, "M_UNRECOGNIZED" },
		{ MRTC_ERR_METHOD, 405, "M_UNRECOGNIZED" },
		{ MRTC_ERR_LIMIT_EXCEEDED, 429, "M_LIMIT_EXCEEDED" },
		{ MRTC_ERR_UPSTREAM, 502, "M_UNKNOWN" },
		{ MRTC_ERR_TIMEOUT, 502, "M_UNKNOWN" },
		{ MRTC_ERR_NOMEM, 500, "M_UNKNOWN" },
		{ MRTC_ERR_INTERNAL, 500, "M_UNKNOWN" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *code = NULL;
		ck_assert_int_eq(mrtc_http_status(cases[i].err, &code), cases[i].status);
		ck_assert_str_eq(code, cases[i].code);
	}
	for (int e = 0; e < MRTC_ERR__COUNT; e++)
		ck_assert_str_ne(mrtc_err_str((enum mrtc_err)e), "unknown error");
	ck_assert_str_eq(mrtc_err_str(MRTC_ERR__COUNT), "unknown error");
}
END_TEST

START_TEST(test_http_path_of_keeps_encoding)
{
	char *p = mrtc_http_path_of("/a%2Fb?access_token=x#frag");
	ck_assert_str_eq(p, "/a%2Fb");
	free(p);
	p = mrtc_http_path_of("/plain");
	ck_assert_str_eq(p, "/plain");
	free(p);
}
END_TEST

START_TEST(test_http_add_cors_headers)
{
	struct evhttp_request *req = evhttp_request_new(NULL, NULL);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	mrtc_http_add_cors(h);
	ck_assert_str_eq(evhttp_find_header(h, "Access-Control-Allow-Origin"), "*");
	ck_assert_str_eq(evhttp_find_header(h, "Access-Control-Allow-Methods"),
			 "GET, POST, PUT, DELETE, OPTIONS");
	ck_assert_str_eq(evhttp_find_header(h, "Access-Control-Allow-Headers"),
			 "X-Requested-With, Content-Type, Authorization");
	evhttp_request_free(req);
}
END_TEST

/* Records the order of the state hooks: 'c' for cancel, 'd' for dispose. */
static char hooks[8];
static size_t n_hooks;

static void note_cancel(void *state)
{
	ck_assert_ptr_nonnull(state);
	hooks[n_hooks++] = 'c';
}

static void note_dispose(void *state)
{
	ck_assert_ptr_nonnull(state);
	hooks[n_hooks++] = 'd';
}

static const struct mrtc_request_state_ops note_ops = { note_cancel, note_dispose };

START_TEST(test_request_state_zeroed_and_disposed_by_the_finish)
{
	struct mrtc_request *r = calloc(1, sizeof(*r));
	n_hooks = 0;
	unsigned char *state = mrtc_request_state(r, 300, &note_ops);
	ck_assert_ptr_nonnull(state);
	for (size_t i = 0; i < 300; i++)
		ck_assert_int_eq(state[i], 0);
	ck_assert_ptr_eq(r->state, state);
	mrtc_request_end(r, 200); /* r->req NULL: the client is gone, nothing to send */
	ck_assert_uint_eq(n_hooks, 1);
	ck_assert_int_eq(hooks[0], 'd');
	ck_assert_ptr_null(r->state);
	free(r);
}
END_TEST

START_TEST(test_request_state_hang_up_cancels_then_disposes)
{
	struct mrtc_request *r = calloc(1, sizeof(*r));
	n_hooks = 0;
	ck_assert_ptr_nonnull(mrtc_request_state(r, 16, &note_ops));
	mrtc_request_cancel(r);
	mrtc_request_end(r, 499);
	ck_assert_uint_eq(n_hooks, 2);
	ck_assert_int_eq(hooks[0], 'c');
	ck_assert_int_eq(hooks[1], 'd');
	free(r);
}
END_TEST

START_TEST(test_request_state_without_hooks_is_freed)
{
	struct mrtc_request *r = calloc(1, sizeof(*r));
	ck_assert_ptr_nonnull(mrtc_request_state(r, 32, NULL));
	mrtc_request_cancel(r);
	mrtc_request_end(r, 499); /* LeakSanitizer fails the test if the state stays */
	ck_assert_ptr_null(r->state);
	free(r);
}
END_TEST

/* A state's block is kept by the server for the next request asking for the same size, and
 * comes back zeroed however the last one left it; the server frees what it keeps (LeakSanitizer
 * fails the test otherwise). */
START_TEST(test_request_state_block_reused_zeroed)
{
	struct event_base *base = event_base_new();
	struct mrtc_config config = { .client_timeout_s = 30 };
	memcpy(config.bind.host, "127.0.0.1", sizeof("127.0.0.1"));
	config.admin_bind = config.bind;
	struct mrtc_metrics metrics = { 0 };
	struct mrtc_server_setup setup = { .metrics = &metrics };
	struct mrtc_server *server = NULL;
	ck_assert_int_eq(mrtc_server_create(base, &config, &setup, &server), MRTC_OK);
	struct mrtc_request *r = calloc(1, sizeof(*r));
	r->server = server;
	unsigned char *first = mrtc_request_state(r, 300, NULL);
	ck_assert_ptr_nonnull(first);
	memset(first, 0xa5, 300);
	mrtc_request_end(r, 499);
	ck_assert_ptr_null(r->state);
	unsigned char *again = mrtc_request_state(r, 300, NULL);
	ck_assert_ptr_eq(again, first);
	for (size_t i = 0; i < 300; i++)
		ck_assert_int_eq(again[i], 0);
	mrtc_request_end(r, 499);
	/* Another size gets a block of its own. */
	unsigned char *other = mrtc_request_state(r, 64, NULL);
	ck_assert_ptr_nonnull(other);
	ck_assert_ptr_ne(other, first);
	mrtc_request_end(r, 499);
	free(r);
	mrtc_server_destroy(server);
	event_base_free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	const TTest *tests[] = {
		test_route_find_matches,
		test_http_status_mapping,
		test_http_path_of_keeps_encoding,
		test_http_add_cors_headers,
		test_request_state_zeroed_and_disposed_by_the_finish,
		test_request_state_hang_up_cancels_then_disposes,
		test_request_state_without_hooks_is_freed,
		test_request_state_block_reused_zeroed,
	};
	vectors_add_tests(s, "http", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
