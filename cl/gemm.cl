// Helpers around CLBlast's GEMM: summing a batch of GEMM results in a fixed order.

// dst[i] = (accumulate ? dst[i] : 0) + sum_{s < count} src[src_off + s * slice + i], s ascending:
// the same order as accumulating the GEMMs one by one, and independent of timing.
__kernel void sum_slices(__global const float *src, const uint src_off, const uint slice,
                         const uint count, __global float *dst, const uint dst_off,
                         const uint accumulate) {
    const uint i = get_global_id(0);
    if (i >= slice) return;
    float acc = accumulate ? dst[dst_off + i] : 0.0f;
    for (uint s = 0; s < count; s++) acc += src[src_off + s * slice + i];
    dst[dst_off + i] = acc;
}

// ---- Register-tiled GEMMs for CPU OpenCL (PoCL, llvmpipe), where CLBlast's GPU-shaped kernels
// reach a small fraction of the core's FMA rate. Each work-item owns a whole tile of C and runs
// the full k loop with the tile's accumulators in vector registers (the OpenBLAS micro-kernel
// shape); the work-group is a small block of tiles that share A rows / B columns in cache.
// Sums run in ascending k (and image) order inside one work-item: deterministic.

#ifndef GEMM_TM
#define GEMM_TM 8 // rows of C per work-item (gemm_nn)
#endif
#ifndef GEMM_VW
#define GEMM_VW 16 // vector width along n (gemm_nn) and along k (gemm_nt)
#endif
#ifndef GEMM_NV
#define GEMM_NV 2 // vectors per row of the tile (gemm_nn): the tile is GEMM_TM x GEMM_VW*GEMM_NV
#endif
#ifndef GEMM_DOT_TM
#define GEMM_DOT_TM 4 // rows of C per work-item (gemm_nt)
#endif
#ifndef GEMM_DOT_TN
#define GEMM_DOT_TN 4 // columns of C per work-item (gemm_nt)
#endif

#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define VFLOAT GEMM_CAT(float, GEMM_VW)
#define VLOAD GEMM_CAT(vload, GEMM_VW)
#define VSTORE GEMM_CAT(vstore, GEMM_VW)
#define GEMM_TILE_N (GEMM_VW * GEMM_NV)

