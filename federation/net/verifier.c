/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fixed pool of threads verifying signatures. Jobs go through a mutex-protected queue; done
 * jobs come back through another and a byte on a self-pipe wakes the loop. Only the loop
 * thread touches a job's callback fields and its cancelled flag.
 */
#include "mrtc/net/verifier.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64

struct mrtc_verify_job {
	struct mrtc_verify_job *next;
	struct mrtc_xmatrix_check check;
	enum mrtc_err result;
	mrtc_verify_fn cb;
	void *ctx;
	bool cancelled;
};

struct mrtc_verifier {
	struct event_base *base;
	unsigned n_threads;
	pthread_t threads[MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct mrtc_verify_job *queue, *queue_tail, *done;
	int pipe_fds[2];
	struct event *wake;
};

static void complete(struct mrtc_verify_job *j)
{
	if (!j->cancelled)
		j->cb(j->ctx, j->result, j->result == MRTC_OK ? j->check.origin : NULL);
	mrtc_xmatrix_check_finish(&j->check);
	free(j);
}

static void *worker(void *arg)
{
	struct mrtc_verifier *v = arg;
	pthread_mutex_lock(&v->mu);
	for (;;) {
		while (!v->queue && !v->stop)
			pthread_cond_wait(&v->cv, &v->mu);
		if (v->stop)
			break;
		struct mrtc_verify_job *j = v->queue;
		v->queue = j->next;
		if (!v->queue)
			v->queue_tail = NULL;
		pthread_mutex_unlock(&v->mu);
		j->result = mrtc_xmatrix_check_run(&j->check);
		pthread_mutex_lock(&v->mu);
		j->next = v->done;
		v->done = j;
		char one = 1;
		/* A full pipe already guarantees a wake-up. */
		while (write(v->pipe_fds[1], &one, 1) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct mrtc_verifier *v = arg;
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&v->mu);
	struct mrtc_verify_job *j = v->done;
	v->done = NULL;
	pthread_mutex_unlock(&v->mu);
	while (j) {
		struct mrtc_verify_job *next = j->next;
		complete(j);
		j = next;
	}
}

enum mrtc_err mrtc_verifier_create(struct event_base *base, unsigned threads,
				   struct mrtc_verifier **ret)
{
	struct mrtc_verifier *v = calloc(1, sizeof(*v));
	if (!v)
		return MRTC_ERR_NOMEM;
	v->base = base;
	v->pipe_fds[0] = v->pipe_fds[1] = -1;
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (pthread_mutex_init(&v->mu, NULL) != 0 || pthread_cond_init(&v->cv, NULL) != 0 ||
	    pipe(v->pipe_fds) != 0)
		goto fail;
	for (int i = 0; i < 2; i++) {
		fcntl(v->pipe_fds[i], F_SETFL, fcntl(v->pipe_fds[i], F_GETFL) | O_NONBLOCK);
		fcntl(v->pipe_fds[i], F_SETFD, FD_CLOEXEC);
	}
	v->wake = event_new(base, v->pipe_fds[0], EV_READ | EV_PERSIST, on_wake, v);
	if (!v->wake || event_add(v->wake, NULL) != 0)
		goto fail;
	for (; v->n_threads < threads; v->n_threads++)
		if (pthread_create(&v->threads[v->n_threads], NULL, worker, v) != 0)
			goto fail;
	*ret = v;
	return MRTC_OK;
fail:
	mrtc_verifier_destroy(v);
	return MRTC_ERR_INTERNAL;
}

void mrtc_verifier_destroy(struct mrtc_verifier *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&v->mu);
	v->stop = true;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	for (unsigned i = 0; i < v->n_threads; i++)
		pthread_join(v->threads[i], NULL);
	struct mrtc_verify_job *lists[2] = { v->queue, v->done };
	for (int i = 0; i < 2; i++) {
		while (lists[i]) {
			struct mrtc_verify_job *next = lists[i]->next;
			mrtc_xmatrix_check_finish(&lists[i]->check);
			free(lists[i]);
			lists[i] = next;
		}
	}
	if (v->wake)
		event_free(v->wake);
	for (int i = 0; i < 2; i++)
		if (v->pipe_fds[i] >= 0)
			close(v->pipe_fds[i]);
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
	free(v);
}

struct mrtc_verify_job *mrtc_verifier_submit(struct mrtc_verifier *v,
					     struct mrtc_xmatrix_check *check, mrtc_verify_fn cb,
					     void *ctx)
{
	struct mrtc_verify_job *j = calloc(1, sizeof(*j));
	if (!j) {
		mrtc_xmatrix_check_finish(check);
		return NULL;
	}
	j->check = *check;
	check->signed_bytes = NULL;
	j->cb = cb;
	j->ctx = ctx;
	pthread_mutex_lock(&v->mu);
	if (v->n_threads == 0) {
		/* No workers: verify here, deliver from the loop like the workers do. */
		pthread_mutex_unlock(&v->mu);
		j->result = mrtc_xmatrix_check_run(&j->check);
		pthread_mutex_lock(&v->mu);
		j->next = v->done;
		v->done = j;
		char one = 1;
		while (write(v->pipe_fds[1], &one, 1) < 0 && errno == EINTR)
			;
	} else {
		if (v->queue_tail)
			v->queue_tail->next = j;
		else
			v->queue = j;
		v->queue_tail = j;
		pthread_cond_signal(&v->cv);
	}
	pthread_mutex_unlock(&v->mu);
	return j;
}

void mrtc_verify_job_cancel(struct mrtc_verify_job *j)
{
	if (j)
		j->cancelled = true;
}
