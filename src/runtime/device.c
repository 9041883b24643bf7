/* Enumerates OpenCL platforms/devices and picks one from a user's spec ("P:D" or a name). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/env.h"
#include "oclseg/dist.h"
#include "oclseg/runtime.h"

const char *oclseg_device_type_str(cl_device_type type) {
    if (type & CL_DEVICE_TYPE_GPU) return "GPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
    if (type & CL_DEVICE_TYPE_CPU) return "CPU";
    return "other";
}

static void device_str(cl_device_id dev, cl_device_info what, char *out, size_t size) {
    out[0] = '\0';
    if (clGetDeviceInfo(dev, what, size, out, NULL) != CL_SUCCESS) snprintf(out, size, "?");
    out[size - 1] = '\0';
}

static int fill_info(oclseg_device_info *d) {
    char ext[8192];
    CL_CHECK(clGetPlatformInfo(d->platform, CL_PLATFORM_NAME, sizeof d->platform_name,
                               d->platform_name, NULL));
    CL_CHECK(clGetPlatformInfo(d->platform, CL_PLATFORM_VERSION, sizeof d->platform_version,
                               d->platform_version, NULL));
    device_str(d->device, CL_DEVICE_NAME, d->name, sizeof d->name);
    device_str(d->device, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    device_str(d->device, CL_DRIVER_VERSION, d->driver_version, sizeof d->driver_version);
    device_str(d->device, CL_DEVICE_OPENCL_C_VERSION, d->opencl_c_version,
               sizeof d->opencl_c_version);
    device_str(d->device, CL_DEVICE_VERSION, d->device_version, sizeof d->device_version);
    CL_CHECK(clGetDeviceInfo(d->device, CL_DEVICE_TYPE, sizeof d->type, &d->type, NULL));
    CL_CHECK(clGetDeviceInfo(d->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof d->compute_units,
                             &d->compute_units, NULL));
    CL_CHECK(clGetDeviceInfo(d->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof d->global_mem,
                             &d->global_mem, NULL));
    CL_CHECK(clGetDeviceInfo(d->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof d->local_mem,
                             &d->local_mem, NULL));
    CL_CHECK(clGetDeviceInfo(d->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d->max_alloc,
                             &d->max_alloc, NULL));
    CL_CHECK(clGetDeviceInfo(d->device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                             sizeof d->max_work_group_size, &d->max_work_group_size, NULL));
    device_str(d->device, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    d->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    d->has_fp64 = strstr(ext, "cl_khr_fp64") != NULL;
    return OCLSEG_OK;
}

int oclseg_devices_list(oclseg_device_info **out, int *count) {
    cl_uint nplat = 0;
    *out = NULL;
    *count = 0;
    oclseg_cache_prepare();
    cl_int err = clGetPlatformIDs(0, NULL, &nplat);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no platform */ || nplat == 0)
        return OCLSEG_OK;
    CL_CHECK(err);
    cl_platform_id *plats = calloc(nplat, sizeof *plats);
    if (!plats) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = OCLSEG_OK;
    CL_CHECK_GOTO(clGetPlatformIDs(nplat, plats, NULL), st, done);
    for (cl_uint p = 0; p < nplat; p++) {
        cl_uint ndev = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &ndev);
        if (err == CL_DEVICE_NOT_FOUND || ndev == 0) continue; /* e.g. Clover without GPUs */
        CL_CHECK_GOTO(err, st, done);
        cl_device_id *devs = calloc(ndev, sizeof *devs);
        oclseg_device_info *grown = realloc(*out, (*count + ndev) * sizeof **out);
        if (!devs || !grown) {
            free(devs);
            st = OCLSEG_ERR_OUT_OF_MEMORY;
            goto done;
        }
        *out = grown;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, ndev, devs, NULL);
        for (cl_uint d = 0; err == CL_SUCCESS && d < ndev; d++) {
            oclseg_device_info *info = &(*out)[*count];
            memset(info, 0, sizeof *info);
            info->platform_index = (int)p;
            info->device_index = (int)d;
            info->platform = plats[p];
            info->device = devs[d];
            if (fill_info(info) == OCLSEG_OK) (*count)++;
        }
        free(devs);
        CL_CHECK_GOTO(err, st, done);
    }
