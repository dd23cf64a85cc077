/* SPDX-License-Identifier: Apache-2.0 */
/* Request counters and histograms, and Prometheus text output. */
#include "mrtc/core/metrics.h"

#include <string.h>

const double mrtc_metrics_bucket_bounds[MRTC_METRICS_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void mrtc_metrics_init(struct mrtc_metrics *m)
{
	memset(m, 0, sizeof(*m));
}

static struct mrtc_metrics_endpoint *endpoint_of(struct mrtc_metrics *m, const char *name)
{
	/* Route names are static strings: the pointer usually matches before any strcmp. */
	for (size_t i = 0; i < m->n_endpoints; i++)
		if (m->endpoints[i].name == name)
			return &m->endpoints[i];
	for (size_t i = 0; i < m->n_endpoints; i++)
		if (strcmp(m->endpoints[i].name, name) == 0)
			return &m->endpoints[i];
	if (m->n_endpoints == MRTC_METRICS_ENDPOINTS)
		return NULL;
	struct mrtc_metrics_endpoint *e = &m->endpoints[m->n_endpoints++];
	e->name = name;
	return e;
}

void mrtc_metrics_observe(struct mrtc_metrics *m, const char *endpoint, int status,
			  uint64_t duration_ms)
{
	struct mrtc_metrics_endpoint *e = endpoint_of(m, endpoint);
	if (!e)
		return;
	double s = (double)duration_ms / 1000.0;
	e->count++;
	e->sum_s += s;
	for (int i = 0; i < MRTC_METRICS_BUCKETS; i++) {
		if (s <= mrtc_metrics_bucket_bounds[i]) {
			e->buckets[i]++;
			break;
		}
	}
	for (int i = 0; i < MRTC_METRICS_STATUSES; i++) {
		if (e->statuses[i].status == status || e->statuses[i].status == 0) {
			e->statuses[i].status = status;
			e->statuses[i].count++;
			return;
		}
	}
}

void mrtc_metrics_write_one(struct mrtc_buf *out, const char *name, const char *type,
			    const char *help, const char *labels, double value)
{
	mrtc_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s%s%s%s %.17g\n", name, help, name, type,
			name, labels ? "{" : "", labels ? labels : "", labels ? "}" : "", value);
}

void mrtc_metrics_write_requests(const struct mrtc_metrics *m, struct mrtc_buf *out)
{
	mrtc_buf_puts(out, "# HELP mrtc_http_requests_total HTTP requests answered, by endpoint "
			   "and status.\n# TYPE mrtc_http_requests_total counter\n");
	for (size_t i = 0; i < m->n_endpoints; i++) {
		const struct mrtc_metrics_endpoint *e = &m->endpoints[i];
		for (int j = 0; j < MRTC_METRICS_STATUSES && e->statuses[j].status; j++)
			mrtc_buf_printf(out,
					"mrtc_http_requests_total{endpoint=\"%s\",status=\"%d\"} "
					"%llu\n",
					e->name, e->statuses[j].status,
					(unsigned long long)e->statuses[j].count);
	}
	mrtc_buf_puts(out, "# HELP mrtc_http_request_duration_seconds Time to answer a request, "
			   "by endpoint.\n# TYPE mrtc_http_request_duration_seconds histogram\n");
	for (size_t i = 0; i < m->n_endpoints; i++) {
		const struct mrtc_metrics_endpoint *e = &m->endpoints[i];
		uint64_t cum = 0;
		for (int b = 0; b < MRTC_METRICS_BUCKETS; b++) {
			cum += e->buckets[b];
			mrtc_buf_printf(out,
					"mrtc_http_request_duration_seconds_bucket{endpoint=\"%s\","
					"le=\"%g\"} %llu\n",
					e->name, mrtc_metrics_bucket_bounds[b],
					(unsigned long long)cum);
		}
		mrtc_buf_printf(
		    out,
		    "mrtc_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} "
		    "%llu\n"
		    "mrtc_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n"
		    "mrtc_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
		    e->name, (unsigned long long)e->count, e->name, e->sum_s, e->name,
		    (unsigned long long)e->count);
	}
	mrtc_metrics_write_one(out, "mrtc_http_requests_in_flight", "gauge",
			       "Requests received and not yet answered.", NULL,
			       (double)m->in_flight);
}
