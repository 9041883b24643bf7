/* Status codes (extending OpenCL's cl_int codes) and the error-reporting helpers used everywhere. */
#ifndef OCLSEG_STATUS_H
#define OCLSEG_STATUS_H

#include <stdio.h>

/* 0 is success; negative values in [-1, -999] are OpenCL's own cl_int codes, passed through;
 * -1000 and below are oclseg's own (CLBlast codes are mapped to OCLSEG_ERR_CLBLAST). */
typedef enum oclseg_status {
    OCLSEG_OK = 0,
    OCLSEG_ERR_INVALID_ARG = -1001,   /* a caller passed something impossible (shape mismatch, ...) */
    OCLSEG_ERR_NO_DEVICE = -1002,     /* no OpenCL platform/device, or the requested one is absent */
    OCLSEG_ERR_BUILD = -1003,         /* kernel program failed to build (log printed) */
    OCLSEG_ERR_NOT_FOUND = -1004,     /* a kernel/program/file/key that should exist does not */
    OCLSEG_ERR_IO = -1005,            /* reading or writing a file failed */
    OCLSEG_ERR_FORMAT = -1006,        /* a file exists but its contents are malformed */
    OCLSEG_ERR_OUT_OF_MEMORY = -1007, /* host or device allocation failed */
    OCLSEG_ERR_CLBLAST = -1008,       /* CLBlast returned an error (printed) */
    OCLSEG_ERR_NUMERIC = -1009,       /* NaN/Inf where a finite value was required */
    OCLSEG_ERR_INTERRUPTED = -1010,   /* stopped: SIGINT/SIGTERM (oclseg/stop.h), a timeout */
    OCLSEG_ERR_UNSUPPORTED = -1011,   /* the device or build cannot do what was asked */
    OCLSEG_ERR_INTERNAL = -1012,      /* an invariant of oclseg itself was broken (a bug) */
} oclseg_status;

/* Human-readable name of a status (OpenCL codes by their CL_ name). */
const char *oclseg_status_str(int status);

/* What a status means for the user, as a phrase ("a file could not be read or written"); at
 * the debug level (oclseg_debug) followed by the status name: "... (OCLSEG_ERR_IO)". */
const char *oclseg_status_message(int status, char *buf, size_t size);

/* Whether messages carry the debugging details (the source file:line of an error, status
 * names): OCLSEG_DEBUG=1. */
int oclseg_debug(void);

/* Prints "oclseg: error: <message>" to stderr (printf-style) as one whole line (messages from
 * threads never interleave); "oclseg: error: <file>:<line>: <message>" at the debug level. */
void oclseg_log_error(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* While buf is set (size > 0), this thread's messages are appended to buf (NUL-terminated; a
 * message that does not fit is dropped) instead of being printed: a worker's messages can then
 * be printed in the order of the work. buf NULL: printed again. */
void oclseg_log_capture(char *buf, size_t size);

#define OCLSEG_ERROR(...) oclseg_log_error(__FILE__, __LINE__, __VA_ARGS__)

/* Checks an OpenCL call: on failure logs file:line, the call text and the code, then returns it.
 * Use inside functions returning oclseg_status/int. */
#define CL_CHECK(call)                                                                        \
    do {                                                                                      \
        cl_int cl_check_err_ = (call);                                                        \
        if (cl_check_err_ != CL_SUCCESS) {                                                    \
            oclseg_log_error(__FILE__, __LINE__, "%s failed: %s (%d)", #call,                 \
                             oclseg_status_str(cl_check_err_), (int)cl_check_err_);           \
            return cl_check_err_;                                                             \
        }                                                                                     \
    } while (0)

/* Like CL_CHECK, but jumps to `label` after storing the code in `st` (for cleanup paths). */
#define CL_CHECK_GOTO(call, st, label)                                                        \
    do {                                                                                      \
        cl_int cl_check_err_ = (call);                                                        \
        if (cl_check_err_ != CL_SUCCESS) {                                                    \
            oclseg_log_error(__FILE__, __LINE__, "%s failed: %s (%d)", #call,                 \
                             oclseg_status_str(cl_check_err_), (int)cl_check_err_);           \
            (st) = cl_check_err_;                                                             \
            goto label;                                                                       \
        }                                                                                     \
    } while (0)

/* Propagates a non-OK oclseg status unchanged (the callee already logged it). */
#define TRY(expr)                                                                             \
    do {                                                                                      \
        int try_st_ = (expr);                                                                 \
        if (try_st_ != OCLSEG_OK) return try_st_;                                             \
    } while (0)

#define TRY_GOTO(expr, st, label)                                                             \
    do {                                                                                      \
        (st) = (expr);                                                                        \
        if ((st) != OCLSEG_OK) goto label;                                                    \
    } while (0)

/* Checks a CLBlast call (CLBlastStatusCode); logs and returns OCLSEG_ERR_CLBLAST or the cl code. */
#define CLBLAST_CHECK(call)                                                                   \
    do {                                                                                      \
        int clblast_err_ = (int)(call);                                                       \
        if (clblast_err_ != 0) {                                                              \
            oclseg_log_error(__FILE__, __LINE__, "%s failed: CLBlast status %d", #call,       \
                             clblast_err_);                                                   \
            return clblast_err_ > -1000 ? clblast_err_ : OCLSEG_ERR_CLBLAST;                  \
        }                                                                                     \
    } while (0)

#endif