// C_z (m x n) = A_z * B_z + beta * C_z for z < count, where A_z[i][q] is
// a[a_off + z * a_stride + i * a_rs + q * a_cs] (any layout: row-major or transposed), B_z is
// row-major with unit stride along n (b[b_off + z * b_stride + q * ldb + j]) and C_z likewise.
// Work-item (x, y) computes matrix z = x / tiles_per_matrix (= ceil(n / GEMM_TILE_N)), rows
// [y * GEMM_TM, +GEMM_TM) and columns [(x % tiles_per_matrix) * GEMM_TILE_N, +GEMM_TILE_N).
// At the right edge the tile shifts left to stay inside B and C (when n >= GEMM_TILE_N) and stores
// only its own columns; rows past m are computed on row m - 1 and not stored. beta == 0: C is not
// read (it may hold NaN).
__kernel void gemm_nn(const uint m, const uint n, const uint k, __global const float *a,
                      const uint a_off, const uint a_rs, const uint a_cs, const uint a_stride,
                      __global const float *b, const uint b_off, const uint ldb,
                      const uint b_stride, const float beta, __global float *c, const uint c_off,
                      const uint ldc, const uint c_stride, const uint count,
                      const uint tiles_per_matrix) {
    // x runs over (matrix z, column tile) with the matrix outer, so a work-group along x spans
    // several matrices that share rows of A (a weight, stride 0) while they are in cache
    const uint x = get_global_id(0), z = x / tiles_per_matrix;
    // (x - z * t, not x % t: LLVM turns a div/rem pair into `freeze`, which Oclgrind cannot run)
    const uint tile_j = (x - z * tiles_per_matrix) * GEMM_TILE_N, tile_i = get_global_id(1) * GEMM_TM;
    if (z >= count || tile_j >= n || tile_i >= m) return;
    a += a_off + z * a_stride;
    b += b_off + z * b_stride;
    c += c_off + z * c_stride;
    if (n < GEMM_TILE_N) { // narrower than one tile (the host avoids this): plain scalar loops
        for (uint i = tile_i; i < min(m, tile_i + GEMM_TM); i++)
            for (uint j = 0; j < n; j++) {
                float acc = 0.0f;
                for (uint q = 0; q < k; q++) acc = fma(a[i * a_rs + q * a_cs], b[q * ldb + j], acc);
                c[i * ldc + j] = beta == 0.0f ? acc : acc + beta * c[i * ldc + j];
            }
        return;
    }
    const uint j0 = min(tile_j, n - GEMM_TILE_N);
    uint row[GEMM_TM];
#pragma unroll
    for (uint i = 0; i < GEMM_TM; i++) row[i] = min(tile_i + i, m - 1) * a_rs;
    VFLOAT acc[GEMM_TM][GEMM_NV];
#pragma unroll
    for (uint i = 0; i < GEMM_TM; i++)
#pragma unroll
        for (uint v = 0; v < GEMM_NV; v++) acc[i][v] = (VFLOAT)(0.0f);
    for (uint q = 0; q < k; q++) {
        __global const float *bq = b + q * ldb + j0;
        VFLOAT bv[GEMM_NV];
#pragma unroll
        for (uint v = 0; v < GEMM_NV; v++) bv[v] = VLOAD(v, bq);
        const uint aq = q * a_cs;
#pragma unroll
        for (uint i = 0; i < GEMM_TM; i++) {
            const VFLOAT av = (VFLOAT)(a[row[i] + aq]);
#pragma unroll
            for (uint v = 0; v < GEMM_NV; v++) acc[i][v] = fma(av, bv[v], acc[i][v]);
        }
    }
#pragma unroll
    for (uint i = 0; i < GEMM_TM; i++) {
        if (tile_i + i >= m) break;
        __global float *ci = c + (tile_i + i) * ldc + j0;
        if (j0 == tile_j) {
#pragma unroll
            for (uint v = 0; v < GEMM_NV; v++)
                VSTORE(beta == 0.0f ? acc[i][v] : acc[i][v] + beta * VLOAD(v, ci), v, ci);
        } else { // shifted edge tile: only the columns from tile_j on are this item's
            float row_out[GEMM_TILE_N];
#pragma unroll
            for (uint v = 0; v < GEMM_NV; v++) VSTORE(acc[i][v], v, row_out);
            for (uint j = tile_j - j0; j < GEMM_TILE_N; j++)
                ci[j] = beta == 0.0f ? row_out[j] : row_out[j] + beta * ci[j];
        }
    }
}

// Sum of a vector's lanes in a fixed tree order (cl/common.clh lane_tree_sum).
inline float gemm_lane_sum(const VFLOAT v) {
    float lane[GEMM_VW];
    VSTORE(v, 0, lane);
    return lane_tree_sum(lane, GEMM_VW);
}

