/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers: loading the known-answer files of test/vectors/ (path from MRTC_VECTORS_DIR, set by
 * meson) and small fixtures. */
#ifndef MRTC_TEST_VECTORS_H
#define MRTC_TEST_VECTORS_H

#include <json-c/json.h>
#include <stddef.h>

/* Parses vectors file @name with json-c (independent of our parser); aborts the test if absent. */
struct json_object *vectors_load(const char *name);

/* Borrowed member @key of @obj; aborts the test if absent. */
struct json_object *vectors_get(struct json_object *obj, const char *key);

/* Writes @text to a new temporary file and returns its path (caller frees). */
char *vectors_temp_file(const char *text);

#include <check.h>
#include <stdbool.h>
#include <sys/types.h>

/*
 * A real redis-server on a free loopback port, one per test process: started and waited for
 * until it accepts connections; false (and a note on stderr) when redis-server is not installed.
 * It is stopped by vectors_redis_stop() or when the process exits (a failed check exits).
 */
bool vectors_redis_start(void);
void vectors_redis_stop(void);
int vectors_redis_port(void);
pid_t vectors_redis_pid(void); /* for SIGSTOP/SIGCONT */

/* A new empty temporary file for a SQLite store: its path in @path (a mkstemp template) and its
 * MRTC_STORE spec "sqlite:<path>" in @spec. */
void vectors_temp_store(char *path, char *spec, size_t spec_size);

/* Runs @suite (forked tests), prints Check's summary and returns the process exit status. */
int vectors_run_suite(Suite *suite);

/* One TCase named @name holding @n tests; added to @suite. */
void vectors_add_tests(Suite *suite, const char *name, const TTest *const *tests, size_t n);

#endif
