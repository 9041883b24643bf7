/* Launch shapes shared by the ops' deterministic reductions (see reduce.h). */
#include "ops/reduce.h"

size_t reduce_groups(size_t count, size_t wg, size_t max_groups, size_t min_groups) {
    size_t groups = (count + wg - 1) / wg;
    if (groups > max_groups) groups = max_groups;
    if (groups < min_groups) groups = min_groups;
    return groups;
}

int reduce_launch(oclseg_ctx *ctx, cl_kernel k, size_t wg, size_t groups_x, size_t groups_y) {
    size_t global[2] = {groups_x * wg, groups_y}, local[2] = {wg, 1};
    return oclseg_launch(ctx, k, groups_y ? 2 : 1, global, local);
}

int reduce_launch_groups(oclseg_ctx *ctx, const char *program, cl_kernel k, size_t groups) {
    return reduce_launch(ctx, k, oclseg_reduce_wg(ctx, program, k), groups, 0);
}
