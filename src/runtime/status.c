/* Status code names and the one error printer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "oclseg/env.h"
#include "oclseg/runtime.h"
#include "oclseg/status.h"

const char *oclseg_status_str(int status) {
    switch (status) {
#define S(x) case x: return #x
        S(CL_SUCCESS); S(CL_DEVICE_NOT_FOUND); S(CL_DEVICE_NOT_AVAILABLE);
        S(CL_COMPILER_NOT_AVAILABLE); S(CL_MEM_OBJECT_ALLOCATION_FAILURE);
        S(CL_OUT_OF_RESOURCES); S(CL_OUT_OF_HOST_MEMORY); S(CL_PROFILING_INFO_NOT_AVAILABLE);
        S(CL_MEM_COPY_OVERLAP); S(CL_IMAGE_FORMAT_MISMATCH); S(CL_IMAGE_FORMAT_NOT_SUPPORTED);
        S(CL_BUILD_PROGRAM_FAILURE); S(CL_MAP_FAILURE); S(CL_MISALIGNED_SUB_BUFFER_OFFSET);
        S(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST); S(CL_COMPILE_PROGRAM_FAILURE);
        S(CL_LINKER_NOT_AVAILABLE); S(CL_LINK_PROGRAM_FAILURE); S(CL_DEVICE_PARTITION_FAILED);
        S(CL_KERNEL_ARG_INFO_NOT_AVAILABLE); S(CL_INVALID_VALUE); S(CL_INVALID_DEVICE_TYPE);
        S(CL_INVALID_PLATFORM); S(CL_INVALID_DEVICE); S(CL_INVALID_CONTEXT);
        S(CL_INVALID_QUEUE_PROPERTIES); S(CL_INVALID_COMMAND_QUEUE); S(CL_INVALID_HOST_PTR);
        S(CL_INVALID_MEM_OBJECT); S(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR); S(CL_INVALID_IMAGE_SIZE);
        S(CL_INVALID_SAMPLER); S(CL_INVALID_BINARY); S(CL_INVALID_BUILD_OPTIONS);
        S(CL_INVALID_PROGRAM); S(CL_INVALID_PROGRAM_EXECUTABLE); S(CL_INVALID_KERNEL_NAME);
        S(CL_INVALID_KERNEL_DEFINITION); S(CL_INVALID_KERNEL); S(CL_INVALID_ARG_INDEX);
        S(CL_INVALID_ARG_VALUE); S(CL_INVALID_ARG_SIZE); S(CL_INVALID_KERNEL_ARGS);
        S(CL_INVALID_WORK_DIMENSION); S(CL_INVALID_WORK_GROUP_SIZE); S(CL_INVALID_WORK_ITEM_SIZE);
        S(CL_INVALID_GLOBAL_OFFSET); S(CL_INVALID_EVENT_WAIT_LIST); S(CL_INVALID_EVENT);
        S(CL_INVALID_OPERATION); S(CL_INVALID_GL_OBJECT); S(CL_INVALID_BUFFER_SIZE);
        S(CL_INVALID_MIP_LEVEL); S(CL_INVALID_GLOBAL_WORK_SIZE); S(CL_INVALID_PROPERTY);
        S(OCLSEG_ERR_INVALID_ARG); S(OCLSEG_ERR_NO_DEVICE); S(OCLSEG_ERR_BUILD);
        S(OCLSEG_ERR_NOT_FOUND); S(OCLSEG_ERR_IO); S(OCLSEG_ERR_FORMAT);
        S(OCLSEG_ERR_OUT_OF_MEMORY); S(OCLSEG_ERR_CLBLAST); S(OCLSEG_ERR_NUMERIC);
        S(OCLSEG_ERR_INTERRUPTED); S(OCLSEG_ERR_UNSUPPORTED);
        S(OCLSEG_ERR_INTERNAL);
#undef S
    default: return "unknown status";
    }
}

/* The user's phrase for a status: oclseg's own codes, then OpenCL's by kind. */
static const char *status_phrase(int status) {
    switch (status) {
    case OCLSEG_OK: return "no error";
    case OCLSEG_ERR_INVALID_ARG: return "an invalid argument";
    case OCLSEG_ERR_NO_DEVICE: return "no usable OpenCL device";
    case OCLSEG_ERR_BUILD: return "a kernel program did not build";
    case OCLSEG_ERR_NOT_FOUND: return "a file or entry that should exist is missing";
    case OCLSEG_ERR_IO: return "a file could not be read or written";
    case OCLSEG_ERR_FORMAT: return "a file's contents are malformed";
    case OCLSEG_ERR_OUT_OF_MEMORY: return "out of memory";
    case OCLSEG_ERR_CLBLAST: return "the CLBlast library failed";
    case OCLSEG_ERR_NUMERIC: return "a value became NaN or infinite";
    case OCLSEG_ERR_INTERRUPTED: return "interrupted";
    case OCLSEG_ERR_UNSUPPORTED: return "not supported by this device or build";
    case OCLSEG_ERR_INTERNAL: return "an internal error (a bug in oclseg)";
    case CL_OUT_OF_RESOURCES: case CL_MEM_OBJECT_ALLOCATION_FAILURE: case CL_OUT_OF_HOST_MEMORY:
        return "the OpenCL device ran out of memory or resources";
    default: return "the OpenCL driver reported an error";
    }
}

const char *oclseg_status_message(int status, char *buf, size_t size) {
    if (oclseg_debug())
        snprintf(buf, size, "%s (%s)", status_phrase(status), oclseg_status_str(status));
    else
        snprintf(buf, size, "%s", status_phrase(status));
    return buf;
}

int oclseg_debug(void) { return oclseg_env_get()->debug; }

/* This thread's capture buffer (oclseg_log_capture): NULL while messages go to stderr. */
static _Thread_local char *capture_buf;
static _Thread_local size_t capture_size;

void oclseg_log_capture(char *buf, size_t size) {
    capture_buf = size ? buf : NULL;
    capture_size = size;
    if (capture_buf) capture_buf[0] = '\0';
}

void oclseg_log_error(const char *file, int line, const char *fmt, ...) {
    /* stderr is unbuffered: a line printed in pieces could interleave with another thread's,
     * so the whole line is formatted first and written by one call under the stream's lock */
    char msg[4096];
    int n = oclseg_debug() ? snprintf(msg, sizeof msg, "oclseg: error: %s:%d: ", file, line)
                           : snprintf(msg, sizeof msg, "oclseg: error: ");
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof msg) vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    if (len == sizeof msg - 1) len--; /* cut: keep room for the newline */
    msg[len] = '\n';
    if (capture_buf) { /* appended whole, or not at all when it does not fit */
        size_t used = strlen(capture_buf);
        if (used + len + 1 < capture_size) {
            memcpy(capture_buf + used, msg, len + 1);
            capture_buf[used + len + 1] = '\0';
        }
        return;
    }
    flockfile(stderr);
    fwrite(msg, 1, len + 1, stderr);
    funlockfile(stderr);
}
