/* `oclseg devices`: lists every OpenCL platform and device with the facts that matter here. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "oclseg/dist.h"
#include "oclseg/runtime.h"

/* Under mpirun/srun: every rank picks its device as `train --device D` would, and rank 0 prints
 * which rank got which device on which host. */
static int print_rank_devices(const char *spec) {
    char line[1024];
    oclseg_device_info d;
    int st = oclseg_device_choose(spec, &d);
    if (st == OCLSEG_OK)
        snprintf(line, sizeof line, "rank %d (local %d) on %s: %d:%d  %s (%s)", oclseg_dist_rank(),
                 oclseg_dist_local_rank(), oclseg_dist_host(), d.platform_index, d.device_index,
                 d.name, d.platform_name);
    else
        snprintf(line, sizeof line, "rank %d (local %d) on %s: no device for '%s'",
                 oclseg_dist_rank(), oclseg_dist_local_rank(), oclseg_dist_host(),
                 spec ? spec : "");
    int size = oclseg_dist_size();
    char *all = malloc((size_t)size * sizeof line);
    if (!all) return 1;
    int ok = oclseg_dist_allgather(line, sizeof line, all) == OCLSEG_OK;
    if (ok && oclseg_dist_rank() == 0)
        for (int r = 0; r < size; r++) printf("%s\n", all + (size_t)r * sizeof line);
    free(all);
    int any_failed = 0;
    if (ok) ok = oclseg_dist_any(st != OCLSEG_OK, &any_failed) == OCLSEG_OK;
    return ok && !any_failed ? 0 : 1;
}

int cmd_devices(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"device", required_argument, 0, 'd'}, {0, 0, 0, 0}};
    int c;
    const char *spec = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: oclseg devices [--device D]\n\nLists every OpenCL device as P:D "
                   "(platform:device). Choose one with --device P:D,\n--device NAME (part of the "
                   "device or platform name) or the OCLSEG_DEVICE variable.\nUnder mpirun/srun it "
                   "prints which rank gets which device (from --device D, a comma-separated\nlist "
                   "per node-local rank, or auto) on which host.\n");
            return 0;
        }
        if (c == 'd') {
            spec = optarg;
            continue;
        }
        return 2;
    }
    if (oclseg_dist_size() > 1) return print_rank_devices(spec);
    oclseg_device_info *devs = NULL;
    int count = 0;
    if (oclseg_devices_list(&devs, &count) != OCLSEG_OK) return 1;
    if (count == 0) {
        fprintf(stderr, "oclseg: no OpenCL platform/device found: install pocl-opencl-icd (CPU), "
                        "mesa-opencl-icd (run with RUSTICL_ENABLE=llvmpipe or your GPU driver), "
                        "or your GPU vendor's OpenCL driver\n");
        free(devs);
        return 1;
    }
    /* --device D marks the device D selects, and a D that selects none is an error (named by
     * oclseg_device_choose, with the list) */
    oclseg_device_info def;
    int have_default = oclseg_device_choose(spec, &def) == OCLSEG_OK;
    if (spec && !have_default) {
        free(devs);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        const oclseg_device_info *d = &devs[i];
        int is_default = have_default && d->platform == def.platform && d->device == def.device;
        printf("%d:%d  %s%s\n", d->platform_index, d->device_index, d->name,
               !is_default ? "" : spec ? "   [--device]" : "   [default]");
        printf("     vendor %s; platform %s (%s)\n", d->vendor, d->platform_name,
               d->platform_version);
        printf("     driver %s; type %s; %u compute units; %s\n", d->driver_version,
               oclseg_device_type_str(d->type), d->compute_units, d->opencl_c_version);
        printf("     global memory %.0f MiB (max allocation %.0f MiB); local memory %.0f KiB; "
               "max work-group %zu; fp16 %s; fp64 %s\n",
               d->global_mem / 1048576.0, d->max_alloc / 1048576.0, d->local_mem / 1024.0,
               d->max_work_group_size, d->has_fp16 ? "yes" : "no", d->has_fp64 ? "yes" : "no");
    }
    free(devs);
    return 0;
}
