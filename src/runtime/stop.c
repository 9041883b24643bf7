/* Graceful stop requests: SIGINT/SIGTERM handlers that only record the signal, for jobs that stop
 * at their next safe point (see oclseg/stop.h). */
#include "oclseg/stop.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t requested;
static struct sigaction saved_int, saved_term;

static void on_stop_signal(int sig) {
    if (!requested) requested = sig;
}

void oclseg_stop_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    requested = 0;
    sigaction(SIGINT, &sa, &saved_int);
    sigaction(SIGTERM, &sa, &saved_term);
}

void oclseg_stop_release(void) {
    sigaction(SIGINT, &saved_int, NULL);
    sigaction(SIGTERM, &saved_term, NULL);
}

int oclseg_stop_signal(void) { return requested; }

const char *oclseg_stop_signal_name(void) {
    return requested == SIGINT ? "SIGINT" : requested == SIGTERM ? "SIGTERM" : requested ? "a signal" : "";
}

void oclseg_stop_request(int sig) { requested = sig; }

int oclseg_stop_exit_status(void) { return 128 + (requested ? requested : SIGINT); }
