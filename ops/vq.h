// ops/vq.h — the vector-quantisation op family: blockwise nearest-code search (distances by GEMM
// with a fused running argmin and, for NSVQ, the row log-sum-exp of -d/tau), the NSVQ dense kernel
// loss (statistics pass, loss and closed-form codebook gradient), the VQ_new soft mixture, and the
// in-graph state updates (histograms, window counts, reservoir push, dead-code replacement, tau
// calibration, EMA codebook with restarts). Method: ../shared/method.md §2-§4; docs/quantizers.md.
//
// Shapes: z [N, D] latents (rows), E [K, D] codebook, d_ik = max(0, |z_i|^2 + |e_k|^2 - 2 z_i.e_k).
// No op ever holds an N x K (or N x K x D) array: kernels walk (row block, code tile) pairs.
// "search" is the f32 [N, 3] result of vq_nearest: column 0 = d_i,k*(i) (min distance), column 1 =
// LSE_i = log sum_k exp(-d_ik / tau) (0 without tau), column 2 = k*(i) as a float (exact: K <= 2^24).
//
// Per-step control: `ctl` is an i32 [VQ_CTL_COUNT] graph input the host writes before each step
// (seed, step, flags). Ops that update state in place (side effects) read it on the device, so the
// graph is built once and the same kernels run on CPU and CUDA. Random draws use Philox keyed by
// (seed, stream, step, code), identical on both backends.
#pragma once
#include <cstdint>
#include "engine/rng.h"
#include "ops/ops.h"

