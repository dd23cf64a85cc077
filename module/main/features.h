/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon as module/main assembles it: the components (services/), the features from their
 * static list (features.c), created low to high and stopped high to low, and the server their
 * routes are mounted on. Private to module/main.
 */
#ifndef MRTC_MAIN_FEATURES_H
#define MRTC_MAIN_FEATURES_H

#include <event2/event.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/core/config.h"
#include "mrtc/http/server.h"

struct mrtc_daemon;

/*
 * Builds the components and every feature the configuration enables, then the server with the
 * features' routes (@base and @config borrowed; they must outlive the daemon). On success
 * *ret_daemon is new (caller frees with mrtc_daemon_destroy()); errors are logged.
 */
enum mrtc_err mrtc_daemon_create(struct event_base *base, const struct mrtc_config *config,
				 struct mrtc_daemon **ret_daemon);

/* The server (borrowed, valid until mrtc_daemon_destroy()). */
struct mrtc_server *mrtc_daemon_server(struct mrtc_daemon *daemon);

/*
 * After the loop has exited: quiesces the features high to low (delayed-leave jobs stay stored,
 * probes stop), then runs the loop until outbound calls have finished, at most @deadline_ms.
 */
void mrtc_daemon_quiesce(struct mrtc_daemon *daemon, uint64_t deadline_ms);

/* SIGHUP: reloads what can change safely (the trusted CA file for new connections). */
void mrtc_daemon_reload(struct mrtc_daemon *daemon);

/* Frees the server, the features high to low, then the components; accepts NULL and a
 * half-built daemon. */
void mrtc_daemon_destroy(struct mrtc_daemon *daemon);

#endif
