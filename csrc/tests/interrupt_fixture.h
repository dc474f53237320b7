/* Requests to stop a long C call (ffnc_plan_run_epoch, ffnc_model_train), made the two ways a
 * program makes them: from a SIGALRM handler, as its Ctrl-C handler would, and from a second
 * thread. Shared by test_plan_interrupt.c and test_model_interrupt.c; `request` wraps
 * ffnc_plan_interrupt or ffnc_model_interrupt. Needs _XOPEN_SOURCE 700 before any include. */
#ifndef FFNC_TESTS_INTERRUPT_FIXTURE_H
#define FFNC_TESTS_INTERRUPT_FIXTURE_H

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

typedef void (*interrupt_request)(void *target);

static interrupt_request volatile alarm_request;
static void *volatile alarm_target;
static struct sigaction alarm_previous;

static void on_alarm(int sig) {
    (void)sig;
    alarm_request(alarm_target);
}

/* Arms a one-shot SIGALRM that makes the request in `usec` microseconds; 0 on success. */
static int request_on_alarm(interrupt_request request, void *target, long usec) {
    alarm_request = request;
    alarm_target = target;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGALRM, &action, &alarm_previous) != 0) return -1;
    struct itimerval timer = {{0, 0}, {0, usec}};
    return setitimer(ITIMER_REAL, &timer, NULL);
}

/* Puts back the SIGALRM handler request_on_alarm replaced; 0 on success. */
static int restore_alarm(void) { return sigaction(SIGALRM, &alarm_previous, NULL); }

typedef struct {
    interrupt_request request;
    void *target;
    long delay_ns;
    pthread_t thread;
} delayed_request;

static void *request_after_delay(void *arg) {
    delayed_request *r = arg;
    struct timespec wait = {0, r->delay_ns};
    nanosleep(&wait, NULL);
    r->request(r->target);
    return NULL;
}

/* Starts a thread that makes the request after r->delay_ns; 0 on success. */
static int request_from_thread(delayed_request *r) {
    return pthread_create(&r->thread, NULL, request_after_delay, r);
}

#endif
