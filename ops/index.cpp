// ops/index.cpp — get_rows (index-select rows of a table) and scatter_add_rows (its transpose):
// builders and backward rules. Indices are i32 and carry no gradient.
#include "ops/ops_internal.h"

namespace nsvq {

// table [R, C], idx i32 [...] -> [..., C]
Tensor* get_rows(Graph& g, Tensor* table, Tensor* idx) {
  if (table->ndim != 2) fail("get_rows: table must be [R, C], got %s", table->shape().str().c_str());
  if (idx->dtype != DType::i32) fail("get_rows: indices %s must be i32", idx->desc().c_str());
  if (idx->ndim + 1 > MAX_DIMS) fail("get_rows: too many index dims");
  Shape s = idx->shape();
  s.ne[s.ndim++] = table->ne[1];
  Tensor* t = make_node(g, OP_GET_ROWS, table->dtype, s, {contiguous(g, table), contiguous(g, idx)});
  return t;
}

// src [..., C], idx i32 [...] -> out [rows, C], out[idx[i]] += src[i]
Tensor* scatter_add_rows(Graph& g, Tensor* src, Tensor* idx, int64_t rows) {
  require_f32("scatter_add_rows", src);
  if (idx->dtype != DType::i32) fail("scatter_add_rows: indices %s must be i32", idx->desc().c_str());
  if (src->ndim != idx->ndim + 1) fail("scatter_add_rows: src %s does not match indices %s", src->shape().str().c_str(), idx->shape().str().c_str());
  for (int d = 0; d < idx->ndim; d++)
    if (src->ne[d] != idx->ne[d])
      fail("scatter_add_rows: src %s does not match indices %s", src->shape().str().c_str(), idx->shape().str().c_str());
  Tensor* t = make_node(g, OP_SCATTER_ADD_ROWS, DType::f32, {rows, src->ne[src->ndim - 1]}, {contiguous(g, src), contiguous(g, idx)});
  return t;
}

static void get_rows_bwd(Graph& g, Tensor* y, Tensor* gy) {
  g.accumulate_grad(y->src[0], scatter_add_rows(g, gy, y->src[1], y->src[0]->ne[0]));
}

static void scatter_add_rows_bwd(Graph& g, Tensor* y, Tensor* gy) {
  g.accumulate_grad(y->src[0], get_rows(g, gy, y->src[1]));
}

void register_index_ops() {
  OpDef d;
  d.name = "get_rows"; d.backward = get_rows_bwd; op_register(OP_GET_ROWS, d);
  d.name = "scatter_add_rows"; d.backward = scatter_add_rows_bwd; op_register(OP_SCATTER_ADD_ROWS, d);
}

}  // namespace nsvq
