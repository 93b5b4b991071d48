// ops/shape.cpp — views (reshape, permute, slice, expand, detach), contiguous copies, nearest x2
// upsampling (and its 2x2 block-sum gradient), concat and
// pad: builders and backward rules. Views share storage and run no kernel.
#include "ops/ops_internal.h"

namespace nsvq {

Tensor* reshape(Graph& g, Tensor* a, const Shape& s_in) {
  Shape s = s_in;
  int neg = -1;
  int64_t known = 1;
  for (int i = 0; i < s.ndim; i++) {
    if (s.ne[i] == -1) {
      if (neg >= 0) fail("reshape: more than one -1 in %s", s.str().c_str());
      neg = i;
    } else {
      known *= s.ne[i];
    }
  }
  if (neg >= 0 && known > 0 && a->numel() % known == 0) s.ne[neg] = a->numel() / known;
  if (s.numel() != a->numel())
    fail("reshape: cannot reshape %s into %s", a->shape().str().c_str(), s_in.str().c_str());
  if (!a->is_contiguous()) a = contiguous(g, a);
  int64_t st[MAX_DIMS];
  int64_t v = 1;
  for (int i = s.ndim - 1; i >= 0; i--) {
    st[i] = v;
    v *= s.ne[i];
  }
  return make_view(g, OP_RESHAPE, a, s, st, 0);
}

Tensor* permute(Graph& g, Tensor* a, const std::vector<int>& perm) {
  if ((int)perm.size() != a->ndim)
    fail("permute: %zu axes given for %s", perm.size(), a->shape().str().c_str());
  Shape s;
  s.ndim = a->ndim;
  int64_t st[MAX_DIMS];
  int used = 0;
  for (int i = 0; i < a->ndim; i++) {
    int p = norm_axis("permute", perm[i], a->ndim);
    if (used & (1 << p)) fail("permute: axis %d repeated", p);
    used |= 1 << p;
    s.ne[i] = a->ne[p];
    st[i] = a->nb[p];
  }
  Tensor* t = make_view(g, OP_PERMUTE, a, s, st, 0);
  for (int i = 0; i < a->ndim; i++) t->ip[i] = norm_axis("permute", perm[i], a->ndim);
  return t;
}

Tensor* transpose(Graph& g, Tensor* a, int d0, int d1) {
  std::vector<int> p(a->ndim);
  for (int i = 0; i < a->ndim; i++) p[i] = i;
  std::swap(p[norm_axis("transpose", d0, a->ndim)], p[norm_axis("transpose", d1, a->ndim)]);
  return permute(g, a, p);
}

Tensor* slice(Graph& g, Tensor* a, int axis, int64_t start, int64_t end) {
  int ax = norm_axis("slice", axis, a->ndim);
  if (start < 0 || end > a->ne[ax] || start > end)
    fail("slice: [%lld, %lld) out of range for axis %d of %s", (long long)start, (long long)end, ax,
         a->shape().str().c_str());
  Shape s = a->shape();
  s.ne[ax] = end - start;
  Tensor* t = make_view(g, OP_SLICE, a, s, a->nb, start * a->nb[ax]);
  t->ip[0] = ax;
  t->ip[1] = (int32_t)start;
  t->ip[2] = (int32_t)end;
  return t;
}

Tensor* expand(Graph& g, Tensor* a, const Shape& s) {
  if (a->shape() == s) return a;
  if (s.ndim < a->ndim) fail("expand: cannot expand %s to %s", a->shape().str().c_str(), s.str().c_str());
  int64_t st[MAX_DIMS];
  for (int i = 0; i < s.ndim; i++) {
    int ia = a->ndim - s.ndim + i;
    int64_t da = ia >= 0 ? a->ne[ia] : 1;
    if (da != s.ne[i] && da != 1)
      fail("expand: cannot expand %s to %s", a->shape().str().c_str(), s.str().c_str());
    st[i] = (ia < 0 || da == 1) ? 0 : a->nb[ia];
  }
  return make_view(g, OP_EXPAND, a, s, st, 0);
}

Tensor* detach(Graph& g, Tensor* a) {
  Tensor* t = make_view(g, OP_DETACH, a, a->shape(), a->nb, 0);
  t->flags |= TF_NO_GRAD;
  return t;
}

Tensor* contiguous(Graph& g, Tensor* a) {
  if (a->is_contiguous()) return a;  // contiguous views (reshape, outer slice, detach) need no copy
  return make_node(g, OP_CONTIGUOUS, a->dtype, a->shape(), {a});
}

Tensor* concat(Graph& g, const std::vector<Tensor*>& xs, int axis) {
  if (xs.empty()) fail("concat: no inputs");
  if ((int)xs.size() > MAX_SRC) fail("concat: %zu inputs, at most %d", xs.size(), MAX_SRC);
  int ax = norm_axis("concat", axis, xs[0]->ndim);
  Shape s = xs[0]->shape();
  s.ne[ax] = 0;
  for (Tensor* x : xs) {
    if (x->ndim != s.ndim || x->dtype != xs[0]->dtype) fail("concat: %s does not match %s", x->desc().c_str(), xs[0]->desc().c_str());
    for (int d = 0; d < s.ndim; d++)
      if (d != ax && x->ne[d] != xs[0]->ne[d])
        fail("concat: shapes %s and %s differ outside axis %d", x->shape().str().c_str(), xs[0]->shape().str().c_str(), ax);
    s.ne[ax] += x->ne[ax];
  }
  Tensor* t = make_node(g, OP_CONCAT, xs[0]->dtype, s, xs);
  t->ip[0] = ax;
  return t;
}

Tensor* upsample_nearest2x(Graph& g, Tensor* x) {
  if (x->ndim != 4 || x->dtype != DType::f32)
    fail("upsample_nearest2x: input %s must be f32 [N, C, H, W]", x->desc().c_str());
  return make_node(g, OP_UPSAMPLE2X, DType::f32, {x->ne[0], x->ne[1], 2 * x->ne[2], 2 * x->ne[3]}, {contiguous(g, x)});
}

// dx [N, C, H, W] = the sum of each 2x2 block of dy [N, C, 2H, 2W]: (dy[2i][2j] + dy[2i][2j+1]) +
// (dy[2i+1][2j] + dy[2i+1][2j+1]) in that order on every backend
Tensor* upsample_nearest2x_bwd(Graph& g, Tensor* gy) {
  if (gy->ndim != 4 || gy->dtype != DType::f32 || gy->ne[2] % 2 || gy->ne[3] % 2)
    fail("upsample_nearest2x_bwd: gradient %s must be f32 [N, C, 2H, 2W]", gy->desc().c_str());
  return make_node(g, OP_UPSAMPLE2X_BWD, DType::f32, {gy->ne[0], gy->ne[1], gy->ne[2] / 2, gy->ne[3] / 2},
                   {contiguous(g, gy)});
}

Tensor* pad(Graph& g, Tensor* a, const std::vector<int64_t>& before, const std::vector<int64_t>& after, float value) {
  if ((int)before.size() != a->ndim || (int)after.size() != a->ndim)
    fail("pad: %zu/%zu pad sizes for %s", before.size(), after.size(), a->shape().str().c_str());
  Shape s = a->shape();
  for (int d = 0; d < a->ndim; d++) {
    if (before[d] < 0 || after[d] < 0) fail("pad: negative padding");
    s.ne[d] += before[d] + after[d];
  }
  Tensor* t = make_node(g, OP_PAD, a->dtype, s, {a});
  for (int d = 0; d < a->ndim; d++) {
    t->ip[d] = (int32_t)before[d];
    t->ip[MAX_DIMS + d] = (int32_t)after[d];
  }
  t->fp[0] = value;
  return t;
}

// ---------------------------------------------------------------- backward rules

static void reshape_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], reshape(g, gy, y->src[0]->shape())); }
static void contiguous_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], gy); }

