// ops/ops.h — every op the models use: ids, kinds and the graph builders (one-line shape comment
// each). Builders only record nodes; kernels run at Graph::compute(). Shapes are PyTorch order.
// Each family keeps its builder + backward rule in ops/<family>.cpp, its CPU kernels in
// ops/cpu/<family>.cpp and its CUDA kernels in ops/cuda/<family>.cu.
#pragma once
#include <vector>
#include "engine/graph.h"

namespace nsvq {

// Registers every op family's rules and kernels in the op table (idempotent, thread-safe).
void ops_init();

enum OpId : int {
  OP_NONE = 0,
  // views (no kernel)
  OP_RESHAPE, OP_PERMUTE, OP_SLICE, OP_EXPAND, OP_DETACH,
  // copies and layout
  OP_CONTIGUOUS, OP_CONCAT, OP_PAD, OP_UPSAMPLE2X, OP_UPSAMPLE2X_BWD,
  // elementwise
  OP_UNARY, OP_BINARY, OP_WHERE,
  // reductions
  OP_REDUCE, OP_ARG_REDUCE,
  // linear algebra and normalisation
  OP_MATMUL, OP_SOFTMAX,
  // indexing
  OP_GET_ROWS, OP_SCATTER_ADD_ROWS,
  // losses
  OP_LOSS, OP_LOSS_BWD, OP_CROSS_ENTROPY, OP_CROSS_ENTROPY_BWD,
  // optimisation and randomness
  OP_ADAMW, OP_RANDOM,
  // normalisation (group, layer, batch)
  OP_NORM, OP_NORM_BWD, OP_NORM_BWD_AFFINE, OP_NORM_RUNNING_UPDATE,
  // attention
  OP_ATTENTION, OP_ATTENTION_BWD_Q, OP_ATTENTION_BWD_KV,
  // convolution
  OP_CONV2D, OP_CONV2D_BWD_DATA, OP_CONV2D_BWD_WEIGHT,
  // pooling and resizing
  OP_MAX_POOL2D, OP_MAX_POOL2D_BWD, OP_AVG_POOL2D, OP_AVG_POOL2D_BWD, OP_RESIZE_BILINEAR,
  // collectives across data-parallel ranks (engine/dist.h)
  OP_ALLREDUCE, OP_ALLGATHER, OP_REDUCE_SCATTER,
  OP_COUNT
};

enum UnaryKind : int {
  UN_NEG, UN_EXP, UN_LOG, UN_SQRT, UN_RSQRT, UN_ABS, UN_SIGN, UN_SQR,
  UN_RELU, UN_LEAKY_RELU,  // fp[0] = negative slope
  UN_SILU, UN_SIGMOID, UN_TANH, UN_GELU,  // gelu: tanh approximation (as PyTorch approximate='tanh')
  UN_POW,      // x ^ fp[0]
  UN_CLAMP,    // min(max(x, fp[0]), fp[1])
  UN_AFFINE,   // fp[0] * x + fp[1]
  UN_RECIP,    // fp[0] / (x + fp[1])
  UN_STEP,     // x > 0 ? 1 : 0 (gradient of relu; not differentiable)
  UN_INSIDE,   // fp[0] <= x <= fp[1] ? 1 : 0 (gradient mask of clamp; not differentiable)
  UN_SILU_GRAD, UN_GELU_GRAD,  // derivatives used by backward rules (not differentiable)
  UN_SOFTPLUS,  // log(1 + exp(x)), computed stably
  UN_COUNT
};
enum BinaryKind : int {
  BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MAX, BIN_MIN,
  BIN_EQ, BIN_GT,  // comparisons give 1.0 / 0.0 and are not differentiable
  BIN_COUNT
};
enum ReduceKind : int { RED_SUM, RED_MEAN, RED_MAX, RED_MIN, RED_SUMSQ, RED_COUNT };
enum LossKind : int { LOSS_L1, LOSS_MSE };
enum RandomKind : int { RAND_UNIFORM, RAND_NORMAL };

const char* unary_kind_name(int k);
const char* binary_kind_name(int k);
const char* reduce_kind_name(int k);

// ---------------------------------------------------------------- views (share storage)
Tensor* reshape(Graph& g, Tensor* a, const Shape& s);                    // same numel; -1 allowed once
Tensor* permute(Graph& g, Tensor* a, const std::vector<int>& perm);      // out.ne[i] = a.ne[perm[i]]
Tensor* transpose(Graph& g, Tensor* a, int d0, int d1);                  // swap two dims
Tensor* slice(Graph& g, Tensor* a, int axis, int64_t start, int64_t end);  // [start, end) along axis
Tensor* expand(Graph& g, Tensor* a, const Shape& s);                     // broadcast size-1 dims (stride 0)
Tensor* detach(Graph& g, Tensor* a);                                     // same values, no gradient
// ---------------------------------------------------------------- layout
Tensor* contiguous(Graph& g, Tensor* a);        // a itself when already contiguous
Tensor* concat(Graph& g, const std::vector<Tensor*>& xs, int axis);  // sizes add along axis
Tensor* pad(Graph& g, Tensor* a, const std::vector<int64_t>& before, const std::vector<int64_t>& after,
            float value = 0.0f);               // ne[d] + before[d] + after[d] per dim
// ---------------------------------------------------------------- elementwise
Tensor* unary(Graph& g, Tensor* a, int kind, float p0 = 0.0f, float p1 = 0.0f);  // same shape
Tensor* binary(Graph& g, Tensor* a, Tensor* b, int kind);  // broadcast(a, b)
Tensor* where(Graph& g, Tensor* cond, Tensor* a, Tensor* b);  // cond != 0 ? a : b, broadcast all
inline Tensor* neg(Graph& g, Tensor* a) { return unary(g, a, UN_NEG); }
inline Tensor* exp(Graph& g, Tensor* a) { return unary(g, a, UN_EXP); }
inline Tensor* log(Graph& g, Tensor* a) { return unary(g, a, UN_LOG); }
inline Tensor* sqrt(Graph& g, Tensor* a) { return unary(g, a, UN_SQRT); }
inline Tensor* rsqrt(Graph& g, Tensor* a) { return unary(g, a, UN_RSQRT); }
inline Tensor* abs(Graph& g, Tensor* a) { return unary(g, a, UN_ABS); }
inline Tensor* sqr(Graph& g, Tensor* a) { return unary(g, a, UN_SQR); }
inline Tensor* relu(Graph& g, Tensor* a) { return unary(g, a, UN_RELU); }
inline Tensor* leaky_relu(Graph& g, Tensor* a, float slope) { return unary(g, a, UN_LEAKY_RELU, slope); }
inline Tensor* silu(Graph& g, Tensor* a) { return unary(g, a, UN_SILU); }
inline Tensor* sigmoid(Graph& g, Tensor* a) { return unary(g, a, UN_SIGMOID); }
inline Tensor* tanh(Graph& g, Tensor* a) { return unary(g, a, UN_TANH); }
inline Tensor* gelu(Graph& g, Tensor* a) { return unary(g, a, UN_GELU); }
inline Tensor* softplus(Graph& g, Tensor* a) { return unary(g, a, UN_SOFTPLUS); }
inline Tensor* pow(Graph& g, Tensor* a, float p) { return unary(g, a, UN_POW, p); }
inline Tensor* clamp(Graph& g, Tensor* a, float lo, float hi) { return unary(g, a, UN_CLAMP, lo, hi); }
inline Tensor* scale(Graph& g, Tensor* a, float s) { return unary(g, a, UN_AFFINE, s, 0.0f); }
inline Tensor* add(Graph& g, Tensor* a, Tensor* b) { return binary(g, a, b, BIN_ADD); }
inline Tensor* sub(Graph& g, Tensor* a, Tensor* b) { return binary(g, a, b, BIN_SUB); }
inline Tensor* mul(Graph& g, Tensor* a, Tensor* b) { return binary(g, a, b, BIN_MUL); }
inline Tensor* div(Graph& g, Tensor* a, Tensor* b) { return binary(g, a, b, BIN_DIV); }
// ---------------------------------------------------------------- reductions
// Reduces the listed axes (empty: all). keepdim keeps them as size 1.
Tensor* reduce(Graph& g, Tensor* a, int kind, const std::vector<int>& axes, bool keepdim = false);
inline Tensor* sum(Graph& g, Tensor* a, const std::vector<int>& axes = {}, bool keepdim = false) { return reduce(g, a, RED_SUM, axes, keepdim); }
inline Tensor* mean(Graph& g, Tensor* a, const std::vector<int>& axes = {}, bool keepdim = false) { return reduce(g, a, RED_MEAN, axes, keepdim); }
inline Tensor* max(Graph& g, Tensor* a, const std::vector<int>& axes = {}, bool keepdim = false) { return reduce(g, a, RED_MAX, axes, keepdim); }
inline Tensor* sum_sq(Graph& g, Tensor* a, const std::vector<int>& axes = {}, bool keepdim = false) { return reduce(g, a, RED_SUMSQ, axes, keepdim); }
// Index (i32) of the max / min along `axis` (ties: lowest index); the axis is removed.
Tensor* argmax(Graph& g, Tensor* a, int axis);
Tensor* argmin(Graph& g, Tensor* a, int axis);
// Gradient of x sum-reduced onto `target` shape (undoes broadcasting).
Tensor* sum_to(Graph& g, Tensor* x, const Shape& target);
// ---------------------------------------------------------------- matmul, softmax
// a [..., M, K] (or [..., K, M] with trans_a), b [..., K, N] (or [..., N, K] with trans_b) -> [..., M, N].
// Batch dims must match, or one operand has none (it is shared by every batch).
Tensor* matmul(Graph& g, Tensor* a, Tensor* b, bool trans_a = false, bool trans_b = false);
Tensor* softmax(Graph& g, Tensor* a);      // along the last dim
Tensor* log_softmax(Graph& g, Tensor* a);  // along the last dim
// ---------------------------------------------------------------- indexing
Tensor* get_rows(Graph& g, Tensor* table, Tensor* idx);  // table [R, C], idx i32 [...] -> [..., C]
Tensor* scatter_add_rows(Graph& g, Tensor* src, Tensor* idx, int64_t rows);  // src [..., C] -> [rows, C]
// ---------------------------------------------------------------- losses (mean over all elements; scalar)
Tensor* loss_l1(Graph& g, Tensor* pred, Tensor* target);
Tensor* loss_mse(Graph& g, Tensor* pred, Tensor* target);
Tensor* cross_entropy(Graph& g, Tensor* logits, Tensor* labels);  // logits [N, C], labels i32 [N]
// ---------------------------------------------------------------- normalisation
// Statistics in f32 with f64 accumulation; gamma/beta may be nullptr (no affine).
// x [N, C, *] -> same; per (n, group) over C/groups channels and all positions; fuse_silu applies
// SiLU to the result (GroupNorm + SiLU in one pass, as every taming ResnetBlock does).
Tensor* group_norm(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, int groups, float eps = 1e-6f, bool fuse_silu = false);
// x [..., D] -> same; over the last dim; gamma, beta [D]
Tensor* layer_norm(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, float eps = 1e-6f);
// x [N, C, *] -> same. training: batch statistics, and running_mean / running_var (persistent [C]
// tensors) updated in place: r = (1 - momentum) r + momentum * stat (unbiased variance), as PyTorch.
// eval: the running statistics.
Tensor* batch_norm(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, Tensor* running_mean, Tensor* running_var,
                   bool training, float momentum = 0.1f, float eps = 1e-5f);
// ---------------------------------------------------------------- attention
// softmax(q k^T * scale) v per (batch, head), tiled with an online softmax: memory does not grow
// with L*S; the backward recomputes the probabilities. q [B, H, L, d], k [B, H, S, d],
// v [B, H, S, dv] -> [B, H, L, dv]. scale <= 0 means 1/sqrt(d).
Tensor* attention(Graph& g, Tensor* q, Tensor* k, Tensor* v, float scale = 0.0f);
// ---------------------------------------------------------------- convolution
// x [N, C, H, W], w [O, C, kh, kw], bias [O] or nullptr -> [N, O, Ho, Wo] with
// Ho = (H + pad_t + pad_b - kh) / stride + 1 (likewise Wo); zero padding may be asymmetric.
Tensor* conv2d(Graph& g, Tensor* x, Tensor* w, Tensor* bias, int stride, int pad_t, int pad_b, int pad_l, int pad_r);
inline Tensor* conv2d(Graph& g, Tensor* x, Tensor* w, Tensor* bias, int stride = 1, int pad = 0) {
  return conv2d(g, x, w, bias, stride, pad, pad, pad, pad);
}
// ---------------------------------------------------------------- pooling and resizing (ops/pool.cpp)
// x [N, C, H, W] -> [N, C, Ho, Wo], Ho = (H + 2 pad - k) / stride + 1 (floor: PyTorch's ceil_mode=False),
// pad <= k / 2. max: padding never wins (it is -inf); the first maximum of the window in row-major
// order wins ties and NaN propagates, as PyTorch; the gradient goes to that element.
Tensor* max_pool2d(Graph& g, Tensor* x, int k, int stride, int pad = 0);
// the mean of each window: divided by k*k (count_include_pad, PyTorch's default) or by the number of
// window elements inside the image (count_include_pad = false: pytorch-fid's Inception blocks)
Tensor* avg_pool2d(Graph& g, Tensor* x, int k, int stride, int pad = 0, bool count_include_pad = true);
// x [N, C, H, W] -> [N, C] ([N, C, 1, 1] with keepdim): the mean over H and W
Tensor* global_avg_pool2d(Graph& g, Tensor* x, bool keepdim = false);
// x [N, C, H, W] -> [N, C, Ho, Wo]: PyTorch's F.interpolate(x, size=(Ho, Wo), mode='bilinear',
// align_corners=False) without antialias. Forward only: asking for its gradient is an error.
Tensor* resize_bilinear(Graph& g, Tensor* x, int64_t Ho, int64_t Wo);
// ---------------------------------------------------------------- collectives (ops/dist.cpp; engine/dist.h)
// Across the ranks of dist(); with one rank they copy. Sums are in rank order, the same bits on every
// rank. Gradients follow the objective sum_r L_r: each rank's loss is its own term.
// xs (f32) -> the same shapes holding scale * sum over ranks; one collective per bucket of at most 8
// tensors / bucket_bytes (gradient all-reduce: scale = 1/R gives the mean)
std::vector<Tensor*> allreduce(Graph& g, const std::vector<Tensor*>& xs, float scale, size_t bucket_bytes = 32u << 20);
// x [n, ...] -> [R n, ...]: every rank's x in rank order (gradient: reduce_scatter_sum)
Tensor* allgather(Graph& g, Tensor* x);
// x [R n, ...] -> [n, ...]: rows [r n, (r + 1) n) summed over ranks, on rank r (gradient: allgather)
Tensor* reduce_scatter_sum(Graph& g, Tensor* x);
// ---------------------------------------------------------------- layers built from the ops above (ops/layers.cpp)
// x [..., in], w [out, in] (PyTorch Linear layout), b [out] or nullptr -> [..., out]
Tensor* linear(Graph& g, Tensor* x, Tensor* w, Tensor* b);
// table [V, D], idx i32 [...] -> [..., D]
inline Tensor* embedding(Graph& g, Tensor* table, Tensor* idx) { return get_rows(g, table, idx); }
// adaLN modulation: x [B, T, D], shift and scale [B, D] -> x * (1 + scale) + shift (broadcast over T)
Tensor* modulate(Graph& g, Tensor* x, Tensor* shift, Tensor* scale);
// nearest-neighbour x2: [N, C, H, W] -> [N, C, 2H, 2W] (one op; its gradient is the next one)
Tensor* upsample_nearest2x(Graph& g, Tensor* x);
// its gradient: [N, C, 2H, 2W] -> [N, C, H, W], the sum of each 2x2 block
Tensor* upsample_nearest2x_bwd(Graph& g, Tensor* gy);
// [N, C*r*r, H, W] -> [N, C, H*r, W*r]; output (c, y*r+i, x*r+j) reads input channel c*r*r + i*r + j
// (PyTorch PixelShuffle order)
Tensor* depth_to_space(Graph& g, Tensor* x, int r);
// the inverse of depth_to_space: [N, C, H*r, W*r] -> [N, C*r*r, H, W]
Tensor* space_to_depth(Graph& g, Tensor* x, int r);
// GAN losses on discriminator logits (any shape): hinge discriminator loss
// 0.5 * (mean relu(1 - real) + mean relu(1 + fake)); hinge generator loss -mean(fake); non-saturating
// generator loss on patch-averaged logits mean_b softplus(-mean_patches(fake_b)) (fake [B, ...]).
Tensor* hinge_d_loss(Graph& g, Tensor* real, Tensor* fake);
Tensor* hinge_g_loss(Graph& g, Tensor* fake);
Tensor* non_saturating_g_loss(Graph& g, Tensor* fake);
// ---------------------------------------------------------------- randomness
// Philox counter-based random numbers, identical on CPU and CUDA. `counter` is an i32 input [4]
// the host sets per step: {seed_lo, seed_hi, step_lo, step_hi}; `stream` separates call sites.
Tensor* random(Graph& g, const Shape& s, int kind, Tensor* counter, int stream);

}  // namespace nsvq
