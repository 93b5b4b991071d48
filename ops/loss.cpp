// ops/loss.cpp — L1, MSE (mean over all elements) and cross-entropy (mean over rows) losses:
// builders and backward rules; the backward passes are fused ops of their own.
#include "ops/ops_internal.h"

namespace nsvq {

static Tensor* loss_impl(Graph& g, Tensor* pred, Tensor* target, int kind) {
  const char* name = kind == LOSS_L1 ? "loss_l1" : "loss_mse";
  require_f32(name, pred);
  require_f32(name, target);
  if (pred->shape() != target->shape())
    fail("%s: prediction %s and target %s differ", name, pred->shape().str().c_str(), target->shape().str().c_str());
  Tensor* t = make_node(g, OP_LOSS, DType::f32, Shape{}, {contiguous(g, pred), contiguous(g, target)});
  t->ip[0] = kind;
  return t;
}
Tensor* loss_l1(Graph& g, Tensor* p, Tensor* t) { return loss_impl(g, p, t, LOSS_L1); }
Tensor* loss_mse(Graph& g, Tensor* p, Tensor* t) { return loss_impl(g, p, t, LOSS_MSE); }

// logits [N, C], labels i32 [N] -> scalar mean of -log softmax(logits)[label]
Tensor* cross_entropy(Graph& g, Tensor* logits, Tensor* labels) {
  require_f32("cross_entropy", logits);
  if (logits->ndim != 2) fail("cross_entropy: logits must be [N, C], got %s", logits->shape().str().c_str());
  if (labels->dtype != DType::i32 || labels->ndim != 1 || labels->ne[0] != logits->ne[0])
    fail("cross_entropy: labels %s do not match logits %s (need i32 [N])", labels->desc().c_str(), logits->shape().str().c_str());
  return make_node(g, OP_CROSS_ENTROPY, DType::f32, Shape{}, {contiguous(g, logits), contiguous(g, labels)});
}

static void loss_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor *a = y->src[0], *b = y->src[1];
  Tensor* ga = make_node(g, OP_LOSS_BWD, DType::f32, a->shape(), {a, b, gy});
  ga->ip[0] = y->ip[0];
  ga->flags |= TF_NO_GRAD;
  g.accumulate_grad(a, ga);
  if (g.on_path(b)) g.accumulate_grad(b, neg(g, ga));
}

static void cross_entropy_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  Tensor* gx = make_node(g, OP_CROSS_ENTROPY_BWD, DType::f32, x->shape(), {x, y->src[1], gy});
  gx->flags |= TF_NO_GRAD;
  g.accumulate_grad(x, gx);
}

void register_loss_ops() {
  OpDef d;
  d.name = "loss"; d.backward = loss_bwd; op_register(OP_LOSS, d);
  d.name = "cross_entropy"; d.backward = cross_entropy_bwd; op_register(OP_CROSS_ENTROPY, d);
  OpDef n;
  n.name = "loss_bwd"; op_register(OP_LOSS_BWD, n);
  n.name = "cross_entropy_bwd"; op_register(OP_CROSS_ENTROPY_BWD, n);
}

}  // namespace nsvq