static void permute_bwd(Graph& g, Tensor* y, Tensor* gy) {
  std::vector<int> inv(y->ndim);
  for (int i = 0; i < y->ndim; i++) inv[y->ip[i]] = i;
  g.accumulate_grad(y->src[0], permute(g, gy, inv));
}

static void slice_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  std::vector<int64_t> b(x->ndim, 0), a(x->ndim, 0);
  b[y->ip[0]] = y->ip[1];
  a[y->ip[0]] = x->ne[y->ip[0]] - y->ip[2];
  g.accumulate_grad(x, pad(g, gy, b, a));
}

static void expand_bwd(Graph& g, Tensor* y, Tensor* gy) {
  g.accumulate_grad(y->src[0], sum_to(g, gy, y->src[0]->shape()));
}

static void concat_bwd(Graph& g, Tensor* y, Tensor* gy) {
  int ax = y->ip[0];
  int64_t off = 0;
  for (int i = 0; i < y->n_src; i++) {
    int64_t n = y->src[i]->ne[ax];
    g.accumulate_grad(y->src[i], slice(g, gy, ax, off, off + n));
    off += n;
  }
}

static void pad_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  Tensor* r = gy;
  for (int d = 0; d < x->ndim; d++)
    if (y->ip[d] || y->ip[MAX_DIMS + d]) r = slice(g, r, d, y->ip[d], y->ip[d] + x->ne[d]);
  g.accumulate_grad(x, r);
}

static void upsample2x_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], upsample_nearest2x_bwd(g, gy)); }
static void upsample2x_bwd_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], upsample_nearest2x(g, gy)); }

void register_shape_ops() {
  auto view = [](int id, const char* name, BackwardFn bw) {
    OpDef d;
    d.name = name;
    d.backward = bw;
    d.is_view = true;
    op_register(id, d);
  };
  view(OP_RESHAPE, "reshape", reshape_bwd);
  view(OP_PERMUTE, "permute", permute_bwd);
  view(OP_SLICE, "slice", slice_bwd);
  view(OP_EXPAND, "expand", expand_bwd);
  view(OP_DETACH, "detach", nullptr);
  OpDef d;
  d.name = "contiguous"; d.backward = contiguous_bwd; op_register(OP_CONTIGUOUS, d);
  d.name = "concat"; d.backward = concat_bwd; op_register(OP_CONCAT, d);
  d.name = "pad"; d.backward = pad_bwd; op_register(OP_PAD, d);
  d.name = "upsample2x"; d.backward = upsample2x_bwd; op_register(OP_UPSAMPLE2X, d);
  d.name = "upsample2x_bwd"; d.backward = upsample2x_bwd_bwd; op_register(OP_UPSAMPLE2X_BWD, d);
}

}  // namespace nsvq
