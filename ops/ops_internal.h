// ops/ops_internal.h — shared helpers for the op builders and the per-family registration hooks.
// Not part of the public API.
#pragma once
#include "ops/ops.h"

namespace nsvq {

// Per-family registration (builders, backward rules, CPU kernels; CUDA kernels when built).
void register_shape_ops();
void register_elementwise_ops();
void register_reduce_ops();
void register_matmul_ops();
void register_index_ops();
void register_loss_ops();
void register_optim_ops();
void register_vq_ops();
void register_shape_cpu();
void register_elementwise_cpu();
void register_reduce_cpu();
void register_matmul_cpu();
void register_index_cpu();
void register_loss_cpu();
void register_optim_cpu();
void register_vq_cpu();
void register_norm_ops();
void register_norm_cpu();
void register_attention_ops();
void register_attention_cpu();
void register_conv_ops();
void register_conv_cpu();
#ifdef NSVQ_CUDA
void register_shape_cuda();
void register_elementwise_cuda();
void register_reduce_cuda();
void register_matmul_cuda();
void register_index_cuda();
void register_loss_cuda();
void register_optim_cuda();
void register_norm_cuda();
void register_attention_cuda();
void register_vq_cuda();
void register_conv_cuda();
#endif

// Makes sure the op table is filled, then records a node.
inline Tensor* make_node(Graph& g, int op, DType dt, const Shape& s, const std::vector<Tensor*>& srcs) {
  ops_init();
  return g.new_node(op, dt, s, srcs);
}
inline Tensor* make_view(Graph& g, int op, Tensor* src, const Shape& s, const int64_t* strides, int64_t offset) {
  ops_init();
  return g.new_view(op, src, s, strides, offset);
}

// Normalises a possibly negative axis; fails naming the op.
int norm_axis(const char* op, int axis, int ndim);
// Requires f32, naming the op and the tensor.
void require_f32(const char* op, const Tensor* t);

}  // namespace nsvq
