// ops/vq.cpp — builders and backward rules of the vector-quantisation op family (ops/vq.h), the
// composed helpers (l2 normalisation, straight-through estimators) and the family's registration.
// Kernels: ops/cpu/vq.cpp (blockwise, our SGEMM on tiles) and ops/cuda/vq.cu.
#include "ops/vq.h"
#include <cmath>
#include <climits>
#include "ops/ops_internal.h"

namespace nsvq {

namespace {

void require_rows(const char* op, const Tensor* t, const char* what) {
  if (t->dtype != DType::f32 || t->ndim != 2)
    fail("%s: %s must be f32 [rows, cols], got %s", op, what, t->desc().c_str());
}

void require_scalar(const char* op, const Tensor* t, const char* what, DType dt = DType::f32) {
  if (!t || t->dtype != dt || t->numel() != 1) fail("%s: %s must be a %s scalar", op, what, dtype_name(dt));
}

void require_ctl(const char* op, const Tensor* ctl) {
  if (!ctl || ctl->dtype != DType::i32 || ctl->numel() != VQ_CTL_COUNT)
    fail("%s: control input must be i32 [%d]", op, (int)VQ_CTL_COUNT);
}

// z [N, D] and E [K, D] with matching D; K small enough for float-coded indices
void require_pair(const char* op, const Tensor* z, const Tensor* E) {
  require_rows(op, z, "latents");
  require_rows(op, E, "codebook");
  if (z->ne[1] != E->ne[1])
    fail("%s: latents %s and codebook %s differ in dimension", op, z->shape().str().c_str(), E->shape().str().c_str());
  if (E->ne[0] < 1) fail("%s: codebook %s has no codes", op, E->shape().str().c_str());
  if (E->ne[0] > (1 << 24)) fail("%s: %lld codes is more than 2^24", op, (long long)E->ne[0]);
  if (z->ne[0] > INT32_MAX) fail("%s: %lld rows is too many", op, (long long)z->ne[0]);
}

void require_search(const char* op, const Tensor* s, const Tensor* z) {
  if (s->dtype != DType::f32 || s->ndim != 2 || s->ne[1] != 3 || s->ne[0] != z->ne[0])
    fail("%s: search %s does not match latents %s (need f32 [N, 3])", op, s->desc().c_str(), z->shape().str().c_str());
}

// A node that writes `target` (a Store tensor or an earlier node) in place: it owns no storage, is
// always executed, and later readers use it instead of target so that they run after it.
Tensor* inplace_node(Graph& g, int op, Tensor* target, const std::vector<Tensor*>& srcs) {
  if (!target->is_contiguous()) fail("%s: %s must be contiguous", op_name(op), target->desc().c_str());
  Tensor* t = make_node(g, op, target->dtype, target->shape(), srcs);
  t->view_src = target;
  t->flags |= TF_VIEW | TF_SIDE_EFFECT | TF_NO_GRAD;
  t->name = std::string(op_name(op)) + "(" + target->name + ")";
  return t;
}

}  // namespace

// ---------------------------------------------------------------- search

// z [N, D], E [K, D], tau [1] | nullptr -> [N, 3]
Tensor* vq_nearest(Graph& g, Tensor* z, Tensor* E, Tensor* tau) {
  require_pair("vq_nearest", z, E);
  std::vector<Tensor*> srcs = {contiguous(g, z), contiguous(g, E)};
  if (tau) {
    require_scalar("vq_nearest", tau, "tau");
    srcs.push_back(contiguous(g, tau));
  }
  Tensor* t = make_node(g, OP_VQ_NEAREST, DType::f32, {z->ne[0], 3}, srcs);
  t->flags |= TF_NO_GRAD;
  return t;
}

// search [N, 3] -> i32 [N]
Tensor* vq_indices(Graph& g, Tensor* search) {
  if (search->dtype != DType::f32 || search->ndim != 2 || search->ne[1] != 3)
    fail("vq_indices: search must be f32 [N, 3], got %s", search->desc().c_str());
  Tensor* t = make_node(g, OP_VQ_INDICES, DType::i32, {search->ne[0]}, {contiguous(g, search)});
  t->flags |= TF_NO_GRAD;
  return t;
}

// search [N, 3] -> [N] (view of column 0)
Tensor* vq_min_dist(Graph& g, Tensor* search) {
  if (search->dtype != DType::f32 || search->ndim != 2 || search->ne[1] != 3)
    fail("vq_min_dist: search must be f32 [N, 3], got %s", search->desc().c_str());
  return reshape(g, slice(g, search, 1, 0, 1), {search->ne[0]});
}

// in place on search [N, 3]
Tensor* vq_lse_refresh(Graph& g, Tensor* search, Tensor* z, Tensor* E, Tensor* tau, Tensor* ctl) {
  require_pair("vq_lse_refresh", z, E);
  require_search("vq_lse_refresh", search, z);
  require_scalar("vq_lse_refresh", tau, "tau");
  require_ctl("vq_lse_refresh", ctl);
  return inplace_node(g, OP_VQ_LSE_REFRESH, search, {search, contiguous(g, z), contiguous(g, E), contiguous(g, tau), ctl});
}

// ---------------------------------------------------------------- dense loss

// z [N, D], Ew [K, D], search [N, 3], tau [1], X [N, Dx] -> [K, Dx + 2]
Tensor* vq_dense_stats(Graph& g, Tensor* z, Tensor* Ew, Tensor* search, Tensor* tau, Tensor* X, float lambda,
                       float winner_weight) {
  require_pair("vq_dense_stats", z, Ew);
  require_search("vq_dense_stats", search, z);
  require_scalar("vq_dense_stats", tau, "tau");
  require_rows("vq_dense_stats", X, "weighted rows X");
  if (X->ne[0] != z->ne[0])
    fail("vq_dense_stats: X %s and latents %s differ in rows", X->shape().str().c_str(), z->shape().str().c_str());
  if (!(lambda >= 0.0f)) fail("vq_dense_stats: lambda %g must be >= 0", lambda);
  Tensor* t = make_node(g, OP_VQ_DENSE_STATS, DType::f32, {Ew->ne[0], X->ne[1] + 2},
                        {contiguous(g, z), contiguous(g, Ew), contiguous(g, search), contiguous(g, tau), contiguous(g, X)});
  t->fp[0] = lambda;
  t->fp[1] = winner_weight;
  t->flags |= TF_NO_GRAD;
  return t;
}

// stats [K, D + 2], E [K, D] -> scalar
Tensor* vq_dense_loss(Graph& g, Tensor* stats, Tensor* E, int64_t n_rows) {
  require_rows("vq_dense_loss", E, "codebook");
  if (stats->dtype != DType::f32 || stats->ndim != 2 || stats->ne[0] != E->ne[0] || stats->ne[1] != E->ne[1] + 2)
    fail("vq_dense_loss: stats %s do not match codebook %s (need [K, D + 2])", stats->desc().c_str(),
         E->shape().str().c_str());
  if (n_rows < 1 || n_rows > INT32_MAX) fail("vq_dense_loss: bad row count %lld", (long long)n_rows);
  Tensor* t = make_node(g, OP_VQ_DENSE_LOSS, DType::f32, Shape{}, {contiguous(g, stats), contiguous(g, E)});
  t->ip[0] = (int32_t)n_rows;
  return t;
}

static void vq_dense_loss_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor *stats = y->src[0], *E = y->src[1];
  Tensor* ge = make_node(g, OP_VQ_DENSE_LOSS_BWD, DType::f32, E->shape(), {stats, E, contiguous(g, gy)});
  ge->ip[0] = y->ip[0];
  ge->flags |= TF_NO_GRAD;
  g.accumulate_grad(E, ge);
}

