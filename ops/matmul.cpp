// ops/matmul.cpp — matmul / batched matmul with transposes, softmax and log-softmax (last dim):
// builders and backward rules. Kernels: ops/cpu/matmul.cpp (our SGEMM), ops/cuda/matmul.cu (cuBLAS).
#include "ops/ops_internal.h"

namespace nsvq {

// a [..., M, K] (trans_a: [..., K, M]) x b [..., K, N] (trans_b: [..., N, K]) -> [..., M, N]
Tensor* matmul(Graph& g, Tensor* a, Tensor* b, bool ta, bool tb) {
  require_f32("matmul", a);
  require_f32("matmul", b);
  if (a->ndim < 2 || b->ndim < 2)
    fail("matmul: operands need at least 2 dims, got %s and %s", a->shape().str().c_str(), b->shape().str().c_str());
  int64_t M = ta ? a->ne[a->ndim - 1] : a->ne[a->ndim - 2];
  int64_t Ka = ta ? a->ne[a->ndim - 2] : a->ne[a->ndim - 1];
  int64_t Kb = tb ? b->ne[b->ndim - 1] : b->ne[b->ndim - 2];
  int64_t N = tb ? b->ne[b->ndim - 2] : b->ne[b->ndim - 1];
  Shape ba, bb;
  ba.ndim = a->ndim - 2;
  bb.ndim = b->ndim - 2;
  for (int i = 0; i < ba.ndim; i++) ba.ne[i] = a->ne[i];
  for (int i = 0; i < bb.ndim; i++) bb.ne[i] = b->ne[i];
  if (Ka != Kb || (ba.ndim && bb.ndim && ba != bb))
    fail("matmul: shapes %s%s and %s%s do not match", a->shape().str().c_str(), ta ? "^T" : "",
         b->shape().str().c_str(), tb ? "^T" : "");
  Shape out = ba.ndim ? ba : bb;
  out.ne[out.ndim++] = M;
  out.ne[out.ndim++] = N;
  Tensor* t = make_node(g, OP_MATMUL, DType::f32, out, {contiguous(g, a), contiguous(g, b)});
  t->ip[0] = ta;
  t->ip[1] = tb;
  t->ip[2] = (int32_t)M;
  t->ip[3] = (int32_t)N;
  t->ip[4] = (int32_t)Ka;
  t->ip[5] = (int32_t)(ba.ndim ? ba.numel() : bb.numel());
  t->ip[6] = ba.ndim > 0;
  t->ip[7] = bb.ndim > 0;
  return t;
}

static void matmul_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor *a = y->src[0], *b = y->src[1];
  bool ta = y->ip[0], tb = y->ip[1];
  bool a_batched = y->ip[6], b_batched = y->ip[7];
  int64_t M = y->ip[2], N = y->ip[3], K = y->ip[4];
  if (g.on_path(a)) {
    Tensor* da = ta ? matmul(g, b, gy, tb, true) : matmul(g, gy, b, false, !tb);
    g.accumulate_grad(a, sum_to(g, da, a->shape()));
  }
  if (g.on_path(b)) {
    Tensor* db;
    if (a_batched && !b_batched && !ta) {
      // b is shared by every batch: one GEMM over the flattened batch
      int64_t BM = y->ip[5] * M;
      Tensor* a2 = reshape(g, a, {BM, K});
      Tensor* g2 = reshape(g, gy, {BM, N});
      db = tb ? matmul(g, g2, a2, true, false) : matmul(g, a2, g2, true, false);
    } else {
      db = tb ? matmul(g, gy, a, true, ta) : matmul(g, a, gy, !ta, false);
    }
    g.accumulate_grad(b, sum_to(g, db, b->shape()));
  }
}

static Tensor* softmax_impl(Graph& g, Tensor* a, int is_log) {
  const char* name = is_log ? "log_softmax" : "softmax";
  require_f32(name, a);
  if (a->ndim < 1) fail("%s: needs at least 1 dim", name);
  Tensor* t = make_node(g, OP_SOFTMAX, DType::f32, a->shape(), {contiguous(g, a)});
  t->ip[0] = is_log;
  return t;
}
Tensor* softmax(Graph& g, Tensor* a) { return softmax_impl(g, a, 0); }
Tensor* log_softmax(Graph& g, Tensor* a) { return softmax_impl(g, a, 1); }

static void softmax_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  int last = y->ndim - 1;
  if (y->ip[0]) {  // log-softmax: gx = gy - exp(y) * sum(gy)
    Tensor* s = expand(g, sum(g, gy, {last}, true), y->shape());
    g.accumulate_grad(x, sub(g, gy, mul(g, exp(g, y), s)));
  } else {  // softmax: gx = y * (gy - sum(gy * y))
    Tensor* s = expand(g, sum(g, mul(g, gy, y), {last}, true), y->shape());
    g.accumulate_grad(x, mul(g, y, sub(g, gy, s)));
  }
}

void register_matmul_ops() {
  OpDef d;
  d.name = "matmul"; d.backward = matmul_bwd; op_register(OP_MATMUL, d);
  d.name = "softmax"; d.backward = softmax_bwd; op_register(OP_SOFTMAX, d);
}

}  // namespace nsvq
