/* SPDX-License-Identifier: Apache-2.0 */
/* The delayed-leave job's decisions, apart from its I/O (job_step.h). */
#include "mrtc/delayed/job_step.h"

#include <string.h>

#include "mrtc/base/util.h"

void mrtc_job_step_init(struct mrtc_job_step_state *s, uint64_t now_ms)
{
	memset(s, 0, sizeof(*s));
	s->backoff_ms = MRTC_JOB_BACKOFF_START_MS;
	s->next_restart_ms = now_ms;
	s->next_poll_ms = now_ms;
	s->wait_deadline_ms = now_ms;
}

static void backoff(struct mrtc_job_step_state *s, uint64_t now, uint32_t random)
{
	uint64_t jitter = random % (s->backoff_ms / 4 + 1);
	s->retry_at_ms = now + s->backoff_ms + jitter;
	s->backoff_ms = s->backoff_ms * 3 / 2;
	if (s->backoff_ms > MRTC_JOB_BACKOFF_CAP_MS)
		s->backoff_ms = MRTC_JOB_BACKOFF_CAP_MS;
}

static void failed(struct mrtc_job_step_state *s, uint64_t now, uint32_t random)
{
	if (!s->failing_since_ms)
		s->failing_since_ms = now;
	backoff(s, now, random);
}