// z [N, D], Ew [K, D], search [N, 3], tau [1], E [K, D] -> [N, D]
Tensor* vq_soft_mix(Graph& g, Tensor* z, Tensor* Ew, Tensor* search, Tensor* tau, Tensor* E, float lambda) {
  require_pair("vq_soft_mix", z, Ew);
  require_search("vq_soft_mix", search, z);
  require_scalar("vq_soft_mix", tau, "tau");
  require_rows("vq_soft_mix", E, "mixed codebook");
  if (E->shape() != Ew->shape())
    fail("vq_soft_mix: codebooks %s and %s differ", E->shape().str().c_str(), Ew->shape().str().c_str());
  Tensor* t = make_node(g, OP_VQ_SOFT_MIX, DType::f32, z->shape(),
                        {contiguous(g, z), contiguous(g, Ew), contiguous(g, search), contiguous(g, tau), contiguous(g, E)});
  t->fp[0] = lambda;
  return t;
}

static void vq_soft_mix_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* E = y->src[4];
  if (!g.on_path(E)) return;
  Tensor* st = vq_dense_stats(g, y->src[0], y->src[1], y->src[2], y->src[3], gy, y->fp[0], 0.0f);
  g.accumulate_grad(E, contiguous(g, slice(g, st, 1, 0, E->ne[1])));
}

