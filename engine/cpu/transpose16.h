// engine/cpu/transpose16.h — an in-register AVX-512 transpose of a 16 x 16 float tile, shared by the
// SGEMM packing (engine/cpu/gemm_avx512.cpp) and the attention forward (ops/cpu/attention_avx512.cpp).
// Callers wrap their use in "-Wmaybe-uninitialized" suppression (GCC bug 105593: the
// _mm512_undefined_ps() inside the shuffle intrinsics).
#pragma once
#include <immintrin.h>

namespace nsvq {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// In-register transpose of 16 rows of 16 floats: on return r[x] holds column x of the input.
// Stage 1 interleaves row pairs, stage 2 finishes 4x4 transposes inside each 128-bit lane, stages 3-4
// move the 128-bit lanes so that lane j of output x comes from input rows 4j..4j+3.
__attribute__((target("avx512f"))) inline void transpose16x16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int j = 0; j < 4; ++j) {
        u[4 * j + 0] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0x44);
        u[4 * j + 1] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0xEE);
        u[4 * j + 2] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0x44);
        u[4 * j + 3] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0xEE);
    }
    // u[4j + c], lane L = input column 4L + c, rows 4j..4j+3.
    for (int c = 0; c < 4; ++c) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}
#pragma GCC diagnostic pop

}  // namespace nsvq
