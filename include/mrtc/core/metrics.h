/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request metrics (counts by endpoint and status, latency histograms) and the Prometheus text
 * exposition of every metric the daemon has. Pure apart from reading component statistics.
 */
#ifndef MRTC_METRICS_H
#define MRTC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/buf.h"

#define MRTC_METRICS_BUCKETS 13
#define MRTC_METRICS_ENDPOINTS 16
#define MRTC_METRICS_STATUSES 16

struct mrtc_metrics_endpoint {
	const char *name;
	uint64_t buckets[MRTC_METRICS_BUCKETS]; /* cumulative counts are built on output */
	uint64_t count;
	double sum_s;
	struct {
		int status;
		uint64_t count;
	} statuses[MRTC_METRICS_STATUSES];
};

struct mrtc_metrics {
	struct mrtc_metrics_endpoint endpoints[MRTC_METRICS_ENDPOINTS];
	size_t n_endpoints;
	uint64_t in_flight;
};

/* Upper bounds of the latency buckets, seconds. */
extern const double mrtc_metrics_bucket_bounds[MRTC_METRICS_BUCKETS];

void mrtc_metrics_init(struct mrtc_metrics *m);

/* Records one finished request of @endpoint (a static string) with @status and @duration_ms. */
void mrtc_metrics_observe(struct mrtc_metrics *m, const char *endpoint, int status,
			  uint64_t duration_ms);

/* Appends the request metrics in the text exposition format. */
void mrtc_metrics_write_requests(const struct mrtc_metrics *m, struct mrtc_buf *out);

/* Appends "# HELP", "# TYPE" and one sample line (no labels when @labels is NULL). */
void mrtc_metrics_write_one(struct mrtc_buf *out, const char *name, const char *type,
			    const char *help, const char *labels, double value);

#endif
