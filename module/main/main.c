/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mrtc-transportd: process entry. Reads and validates the configuration, opens the listeners,
 * runs the event loop, and shuts down gracefully on SIGTERM/SIGINT.
 */
#include <event2/event.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "mrtc-version.h"
#include "mrtc/appservice/appservice.h"
#include "mrtc/core/config.h"
#include "mrtc/core/log.h"
#include "mrtc/homeserver/membership.h"
#include "mrtc/http/server.h"
#include "features.h"
#include "mrtc/store/store.h"
#include "mrtc/base/util.h"

#define SHUTDOWN_DEADLINE_MS 10000

/* Every TRIM_PERIOD_S the free pages inside malloc's heap go back to the system: glibc gives
 * back only the top of the heap by itself, so after a burst of connections (512 at once leave
 * about 6 MiB free between live chunks) the RSS stayed at the peak. The walk over the free
 * chunks stalls the loop for about 0.1 ms a MiB of fragmented heap (a few MiB here, the caches'
 * entries being in their own slabs). */
#define TRIM_PERIOD_S 30

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	if (sig == SIGHUP) {
		mrtc_daemon_reload(arg);
		return;
	}
	mrtc_log(LOG_INFO, "main", NULL, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	mrtc_server_shutdown(mrtc_daemon_server(arg), SHUTDOWN_DEADLINE_MS);
}

/* libevent's own messages go through our logger, at most LIBEVENT_LOG_PER_S lines a second and
 * a repeated message once a second, with the number suppressed reported on the next line. */
#define LIBEVENT_LOG_PER_S 5
static void libevent_log(int severity, const char *msg)
{
	static char last[160];
	static time_t second;
	static unsigned lines, suppressed;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	bool same = strncmp(last, msg, sizeof(last) - 1) == 0;
	if (ts.tv_sec == second && (same || lines >= LIBEVENT_LOG_PER_S)) {
		suppressed++;
		return;
	}
	if (ts.tv_sec != second) {
		second = ts.tv_sec;
		lines = 0;
	}
	lines++;
	/* Only compared with the next message: a cut copy is enough. */
	mrtc_format_shown(last, sizeof(last), "%s", msg);
	int level = severity == EVENT_LOG_ERR	 ? LOG_ERR
		    : severity == EVENT_LOG_WARN ? LOG_WARNING
		    : severity == EVENT_LOG_MSG	 ? LOG_INFO
						 : LOG_DEBUG;
	if (suppressed)
		mrtc_log(level, "libevent", NULL, "%s (%u messages suppressed before this one)",
			 msg, suppressed);
	else
		mrtc_log(level, "libevent", NULL, "%s", msg);
	suppressed = 0;
}

/* Raises the soft descriptor limit to the hard one; returns the limit in force. */
static unsigned long long raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	return (unsigned long long)rl.rlim_cur;
}

/*
 * --print-appservice-registration [proxy_url]: a registration file for MRTC_SERVER_NAME, with
 * proxy_url as given or http://<MRTC_BIND>, on stdout.
 */
static int print_registration(const char *argv0, const char *proxy_url)
{
	const char *server = getenv("MRTC_SERVER_NAME");
	if (!server || !server[0]) {
		fprintf(stderr, "%s: set MRTC_SERVER_NAME for --print-appservice-registration\n",
			argv0);
		return 2;
	}
	char url[300];
	if (!proxy_url) {
		const char *bind = getenv("MRTC_BIND");
		struct mrtc_hostport hp;
		if (!mrtc_hostport_parse(bind && bind[0] ? bind : "127.0.0.1:8080", false, &hp)) {
			fprintf(stderr, "%s: MRTC_BIND is not host:port\n", argv0);
			return 2;
		}
		const char *host = hp.host[0] ? hp.host : "127.0.0.1";
		if (!mrtc_format(url, sizeof(url), "http://%s%s%s:%u", strchr(host, ':') ? "[" : "",
				 host, strchr(host, ':') ? "]" : "", hp.port))
			return 2;
		proxy_url = url;
	}
	if (sodium_init() < 0)
		return 1;
	enum mrtc_err err = mrtc_appservice_write_registration(stdout, server, proxy_url);
	if (err != MRTC_OK) {
		fprintf(stderr,
			"%s: cannot write the registration: %s (proxy_url must be an "
			"http(s) URL, MRTC_SERVER_NAME a server name)\n",
			argv0, mrtc_err_str(err));
		return 1;
	}
	return 0;
}

/* --check-config after a valid configuration: the store it names, and whether the default
 * one's directory is usable. */
static int check_config(const char *argv0, const struct mrtc_config *config)
{
	char why[160];
	if (config->store_default &&
	    !mrtc_store_dir_is_usable(config->state_dir, false, why, sizeof(why))) {
		fprintf(stderr,
			"%s: invalid configuration:\nMRTC_STATE_DIR: %s %s (make it writable, set "
			"MRTC_STORE, or MRTC_STORE=none)\n",
			argv0, config->state_dir, why);
		return 1;
	}
	printf("configuration OK (%s mode)\n", mrtc_config_mode_name(config));
	if (config->store) {
		char shown[512];
		mrtc_store_spec_redact(config->store, shown, sizeof(shown));
		printf("store: %s%s\n", shown,
		       config->store_default ? " (default, in MRTC_STATE_DIR)" : "");
	} else {
		printf("store: none (delegate_delayed_leave off)\n");
	}
	return 0;
}

