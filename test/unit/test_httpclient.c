/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTPS client's pool against a real evhttp server on loopback (plain HTTP): keep-alive
 * reuse per destination, and the bound on destinations, where the least recently used one is
 * evicted with its idle connection.
 */
#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <string.h>

#include "mrtc/net/httpclient.h"
#include "vectors.h"

static struct event_base *base;
static struct evhttp *server;
static struct sockaddr_storage server_addr;

static void handle(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "ok");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void setup(void)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	server = evhttp_new(base);
	ck_assert_ptr_nonnull(server);
	evhttp_set_gencb(server, handle, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(server, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	socklen_t len = sizeof(server_addr);
	ck_assert_int_eq(
	    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&server_addr, &len), 0);
}

static void teardown(void)
{
	evhttp_free(server);
	event_base_free(base);
}

struct answer {
	bool done;
	enum mrtc_err err;
	int status;
};

static void on_done(void *ctx, const struct mrtc_http_response *resp)
{
	struct answer *a = ctx;
	a->done = true;
	a->err = resp->err;
	a->status = resp->status;
	event_base_loopbreak(base);
}

/* One GET to the test server under the Host header @host (a destination of its own). */
static void get(struct mrtc_http_client *c, const char *host)
{
	struct mrtc_http_target t = { .addr = server_addr, .host_header = host };
	struct mrtc_http_request rq = {
		.method = "GET", .target = "/", .timeout_ms = 10000, .max_body = 1024
	};
	struct answer a = { 0 };
	ck_assert_ptr_nonnull(mrtc_http_send(c, &t, &rq, on_done, &a));
	event_base_dispatch(base);
	ck_assert(a.done);
	ck_assert_int_eq(a.err, MRTC_OK);
	ck_assert_int_eq(a.status, 200);
	/* let connections dropped from the pool close */
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static struct mrtc_http_client_stats stats_of(struct mrtc_http_client *c)
{
	struct mrtc_http_client_stats st;
	mrtc_http_client_get_stats(c, &st);
	return st;
}

START_TEST(test_httpclient_same_destination_reuses_connection)
{
	setup();
	struct mrtc_http_client_config cfg = { 0 };
	struct mrtc_http_client *c = NULL;
	ck_assert_int_eq(mrtc_http_client_create(base, &cfg, &c), MRTC_OK);
	get(c, "a.test");
	get(c, "a.test");
	get(c, "b.test");
	struct mrtc_http_client_stats st = stats_of(c);
	ck_assert_uint_eq(st.requests, 3);
	ck_assert_uint_eq(st.connections, 2);
	ck_assert_uint_eq(st.reused, 1);
	ck_assert_uint_eq(st.open, 2);
	ck_assert_uint_eq(mrtc_http_client_live_calls(c), 0);
	mrtc_http_client_destroy(c);
	teardown();
}
END_TEST

START_TEST(test_httpclient_full_pool_evicts_least_recently_used_destination)
{
	setup();
	struct mrtc_http_client_config cfg = { .max_dests = 2 };
	struct mrtc_http_client *c = NULL;
	ck_assert_int_eq(mrtc_http_client_create(base, &cfg, &c), MRTC_OK);
	get(c, "a.test");
	get(c, "b.test");
	get(c, "c.test"); /* a goes, and its idle connection with it */
	ck_assert_uint_eq(stats_of(c).connections, 3);
	ck_assert_uint_eq(stats_of(c).open, 2);
	get(c, "b.test"); /* still pooled; now used more recently than c */
	ck_assert_uint_eq(stats_of(c).reused, 1);
	get(c, "a.test"); /* a new connection; c goes */
	ck_assert_uint_eq(stats_of(c).connections, 4);
	ck_assert_uint_eq(stats_of(c).open, 2);
	get(c, "b.test");
	ck_assert_uint_eq(stats_of(c).reused, 2);
	get(c, "c.test");
	ck_assert_uint_eq(stats_of(c).connections, 5);
	ck_assert_uint_eq(stats_of(c).reused, 2);
	mrtc_http_client_destroy(c);
	teardown();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("httpclient");
	const TTest *tests[] = {
		test_httpclient_same_destination_reuses_connection,
		test_httpclient_full_pool_evicts_least_recently_used_destination,
	};
	vectors_add_tests(s, "httpclient", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
