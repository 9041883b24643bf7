/* Graceful stop requests: SIGINT and SIGTERM caught while a long job runs (training, tuning),
 * which checks for them at its safe points; the signal decides the exit status (128 + signal). */
#ifndef OCLSEG_STOP_H
#define OCLSEG_STOP_H

/* Clears any earlier request and catches SIGINT and SIGTERM (each sets the request; the job
 * keeps running until it checks). */
void oclseg_stop_catch(void);
/* Restores the handlers oclseg_stop_catch replaced; the request stays readable. */
void oclseg_stop_release(void);
/* The signal that requested a stop (SIGINT or SIGTERM), or 0. */
int oclseg_stop_signal(void);
/* "SIGINT" or "SIGTERM" for the recorded request ("a signal" for another, "" for none). */
const char *oclseg_stop_signal_name(void);
/* Records a stop request as if `sig` had arrived (e.g. the signal the ranks agreed on). */
void oclseg_stop_request(int sig);
/* The exit status of a process that stopped on request: 128 + the signal (130 for SIGINT,
 * 143 for SIGTERM); 130 when no signal was recorded. */
int oclseg_stop_exit_status(void);

#endif
