/* SPDX-License-Identifier: Apache-2.0 */
/* Vector loading for the Check unit tests. */
#include "vectors.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct json_object *vectors_load(const char *name)
{
	const char *dir = getenv("MRTC_VECTORS_DIR");
	ck_assert_msg(dir != NULL, "MRTC_VECTORS_DIR is not set");
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert(n > 0 && (size_t)n < sizeof(path));
	struct json_object *v = json_object_from_file(path);
	ck_assert_msg(v != NULL, "cannot load %s", path);
	return v;
}

struct json_object *vectors_get(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(obj, key, &v), "vector has no '%s'", key);
	return v;
}

char *vectors_temp_file(const char *text)
{
	char tmpl[] = "/tmp/mrtc-test-XXXXXX";
	int fd = mkstemp(tmpl);
	ck_assert(fd >= 0);
	size_t len = strlen(text);
	ck_assert(write(fd, text, len) == (ssize_t)len);
	close(fd);
	return strdup(tmpl);
}

int vectors_run_suite(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void vectors_add_tests(Suite *suite, const char *name, const TTest *const *tests, size_t n)
{
	TCase *tc = tcase_create(name);
	for (size_t i = 0; i < n; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(suite, tc);
}

void vectors_temp_store(char *path, char *spec, size_t spec_size)
{
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	int n = snprintf(spec, spec_size, "sqlite:%s", path);
	ck_assert(n > 0 && (size_t)n < spec_size);
}

/* ---- a real redis-server ---- */

static pid_t redis_pid;
static int redis_port;

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return a;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof(a);
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

static bool port_answers(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = loopback(port);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

void vectors_redis_stop(void)
{
	if (redis_pid <= 0)
		return;
	kill(redis_pid, SIGCONT);
	kill(redis_pid, SIGTERM);
	waitpid(redis_pid, NULL, 0);
	redis_pid = 0;
}

bool vectors_redis_start(void)
{
	static bool at_exit;
	if (system("command -v redis-server >/dev/null 2>&1") != 0) {
		fprintf(stderr, "note: redis-server not installed: the Redis tests are skipped\n");
		return false;
	}
	redis_port = free_port();
	char port[16];
	ck_assert_int_lt(snprintf(port, sizeof(port), "%d", redis_port), (int)sizeof(port));
	redis_pid = fork();
	ck_assert_int_ge(redis_pid, 0);
	if (redis_pid == 0) {
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	if (!at_exit)
		at_exit = atexit(vectors_redis_stop) == 0;
	struct timespec pause = { .tv_nsec = 50 * 1000000L };
	for (int i = 0; i < 100 && !port_answers(redis_port); i++)
		nanosleep(&pause, NULL);
	ck_assert(port_answers(redis_port));
	return true;
}

int vectors_redis_port(void)
{
	return redis_port;
}

pid_t vectors_redis_pid(void)
{
	return redis_pid;
}