static void end(struct mrtc_job_next *n, enum mrtc_job_end why, bool warning)
{
	n->what = MRTC_JOB_DO_END;
	n->end = why;
	n->end_is_warning = warning;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* What to do now, the job being idle (job_tick before the step function). */
static void decide(struct mrtc_job_step_state *s, uint64_t now, struct mrtc_job_next *n)
{
	if (s->sfu_gone) {
		/* Nothing can tell when the participant leaves: the homeserver's own timeout
		 * sends the leave once nobody restarts the delayed event. */
		end(n, MRTC_JOB_END_SFU_GONE, true);
		return;
	}
	/* Failing for longer than the delay: the homeserver has sent (or dropped) the event by
	 * itself by now, so retrying longer serves nobody. */
	if (s->failing_since_ms &&
	    now - s->failing_since_ms > s->delay_ms + MRTC_JOB_BACKOFF_CAP_MS) {
		end(n, MRTC_JOB_END_GAVE_UP, true);
		return;
	}
	/* The SFU is polled even while homeserver calls back off: a participant must never be
	 * taken for gone because the homeserver was failing. */
	if (now >= s->next_poll_ms && !s->send_pending) {
		n->what = MRTC_JOB_DO_POLL;
		s->busy = true;
		return;
	}
	/* "Never came" needs the SFU to have said so: a failing poll proves nothing. */
	if (!s->connected && now >= s->wait_deadline_ms && !s->send_pending && s->seen_absent) {
		n->never_came = true;
		s->send_pending = true;
	}
	uint64_t at = s->next_poll_ms;
	if (s->retry_at_ms > now) {
		n->what = MRTC_JOB_DO_SLEEP;
		n->until_ms = min_u64(s->retry_at_ms, at);
		return;
	}
	bool acting = s->send_pending || now >= s->next_restart_ms;
	/* With a shared store an action is taken only under a lease confirmed within a third of
	 * its time to live (the scan renews it that often). */
	if (acting && s->shared &&
	    !(s->lease_ok_ms && now - s->lease_ok_ms < s->lease_ttl_ms / 3)) {
		n->what = MRTC_JOB_DO_LEASE;
		s->busy = true;
		return;
	}
	if (acting) {
		n->what = s->send_pending ? MRTC_JOB_DO_SEND : MRTC_JOB_DO_RESTART;
		s->sending = s->send_pending;
		s->busy = true;
		return;
	}
	at = min_u64(at, s->next_restart_ms);
	if (!s->connected)
		at = min_u64(at, s->wait_deadline_ms);
	n->what = MRTC_JOB_DO_SLEEP;
	n->until_ms = at;
}

/* The homeserver's answer to a restart or send; false when the job ended (@n says how). */
static bool on_action(struct mrtc_job_step_state *s, const struct mrtc_job_event *e,
		      struct mrtc_job_next *n)
{
	bool sending = s->sending, answered = e->err == MRTC_OK;
	if (answered)
		s->last_status = e->status;
	bool is_404 = answered && e->status == 404, is_405 = answered && e->status == 405;
	/* A form the homeserver does not serve answers 404 M_UNRECOGNIZED or 405; a form not
	 * confirmed yet may also answer a plain 404. Try the next form before concluding. */
	if (is_404 && !e->unrecognized)
		s->saw_not_found = true;
	if ((is_405 || (is_404 && (e->unrecognized || !s->confirmed))) &&
	    s->form + 1 < MRTC_JOB_N_FORMS) {
		s->form++;
		s->confirmed = false;
		return true;
	}
	if (answered && (e->status == 200 || e->status == 409 || (is_404 && !e->unrecognized))) {
		s->confirmed = true;
		n->form_confirmed = true;
	}
	if (answered && e->status == 200) {
		s->backoff_ms = MRTC_JOB_BACKOFF_START_MS;
		s->saw_not_found = false;
		s->failing_since_ms = 0;
		if (sending) {
			end(n, MRTC_JOB_END_SENT, false);
			return false;
		}
		s->next_restart_ms = e->now_ms + s->delay_ms * 8 / 10;
	} else if (answered && e->status == 409) {
		end(n, MRTC_JOB_END_FINALISED, true);
		return false;
	} else if (is_404 || is_405) {
		bool gone = s->saw_not_found;
		if (gone && s->confirmed && !e->unrecognized && !is_405)
			end(n, MRTC_JOB_END_GONE, !sending);
		else if (gone)
			end(n, MRTC_JOB_END_GONE_ANY, !sending);
		else
			end(n, MRTC_JOB_END_NO_FORM, true);
		return false;
	} else if (answered && e->status == 429) {
		s->retry_at_ms =
		    e->now_ms + (e->retry_after_ms ? e->retry_after_ms : MRTC_JOB_BACKOFF_START_MS);
	} else {
		n->note = MRTC_JOB_NOTE_RETRYING;
		failed(s, e->now_ms, e->random);
	}
	return true;
}

void mrtc_job_step(struct mrtc_job_step_state *s, const struct mrtc_job_event *e,
		   struct mrtc_job_next *n)
{
	memset(n, 0, sizeof(*n));
	uint64_t now = e->now_ms;
	switch (e->kind) {
	case MRTC_JOB_EV_TIMER:
		break;
	case MRTC_JOB_EV_POLL:
		s->busy = false;
		s->next_poll_ms = now + s->poll_ms;
		s->seen_absent = e->err == MRTC_ERR_NOT_FOUND;
		if (e->err == MRTC_OK && !s->connected) {
			s->connected = true;
			n->save = true;
			n->note = MRTC_JOB_NOTE_CONNECTED;
		} else if (e->err == MRTC_ERR_NOT_FOUND && s->connected) {
			n->note = MRTC_JOB_NOTE_LEFT;
			s->send_pending = true;
		}
		break;
	case MRTC_JOB_EV_POLL_NOT_STARTED:
		s->busy = false;
		s->next_poll_ms = now + s->poll_ms;
		break;
	case MRTC_JOB_EV_ACTION:
		s->busy = false;
		if (!on_action(s, e, n))
			return;
		break;
	case MRTC_JOB_EV_ACTION_NOT_STARTED:
		/* Counted as failing (for the give-up), backed off. */
		s->busy = false;
		failed(s, now, e->random);
		break;
	case MRTC_JOB_EV_LEASE:
		s->busy = false;
		if (!e->held) {
			n->what = MRTC_JOB_DO_DROP;
			return;
		}
		s->lease_ok_ms = now;
		break;
	case MRTC_JOB_EV_LEASE_NOT_STARTED:
		s->busy = false;
		s->retry_at_ms = now + MRTC_JOB_BACKOFF_START_MS; /* the store is not keeping up */
		break;
	case MRTC_JOB_EV_JOINED:
		if (!s->connected) {
			s->connected = true;
			n->save = true;
		}
		break;
	case MRTC_JOB_EV_LEFT:
		s->send_pending = true;
		break;
	}
	if (s->busy) {
		n->what = MRTC_JOB_DO_WAIT;
		return;
	}
	decide(s, now, n);
}

void mrtc_job_end_describe(const struct mrtc_job_step_state *s, enum mrtc_job_end end,
			   const char *last_errcode, char *out, size_t size)
{
	const char *what = s->sending ? "leave event already sent" : "delayed event gone";
	const char *call = s->sending ? "send" : "restart";
	switch (end) {
	case MRTC_JOB_END_SENT:
		mrtc_copy(out, size, "leave event sent");
		break;
	case MRTC_JOB_END_FINALISED:
		mrtc_copy(out, size,
			  "the delayed event was already finalised the other way (HTTP 409)");
		break;
	case MRTC_JOB_END_GONE:
		mrtc_format_shown(out, size, "%s (HTTP 404 %s to %s)", what, last_errcode, call);
		break;
	case MRTC_JOB_END_GONE_ANY:
		mrtc_format_shown(out, size,
				  "%s (HTTP 404 to %s; no other management form knows it)", what,
				  call);
		break;
	case MRTC_JOB_END_NO_FORM:
		mrtc_format_shown(out, size,
				  "the homeserver serves no MSC4140 management form (every form "
				  "answered 404/405 to %s; last HTTP %d %s)",
				  call, s->last_status, last_errcode);
		break;
	case MRTC_JOB_END_GAVE_UP:
		mrtc_copy(out, size,
			  "homeserver calls kept failing for longer than the delay: giving up");
		break;
	case MRTC_JOB_END_SFU_GONE:
	default:
		mrtc_copy(out, size, "its SFU is not configured any more");
		break;
	}
}
