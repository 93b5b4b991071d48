// ops/pool.cpp — pooling and resizing: max_pool2d and avg_pool2d (and their gradient ops),
// global_avg_pool2d (a mean over H and W) and bilinear resizing: builders and backward rules.
// Geometry as PyTorch's ceil_mode=False: Ho = (H + 2 pad - k) / stride + 1, pad <= k / 2.
// Node parameters: ip[0] = k, ip[1] = stride, ip[2] = pad, ip[3] = count_include_pad (avg).
#include "ops/ops_internal.h"

namespace nsvq {

// Checks k, stride and pad (PyTorch's rules) and that the output of an H x W input is not empty;
// `what` names the input in messages.
static void pool_out_size(const char* op, const std::string& what, int64_t H, int64_t W, int k, int stride, int pad,
                          int64_t* Ho, int64_t* Wo) {
  if (k < 1 || stride < 1 || pad < 0 || pad > k / 2)
    fail("%s: kernel %d, stride %d, pad %d invalid for %s (need kernel >= 1, stride >= 1, 0 <= pad <= kernel / 2)", op,
         k, stride, pad, what.c_str());
  if (H < 1 || W < 1) fail("%s: %s has an empty image", op, what.c_str());
  const int64_t hp = H + 2 * (int64_t)pad, wp = W + 2 * (int64_t)pad;
  if (hp < k || wp < k)
    fail("%s: kernel %d larger than the padded input %lldx%lld of %s", op, k, (long long)hp, (long long)wp, what.c_str());
  *Ho = (hp - k) / stride + 1;
  *Wo = (wp - k) / stride + 1;
}

static void require_image(const char* op, const Tensor* x) {
  if (x->ndim != 4 || x->dtype != DType::f32) fail("%s: input %s must be f32 [N, C, H, W]", op, x->desc().c_str());
}

static void set_pool_params(Tensor* t, int k, int stride, int pad, bool count_include_pad) {
  t->ip[0] = k;
  t->ip[1] = stride;
  t->ip[2] = pad;
  t->ip[3] = count_include_pad ? 1 : 0;
}

// the forward pooling node of op (max or average) on x
static Tensor* pool_node(Graph& g, int op, const char* name, Tensor* x, int k, int stride, int pad, bool count_include_pad) {
  require_image(name, x);
  int64_t Ho, Wo;
  pool_out_size(name, x->desc(), x->ne[2], x->ne[3], k, stride, pad, &Ho, &Wo);
  Tensor* t = make_node(g, op, DType::f32, {x->ne[0], x->ne[1], Ho, Wo}, {contiguous(g, x)});
  set_pool_params(t, k, stride, pad, count_include_pad);
  return t;
}

Tensor* max_pool2d(Graph& g, Tensor* x, int k, int stride, int pad) {
  return pool_node(g, OP_MAX_POOL2D, "max_pool2d", x, k, stride, pad, false);
}

Tensor* max_pool2d_bwd(Graph& g, Tensor* x, Tensor* gy, int k, int stride, int pad) {
  require_image("max_pool2d_bwd", x);
  int64_t Ho, Wo;
  pool_out_size("max_pool2d_bwd", x->desc(), x->ne[2], x->ne[3], k, stride, pad, &Ho, &Wo);
  const Shape ys{x->ne[0], x->ne[1], Ho, Wo};
  if (gy->dtype != DType::f32 || gy->shape() != ys)
    fail("max_pool2d_bwd: gradient %s must be f32 %s for input %s", gy->desc().c_str(), ys.str().c_str(), x->desc().c_str());
  Tensor* t = make_node(g, OP_MAX_POOL2D_BWD, DType::f32, x->shape(), {contiguous(g, x), contiguous(g, gy)});
  set_pool_params(t, k, stride, pad, false);
  return t;
}

Tensor* avg_pool2d(Graph& g, Tensor* x, int k, int stride, int pad, bool count_include_pad) {
  return pool_node(g, OP_AVG_POOL2D, "avg_pool2d", x, k, stride, pad, count_include_pad);
}

Tensor* avg_pool2d_bwd(Graph& g, Tensor* gy, int64_t H, int64_t W, int k, int stride, int pad, bool count_include_pad) {
  require_image("avg_pool2d_bwd", gy);
  const std::string what = "input [" + std::to_string(gy->ne[0]) + ", " + std::to_string(gy->ne[1]) + ", " +
                           std::to_string(H) + ", " + std::to_string(W) + "]";
  int64_t Ho, Wo;
  pool_out_size("avg_pool2d_bwd", what, H, W, k, stride, pad, &Ho, &Wo);
  if (gy->ne[2] != Ho || gy->ne[3] != Wo)
    fail("avg_pool2d_bwd: gradient %s does not match the output %lldx%lld of %s", gy->desc().c_str(), (long long)Ho,
         (long long)Wo, what.c_str());
  Tensor* t = make_node(g, OP_AVG_POOL2D_BWD, DType::f32, {gy->ne[0], gy->ne[1], H, W}, {contiguous(g, gy)});
  set_pool_params(t, k, stride, pad, count_include_pad);
  return t;
}

Tensor* global_avg_pool2d(Graph& g, Tensor* x, bool keepdim) {
  require_image("global_avg_pool2d", x);
  return mean(g, x, {2, 3}, keepdim);
}

Tensor* resize_bilinear(Graph& g, Tensor* x, int64_t Ho, int64_t Wo) {
  require_image("resize_bilinear", x);
  if (Ho < 1 || Wo < 1 || Ho > INT32_MAX || Wo > INT32_MAX)
    fail("resize_bilinear: output size %lldx%lld invalid for %s (must be >= 1)", (long long)Ho, (long long)Wo,
         x->desc().c_str());
  if (x->ne[2] < 1 || x->ne[3] < 1) fail("resize_bilinear: input %s is empty", x->desc().c_str());
  return make_node(g, OP_RESIZE_BILINEAR, DType::f32, {x->ne[0], x->ne[1], Ho, Wo}, {contiguous(g, x)});
}

// ---------------------------------------------------------------- backward rules

static void max_pool2d_grad(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  g.accumulate_grad(x, max_pool2d_bwd(g, x, gy, y->ip[0], y->ip[1], y->ip[2]));
}
static void max_pool2d_bwd_grad(Graph& g, Tensor* y, Tensor* gy) {
  fail("max_pool2d_bwd: no gradient (double backward of max_pool2d is not supported; %s)", y->desc().c_str());
}
static void avg_pool2d_grad(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  g.accumulate_grad(x, avg_pool2d_bwd(g, gy, x->ne[2], x->ne[3], y->ip[0], y->ip[1], y->ip[2], y->ip[3] != 0));
}
// avg_pool2d_bwd is linear in its input: its adjoint is the forward pooling
static void avg_pool2d_bwd_grad(Graph& g, Tensor* y, Tensor* gy) {
  g.accumulate_grad(y->src[0], avg_pool2d(g, gy, y->ip[0], y->ip[1], y->ip[2], y->ip[3] != 0));
}
static void resize_bilinear_grad(Graph& g, Tensor* y, Tensor* gy) {
  fail("resize_bilinear: no gradient (forward only)");
}

void register_pool_ops() {
  OpDef d;
  d.name = "max_pool2d"; d.backward = max_pool2d_grad; op_register(OP_MAX_POOL2D, d);
  d.name = "max_pool2d_bwd"; d.backward = max_pool2d_bwd_grad; op_register(OP_MAX_POOL2D_BWD, d);
  d.name = "avg_pool2d"; d.backward = avg_pool2d_grad; op_register(OP_AVG_POOL2D, d);
  d.name = "avg_pool2d_bwd"; d.backward = avg_pool2d_bwd_grad; op_register(OP_AVG_POOL2D_BWD, d);
  d.name = "resize_bilinear"; d.backward = resize_bilinear_grad; op_register(OP_RESIZE_BILINEAR, d);
}

}  // namespace nsvq
