// ops/cpu/dist.cpp — CPU kernels of the collective ops: host memory straight to dist()'s MPI
// collectives (engine/dist.cpp).
#include <cstring>
#include "engine/dist.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {
void check_ranks(const Tensor* y) {
  if (y->ip[1] != dist().size())
    fail("%s: the graph was built for %d ranks, the process group has %d", op_name(y->op), y->ip[1], dist().size());
}
}  // namespace

static void allreduce_cpu(Tensor* y, const ExecCtx& c) {
  check_ranks(y);
  float* buf = tdata<float>(y);
  int64_t off = 0;
  for (int i = 0; i < MAX_SRC && y->src[i]; i++) {
    int64_t n = y->src[i]->numel();
    std::memcpy(buf + off, y->src[i]->data, (size_t)n * sizeof(float));
    off += n;
  }
  dist().allreduce_sum(buf, off, y->fp[0]);
}

static void allgather_cpu(Tensor* y, const ExecCtx&) {
  check_ranks(y);
  dist().allgather(y->src[0]->data, y->data, (size_t)y->src[0]->numel() * y->elsize());
}

static void reduce_scatter_cpu(Tensor* y, const ExecCtx&) {
  check_ranks(y);
  dist().reduce_scatter_sum(tdata<float>(y->src[0]), tdata<float>(y), y->numel());
}

void register_dist_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = allreduce_cpu; op_register(OP_ALLREDUCE, d);
  d.kernel[BK_CPU] = allgather_cpu; op_register(OP_ALLGATHER, d);
  d.kernel[BK_CPU] = reduce_scatter_cpu; op_register(OP_REDUCE_SCATTER, d);
}

}  // namespace nsvq
