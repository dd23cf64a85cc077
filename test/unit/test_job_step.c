/* SPDX-License-Identifier: Apache-2.0 */
/* The delayed-leave job's step function (job_step.h): every transition, with no I/O. */
#include <check.h>

#include "mrtc/delayed/job_step.h"
#include "vectors.h"

#define DELAY 10000
#define POLL 2000
#define TTL 9000

static struct mrtc_job_step_state st;
static struct mrtc_job_next nx;

/* A job started at t=1000 on an unshared store, its participant given 30 s to come. */
static void start(bool shared)
{
	mrtc_job_step_init(&st, 1000);
	st.delay_ms = DELAY;
	st.poll_ms = POLL;
	st.lease_ttl_ms = TTL;
	st.shared = shared;
	st.wait_deadline_ms = 31000;
}

static enum mrtc_job_do step(enum mrtc_job_event_kind kind, uint64_t now)
{
	struct mrtc_job_event e = { .kind = kind, .now_ms = now };
	mrtc_job_step(&st, &e, &nx);
	return nx.what;
}

static enum mrtc_job_do poll(enum mrtc_err err, uint64_t now)
{
	struct mrtc_job_event e = { .kind = MRTC_JOB_EV_POLL, .now_ms = now, .err = err };
	mrtc_job_step(&st, &e, &nx);
	return nx.what;
}

static enum mrtc_job_do answer(int status, bool unrecognized, uint64_t now)
{
	struct mrtc_job_event e = { .kind = MRTC_JOB_EV_ACTION,
				    .now_ms = now,
				    .status = status,
				    .unrecognized = unrecognized };
	mrtc_job_step(&st, &e, &nx);
	return nx.what;
}

static enum mrtc_job_do failed(uint64_t now, uint32_t random)
{
	struct mrtc_job_event e = {
		.kind = MRTC_JOB_EV_ACTION, .now_ms = now, .err = MRTC_ERR_IO, .random = random
	};
	mrtc_job_step(&st, &e, &nx);
	return nx.what;
}

static enum mrtc_job_do lease(bool held, uint64_t now)
{
	struct mrtc_job_event e = { .kind = MRTC_JOB_EV_LEASE, .now_ms = now, .held = held };
	mrtc_job_step(&st, &e, &nx);
	return nx.what;
}

/* Started: poll first, then the restart at once; seen on the SFU: saved; restarted: asleep
 * until the next poll; the restart again at 80 % of the delay. */
START_TEST(test_start_poll_restart_sleep)
{
	start(false);
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1000), MRTC_JOB_DO_POLL);
	ck_assert(st.busy);
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1001), MRTC_JOB_DO_WAIT); /* busy */
	ck_assert_int_eq(poll(MRTC_OK, 1100), MRTC_JOB_DO_RESTART);
	ck_assert(nx.save);
	ck_assert_int_eq(nx.note, MRTC_JOB_NOTE_CONNECTED);
	ck_assert(st.connected);
	ck_assert(!st.sending);
	ck_assert_int_eq(answer(200, false, 1200), MRTC_JOB_DO_SLEEP);
	ck_assert(nx.form_confirmed);
	ck_assert_uint_eq(st.next_restart_ms, 1200 + DELAY * 8 / 10);
	ck_assert_uint_eq(nx.until_ms, 1100 + POLL); /* the next poll comes first */
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 3100), MRTC_JOB_DO_POLL);
	ck_assert_int_eq(poll(MRTC_OK, 3150), MRTC_JOB_DO_SLEEP);
	ck_assert(!nx.save); /* already connected */
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 9200), MRTC_JOB_DO_POLL);
	ck_assert_int_eq(poll(MRTC_OK, 9210), MRTC_JOB_DO_RESTART);
}
END_TEST

