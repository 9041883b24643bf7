/* Launch shapes shared by the ops' deterministic reductions: partials per work-group, then an
 * ordered finish (kernels: cl/common.clh's work_group_sum / WORK_GROUP_TREE). */
#ifndef OCLSEG_OPS_REDUCE_H
#define OCLSEG_OPS_REDUCE_H

#include "oclseg/runtime.h"

/* Pass-1 work-groups over `count` values, `wg` per group: ceil(count / wg), at most max_groups,
 * at least min_groups (a finish of min_groups items then reads only written partials). */
size_t reduce_groups(size_t count, size_t wg, size_t max_groups, size_t min_groups);

/* Launches groups_x (x groups_y when not 0) work-groups of `wg` items: global (groups_x * wg
 * [, groups_y]), local (wg [, 1]). */
int reduce_launch(oclseg_ctx *ctx, cl_kernel k, size_t wg, size_t groups_x, size_t groups_y);

/* `groups` work-groups of the kernel's reduction size (oclseg_reduce_wg of `program`): one per
 * image, or one for a finish pass. */
int reduce_launch_groups(oclseg_ctx *ctx, const char *program, cl_kernel k, size_t groups);

#endif
