// ops/conv.cpp — 2-D convolution (any kernel size, stride, asymmetric zero padding, optional bias):
// builder and backward rule (input gradient, weight gradient, bias gradient as a reduction).
#include "ops/ops_internal.h"

namespace nsvq {

Tensor* conv2d(Graph& g, Tensor* x, Tensor* w, Tensor* bias, int stride, int pt, int pb, int pl, int pr) {
  require_f32("conv2d", x);
  require_f32("conv2d", w);
  if (x->ndim != 4 || w->ndim != 4 || x->ne[1] != w->ne[1])
    fail("conv2d: input %s and weight %s do not match (need [N, C, H, W] and [O, C, kh, kw])",
         x->shape().str().c_str(), w->shape().str().c_str());
  if (stride < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0) fail("conv2d: bad stride %d or padding", stride);
  int64_t H = x->ne[2] + pt + pb, W = x->ne[3] + pl + pr, kh = w->ne[2], kw = w->ne[3];
  if (H < kh || W < kw)
    fail("conv2d: kernel %lldx%lld larger than the padded input %s", (long long)kh, (long long)kw, x->shape().str().c_str());
  int64_t Ho = (H - kh) / stride + 1, Wo = (W - kw) / stride + 1, O = w->ne[0];
  std::vector<Tensor*> srcs = {contiguous(g, x), contiguous(g, w)};
  if (bias) {
    require_f32("conv2d", bias);
    if (bias->ndim != 1 || bias->ne[0] != O) fail("conv2d: bias %s must be [%lld]", bias->shape().str().c_str(), (long long)O);
    srcs.push_back(contiguous(g, bias));
  }
  Tensor* t = make_node(g, OP_CONV2D, DType::f32, {x->ne[0], O, Ho, Wo}, srcs);
  int vals[6] = {stride, stride, pt, pb, pl, pr};
  for (int i = 0; i < 6; i++) t->ip[i] = vals[i];
  return t;
}

static void conv2d_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor *x = y->src[0], *w = y->src[1];
  gy = contiguous(g, gy);
  if (g.on_path(x)) {
    Tensor* dx = make_node(g, OP_CONV2D_BWD_DATA, DType::f32, x->shape(), {gy, w});
    for (int i = 0; i < 6; i++) dx->ip[i] = y->ip[i];
    dx->flags |= TF_NO_GRAD;
    g.accumulate_grad(x, dx);
  }
  if (g.on_path(w)) {
    Tensor* dw = make_node(g, OP_CONV2D_BWD_WEIGHT, DType::f32, w->shape(), {x, gy});
    for (int i = 0; i < 6; i++) dw->ip[i] = y->ip[i];
    dw->flags |= TF_NO_GRAD;
    g.accumulate_grad(w, dw);
  }
  if (y->n_src > 2 && g.on_path(y->src[2])) g.accumulate_grad(y->src[2], sum(g, gy, {0, 2, 3}));
}

void register_conv_ops() {
  OpDef d;
  d.name = "conv2d"; d.backward = conv2d_bwd; op_register(OP_CONV2D, d);
  OpDef n;
  n.name = "conv2d_bwd_data"; op_register(OP_CONV2D_BWD_DATA, n);
  n.name = "conv2d_bwd_weight"; op_register(OP_CONV2D_BWD_WEIGHT, n);
}

}  // namespace nsvq