// ---------------------------------------------------------------- statistics and state

// idx i32 [N] -> i32 [K]
Tensor* vq_histogram(Graph& g, Tensor* idx, int64_t K) {
  if (idx->dtype != DType::i32) fail("vq_histogram: indices %s must be i32", idx->desc().c_str());
  if (K < 1) fail("vq_histogram: %lld codes", (long long)K);
  Tensor* t = make_node(g, OP_VQ_HISTOGRAM, DType::i32, {K}, {contiguous(g, idx)});
  t->flags |= TF_NO_GRAD;
  return t;
}

// hist i32 [K] -> f32 [2]
Tensor* vq_code_stats(Graph& g, Tensor* hist) {
  if (hist->dtype != DType::i32) fail("vq_code_stats: histogram %s must be i32", hist->desc().c_str());
  Tensor* t = make_node(g, OP_VQ_CODE_STATS, DType::f32, {2}, {contiguous(g, hist)});
  t->flags |= TF_NO_GRAD;
  return t;
}

// in place: counts i32 [K] += hist i32 [K]
Tensor* vq_counts_add(Graph& g, Tensor* counts, Tensor* hist) {
  if (counts->dtype != DType::i32 || hist->dtype != DType::i32 || counts->shape() != hist->shape())
    fail("vq_counts_add: counts %s and histogram %s must be i32 of one shape", counts->desc().c_str(), hist->desc().c_str());
  return inplace_node(g, OP_VQ_COUNTS_ADD, counts, {counts, contiguous(g, hist)});
}

// in place: R [M, D], rstate i32 [2], z [N, D], push_idx i32 [n]
Tensor* vq_reservoir_push(Graph& g, Tensor* R, Tensor* rstate, Tensor* z, Tensor* push_idx) {
  require_pair("vq_reservoir_push", z, R);
  if (rstate->dtype != DType::i32 || rstate->numel() != 2) fail("vq_reservoir_push: reservoir state must be i32 [2]");
  if (push_idx->dtype != DType::i32 || push_idx->ndim != 1 || push_idx->ne[0] > R->ne[0])
    fail("vq_reservoir_push: push indices %s must be i32 [n] with n <= %lld", push_idx->desc().c_str(),
         (long long)R->ne[0]);
  return inplace_node(g, OP_VQ_RESERVOIR_PUSH, R, {R, rstate, contiguous(g, z), contiguous(g, push_idx)});
}

// in place on E [K, D]
Tensor* vq_replace(Graph& g, Tensor* E, Tensor* counts, Tensor* R, Tensor* rstate, Tensor* ctl, Tensor* replaced_out,
                   int threshold) {
  require_pair("vq_replace", R, E);
  if (counts->dtype != DType::i32 || counts->numel() != E->ne[0])
    fail("vq_replace: counts %s do not match codebook %s", counts->desc().c_str(), E->shape().str().c_str());
  if (rstate->dtype != DType::i32 || rstate->numel() != 2) fail("vq_replace: reservoir state must be i32 [2]");
  require_ctl("vq_replace", ctl);
  require_scalar("vq_replace", replaced_out, "replaced count", DType::i32);
  if (threshold < 1) fail("vq_replace: threshold %d must be >= 1", threshold);
  Tensor* t = inplace_node(g, OP_VQ_REPLACE, E, {E, counts, R, rstate, ctl, replaced_out});
  t->flags &= ~TF_NO_GRAD;  // the gradient passes to E
  t->ip[0] = threshold;
  return t;
}

static void vq_replace_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], gy); }

// in place on tau_state f32 [1]
Tensor* vq_tau_calibrate(Graph& g, Tensor* tau_state, Tensor* search, Tensor* ctl, float rho) {
  require_scalar("vq_tau_calibrate", tau_state, "tau state");
  if (search->dtype != DType::f32 || search->ndim != 2 || search->ne[1] != 3)
    fail("vq_tau_calibrate: search must be f32 [N, 3], got %s", search->desc().c_str());
  require_ctl("vq_tau_calibrate", ctl);
  if (!(rho > 0.0f)) fail("vq_tau_calibrate: rho %g must be > 0", rho);
  Tensor* t = inplace_node(g, OP_VQ_TAU_CALIBRATE, tau_state, {tau_state, contiguous(g, search), ctl});
  t->fp[0] = rho;
  return t;
}

