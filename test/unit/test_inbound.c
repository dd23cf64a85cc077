/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inbound X-Matrix step on a real event loop, keyring and verifier (keys added directly,
 * so no fetch): verified origins, each refusal with its error, the asynchronous convention
 * (no callback inside start, none after cancel), inputs copied by start.
 */
#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "mrtc/matrix/signing.h"
#include "mrtc/matrix/xmatrix.h"
#include "mrtc/net/inbound.h"
#include "vectors.h"

#define URI "/_matrix/federation/v1/rtc/livekit/get_token"
#define ORIGIN "origin.example"
#define US "us.example"

static struct event_base *base;
static struct mrtc_keyring *kr;
static struct mrtc_verifier *ver;
static struct mrtc_signing_key *key;

struct seen {
	int calls;
	bool inside_start;
	enum mrtc_err err;
	char origin[MRTC_SERVER_NAME_MAX + 1];
	char message[128];
	bool bad_signature;
	uint64_t retry_after_ms;
};

static bool starting;

static void on_result(void *ctx, const struct mrtc_inbound_result *res)
{
	struct seen *s = ctx;
	s->calls++;
	s->inside_start = starting;
	s->err = res->err;
	ck_assert_ptr_nonnull(res->origin);
	strcpy(s->origin, res->origin);
	strcpy(s->message, res->message ? res->message : "");
	s->bad_signature = res->bad_signature;
	s->retry_after_ms = res->retry_after_ms;
	event_base_loopbreak(base);
}

static struct mrtc_signing_key *parse_key(const char *line)
{
	struct mrtc_signing_key *k = NULL;
	ck_assert_int_eq(mrtc_signing_key_parse(line, strlen(line), &k), MRTC_OK);
	return k;
}

static void setup(void)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	struct mrtc_keyring_config cfg = { 0 };
	ck_assert_int_eq(mrtc_keyring_create(base, &cfg, &kr), MRTC_OK);
	ck_assert_int_eq(mrtc_verifier_create(base, 0, &ver), MRTC_OK);
	struct json_object *vec = vectors_load("signing.json");
	key = parse_key(json_object_get_string(vectors_get(vec, "signing_key_file_line")));
	json_object_put(vec);
	struct mrtc_verify_key vk = { .expires_ms = UINT64_MAX };
	strcpy(vk.key_id, key->key_id);
	memcpy(vk.public_key, key->public_key, sizeof(vk.public_key));
	mrtc_keyring_add(kr, ORIGIN, &vk, 1);
}

static void teardown(void)
{
	mrtc_signing_key_destroy(key);
	mrtc_verifier_destroy(ver);
	mrtc_keyring_destroy(kr);
	event_base_free(base);
}

static void headers_init(struct evkeyvalq *h)
{
	h->tqh_first = NULL;
	h->tqh_last = &h->tqh_first;
}

static struct json_object *body_of(const char *text)
{
	struct json_object *o = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, strlen(text), MRTC_JSON_MAX_DEPTH, &o), MRTC_OK);
	return o;
}

/* Adds an Authorization header signed by @k for @destination over @body. */
static void add_signed(struct evkeyvalq *h, const struct mrtc_signing_key *k,
		       const char *destination, struct json_object *body)
{
	char *auth = NULL;
	ck_assert_int_eq(mrtc_xmatrix_sign("POST", URI, ORIGIN, destination, body, k, &auth),
			 MRTC_OK);
	ck_assert_int_eq(evhttp_add_header(h, "Authorization", auth), 0);
	free(auth);
}

/* Runs the step over @h and @body and the loop until it answers (or 5 s pass). */
static struct seen run(struct evkeyvalq *h, struct json_object *body, bool cancel)
{
	struct seen s = { 0 };
	struct mrtc_inbound_env env = { .base = base, .keyring = kr, .verifier = ver };
	struct mrtc_inbound_request req = {
		.method = "POST",
		.uri = URI,
		.headers = h,
		.body = body,
		.server_name = US,
		.peer = "192.0.2.1",
	};
	starting = true;
	struct mrtc_inbound *st = mrtc_inbound_start(&env, &req, on_result, &s);
	starting = false;
	ck_assert_ptr_nonnull(st);
	evhttp_clear_headers(h); /* the step holds its own copies */
	if (cancel)
		mrtc_inbound_cancel(st);
	struct timeval limit = { .tv_sec = cancel ? 0 : 5, .tv_usec = cancel ? 300000 : 0 };
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	ck_assert(!s.inside_start);
	return s;
}

