/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The benchmark's baseline: a bare libevent HTTP handler on one event loop answering every
 * request with a fixed JSON body of a token response's size. Whatever the daemon does per
 * request is measured against this; its event loop is configured as the daemon's.
 *   bare_server PORT
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char body[700];

static void handle(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	memset(body, 'x', sizeof(body) - 1);
	memcpy(body, "{\"jwt\":\"", 8);
	memcpy(body + sizeof(body) - 3, "\"}", 3);
	/* The daemon's event loop configuration (module/main/main.c): epoll with libevent's
	 * changelist. */
	struct event_config *cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	struct evhttp *http = evhttp_new(base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, handle, NULL);
	char *end;
	unsigned long port = strtoul(argv[1], &end, 10);
	if (*end || port == 0 || port > 65535 ||
	    !evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port)) {
		fprintf(stderr, "cannot bind\n");
		return 1;
	}
	event_base_dispatch(base);
	return 0;
}
