/* Mask post-processing: keep the largest 8-connected foreground component, fill holes
 * (background regions not 4-connected to the image border). */
#include <stdlib.h>
#include <string.h>

#include "oclseg/data.h"

/* Flood fill from seed over pixels with mask[i] == value (connectivity 4 or 8), writing label
 * into labels[] (which must be 0 on unvisited pixels). Returns the component size. */
static size_t flood(const uint8_t *mask, int w, int h, int seed, uint8_t value, int conn,
                    int *labels, int label, int *stack) {
    size_t size = 0;
    int top = 0;
    stack[top++] = seed;
    labels[seed] = label;
    while (top > 0) {
        const int p = stack[--top], x = p % w, y = p / w;
        size++;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                if ((dx == 0 && dy == 0) || (conn == 4 && dx != 0 && dy != 0)) continue;
                const int xx = x + dx, yy = y + dy;
                if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                const int q = yy * w + xx;
                if (labels[q] || (mask[q] != 0) != (value != 0)) continue;
                labels[q] = label;
                stack[top++] = q;
            }
    }
    return size;
}

int oclseg_mask_postprocess(uint8_t *mask, int width, int height, int largest_component,
                            int fill_holes) {
    if (!mask || width <= 0 || height <= 0) {
        OCLSEG_ERROR("oclseg_mask_postprocess: invalid mask %dx%d", width, height);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const size_t n = (size_t)width * height;
    int *labels = calloc(n, sizeof *labels), *stack = malloc(n * sizeof *stack);
    if (!labels || !stack) {
        free(labels);
        free(stack);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    if (largest_component) {
        int label = 0, best = 0;
        size_t best_size = 0;
        for (size_t i = 0; i < n; i++) {
            if (!mask[i] || labels[i]) continue;
            size_t s = flood(mask, width, height, (int)i, 1, 8, labels, ++label, stack);
            if (s > best_size) { /* the first of equal sizes (scan order) wins */
                best_size = s;
                best = label;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (mask[i] && labels[i] != best) mask[i] = 0;
        memset(labels, 0, n * sizeof *labels);
    }
    if (fill_holes) {
        /* background 4-connected to the border stays; every other background pixel is a hole */
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                if (y != 0 && y != height - 1 && x != 0 && x != width - 1) continue;
                const int p = y * width + x;
                if (!mask[p] && !labels[p]) flood(mask, width, height, p, 0, 4, labels, 1, stack);
            }
        for (size_t i = 0; i < n; i++)
            if (!mask[i] && !labels[i]) mask[i] = 1;
    }
    free(labels);
    free(stack);
    return OCLSEG_OK;
}
