// ops/reduce.cpp — sum, mean, max, min, sum of squares over any set of axes; argmax/argmin along
// one axis; sum_to (undo broadcasting). Builders bring the reduced axes into one contiguous range
// so every kernel sees x as [A, L, B] and reduces L: y[a, b] = R_l x[a, l, b].
#include <algorithm>
#include "ops/ops_internal.h"

namespace nsvq {

static const char* REDUCE_NAMES[RED_COUNT] = {"sum", "mean", "max", "min", "sum_sq"};
const char* reduce_kind_name(int k) { return k >= 0 && k < RED_COUNT ? REDUCE_NAMES[k] : "?"; }

// Brings axes (a sorted set) into one contiguous range of a contiguous tensor; returns the range.
static Tensor* gather_axes(Graph& g, Tensor* a, std::vector<int>& axes, int& lo, int& hi) {
  bool consecutive = true;
  for (size_t i = 1; i < axes.size(); i++)
    if (axes[i] != axes[i - 1] + 1) consecutive = false;
  if (!consecutive) {
    std::vector<int> perm;
    for (int d = 0; d < a->ndim; d++)
      if (!std::binary_search(axes.begin(), axes.end(), d)) perm.push_back(d);
    for (int d : axes) perm.push_back(d);
    a = permute(g, a, perm);
    int nr = (int)axes.size();
    for (int i = 0; i < nr; i++) axes[i] = a->ndim - nr + i;
  }
  a = contiguous(g, a);
  lo = axes.front();
  hi = axes.back() + 1;
  return a;
}

static void set_alb(Tensor* t, const Tensor* x, int lo, int hi) {
  int64_t A = 1, L = 1, B = 1;
  for (int d = 0; d < x->ndim; d++) (d < lo ? A : d < hi ? L : B) *= x->ne[d];
  t->ip[1] = (int32_t)A;
  t->ip[2] = (int32_t)L;
  t->ip[3] = (int32_t)B;
  t->ip[4] = lo;
  t->ip[5] = hi;
}

// y = reduce over `axes` of a; keepdim keeps them as size 1
Tensor* reduce(Graph& g, Tensor* a, int kind, const std::vector<int>& axes_in, bool keepdim) {
  if (kind < 0 || kind >= RED_COUNT) fail("reduce: unknown kind %d", kind);
  const char* name = reduce_kind_name(kind);
  require_f32(name, a);
  std::vector<int> axes;
  if (axes_in.empty())
    for (int d = 0; d < a->ndim; d++) axes.push_back(d);
  for (int ax : axes_in) axes.push_back(norm_axis(name, ax, a->ndim));
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) fail("%s: repeated axis", name);
  Shape out;  // in a's axis order
  for (int d = 0; d < a->ndim; d++) {
    bool red = std::binary_search(axes.begin(), axes.end(), d);
    if (!red) out.ne[out.ndim++] = a->ne[d];
    else if (keepdim) out.ne[out.ndim++] = 1;
  }
  if (axes.empty()) return a;  // a scalar reduced over nothing
  std::vector<int> ax2 = axes;
  int lo, hi;
  Tensor* x = gather_axes(g, a, ax2, lo, hi);
  if ((kind == RED_MAX || kind == RED_MIN) && x->numel() == 0) fail("%s: empty input %s", name, a->desc().c_str());
  Tensor* t = make_node(g, OP_REDUCE, DType::f32, out, {x});
  t->ip[0] = kind;
  set_alb(t, x, lo, hi);
  return t;
}

static Tensor* arg_reduce(Graph& g, Tensor* a, int axis, int is_min) {
  const char* name = is_min ? "argmin" : "argmax";
  require_f32(name, a);
  int ax = norm_axis(name, axis, a->ndim);
  if (a->ne[ax] == 0) fail("%s: empty axis in %s", name, a->desc().c_str());
  Tensor* x = contiguous(g, a);
  Shape out;
  for (int d = 0; d < a->ndim; d++)
    if (d != ax) out.ne[out.ndim++] = a->ne[d];
  Tensor* t = make_node(g, OP_ARG_REDUCE, DType::i32, out, {x});
  t->ip[0] = is_min;
  set_alb(t, x, ax, ax + 1);
  t->flags |= TF_NO_GRAD;
  return t;
}
Tensor* argmax(Graph& g, Tensor* a, int axis) { return arg_reduce(g, a, axis, 0); }
Tensor* argmin(Graph& g, Tensor* a, int axis) { return arg_reduce(g, a, axis, 1); }

Tensor* sum_to(Graph& g, Tensor* x, const Shape& target) {
  if (x->shape() == target) return x;
  if (target.ndim > x->ndim) fail("sum_to: cannot reduce %s to %s", x->shape().str().c_str(), target.str().c_str());
  std::vector<int> axes;
  int lead = x->ndim - target.ndim;
  for (int d = 0; d < x->ndim; d++) {
    if (d < lead) axes.push_back(d);
    else if (target.ne[d - lead] == 1 && x->ne[d] != 1) axes.push_back(d);
    else if (target.ne[d - lead] != x->ne[d])
      fail("sum_to: cannot reduce %s to %s", x->shape().str().c_str(), target.str().c_str());
  }
  Tensor* s = axes.empty() ? x : sum(g, x, axes, true);
  return reshape(g, s, target);
}

static void reduce_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  int lo = y->ip[4], hi = y->ip[5];
  Shape keep = x->shape();
  for (int d = lo; d < hi; d++) keep.ne[d] = 1;
  Tensor* ge = expand(g, reshape(g, gy, keep), x->shape());
  switch (y->ip[0]) {
    case RED_SUM: g.accumulate_grad(x, ge); break;
    case RED_MEAN: g.accumulate_grad(x, scale(g, ge, 1.0f / (float)y->ip[2])); break;
    case RED_SUMSQ: g.accumulate_grad(x, mul(g, scale(g, x, 2.0f), ge)); break;
    default: {  // max / min: split the gradient evenly among the tied extremes
      Tensor* ye = expand(g, reshape(g, y, keep), x->shape());
      Tensor* mask = binary(g, x, ye, BIN_EQ);
      std::vector<int> axes;
      for (int d = lo; d < hi; d++) axes.push_back(d);
      Tensor* cnt = sum(g, mask, axes, true);
      g.accumulate_grad(x, mul(g, ge, div(g, mask, cnt)));
    }
  }
}

void register_reduce_ops() {
  OpDef d;
  d.name = "reduce"; d.backward = reduce_bwd; op_register(OP_REDUCE, d);
  OpDef a;
  a.name = "arg_reduce"; op_register(OP_ARG_REDUCE, a);
}

}  // namespace nsvq