/* The participant leaves (poll): the leave is sent, and the job ends. */
START_TEST(test_left_by_poll_sends)
{
	start(false);
	st.connected = true;
	step(MRTC_JOB_EV_TIMER, 1000);
	ck_assert_int_eq(poll(MRTC_ERR_NOT_FOUND, 1100), MRTC_JOB_DO_SEND);
	ck_assert_int_eq(nx.note, MRTC_JOB_NOTE_LEFT);
	ck_assert(st.sending);
	ck_assert_int_eq(answer(200, false, 1200), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_SENT);
	ck_assert(!nx.end_is_warning);
}
END_TEST

/* A webhook: joined is saved; left while an answer is pending waits for it, then sends (no
 * poll first). */
START_TEST(test_webhooks)
{
	start(false);
	step(MRTC_JOB_EV_TIMER, 1000); /* polling */
	ck_assert_int_eq(step(MRTC_JOB_EV_JOINED, 1010), MRTC_JOB_DO_WAIT);
	ck_assert(nx.save);
	ck_assert(st.connected);
	ck_assert_int_eq(step(MRTC_JOB_EV_LEFT, 1020), MRTC_JOB_DO_WAIT);
	ck_assert(st.send_pending);
	ck_assert_int_eq(poll(MRTC_OK, 1030), MRTC_JOB_DO_SEND);
	/* idle: a left webhook acts at once */
	start(false);
	st.connected = true;
	st.next_poll_ms = 5000;
	st.next_restart_ms = 8000;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1000), MRTC_JOB_DO_SLEEP);
	ck_assert_int_eq(step(MRTC_JOB_EV_LEFT, 1100), MRTC_JOB_DO_SEND);
}
END_TEST

/* Never came: only once the SFU said so after the wait; a failing poll proves nothing. */
START_TEST(test_never_came)
{
	start(false);
	st.wait_deadline_ms = 1000;
	step(MRTC_JOB_EV_TIMER, 1000);
	ck_assert_int_eq(poll(MRTC_ERR_UPSTREAM, 1100), MRTC_JOB_DO_RESTART);
	ck_assert(!nx.never_came);
	answer(200, false, 1200);
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 3100), MRTC_JOB_DO_POLL);
	ck_assert_int_eq(poll(MRTC_ERR_NOT_FOUND, 3200), MRTC_JOB_DO_SEND);
	ck_assert(nx.never_came);
	/* before the deadline, absent is no reason to send */
	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	ck_assert_int_eq(poll(MRTC_ERR_NOT_FOUND, 1100), MRTC_JOB_DO_RESTART);
	ck_assert(!nx.never_came);
	ck_assert_int_eq(answer(200, false, 1200), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(nx.until_ms, 3100);
}
END_TEST

/* Backoff: 1 s, x1.5, jitter up to a quarter (from the random number), at most 60 s; the SFU
 * still polled meanwhile; an answer resets it. */
START_TEST(test_backoff)
{
	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	ck_assert_int_eq(failed(2000, 100), MRTC_JOB_DO_SLEEP);
	ck_assert_int_eq(nx.note, MRTC_JOB_NOTE_RETRYING);
	ck_assert_uint_eq(st.retry_at_ms, 2000 + 1000 + 100 % 251);
	ck_assert_uint_eq(st.backoff_ms, 1500);
	ck_assert_uint_eq(st.failing_since_ms, 2000);
	ck_assert_uint_eq(nx.until_ms, 3000); /* the next poll, before the retry */
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 3000), MRTC_JOB_DO_POLL);
	ck_assert_int_eq(poll(MRTC_OK, 3000), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(nx.until_ms, st.retry_at_ms);
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 3100), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(failed(3200, 1000), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(st.retry_at_ms, 3200 + 1500 + 1000 % 376);
	ck_assert_uint_eq(st.backoff_ms, 2250);
	for (int i = 0; i < 20; i++)
		failed(3300, 0);
	ck_assert_uint_eq(st.backoff_ms, MRTC_JOB_BACKOFF_CAP_MS);
	/* the poll goes on while backing off */
	st.next_poll_ms = 3300;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 3300), MRTC_JOB_DO_POLL);
	ck_assert_int_eq(poll(MRTC_OK, 3300), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(nx.until_ms, 5300); /* the next poll: before the retry */
	st.retry_at_ms = 0;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 3400), MRTC_JOB_DO_RESTART);
	answer(200, false, 3500);
	ck_assert_uint_eq(st.backoff_ms, MRTC_JOB_BACKOFF_START_MS);
	ck_assert_uint_eq(st.failing_since_ms, 0);
	/* an action that cannot even start counts as failing too */
	st.next_restart_ms = 0;
	st.next_poll_ms = 100000;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 4000), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(step(MRTC_JOB_EV_ACTION_NOT_STARTED, 4000), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(st.failing_since_ms, 4000);
	ck_assert_uint_eq(st.backoff_ms, 1500);
}
END_TEST