// in place on E [K, D], n [K], m [K, D]
Tensor* vq_ema_update(Graph& g, Tensor* E, Tensor* n, Tensor* m, Tensor* hist, Tensor* sums, Tensor* z, Tensor* ctl,
                      Tensor* restarts_out, float decay, float eps, float threshold) {
  require_pair("vq_ema_update", z, E);
  int64_t K = E->ne[0];
  if (n->dtype != DType::f32 || n->numel() != K || !n->is_contiguous())
    fail("vq_ema_update: cluster sizes %s must be contiguous f32 [%lld]", n->desc().c_str(), (long long)K);
  if (m->shape() != E->shape() || m->dtype != DType::f32 || !m->is_contiguous())
    fail("vq_ema_update: running sums %s must be f32 %s", m->desc().c_str(), E->shape().str().c_str());
  if (sums->shape() != E->shape())
    fail("vq_ema_update: batch sums %s must be %s", sums->desc().c_str(), E->shape().str().c_str());
  if (hist->dtype != DType::i32 || hist->numel() != K)
    fail("vq_ema_update: histogram %s must be i32 [%lld]", hist->desc().c_str(), (long long)K);
  require_ctl("vq_ema_update", ctl);
  require_scalar("vq_ema_update", restarts_out, "restart count", DType::i32);
  if (!(decay >= 0.0f && decay < 1.0f)) fail("vq_ema_update: decay %g must be in [0, 1)", decay);
  Tensor* t = inplace_node(g, OP_VQ_EMA_UPDATE, E,
                           {E, n, m, contiguous(g, hist), contiguous(g, sums), contiguous(g, z), ctl, restarts_out});
  t->fp[0] = decay;
  t->fp[1] = eps;
  t->fp[2] = threshold;
  return t;
}

// ---------------------------------------------------------------- composed helpers

// x [R, C] -> x / max(|x_r|, 1e-6) per row
Tensor* vq_l2_normalize(Graph& g, Tensor* x) {
  require_rows("vq_l2_normalize", x, "input");
  Tensor* norm = clamp(g, sqrt(g, sum_sq(g, x, {1}, true)), 1e-6f, INFINITY);
  return div(g, x, norm);
}

// zq = z + a q + sg((1 - a) q - z)
Tensor* vq_straight_through(Graph& g, Tensor* z, Tensor* q, float a) {
  if (z->shape() != q->shape())
    fail("vq_straight_through: latents %s and codes %s differ", z->shape().str().c_str(), q->shape().str().c_str());
  if (a == 0.0f) return add(g, z, detach(g, sub(g, q, z)));
  return add(g, add(g, z, scale(g, q, a)), detach(g, sub(g, scale(g, q, 1.0f - a), z)));
}

// ---------------------------------------------------------------- registration

static size_t vq_scratch(const Tensor* node, BackendKind b) {
  if (b == BK_CPU) return vq_detail::cpu_scratch(node);
#ifdef NSVQ_CUDA
  if (b == BK_CUDA) return vq_detail::cuda_scratch(node);
#endif
  return 0;
}

void register_vq_ops() {
  struct Row {
    int id;
    const char* name;
    BackwardFn bwd;
  };
  const Row rows[] = {
      {OP_VQ_NEAREST, "vq_nearest", nullptr},
      {OP_VQ_INDICES, "vq_indices", nullptr},
      {OP_VQ_LSE_REFRESH, "vq_lse_refresh", nullptr},
      {OP_VQ_DENSE_STATS, "vq_dense_stats", nullptr},
      {OP_VQ_DENSE_LOSS, "vq_dense_loss", vq_dense_loss_bwd},
      {OP_VQ_DENSE_LOSS_BWD, "vq_dense_loss_bwd", nullptr},
      {OP_VQ_SOFT_MIX, "vq_soft_mix", vq_soft_mix_bwd},
      {OP_VQ_HISTOGRAM, "vq_histogram", nullptr},
      {OP_VQ_CODE_STATS, "vq_code_stats", nullptr},
      {OP_VQ_COUNTS_ADD, "vq_counts_add", nullptr},
      {OP_VQ_RESERVOIR_PUSH, "vq_reservoir_push", nullptr},
      {OP_VQ_REPLACE, "vq_replace", vq_replace_bwd},
      {OP_VQ_TAU_CALIBRATE, "vq_tau_calibrate", nullptr},
      {OP_VQ_EMA_UPDATE, "vq_ema_update", nullptr},
  };
  for (const Row& r : rows) {
    OpDef d;
    d.name = r.name;
    d.backward = r.bwd;
    d.scratch = vq_scratch;
    op_register(r.id, d);
  }
}

}  // namespace nsvq
