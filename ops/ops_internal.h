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
void register_pool_ops();
void register_pool_cpu();
void register_dist_ops();
void register_dist_cpu();
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
void register_pool_cuda();
void register_dist_cuda();
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

// The gradient ops of max_pool2d and avg_pool2d (ops/pool.cpp; built by their backward rules, declared
// here for the op tests). max: x [N, C, H, W] and gy [N, C, Ho, Wo] -> dx [N, C, H, W], gy going to
// each window's first maximum. avg: gy [N, C, Ho, Wo] -> dx [N, C, H, W] (H, W given: the forward's
// input size), each window's gy divided by its divisor and spread over its in-image elements.
Tensor* max_pool2d_bwd(Graph& g, Tensor* x, Tensor* gy, int k, int stride, int pad);
Tensor* avg_pool2d_bwd(Graph& g, Tensor* gy, int64_t H, int64_t W, int k, int stride, int pad, bool count_include_pad);

// Normalises a possibly negative axis; fails naming the op.
int norm_axis(const char* op, int axis, int ndim);
// Requires f32, naming the op and the tensor.
void require_f32(const char* op, const Tensor* t);

}  // namespace nsvq
