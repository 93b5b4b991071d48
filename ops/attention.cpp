// ops/attention.cpp — scaled dot-product attention (multi-head by the H dim): builder and backward
// rule. The backward is two fused ops that recompute the softmax: one for dq, one for dk|dv.
#include <cmath>
#include "ops/ops_internal.h"

namespace nsvq {

Tensor* attention(Graph& g, Tensor* q, Tensor* k, Tensor* v, float scale) {
  for (Tensor* t : {q, k, v}) {
    require_f32("attention", t);
    if (t->ndim != 4) fail("attention: inputs must be [B, H, L, d], got %s", t->shape().str().c_str());
  }
  bool ok = q->ne[0] == k->ne[0] && q->ne[1] == k->ne[1] && k->ne[0] == v->ne[0] && k->ne[1] == v->ne[1] &&
            q->ne[3] == k->ne[3] && k->ne[2] == v->ne[2];
  if (!ok)
    fail("attention: q %s, k %s, v %s do not match", q->shape().str().c_str(), k->shape().str().c_str(),
         v->shape().str().c_str());
  if (k->ne[2] < 1) fail("attention: no keys in %s", k->shape().str().c_str());
  Tensor* t = make_node(g, OP_ATTENTION, DType::f32, {q->ne[0], q->ne[1], q->ne[2], v->ne[3]},
                        {contiguous(g, q), contiguous(g, k), contiguous(g, v)});
  t->fp[0] = scale > 0.0f ? scale : 1.0f / std::sqrt((float)q->ne[3]);
  return t;
}

static void attention_bwd(Graph& g, Tensor* o, Tensor* go) {
  Tensor *q = o->src[0], *k = o->src[1], *v = o->src[2];
  std::vector<Tensor*> srcs = {q, k, v, o, contiguous(g, go)};
  if (g.on_path(q)) {
    Tensor* dq = make_node(g, OP_ATTENTION_BWD_Q, DType::f32, q->shape(), srcs);
    dq->fp[0] = o->fp[0];
    dq->flags |= TF_NO_GRAD;
    g.accumulate_grad(q, dq);
  }
  if (g.on_path(k) || g.on_path(v)) {
    int64_t d = k->ne[3], dv = v->ne[3];
    Tensor* dkv = make_node(g, OP_ATTENTION_BWD_KV, DType::f32, {k->ne[0], k->ne[1], k->ne[2], d + dv}, srcs);
    dkv->fp[0] = o->fp[0];
    dkv->flags |= TF_NO_GRAD;
    if (g.on_path(k)) g.accumulate_grad(k, slice(g, dkv, 3, 0, d));
    if (g.on_path(v)) g.accumulate_grad(v, slice(g, dkv, 3, d, d + dv));
  }
}

void register_attention_ops() {
  OpDef d;
  d.name = "attention"; d.backward = attention_bwd; op_register(OP_ATTENTION, d);
  OpDef n;
  n.name = "attention_bwd_q"; op_register(OP_ATTENTION_BWD_Q, n);
  n.name = "attention_bwd_kv"; op_register(OP_ATTENTION_BWD_KV, n);
}

}  // namespace nsvq
