// ops/norm.cpp — group norm (optionally fused with SiLU), layer norm and batch norm: builders and
// backward rules. All three share one kernel family that normalises "groups" of elements:
//   group k holds R segments of Lseg contiguous elements, segment r starting at k*Lseg + r*Sseg;
//   element l of a segment belongs to channel (k % G) * Cg + l / S (S = positions per channel).
// group norm: K = N*G groups, R = 1, Lseg = Cg*S. layer norm: K = rows, R = 1, Lseg = D, S = 1.
// batch norm: K = C groups (one per channel), R = N segments of S elements, Sseg = C*S.
#include "ops/ops_internal.h"

namespace nsvq {

namespace {
struct NormDesc {
  int64_t K, R, Lseg, Sseg, G, Cg, S, C;
};

void put_desc(Tensor* t, const NormDesc& d) {
  int64_t v[8] = {d.K, d.R, d.Lseg, d.Sseg, d.G, d.Cg, d.S, d.C};
  for (int i = 0; i < 8; i++) t->ip[i] = (int32_t)v[i];
}

// gamma/beta default to constants 1 / 0 so kernels always see an affine transform
Tensor* affine_or(Graph& g, Tensor* p, int64_t C, float v, const char* op, const char* what) {
  if (!p) return g.constant({C}, v);
  require_f32(op, p);
  if (p->ndim != 1 || p->ne[0] != C) fail("%s: %s %s must be [%lld]", op, what, p->shape().str().c_str(), (long long)C);
  return contiguous(g, p);
}

Tensor* norm_node(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, const NormDesc& d, float eps, bool silu) {
  Tensor* t = make_node(g, OP_NORM, DType::f32, x->shape(), {x, gamma, beta});
  put_desc(t, d);
  t->ip[8] = silu;
  t->fp[0] = eps;
  return t;
}
}  // namespace

Tensor* group_norm(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, int groups, float eps, bool fuse_silu) {
  require_f32("group_norm", x);
  if (x->ndim < 2) fail("group_norm: input %s needs [N, C, ...]", x->shape().str().c_str());
  int64_t N = x->ne[0], C = x->ne[1], S = x->numel() / std::max<int64_t>(N * C, 1);
  if (groups < 1 || C % groups) fail("group_norm: %lld channels cannot be split into %d groups", (long long)C, groups);
  int64_t Cg = C / groups;
  NormDesc d{N * groups, 1, Cg * S, 0, groups, Cg, S, C};
  return norm_node(g, contiguous(g, x), affine_or(g, gamma, C, 1.0f, "group_norm", "gamma"),
                   affine_or(g, beta, C, 0.0f, "group_norm", "beta"), d, eps, fuse_silu);
}

Tensor* layer_norm(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, float eps) {
  require_f32("layer_norm", x);
  if (x->ndim < 1) fail("layer_norm: input must have at least one dim");
  int64_t D = x->ne[x->ndim - 1], rows = D ? x->numel() / D : 0;
  NormDesc d{rows, 1, D, 0, 1, D, 1, D};
  return norm_node(g, contiguous(g, x), affine_or(g, gamma, D, 1.0f, "layer_norm", "gamma"),
                   affine_or(g, beta, D, 0.0f, "layer_norm", "beta"), d, eps, false);
}

Tensor* batch_norm(Graph& g, Tensor* x, Tensor* gamma, Tensor* beta, Tensor* rm, Tensor* rv, bool training,
                   float momentum, float eps) {
  require_f32("batch_norm", x);
  if (x->ndim < 2) fail("batch_norm: input %s needs [N, C, ...]", x->shape().str().c_str());
  int64_t N = x->ne[0], C = x->ne[1], S = x->numel() / std::max<int64_t>(N * C, 1);
  Tensor* ga = affine_or(g, gamma, C, 1.0f, "batch_norm", "gamma");
  Tensor* be = affine_or(g, beta, C, 0.0f, "batch_norm", "beta");
  for (Tensor* r : {rm, rv})
    if (!r || r->ndim != 1 || r->ne[0] != C || r->dtype != DType::f32 || !r->is_contiguous())
      fail("batch_norm: running statistics must be contiguous f32 [%lld]", (long long)C);
  if (!training) {  // y = (x - rm) * gamma / sqrt(rv + eps) + beta, per channel
    Shape cs = x->shape();
    for (int dd = 0; dd < cs.ndim; dd++) cs.ne[dd] = dd == 1 ? C : 1;
    Tensor* a = mul(g, ga, rsqrt(g, unary(g, rv, UN_AFFINE, 1.0f, eps)));
    Tensor* b = sub(g, be, mul(g, rm, a));
    return add(g, mul(g, x, reshape(g, a, cs)), reshape(g, b, cs));
  }
  if (N * S < 2) fail("batch_norm: training needs more than one value per channel, got %s", x->shape().str().c_str());
  x = contiguous(g, x);
  NormDesc d{C, N, S, C * S, C, 1, S, C};
  Tensor* y = norm_node(g, x, ga, be, d, eps, false);
  Tensor* up = make_node(g, OP_NORM_RUNNING_UPDATE, DType::f32, rm->shape(), {x, rm, rv});
  put_desc(up, d);
  up->fp[0] = momentum;
  up->view_src = rm;
  up->flags |= TF_VIEW | TF_SIDE_EFFECT | TF_NO_GRAD;
  return y;
}

static void norm_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor *x = y->src[0], *ga = y->src[1], *be = y->src[2];
  std::vector<Tensor*> srcs = {x, ga, be, contiguous(g, gy)};
  if (g.on_path(x)) {
    Tensor* dx = make_node(g, OP_NORM_BWD, DType::f32, x->shape(), srcs);
    for (int i = 0; i < 9; i++) dx->ip[i] = y->ip[i];
    dx->fp[0] = y->fp[0];
    dx->flags |= TF_NO_GRAD;
    g.accumulate_grad(x, dx);
  }
  if (g.on_path(ga) || g.on_path(be)) {
    int64_t C = y->ip[7];
    Tensor* da = make_node(g, OP_NORM_BWD_AFFINE, DType::f32, {2, C}, srcs);
    for (int i = 0; i < 9; i++) da->ip[i] = y->ip[i];
    da->fp[0] = y->fp[0];
    da->flags |= TF_NO_GRAD;
    if (g.on_path(ga)) g.accumulate_grad(ga, reshape(g, slice(g, da, 0, 0, 1), {C}));
    if (g.on_path(be)) g.accumulate_grad(be, reshape(g, slice(g, da, 0, 1, 2), {C}));
  }
}

void register_norm_ops() {
  OpDef d;
  d.name = "norm"; d.backward = norm_bwd; op_register(OP_NORM, d);
  OpDef n;
  n.name = "norm_bwd"; op_register(OP_NORM_BWD, n);
  n.name = "norm_bwd_affine"; op_register(OP_NORM_BWD_AFFINE, n);
  n.name = "norm_running_update"; op_register(OP_NORM_RUNNING_UPDATE, n);
}

}  // namespace nsvq
