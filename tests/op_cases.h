// tests/op_cases.h — the table of op test cases (ggml test-backend-ops style) and the host-side
// helpers they share. Every case builds its op from store-held inputs, has a plain scalar
// reference, and says whether its f32 inputs get a finite-difference gradient check.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "ops/ops.h"

namespace nsvq {
namespace test {

// Host copy of a tensor: shape plus f32 or i32 values.
struct Host {
  Shape s;
  DType dt = DType::f32;
  std::vector<float> f;
  std::vector<int32_t> i;
  int64_t n() const { return s.numel(); }
};

struct InputSpec {
  Shape s;
  DType dt = DType::f32;
  float lo = -1.0f, hi = 1.0f;     // f32: uniform range; i32: integers in [lo, hi)
  std::vector<float> avoid = {};  // f32: resample values within 0.05 of these (kinks)
  bool grad = true;                // f32: finite-difference checked
  bool spread = false;             // f32: distinct values at least (hi-lo)/(2n) apart (max/min, ties)
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor*(Graph&, const std::vector<Tensor*>&)> build;
  std::function<Host(const std::vector<Host>&)> ref;  // nullptr: no reference (parity/grad only)
  float ref_tol = 1e-5f;   // relative tolerance of optimised kernel vs reference
  float fd_tol = 2e-2f;    // relative tolerance of the gradient check
  float fd_eps = 1e-2f;
};

// All cases: the core table (op_cases.cpp) plus every table registered by other test files with
//   static int reg = register_op_cases(my_cases);   // my_cases: std::vector<OpCase>()
std::vector<OpCase> op_cases();
int register_op_cases(std::vector<OpCase> (*fn)());

// Row-major helpers for references.
int64_t ravel(const Shape& s, const int64_t* c);
void unravel(const Shape& s, int64_t i, int64_t* c);
Host host_f32(const Shape& s);
Host host_i32(const Shape& s);

}  // namespace test
}  // namespace nsvq
