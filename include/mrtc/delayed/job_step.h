/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delayed-leave job as a pure state machine (PROTOCOL §2.4): given a job's state and the
 * last event (a timer, the SFU poll's answer, the homeserver's answer to a restart or send, the
 * store's answer about the lease, a webhook), mrtc_job_step() updates the state and says what to
 * do next: poll the SFU, restart or send the delayed event, check the lease, sleep until a time,
 * or end the job (sent, given up, gone) or drop it (another daemon holds it). It does no I/O,
 * reads no clock and draws no random number: the engine (jobs.c) passes them in and does
 * the I/O.
 *
 * Homeserver calls retry with backoff (1 s, x1.5, jitter up to a quarter, at most 60 s) and
 * honour 429; failing for longer than the delay (plus the backoff cap) gives up. The SFU is
 * polled even while homeserver calls back off. Four management forms of MSC4140 are tried in
 * turn ((unstable, stable path) x (action in the path, in the body)) until one is confirmed.
 */
#ifndef MRTC_JOB_STEP_H
#define MRTC_JOB_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"

#define MRTC_JOB_BACKOFF_START_MS 1000
#define MRTC_JOB_BACKOFF_CAP_MS 60000
#define MRTC_JOB_N_FORMS 4

struct mrtc_job_step_state {
	/* set by the engine when the job starts */
	uint64_t delay_ms;	   /* of the delayed event */
	uint64_t poll_ms;	   /* MRTC_DELAYED_POLL_MS */
	uint64_t lease_ttl_ms;	   /* MRTC_LEASE_TTL_MS */
	bool shared;		   /* the store is shared: an action needs a fresh lease */
	bool sfu_gone;		   /* the job's SFU is not configured (any more) */
	bool connected;		   /* the participant was seen on the SFU (the stored state) */
	uint64_t wait_deadline_ms; /* when a participant never seen is taken for never coming */
	uint64_t next_restart_ms, next_poll_ms;
	int form;	/* the management form to use (0..MRTC_JOB_N_FORMS-1) */
	bool confirmed; /* the homeserver is known to serve it */
	/* kept by the step */
	uint64_t retry_at_ms, backoff_ms;
	uint64_t failing_since_ms; /* first of an unbroken run of failed homeserver calls, or 0 */
	uint64_t lease_ok_ms;	   /* when the lease was last known to be ours, or 0 */
	bool send_pending;
	bool saw_not_found; /* a form answered a plain 404 (not M_UNRECOGNIZED) */
	bool seen_absent;   /* the last poll: the SFU answered that the participant is not there */
	bool busy;	    /* an I/O the step asked for has not answered yet */
	bool sending;	    /* the action in flight is a send */
	int last_status;    /* of the last homeserver answer */
};

enum mrtc_job_event_kind {
	MRTC_JOB_EV_TIMER,		/* the sleep ended, or the job just started */
	MRTC_JOB_EV_POLL,		/* the SFU answered: @err (MRTC_ERR_NOT_FOUND: absent) */
	MRTC_JOB_EV_POLL_NOT_STARTED,	/* the poll asked for could not start */
	MRTC_JOB_EV_ACTION,		/* the homeserver answered the restart or send */
	MRTC_JOB_EV_ACTION_NOT_STARTED, /* the action asked for could not start */
	MRTC_JOB_EV_LEASE,		/* the store answered about the lease: @held */
	MRTC_JOB_EV_LEASE_NOT_STARTED,	/* the lease check could not start (store not keeping up) */
	MRTC_JOB_EV_JOINED,		/* webhook: the participant joined the SFU */
	MRTC_JOB_EV_LEFT,		/* webhook: the participant left, or the room finished */
};

struct mrtc_job_event {
	enum mrtc_job_event_kind kind;
	uint64_t now_ms;	 /* monotonic */
	enum mrtc_err err;	 /* POLL, ACTION: MRTC_OK when an answer came */
	int status;		 /* ACTION: the HTTP status */
	bool unrecognized;	 /* ACTION: errcode M_UNRECOGNIZED */
	uint64_t retry_after_ms; /* ACTION 429: how long it asks to wait (0: the backoff start) */
	bool held;		 /* LEASE */
	uint32_t random;	 /* any random number: the backoff's jitter is drawn from it */
};

enum mrtc_job_do {
	MRTC_JOB_DO_WAIT,    /* an answer is pending: nothing new */
	MRTC_JOB_DO_SLEEP,   /* until @until_ms (monotonic), then a TIMER event */
	MRTC_JOB_DO_POLL,    /* ask the SFU whether the participant is there */
	MRTC_JOB_DO_RESTART, /* restart the delayed event with form state.form */
	MRTC_JOB_DO_SEND,    /* send it with form state.form */
	MRTC_JOB_DO_LEASE,   /* take or renew the lease */
	MRTC_JOB_DO_END,     /* the job is over: delete it from the store (@end says why) */
	MRTC_JOB_DO_DROP,    /* another daemon holds the lease: forget it here, keep it stored */
};

enum mrtc_job_end {
	MRTC_JOB_END_NONE,
	MRTC_JOB_END_SENT,	/* the leave event was sent */
	MRTC_JOB_END_FINALISED, /* 409: finalised the other way */
	MRTC_JOB_END_GONE,	/* 404 from a confirmed form: the event is gone (or was sent) */
	MRTC_JOB_END_GONE_ANY,	/* 404 from every form tried: gone, no other form knows it */
	MRTC_JOB_END_NO_FORM,	/* every form answered 404 M_UNRECOGNIZED / 405 */
	MRTC_JOB_END_GAVE_UP,	/* failing for longer than the delay */
	MRTC_JOB_END_SFU_GONE,	/* its SFU is not configured any more */
};

/* What happened that the engine logs (no secret: the engine words it). */
enum mrtc_job_note {
	MRTC_JOB_NOTE_NONE,
	MRTC_JOB_NOTE_CONNECTED, /* the participant is on the SFU */
	MRTC_JOB_NOTE_LEFT,	 /* the participant left the SFU (poll) */
	MRTC_JOB_NOTE_RETRYING,	 /* a homeserver call failed: retrying with backoff */
};

struct mrtc_job_next {
	enum mrtc_job_do what;
	uint64_t until_ms;     /* SLEEP */
	enum mrtc_job_end end; /* END */
	bool end_is_warning;   /* END: worth a warning rather than info */
	bool save;	       /* the stored state changed (connected): write the record */
	bool form_confirmed;   /* the homeserver serves state.form: remember it for its URL */
	enum mrtc_job_note note;
	bool never_came; /* the participant never came: the leave is sent */
};

/* Initial state of a job started at @now_ms (the first restart at once: when it last ran is
 * unknown); the engine then sets the configuration fields and steps a TIMER event. */
void mrtc_job_step_init(struct mrtc_job_step_state *state, uint64_t now_ms);

/* Applies @event to @state and writes what to do next to @ret_next. Pure. */
void mrtc_job_step(struct mrtc_job_step_state *state, const struct mrtc_job_event *event,
		   struct mrtc_job_next *ret_next);

/* Why a job ended with @end, for the log (@last_errcode: of the last answer, as shown). */
void mrtc_job_end_describe(const struct mrtc_job_step_state *state, enum mrtc_job_end end,
			   const char *last_errcode, char *out, size_t size);

#endif