// C_z (m x n) = sum_{s < sum_count} A_{z+s} * B_{z+s}^T + beta * C_z, with A_z (m x k) and
// B_z (n x k) row-major (rows lda / ldb apart, matrices a_stride / b_stride apart): dot products
// along the contiguous k, GEMM_VW lanes at a time, the tail of k (k % GEMM_VW) in scalars.
// z = get_global_id(2) * sum_count. With sum_count > 1 the products of consecutive matrices are
// summed in ascending order in the accumulators (a weight gradient over a batch, no scratch).
// Work-item (x, y) computes a GEMM_DOT_TM x GEMM_DOT_TN tile; rows and columns past the edge are
// computed on the last row / column and not stored.
__kernel void gemm_nt(const uint m, const uint n, const uint k, __global const float *a,
                      const uint a_off, const uint lda, const uint a_stride,
                      __global const float *b, const uint b_off, const uint ldb,
                      const uint b_stride, const float beta, __global float *c, const uint c_off,
                      const uint ldc, const uint c_stride, const uint sum_count) {
    const uint tile_j = get_global_id(0) * GEMM_DOT_TN, tile_i = get_global_id(1) * GEMM_DOT_TM;
    if (tile_j >= n || tile_i >= m) return;
    const uint z = get_global_id(2);
    c += c_off + z * c_stride;
    uint arow[GEMM_DOT_TM], brow[GEMM_DOT_TN];
#pragma unroll
    for (uint i = 0; i < GEMM_DOT_TM; i++) arow[i] = min(tile_i + i, m - 1) * lda;
#pragma unroll
    for (uint j = 0; j < GEMM_DOT_TN; j++) brow[j] = min(tile_j + j, n - 1) * ldb;
    VFLOAT acc[GEMM_DOT_TM][GEMM_DOT_TN];
    float tail[GEMM_DOT_TM][GEMM_DOT_TN];
#pragma unroll
    for (uint i = 0; i < GEMM_DOT_TM; i++)
#pragma unroll
        for (uint j = 0; j < GEMM_DOT_TN; j++) {
            acc[i][j] = (VFLOAT)(0.0f);
            tail[i][j] = 0.0f;
        }
    const uint k_vec = k - k % GEMM_VW;
    for (uint s = 0; s < sum_count; s++) {
        __global const float *as = a + a_off + (z * sum_count + s) * a_stride;
        __global const float *bs = b + b_off + (z * sum_count + s) * b_stride;
        for (uint q = 0; q < k_vec; q += GEMM_VW) {
            VFLOAT av[GEMM_DOT_TM], bv[GEMM_DOT_TN];
#pragma unroll
            for (uint i = 0; i < GEMM_DOT_TM; i++) av[i] = VLOAD(0, as + arow[i] + q);
#pragma unroll
            for (uint j = 0; j < GEMM_DOT_TN; j++) bv[j] = VLOAD(0, bs + brow[j] + q);
#pragma unroll
            for (uint i = 0; i < GEMM_DOT_TM; i++)
#pragma unroll
                for (uint j = 0; j < GEMM_DOT_TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
        for (uint q = k_vec; q < k; q++)
#pragma unroll
            for (uint i = 0; i < GEMM_DOT_TM; i++)
#pragma unroll
                for (uint j = 0; j < GEMM_DOT_TN; j++)
                    tail[i][j] = fma(as[arow[i] + q], bs[brow[j] + q], tail[i][j]);
    }
#pragma unroll
    for (uint i = 0; i < GEMM_DOT_TM; i++) {
        if (tile_i + i >= m) break;
#pragma unroll
        for (uint j = 0; j < GEMM_DOT_TN; j++) { // (a guard, not a break: unrollable)
            if (tile_j + j < n) {
                const float r = gemm_lane_sum(acc[i][j]) + tail[i][j];
                __global float *cij = c + (tile_i + i) * ldc + tile_j + j;
                *cij = beta == 0.0f ? r : r + beta * *cij;
            }
        }
    }
}

// dst (k x rows, row-major at dst_off) = the transpose of src's rows x k matrix (row r at
// src[src_off + r * ld], k contiguous floats): B^T for gemm_nn when an A * B^T has a k too short
// for gemm_nt's lanes. Item (tq, tr) moves one GEMM_TRANSPOSE_TILE-square tile: it reads the
// tile's rows and writes its columns as rows of dst, whole runs of contiguous floats both ways
// (one item per element wrote one float per cache line of dst). Edge tiles are cut to the
// matrix. Global (ceil(k / TILE), ceil(rows / TILE)); the host's tile is the same constant
// (src/ops/gemm.c).
#ifndef GEMM_TRANSPOSE_TILE
#define GEMM_TRANSPOSE_TILE 16
#endif
__kernel void gemm_transpose(__global const float *src, const uint src_off, const uint ld,
                             const uint rows, const uint k, __global float *dst,
                             const uint dst_off) {
    const uint q0 = get_global_id(0) * GEMM_TRANSPOSE_TILE;
    const uint r0 = get_global_id(1) * GEMM_TRANSPOSE_TILE;
    if (q0 >= k || r0 >= rows) return;
    __global const float *s = src + src_off + r0 * ld + q0;
    __global float *d = dst + dst_off + q0 * rows + r0;
    float tile[GEMM_TRANSPOSE_TILE][GEMM_TRANSPOSE_TILE]; // [q][r]
    const uint nq = min((uint)GEMM_TRANSPOSE_TILE, k - q0);
    const uint nr = min((uint)GEMM_TRANSPOSE_TILE, rows - r0);
    for (uint r = 0; r < nr; r++)
        for (uint q = 0; q < nq; q++) tile[q][r] = s[r * ld + q];
    for (uint q = 0; q < nq; q++)
        for (uint r = 0; r < nr; r++) d[q * rows + r] = tile[q][r];
}
