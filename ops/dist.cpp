// ops/dist.cpp — the collective ops across data-parallel ranks (ops/ops.h, engine/dist.h): builders,
// gradient rules (the adjoints under the objective sum_r L_r).
#include "engine/dist.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {
Tensor* allreduce_node(Graph& g, const std::vector<Tensor*>& srcs, float scale) {
  int64_t total = 0;
  for (Tensor* t : srcs) {
    require_f32("allreduce", t);
    total += t->numel();
  }
  Tensor* y = make_node(g, OP_ALLREDUCE, DType::f32, {total}, srcs);
  y->fp[0] = scale;
  y->ip[1] = dist().size();
  return y;
}

// Buckets of at most MAX_SRC tensors and bucket_bytes (a single larger tensor is a bucket of its own).
std::vector<std::vector<size_t>> buckets(const std::vector<Tensor*>& xs, size_t bucket_bytes) {
  std::vector<std::vector<size_t>> out;
  size_t bytes = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    size_t b = (size_t)xs[i]->numel() * sizeof(float);
    if (out.empty() || out.back().size() == (size_t)MAX_SRC || bytes + b > bucket_bytes) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().push_back(i);
    bytes += b;
  }
  return out;
}

// The tensors of shapes like srcs, as views of the flat y.
void unflatten(Graph& g, Tensor* y, const std::vector<Tensor*>& like, Tensor** out) {
  int64_t off = 0;
  for (size_t k = 0; k < like.size(); k++) {
    int64_t n = like[k]->numel();
    out[k] = reshape(g, slice(g, y, 0, off, off + n), like[k]->shape());
    off += n;
  }
}
}  // namespace

std::vector<Tensor*> allreduce(Graph& g, const std::vector<Tensor*>& xs, float scale, size_t bucket_bytes) {
  std::vector<Tensor*> out(xs.size(), nullptr);
  for (const std::vector<size_t>& b : buckets(xs, bucket_bytes)) {
    std::vector<Tensor*> srcs, res(b.size());
    for (size_t i : b) srcs.push_back(contiguous(g, xs[i]));
    unflatten(g, allreduce_node(g, srcs, scale), srcs, res.data());
    for (size_t k = 0; k < b.size(); k++) out[b[k]] = res[k];
  }
  return out;
}

Tensor* allgather(Graph& g, Tensor* x) {
  if (x->ndim < 1) fail("allgather: %s needs a leading dimension", x->desc().c_str());
  Shape s = x->shape();
  s.ne[0] *= dist().size();
  Tensor* y = make_node(g, OP_ALLGATHER, x->dtype, s, {contiguous(g, x)});
  y->ip[1] = dist().size();
  return y;
}

Tensor* reduce_scatter_sum(Graph& g, Tensor* x) {
  require_f32("reduce_scatter_sum", x);
  const int R = dist().size();
  if (x->ndim < 1 || x->ne[0] % R)
    fail("reduce_scatter_sum: %s does not split into %d ranks along dim 0", x->desc().c_str(), R);
  Shape s = x->shape();
  s.ne[0] /= R;
  Tensor* y = make_node(g, OP_REDUCE_SCATTER, DType::f32, s, {contiguous(g, x)});
  y->ip[1] = R;
  return y;
}

static void allreduce_bwd(Graph& g, Tensor* y, Tensor* gy) {
  std::vector<Tensor*> srcs(y->src, y->src + MAX_SRC);
  while (!srcs.empty() && !srcs.back()) srcs.pop_back();
  Tensor* gflat = allreduce_node(g, {contiguous(g, gy)}, y->fp[0]);
  std::vector<Tensor*> gx(srcs.size());
  unflatten(g, gflat, srcs, gx.data());
  for (size_t k = 0; k < srcs.size(); k++)
    if (g.on_path(srcs[k])) g.accumulate_grad(srcs[k], gx[k]);
}

static void allgather_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], reduce_scatter_sum(g, gy)); }

static void reduce_scatter_bwd(Graph& g, Tensor* y, Tensor* gy) { g.accumulate_grad(y->src[0], allgather(g, gy)); }

void register_dist_ops() {
  OpDef d;
  d.name = "allreduce"; d.backward = allreduce_bwd; op_register(OP_ALLREDUCE, d);
  OpDef a;
  a.name = "allgather"; a.backward = allgather_bwd; op_register(OP_ALLGATHER, a);
  a.name = "reduce_scatter"; a.backward = reduce_scatter_bwd; op_register(OP_REDUCE_SCATTER, a);
}

}  // namespace nsvq
