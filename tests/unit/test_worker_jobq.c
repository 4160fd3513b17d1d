/* The job runner's state machine without Docker or PostgreSQL (job.h):
 * when a failed attempt is tried again and after how long; a job's one
 * timer and the step it takes; the answers of an attempt given up on
 * (job_timeout_s) dropped, and a finished job freed only once no call of
 * its own is in flight. Driven with a real libev loop and fake calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/worker/job.h"
#include "check.h"

static void test_retry(void)
{
    double d = -1;
    bool ok = true;
    CHECK(job_retry_after(1, 5, true, &d) && d == 1.0, "attempt 1 failed: again in 1 s (%.1f)", d);
    CHECK(job_retry_after(3, 5, true, &d) && d == 4.0, "attempt 3 failed: again in 4 s (%.1f)", d);
    for (int a = 1; a < 100; a++)
        ok &= job_retry_after(a, 100, true, &d) && d == job_backoff_s(a) && d <= 30.0;
    CHECK(ok, "the delay is protocol.h's one backoff, never over 30 s");
    d = -1;
    CHECK(!job_retry_after(5, 5, true, &d) && d == -1,
          "the last allowed attempt failing fails the job (delay untouched)");
    CHECK(!job_retry_after(1, 5, false, &d), "a permanent failure is never tried again");
    CHECK(!job_retry_after(7, 5, true, &d), "nor one past job_max_attempts (lowered by a reload)");
}

static void test_calls(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct berth_config cfg = {.job_timeout_s = 300};
    struct worker w = {.loop = loop, .cfg = &cfg};
    struct runner rn = {.w = &w};
    struct job j = {.rn = &rn};
    struct job *out = NULL;
    struct call *a, *b;

    ev_check_init(&rn.reaper, NULL);
    ev_init(&j.deadline, NULL);
    ev_timer_init(&j.timer, NULL, 0., 0.);

    a = call_new(&j);
    CHECK(a && j.inflight == 1 && a->epoch == j.epoch, "a call counts as in flight for its job");
    CHECK(call_end(a, &out) && out == &j && j.inflight == 0,
          "its answer reaches the job while the attempt runs");

    a = call_new(&j);
    b = call_new(&j);
    j.epoch++; /* job_timeout_s gave the attempt up */
    CHECK(j.inflight == 2 && !call_end(a, &out), "an answer of a given-up attempt is dropped");
    j.dead = true;
    CHECK(!ev_is_active(&rn.reaper), "a finished job with a call in flight is not freed");
    CHECK(!call_end(b, &out) && j.inflight == 0 && ev_is_active(&rn.reaper),
          "the last answer in lets the reaper free it");
    ev_check_stop(loop, &rn.reaper);

    j.dead = false;
    ev_timer_set(&j.deadline, 0., 300.);
    ev_timer_again(loop, &j.deadline);
    ev_now_update(loop);
    a = call_new(&j);
    CHECK(call_end(a, &out) && ev_is_active(&j.deadline) &&
              ev_timer_remaining(loop, &j.deadline) > 299.0,
          "an answer restarts the attempt's deadline (%.1f s left)",
          ev_timer_remaining(loop, &j.deadline));
    ev_timer_stop(loop, &j.deadline);

    job_hold(&j, 7.0, STEP_NET_WAIT);
    CHECK(j.step == STEP_NET_WAIT && ev_is_active(&j.timer) &&
              ev_timer_remaining(loop, &j.timer) <= 7.0,
          "a hold arms the job's one timer with the step it takes");
    j.next = NULL;
    rn.jobs = &j;
    memcpy(j.net, "berth-c-alice", 14);
    job_wake_net_waiters(&rn, "berth-c-bob");
    CHECK(ev_timer_remaining(loop, &j.timer) > 6.0, "another user's network wakes no one");
    job_wake_net_waiters(&rn, "berth-c-alice");
    CHECK(j.step == STEP_NET_WAIT && ev_timer_remaining(loop, &j.timer) < 0.01,
          "the user's network known: the job waiting on it goes at once");
    job_hold(&j, 2.0, STEP_LOAD);
    job_wake_net_waiters(&rn, "berth-c-alice");
    CHECK(j.step == STEP_LOAD && ev_timer_remaining(loop, &j.timer) > 1.5,
          "a job held for a retry is not woken by a network");
    ev_timer_stop(loop, &j.timer);
    ev_loop_destroy(loop);
}

int main(void)
{
    test_retry();
    test_calls();
    return CHECK_DONE();
}
