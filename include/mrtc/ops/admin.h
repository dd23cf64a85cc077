/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin listener's /readyz and /metrics, and the readiness prober that asks the homeserver
 * (GET /_matrix/client/versions) and the SFU (RoomService ListRooms) at a fixed interval.
 */
#ifndef MRTC_ADMIN_H
#define MRTC_ADMIN_H

#include "mrtc/http/http.h"
#include "mrtc/core/metrics.h"

struct mrtc_services;
struct mrtc_readiness;

/* Starts probing at once and then every config->readiness_interval_s. */
enum mrtc_err mrtc_readiness_create(struct mrtc_services *services,
				    struct mrtc_readiness **ret_readiness);
void mrtc_readiness_destroy(struct mrtc_readiness *readiness);
/* Shutdown: no more probes. */
void mrtc_readiness_quiesce(struct mrtc_readiness *readiness);

void mrtc_admin_readyz(struct mrtc_request *r);
void mrtc_admin_metrics(struct mrtc_request *r);

#endif