/*
 * The event loop. With epoll, libevent's changelist gathers the changes to a descriptor's
 * interest made during one loop turn and hands the kernel only the net change before
 * epoll_wait: evhttp stops reading while a request is handled, the hang-up watch starts and
 * stops, evhttp starts writing, then reading again; six epoll_ctl calls per request without it
 * and two with it. libevent warns that the changelist is unsafe with descriptors duplicated by
 * dup(); the daemon duplicates none.
 */
static struct event_base *loop_new(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int main(int argc, char **argv)
{
	bool check_only = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			mrtc_config_print_help(stdout, argv[0], mrtc_config_process_env, NULL);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("mrtc-transportd %s\n", MRTC_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--check-config") == 0) {
			check_only = true;
		} else if (strcmp(argv[i], "--print-appservice-registration") == 0) {
			return print_registration(argv[0], i + 1 < argc ? argv[i + 1] : NULL);
		} else {
			fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", argv[0],
				argv[i]);
			return 2;
		}
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: libsodium failed to initialise\n", argv[0]);
		return 1;
	}
	struct mrtc_buf problems;
	mrtc_buf_init(&problems);
	struct mrtc_config *config = NULL;
	enum mrtc_err err = mrtc_config_load(mrtc_config_process_env, NULL,
					     mrtc_membership_backend_list, &problems, &config);
	if (err != MRTC_OK) {
		fprintf(stderr, "%s: invalid configuration:\n%s", argv[0],
			problems.data ? problems.data : "out of memory\n");
		mrtc_buf_finish(&problems);
		return 1;
	}
	mrtc_buf_finish(&problems);
	if (check_only) {
		int rc = check_config(argv[0], config);
		mrtc_config_destroy(config);
		return rc;
	}
	mrtc_log_setup(config->log_level, config->log_format);
	event_set_log_callback(libevent_log);
	signal(SIGPIPE, SIG_IGN);
	unsigned long long nofile = raise_nofile();
	/* Connection caps left at 0 take half the descriptors each, less 64 for listeners,
	 * files, DNS, the store and the workers (a quarter each under a tiny limit). */
	unsigned long long share = nofile >= 256 ? (nofile - 64) / 2 : nofile / 4 + 1;
	if (!config->inbound_max)
		config->inbound_max = share;
	if (!config->outbound_max)
		config->outbound_max = share;
	mrtc_log(LOG_INFO, "main", NULL,
		 "descriptor limit: %llu; connections at once: %llu inbound, %llu outbound", nofile,
		 (unsigned long long)config->inbound_max, (unsigned long long)config->outbound_max);
	if (nofile && config->inbound_max + config->outbound_max + 64 > nofile)
		mrtc_log(LOG_WARNING, "main", NULL,
			 "MRTC_INBOUND_MAX + MRTC_OUTBOUND_MAX + 64 exceed the descriptor limit "
			 "(%llu): raise LimitNOFILE",
			 nofile);

	int rc = 1;
	struct event_base *base = loop_new();
	struct mrtc_daemon *daemon = NULL;
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *trim = NULL;
	if (!base)
		goto out;
	if (mrtc_daemon_create(base, config, &daemon) != MRTC_OK)
		goto out;
	sigterm = evsignal_new(base, SIGTERM, on_signal, daemon);
	sigint = evsignal_new(base, SIGINT, on_signal, daemon);
	sighup = evsignal_new(base, SIGHUP, on_signal, daemon);
	if (!sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) != 0 ||
	    evsignal_add(sigint, NULL) != 0 || evsignal_add(sighup, NULL) != 0)
		goto out;
	trim = event_new(base, -1, EV_PERSIST, on_trim, NULL);
	if (!trim || event_add(trim, &(struct timeval){ .tv_sec = TRIM_PERIOD_S }) != 0)
		goto out;
	mrtc_log(LOG_INFO, "main", NULL, "mrtc-transportd %s started in %s mode%s%s", MRTC_VERSION,
		 mrtc_config_mode_name(config), config->legacy_only ? "" : " for ",
		 config->legacy_only ? "" : config->server_name);
	if (!config->legacy_only && !config->livekit_service_url)
		mrtc_log(LOG_WARNING, "main", NULL,
			 "MRTC_ALLOW_NO_SERVICE_URL=1: /rtc/transports carries no "
			 "livekit_service_url, so matrix-js-sdk 43, Element Call 0.26.1 and "
			 "Element X find no usable transport");
	else if (!config->legacy_only)
		mrtc_log(LOG_INFO, "main", NULL, "advertising livekit_service_url %s",
			 config->livekit_service_url);
	if (!config->full_access_all && config->n_full_access == 0)
		mrtc_log(
		    LOG_WARNING, "main", NULL,
		    "LIVEKIT_FULL_ACCESS_HOMESERVERS is not set: users of the OpenID endpoints "
		    "(/get_token, /sfu/get) can join existing rooms only");
	if (event_base_dispatch(base) < 0)
		goto out;
	mrtc_daemon_quiesce(daemon, SHUTDOWN_DEADLINE_MS);
	mrtc_log(LOG_INFO, "main", NULL, "stopped");
	rc = 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (sighup)
		event_free(sighup);
	if (trim)
		event_free(trim);
	mrtc_daemon_destroy(daemon);
	if (base)
		event_base_free(base);
	mrtc_config_destroy(config);
	return rc;
}
