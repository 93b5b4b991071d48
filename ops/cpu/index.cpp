// ops/cpu/index.cpp — CPU kernels of get_rows and scatter_add_rows. Out-of-range indices are an
// error (checked before any write). scatter-add is deterministic: each column block is owned by
// one thread and rows are added in index order.
#include <cstring>
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops_internal.h"

namespace nsvq {

static void check_indices(const char* op, const int32_t* idx, int64_t n, int64_t rows) {
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= rows) fail("%s: index %d at position %lld out of range [0, %lld)", op, idx[i], (long long)i, (long long)rows);
}

static void get_rows_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* tab = y->src[0];
  int64_t R = tab->ne[0], C = tab->ne[1], n = y->src[1]->numel();
  const int32_t* idx = tdata<int32_t>(y->src[1]);
  check_indices("get_rows", idx, n, R);
  const char* t = (const char*)tab->data;
  char* o = (char*)y->data;
  size_t row = (size_t)C * tab->elsize();
  int nt = n * C < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) std::memcpy(o + i * row, t + idx[i] * row, row);
}

static void scatter_add_rows_cpu(Tensor* y, const ExecCtx& c) {
  int64_t R = y->ne[0], C = y->ne[1], n = y->src[1]->numel();
  const int32_t* idx = tdata<int32_t>(y->src[1]);
  check_indices("scatter_add_rows", idx, n, R);
  const float* s = tdata<float>(y->src[0]);
  float* o = tdata<float>(y);
  std::memset(o, 0, (size_t)R * C * sizeof(float));
  const int64_t CB = 64;
  int64_t nb = (C + CB - 1) / CB;
  int nt = n * C < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < nb; b++) {
    int64_t c0 = b * CB, c1 = std::min(C, c0 + CB);
    for (int64_t i = 0; i < n; i++) {
      float* orow = o + (int64_t)idx[i] * C;
      const float* srow = s + i * C;
      for (int64_t j = c0; j < c1; j++) orow[j] += srow[j];
    }
  }
}

void register_index_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = get_rows_cpu; op_register(OP_GET_ROWS, d);
  d.kernel[BK_CPU] = scatter_add_rows_cpu; op_register(OP_SCATTER_ADD_ROWS, d);
}

}  // namespace nsvq
