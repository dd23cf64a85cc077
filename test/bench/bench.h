/* SPDX-License-Identifier: Apache-2.0 */
/* Timing loop shared by the micro-benchmarks: calls @op in batches for @seconds, returns ops/s. */
#ifndef MRTC_BENCH_H
#define MRTC_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef bool (*bench_op_fn)(void *ctx);

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs @op until @seconds have passed; exits the process if an operation fails. */
static inline double bench_rate(bench_op_fn op, void *ctx, double seconds)
{
	unsigned long n = 0;
	double t0 = bench_now(), t;
	do {
		for (int i = 0; i < 100; i++) {
			if (!op(ctx)) {
				fprintf(stderr, "benchmark operation failed\n");
				exit(1);
			}
		}
		n += 100;
	} while ((t = bench_now()) - t0 < seconds);
	return (double)n / (t - t0);
}

static inline void bench_row(const char *name, double rate)
{
	printf("%-48s %12.0f %10.2f\n", name, rate, 1e6 / rate);
}

static inline void bench_header(void)
{
	printf("%-48s %12s %10s\n", "benchmark (one core)", "ops/s", "us/op");
}

#endif