START_TEST(test_inbound_valid_signature_names_origin)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	struct json_object *body = body_of("{\"room_id\":\"!r:" ORIGIN "\"}");
	evhttp_add_header(&h, "Content-Type", "application/json");
	add_signed(&h, key, US, body);
	struct seen s = run(&h, body, false);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_int_eq(s.err, MRTC_OK);
	ck_assert_str_eq(s.origin, ORIGIN);
	ck_assert(!s.bad_signature);
	json_object_put(body);
	teardown();
}
END_TEST

START_TEST(test_inbound_missing_authorization_is_refused)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	evhttp_add_header(&h, "Authorization", "Bearer abc");
	struct seen s = run(&h, NULL, false);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_int_eq(s.err, MRTC_ERR_AUTH_MISSING);
	ck_assert_str_eq(s.message, "Missing X-Matrix authorization");
	ck_assert_str_eq(s.origin, "");
	ck_assert(!s.bad_signature);
	teardown();
}
END_TEST

START_TEST(test_inbound_malformed_authorization_is_refused)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	evhttp_add_header(&h, "Authorization", "X-Matrix origin=" ORIGIN);
	struct seen s = run(&h, NULL, false);
	ck_assert_int_eq(s.err, MRTC_ERR_AUTH_MALFORMED);
	ck_assert_str_eq(s.message, "Malformed X-Matrix authorization");
	teardown();
}
END_TEST

START_TEST(test_inbound_too_many_authorization_headers_are_refused)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	struct json_object *body = body_of("{}");
	for (int i = 0; i < MRTC_INBOUND_AUTH_MAX + 1; i++)
		add_signed(&h, key, US, body);
	struct seen s = run(&h, body, false);
	ck_assert_int_eq(s.err, MRTC_ERR_AUTH_MALFORMED);
	ck_assert_str_eq(s.message, "Too many Authorization headers");
	json_object_put(body);
	teardown();
}
END_TEST

START_TEST(test_inbound_other_destination_is_refused)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	struct json_object *body = body_of("{}");
	add_signed(&h, key, "elsewhere.example", body);
	struct seen s = run(&h, body, false);
	ck_assert_int_eq(s.err, MRTC_ERR_WRONG_DESTINATION);
	ck_assert_str_eq(s.origin, ORIGIN); /* claimed, for the log */
	ck_assert(s.bad_signature);
	json_object_put(body);
	teardown();
}
END_TEST

START_TEST(test_inbound_changed_body_is_refused)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	struct json_object *signed_body = body_of("{\"a\":1}");
	struct json_object *sent_body = body_of("{\"a\":2}");
	add_signed(&h, key, US, signed_body);
	struct seen s = run(&h, sent_body, false);
	ck_assert_int_eq(s.err, MRTC_ERR_BAD_SIGNATURE);
	ck_assert_str_eq(s.message, "Request signature is not valid");
	ck_assert(s.bad_signature);
	json_object_put(signed_body);
	json_object_put(sent_body);
	teardown();
}
END_TEST

START_TEST(test_inbound_signature_by_other_key_is_refused)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	struct mrtc_signing_key *other =
	    parse_key("ed25519 1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	memcpy(other->key_id, key->key_id, sizeof(other->key_id)); /* same id, other key */
	struct json_object *body = body_of("{}");
	add_signed(&h, other, US, body);
	struct seen s = run(&h, body, false);
	ck_assert_int_eq(s.err, MRTC_ERR_BAD_SIGNATURE);
	ck_assert(s.bad_signature);
	json_object_put(body);
	mrtc_signing_key_destroy(other);
	teardown();
}
END_TEST

START_TEST(test_inbound_cancel_means_no_callback)
{
	setup();
	struct evkeyvalq h;
	headers_init(&h);
	struct json_object *body = body_of("{}");
	add_signed(&h, key, US, body);
	struct seen s = run(&h, body, true);
	ck_assert_int_eq(s.calls, 0);
	headers_init(&h); /* a failure found inside start is not delivered either */
	s = run(&h, body, true);
	ck_assert_int_eq(s.calls, 0);
	json_object_put(body);
	teardown();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inbound");
	const TTest *tests[] = {
		test_inbound_valid_signature_names_origin,
		test_inbound_missing_authorization_is_refused,
		test_inbound_malformed_authorization_is_refused,
		test_inbound_too_many_authorization_headers_are_refused,
		test_inbound_other_destination_is_refused,
		test_inbound_changed_body_is_refused,
		test_inbound_signature_by_other_key_is_refused,
		test_inbound_cancel_means_no_callback,
	};
	vectors_add_tests(s, "inbound", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
