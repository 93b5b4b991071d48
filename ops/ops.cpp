// ops/ops.cpp — fills the op table once (every family's rules and kernels) and small shared helpers.
#include <mutex>
#include "ops/ops_internal.h"

namespace nsvq {

void ops_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_shape_ops();
    register_elementwise_ops();
    register_reduce_ops();
    register_matmul_ops();
    register_index_ops();
    register_loss_ops();
    register_optim_ops();
    register_vq_ops();
    register_norm_ops();
    register_attention_ops();
    register_conv_ops();
    register_pool_ops();
    register_dist_ops();
    register_shape_cpu();
    register_elementwise_cpu();
    register_reduce_cpu();
    register_matmul_cpu();
    register_index_cpu();
    register_loss_cpu();
    register_optim_cpu();
    register_vq_cpu();
    register_norm_cpu();
    register_attention_cpu();
    register_conv_cpu();
    register_pool_cpu();
    register_dist_cpu();
#ifdef NSVQ_CUDA
    register_shape_cuda();
    register_elementwise_cuda();
    register_reduce_cuda();
    register_matmul_cuda();
    register_index_cuda();
    register_loss_cuda();
    register_optim_cuda();
    register_norm_cuda();
    register_attention_cuda();
    register_vq_cuda();
    register_conv_cuda();
    register_pool_cuda();
    register_dist_cuda();
#endif
    op_set_grad_add([](Graph& g, Tensor* a, Tensor* b) { return add(g, a, b); });
  });
}

int norm_axis(const char* op, int axis, int ndim) {
  int a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) fail("%s: axis %d out of range for %d dims", op, axis, ndim);
  return a;
}

void require_f32(const char* op, const Tensor* t) {
  if (t->dtype != DType::f32) fail("%s: %s must be f32", op, t->desc().c_str());
}

}  // namespace nsvq
