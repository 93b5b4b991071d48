// ops/cuda/dist.cu — CUDA kernels of the collective ops: device memory to dist()'s device collectives
// (NCCL, or MPI through host copies; engine/cuda/dist_cuda.cu) on the backend's stream.
#include "engine/cuda/cuda_common.cuh"
#include "engine/dist.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {
CudaState* dist_state(const Tensor* y, const ExecCtx& c) {
  if (y->ip[1] != dist().size())
    fail("%s: the graph was built for %d ranks, the process group has %d", op_name(y->op), y->ip[1], dist().size());
  CudaState* st = cuda_state(c);
  if (st->capturing && dist().size() > 1) fail("%s: collectives are not recorded into CUDA graphs", op_name(y->op));
  return st;
}
}  // namespace

static void allreduce_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = dist_state(y, c);
  float* buf = (float*)y->data;
  int64_t off = 0;
  for (int i = 0; i < MAX_SRC && y->src[i]; i++) {
    size_t b = (size_t)y->src[i]->numel() * sizeof(float);
    CUDA_CHECK(cudaMemcpyAsync(buf + off, y->src[i]->data, b, cudaMemcpyDeviceToDevice, st->stream));
    off += y->src[i]->numel();
  }
  dist().device_allreduce_sum(buf, off, y->fp[0], st->stream);
}

static void allgather_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = dist_state(y, c);
  dist().device_allgather(y->src[0]->data, y->data, (size_t)y->src[0]->numel() * y->elsize(), st->stream);
}

static void reduce_scatter_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = dist_state(y, c);
  dist().device_reduce_scatter_sum((const float*)y->src[0]->data, (float*)y->data, y->numel(), st->stream);
}

void register_dist_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = allreduce_cuda; op_register(OP_ALLREDUCE, d);
  d.kernel[BK_CUDA] = allgather_cuda; op_register(OP_ALLGATHER, d);
  d.kernel[BK_CUDA] = reduce_scatter_cuda; op_register(OP_REDUCE_SCATTER, d);
}

}  // namespace nsvq