done:
    free(plats);
    if (st != OCLSEG_OK) {
        free(*out);
        *out = NULL;
        *count = 0;
    }
    return st;
}

static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return 1;
    }
    return n == 0;
}

static void print_device_list(const oclseg_device_info *devs, int count) {
    fprintf(stderr, "available OpenCL devices:\n");
    for (int i = 0; i < count; i++)
        fprintf(stderr, "  %d:%d  %s  (%s, %s)\n", devs[i].platform_index, devs[i].device_index,
                devs[i].name, devs[i].platform_name, oclseg_device_type_str(devs[i].type));
}

/* A comma-separated spec ("0:0,1:0", "pocl,llvmpipe") names one device per node-local rank:
 * element local_rank % count is this process's. Copies it to buf and returns it. */
static const char *spec_for_rank(const char *spec, char *buf, size_t size) {
    if (!spec || !strchr(spec, ',')) return spec;
    int parts = 1;
    for (const char *p = spec; *p; p++) parts += *p == ',';
    int want = oclseg_dist_local_rank() % parts;
    const char *start = spec;
    for (int i = 0; i < want; i++) start = strchr(start, ',') + 1;
    size_t len = strcspn(start, ",");
    if (len >= size) len = size - 1;
    memcpy(buf, start, len);
    buf[len] = '\0';
    return buf;
}

/* The default device: the first GPU, else accelerator, else CPU. "auto": the GPUs round-robin
 * over the node-local ranks (local rank r gets GPU r % GPUs), else the default. */
static int default_device(const oclseg_device_info *devs, int count, int round_robin) {
    if (round_robin) {
        int gpus = 0;
        for (int i = 0; i < count; i++) gpus += (devs[i].type & CL_DEVICE_TYPE_GPU) != 0;
        int want = gpus ? oclseg_dist_local_rank() % gpus : -1;
        for (int i = 0; i < count && want >= 0; i++)
            if ((devs[i].type & CL_DEVICE_TYPE_GPU) && want-- == 0) return i;
    }
    static const cl_device_type order[] = {CL_DEVICE_TYPE_GPU, CL_DEVICE_TYPE_ACCELERATOR,
                                           CL_DEVICE_TYPE_CPU};
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < count; i++)
            if (devs[i].type & order[o]) return i;
    return 0;
}

int oclseg_device_choose(const char *spec, oclseg_device_info *out) {
    oclseg_device_info *devs = NULL;
    int count = 0;
    TRY(oclseg_devices_list(&devs, &count));
    if (count == 0) {
        free(devs);
        OCLSEG_ERROR("no OpenCL platform/device found: install pocl-opencl-icd (CPU), "
                     "mesa-opencl-icd, or your GPU vendor's OpenCL driver (see `clinfo -l`)");
        return OCLSEG_ERR_NO_DEVICE;
    }
    if (!spec || !*spec) spec = oclseg_env_get()->device;
    char mine[256];
    spec = spec_for_rank(spec, mine, sizeof mine);
    int chosen = -1;
    if (!spec || !*spec || strcmp(spec, "auto") == 0) {
        chosen = default_device(devs, count, spec && *spec);
    } else {
        int p, d, used = 0;
        if (sscanf(spec, "%d:%d%n", &p, &d, &used) == 2 && spec[used] == '\0') {
            for (int i = 0; i < count; i++)
                if (devs[i].platform_index == p && devs[i].device_index == d) chosen = i;
        } else {
            for (int i = 0; i < count && chosen < 0; i++)
                if (contains_nocase(devs[i].name, spec) ||
                    contains_nocase(devs[i].platform_name, spec) ||
                    contains_nocase(devs[i].platform_version, spec) || /* "PoCL", "CUDA" */
                    contains_nocase(devs[i].vendor, spec))
                    chosen = i;
        }
        if (chosen < 0) {
            OCLSEG_ERROR("no OpenCL device matches '%s' (use P:D or part of a device or "
                         "platform name)", spec);
            print_device_list(devs, count);
            free(devs);
            return OCLSEG_ERR_NO_DEVICE;
        }
    }
    *out = devs[chosen];
    free(devs);
    return OCLSEG_OK;
}