namespace nsvq {

enum VqOpId : int {
  OP_VQ_NEAREST = 64,    // search [N, 3] from z, E (+ tau)
  OP_VQ_INDICES,         // i32 [N] from search column 2
  OP_VQ_LSE_REFRESH,     // in place on search: recompute column 1 (gated by VQ_FLAG_REFRESH)
  OP_VQ_DENSE_STATS,     // [K, Dx + 2]: W^T X | S | Q
  OP_VQ_DENSE_LOSS,      // scalar from stats and E
  OP_VQ_DENSE_LOSS_BWD,  // [K, D] codebook gradient
  OP_VQ_SOFT_MIX,        // [N, D] = W E (VQ_new, winner weight 0)
  OP_VQ_HISTOGRAM,       // i32 [K] counts of an index vector
  OP_VQ_CODE_STATS,      // f32 [2] perplexity, used codes of a histogram
  OP_VQ_COUNTS_ADD,      // in place: counts += hist
  OP_VQ_RESERVOIR_PUSH,  // in place: reservoir rows <- z rows; reservoir state (ptr, fill) advanced
  OP_VQ_REPLACE,         // in place on E: dead codes <- reservoir rows (gated by VQ_FLAG_REPLACE)
  OP_VQ_TAU_CALIBRATE,   // in place on tau state: rho * median of search column 0 (gated by VQ_FLAG_CALIBRATE)
  OP_VQ_EMA_UPDATE,      // in place on E, cluster sizes, sums: EMA step + dead-code restart
  OP_VQ_END
};

// Layout of the i32 control input.
enum VqCtl : int { VQ_CTL_SEED_LO, VQ_CTL_SEED_HI, VQ_CTL_STEP_LO, VQ_CTL_STEP_HI, VQ_CTL_FLAGS, VQ_CTL_COUNT };
enum VqFlag : int { VQ_FLAG_REPLACE = 1, VQ_FLAG_CALIBRATE = 2, VQ_FLAG_REFRESH = 4 };
// Philox streams of the random draws (so call sites never share numbers).
enum VqStream : uint32_t { VQ_STREAM_REPLACE = 0x5651, VQ_STREAM_REPLACE_INIT = 0x5652, VQ_STREAM_EMA = 0x5653 };
// Exponents below this are weight 0 in the dense loss (e^-60 ~ 1e-26: never a subnormal, never
// a visible weight; method.md §3.1.2).
constexpr float VQ_EXP_FLOOR = -60.0f;
// Every kernel uses max(tau, VQ_TAU_MIN) (the schedule's floor, method.md §3.1.1).
constexpr float VQ_TAU_MIN = 1e-8f;

// Seed and step of a control vector.
NSVQ_HD uint64_t vq_ctl_seed(const int32_t* ctl) {
  return (uint64_t)(uint32_t)ctl[VQ_CTL_SEED_LO] | ((uint64_t)(uint32_t)ctl[VQ_CTL_SEED_HI] << 32);
}
NSVQ_HD uint64_t vq_ctl_step(const int32_t* ctl) {
  return (uint64_t)(uint32_t)ctl[VQ_CTL_STEP_LO] | ((uint64_t)(uint32_t)ctl[VQ_CTL_STEP_HI] << 32);
}
// Uniform integer in [0, n) for item k of (seed, stream, step): (word * n) >> 32, bias < n / 2^32.
// Integer-only, so CPU and CUDA draw the same numbers.
NSVQ_HD uint32_t vq_draw_below(uint64_t seed, uint32_t stream, uint64_t step, uint64_t k, uint32_t n) {
  Philox4 r = philox4x32((uint32_t)k, (uint32_t)(k >> 32) ^ (stream << 16), (uint32_t)step, (uint32_t)(step >> 32),
                         (uint32_t)seed, (uint32_t)(seed >> 32));
  return (uint32_t)(((uint64_t)r.v[0] * n) >> 32);
}

// ---------------------------------------------------------------- search
// z [N, D], E [K, D], tau f32 [1] or nullptr -> search f32 [N, 3] (min distance, LSE, index)
Tensor* vq_nearest(Graph& g, Tensor* z, Tensor* E, Tensor* tau = nullptr);
// search [N, 3] -> i32 [N] nearest-code indices (ties: lowest index)
Tensor* vq_indices(Graph& g, Tensor* search);
// search [N, 3] -> [N] view of the min distances d_i,k*(i)
Tensor* vq_min_dist(Graph& g, Tensor* search);
// In place: when ctl has VQ_FLAG_REFRESH, column 1 of search <- LSE of -d/tau against E (after a
// replacement or a tau change in the same step); columns 0 and 2 are kept. Returns the view to use.
Tensor* vq_lse_refresh(Graph& g, Tensor* search, Tensor* z, Tensor* E, Tensor* tau, Tensor* ctl);

// ---------------------------------------------------------------- NSVQ dense kernel loss (§3.1)
// Weights (detached): w_ik = winner for k = k*(i), else min(1, lambda K exp(-d_ik/tau - LSE_i))
// with d from Ew. z [N, D], Ew [K, D], search [N, 3], tau [1], X [N, Dx]
//   -> stats [K, Dx + 2]: columns 0..Dx-1 = sum_i w_ik X_i, column Dx = S_k = sum_i w_ik,
//      column Dx+1 = Q_k = sum_i w_ik |z_i|^2. Not differentiable.
Tensor* vq_dense_stats(Graph& g, Tensor* z, Tensor* Ew, Tensor* search, Tensor* tau, Tensor* X, float lambda,
                       float winner_weight);
// stats [K, D + 2] (with X = z), E [K, D] -> scalar L = 1/(N D) sum_k (Q_k - 2 e_k.M_k + S_k |e_k|^2)
// = 1/(N D) sum_ik w_ik |z_i - e_k|^2 at the frozen weights; dL/dE = 2/(N D) (diag(S) E - M).
Tensor* vq_dense_loss(Graph& g, Tensor* stats, Tensor* E, int64_t n_rows);
// VQ_new (§3.1.3): A = W E with winner weight 0; z, Ew, search, tau as above, E [K, D] -> [N, D].
// Gradient to E: W^T gA (a dense-stats pass with X = gA).
Tensor* vq_soft_mix(Graph& g, Tensor* z, Tensor* Ew, Tensor* search, Tensor* tau, Tensor* E, float lambda);

// ---------------------------------------------------------------- statistics and state
// idx i32 [N] -> i32 [K] counts
Tensor* vq_histogram(Graph& g, Tensor* idx, int64_t K);
// hist i32 [K] -> f32 [2]: perplexity exp(-sum p ln p), number of codes with count > 0
Tensor* vq_code_stats(Graph& g, Tensor* hist);
// In place: counts (i32 [K], Store) += hist. Returns the view of counts that later readers use.
Tensor* vq_counts_add(Graph& g, Tensor* counts, Tensor* hist);
// In place: R [M, D] rows (ptr + j) % M <- z[push_idx[j]] for j < n (push_idx i32 [n], n <= M);
// rstate i32 [2] = (ptr, fill) advances. Returns the view of R.
Tensor* vq_reservoir_push(Graph& g, Tensor* R, Tensor* rstate, Tensor* z, Tensor* push_idx);
// In place on E [K, D] when ctl has VQ_FLAG_REPLACE: every code with counts[k] < threshold gets
// E[k] <- R[u_k], u_k uniform in [0, fill) (Philox; U(-1/K, 1/K) when the reservoir is empty);
// then all counts are zeroed and replaced_out[0] = number replaced. Returns the view of E.
// Differentiable: the gradient passes to E unchanged.
Tensor* vq_replace(Graph& g, Tensor* E, Tensor* counts, Tensor* R, Tensor* rstate, Tensor* ctl, Tensor* replaced_out,
                   int threshold);
// In place on tau_state f32 [1] when ctl has VQ_FLAG_CALIBRATE: tau_state = max(rho * median_i
// search[i, 0], VQ_TAU_MIN), the median of the rows' distances to their nearest code.
Tensor* vq_tau_calibrate(Graph& g, Tensor* tau_state, Tensor* search, Tensor* ctl, float rho);
// In place (§4.3): with batch counts hist i32 [K] and sums [K, D] (scatter_add_rows of z by index):
//   n <- g n + (1-g) hist; m <- g m + (1-g) sums; e_k = m_k / ((n_k + eps) / (sum n + K eps) sum n);
//   codes with n_k < threshold: e_k <- z[u_k] (Philox), n_k <- threshold, m_k <- threshold e_k.
// restarts_out[0] = number restarted. E [K, D], n [K], m [K, D] f32. Returns the view of E.
Tensor* vq_ema_update(Graph& g, Tensor* E, Tensor* n, Tensor* m, Tensor* hist, Tensor* sums, Tensor* z, Tensor* ctl,
                      Tensor* restarts_out, float decay, float eps, float threshold);

// ---------------------------------------------------------------- composed helpers (ordinary ops)
// x [R, C] -> rows divided by max(|row|, 1e-6) (differentiable)
Tensor* vq_l2_normalize(Graph& g, Tensor* x);
// Straight-through estimator: forward value q (up to rounding), dz = gy, dq = a gy:
// zq = z + a q + sg((1 - a) q - z). a = 0 is the standard STE, a = 2 alpha/(N D) the modified one.
Tensor* vq_straight_through(Graph& g, Tensor* z, Tensor* q, float a);

// Backend internals: temporary memory of a vq node (ops/cpu/vq.cpp, ops/cuda/vq.cu).
namespace vq_detail {
size_t cpu_scratch(const Tensor* node);
#ifdef NSVQ_CUDA
size_t cuda_scratch(const Tensor* node);
#endif
}  // namespace vq_detail

}  // namespace nsvq