/* Failing longer than the delay plus the backoff cap: given up. */
START_TEST(test_give_up)
{
	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	failed(1000, 0);
	st.retry_at_ms = 0;
	st.next_poll_ms = 1000000;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1000 + DELAY + MRTC_JOB_BACKOFF_CAP_MS),
			 MRTC_JOB_DO_RESTART);
	failed(1000 + DELAY + MRTC_JOB_BACKOFF_CAP_MS + 1, 0);
	ck_assert_int_eq(nx.what, MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_GAVE_UP);
	ck_assert(nx.end_is_warning);
}
END_TEST

/* 429: the wait it asks for (body or header, passed in), else the backoff start; not counted
 * as failing. */
START_TEST(test_retry_after)
{
	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	struct mrtc_job_event e = {
		.kind = MRTC_JOB_EV_ACTION, .now_ms = 1100, .status = 429, .retry_after_ms = 5000
	};
	st.next_poll_ms = 100000;
	mrtc_job_step(&st, &e, &nx);
	ck_assert_int_eq(nx.what, MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(nx.until_ms, 6100);
	ck_assert_uint_eq(st.failing_since_ms, 0);
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 6100), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(answer(429, false, 6200), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(nx.until_ms, 7200);
}
END_TEST

/* The management forms: 404 M_UNRECOGNIZED and 405 move to the next form (the same action
 * again); every form refusing: no form; a plain 404 on a form not confirmed tries the others,
 * then the event is gone; on a confirmed form it is gone at once. 409: finalised. */
START_TEST(test_forms_and_ends)
{
	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	ck_assert_int_eq(answer(404, true, 1100), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(st.form, 1);
	ck_assert_int_eq(answer(405, false, 1200), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(st.form, 2);
	ck_assert_int_eq(answer(404, true, 1300), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(st.form, 3);
	ck_assert_int_eq(answer(404, true, 1400), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_NO_FORM);
	ck_assert(nx.end_is_warning);

	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(answer(404, false, 1100), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(answer(404, false, 1100), MRTC_JOB_DO_END); /* the last form knows it */
	ck_assert_int_eq(nx.end, MRTC_JOB_END_GONE);

	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	ck_assert_int_eq(answer(404, false, 1100), MRTC_JOB_DO_RESTART); /* plain: not found */
	ck_assert_int_eq(answer(404, true, 1100), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(answer(404, true, 1100), MRTC_JOB_DO_RESTART);
	ck_assert_int_eq(answer(405, false, 1100), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_GONE_ANY);

	start(false);
	st.form = 2;
	st.confirmed = true;
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	ck_assert_int_eq(answer(404, false, 1100), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_GONE);
	ck_assert(nx.end_is_warning); /* a restart found it gone */

	start(false);
	st.connected = true;
	st.confirmed = true;
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_ERR_NOT_FOUND, 1000);
	ck_assert_int_eq(answer(404, false, 1100), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_GONE);
	ck_assert(!nx.end_is_warning); /* a send found it already sent */

	start(false);
	step(MRTC_JOB_EV_TIMER, 1000);
	poll(MRTC_OK, 1000);
	ck_assert_int_eq(answer(409, false, 1100), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_FINALISED);
	ck_assert(nx.form_confirmed);

	/* the log line of each end */
	char why[240];
	mrtc_job_end_describe(&st, MRTC_JOB_END_FINALISED, "M_X", why, sizeof(why));
	ck_assert_str_eq(why, "the delayed event was already finalised the other way (HTTP 409)");
	st.sending = true;
	mrtc_job_end_describe(&st, MRTC_JOB_END_GONE, "M_NOT_FOUND", why, sizeof(why));
	ck_assert_str_eq(why, "leave event already sent (HTTP 404 M_NOT_FOUND to send)");
	st.sending = false;
	st.last_status = 405;
	mrtc_job_end_describe(&st, MRTC_JOB_END_NO_FORM, "no errcode", why, sizeof(why));
	ck_assert_str_eq(why, "the homeserver serves no MSC4140 management form (every form "
			      "answered 404/405 to restart; last HTTP 405 no errcode)");
	mrtc_job_end_describe(&st, MRTC_JOB_END_GONE_ANY, "", why, sizeof(why));
	ck_assert_str_eq(why, "delayed event gone (HTTP 404 to restart; no other management "
			      "form knows it)");
}
END_TEST

/* A shared store: an action needs a lease confirmed within a third of its TTL; lost, the job
 * is dropped here (it stays stored); a store not keeping up delays the action by a second. */
START_TEST(test_lease)
{
	start(true);
	step(MRTC_JOB_EV_TIMER, 1000);
	ck_assert_int_eq(poll(MRTC_OK, 1000), MRTC_JOB_DO_LEASE);
	ck_assert(st.busy);
	ck_assert_int_eq(lease(true, 1100), MRTC_JOB_DO_RESTART);
	ck_assert_uint_eq(st.lease_ok_ms, 1100);
	answer(200, false, 1200);
	/* fresh: no new check */
	st.next_restart_ms = 1300;
	st.next_poll_ms = 100000;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1100 + TTL / 3 - 1), MRTC_JOB_DO_RESTART);
	answer(200, false, 4000);
	st.next_restart_ms = 4100;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1100 + TTL / 3), MRTC_JOB_DO_LEASE);
	ck_assert_int_eq(lease(false, 4200), MRTC_JOB_DO_DROP);
	/* the lease check cannot start */
	start(true);
	st.next_poll_ms = 100000;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1000), MRTC_JOB_DO_LEASE);
	ck_assert_int_eq(step(MRTC_JOB_EV_LEASE_NOT_STARTED, 1000), MRTC_JOB_DO_SLEEP);
	ck_assert_uint_eq(nx.until_ms, 1000 + MRTC_JOB_BACKOFF_START_MS);
	/* a send needs the lease too */
	start(true);
	st.connected = true;
	step(MRTC_JOB_EV_TIMER, 1000);
	ck_assert_int_eq(poll(MRTC_ERR_NOT_FOUND, 1000), MRTC_JOB_DO_LEASE);
	ck_assert_int_eq(lease(true, 1000), MRTC_JOB_DO_SEND);
}
END_TEST

/* A poll that cannot start is tried again a period later, the job going on meanwhile; an SFU
 * no longer configured ends the job. */
START_TEST(test_poll_not_started_and_sfu_gone)
{
	start(false);
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1000), MRTC_JOB_DO_POLL);
	ck_assert_int_eq(step(MRTC_JOB_EV_POLL_NOT_STARTED, 1000), MRTC_JOB_DO_RESTART);
	ck_assert_uint_eq(st.next_poll_ms, 1000 + POLL);
	start(false);
	st.sfu_gone = true;
	ck_assert_int_eq(step(MRTC_JOB_EV_TIMER, 1000), MRTC_JOB_DO_END);
	ck_assert_int_eq(nx.end, MRTC_JOB_END_SFU_GONE);
	ck_assert(nx.end_is_warning);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("job_step");
	const TTest *tests[] = {
		test_start_poll_restart_sleep,
		test_left_by_poll_sends,
		test_webhooks,
		test_never_came,
		test_backoff,
		test_give_up,
		test_retry_after,
		test_forms_and_ends,
		test_lease,
		test_poll_not_started_and_sfu_gone,
	};
	vectors_add_tests(s, "job_step", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
