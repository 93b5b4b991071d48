// engine/tensor.h — the Tensor node, dtypes, flags, shape helpers and the error type.
//
// Dimension convention (stated once, used everywhere): shapes are in PyTorch order, outermost
// first — images are (N, C, H, W), matrices (rows, cols), a batch of matrices (B, M, N).
// ne[d] is the extent of dimension d, nb[d] its stride in ELEMENTS (not bytes), offset the
// element offset of element 0 inside the storage it shares with its view source.
// A tensor with ndim == 0 is a scalar (one element).
#pragma once
#include <cstdint>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace nsvq {

// One error type for everything the user can cause; tools print e.what() on one line.
struct Error : std::runtime_error {
  explicit Error(const std::string& m) : std::runtime_error(m) {}
};
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

enum class DType : uint8_t { f32 = 0, i32 = 1, bf16 = 2, f16 = 3 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

constexpr int MAX_DIMS = 6;
constexpr int MAX_SRC = 8;
constexpr int MAX_IPARAMS = 16;
constexpr int MAX_FPARAMS = 8;

enum TensorFlag : uint32_t {
  TF_PARAM = 1u << 0,     // trainable parameter (lives in a Store)
  TF_INPUT = 1u << 1,     // written by the host before each compute
  TF_OUTPUT = 1u << 2,    // read by the host after compute: kept alive to the end of the step
  TF_LOSS = 1u << 3,      // a loss: also an output
  TF_FROZEN = 1u << 4,    // parameter that receives no gradient
  TF_PERSIST = 1u << 5,   // state that outlives a step (optimizer moments, quantizer buffers)
  TF_VIEW = 1u << 6,      // shares storage with view_src
  TF_SIDE_EFFECT = 1u << 7,  // writes into src[0] in place (optimizer updates): always executed
  TF_CONST = 1u << 8,     // constant filled from host values at plan time
  TF_NO_GRAD = 1u << 9,   // output of detach / integer ops: gradients stop here
};

// Shape as a small value type used by builders.
struct Shape {
  int ndim = 0;
  int64_t ne[MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  explicit Shape(const std::vector<int64_t>& d);
  int64_t numel() const;
  int64_t operator[](int i) const { return ne[i]; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2, 3, 4]"
};

struct Tensor {
  int id = -1;
  DType dtype = DType::f32;
  int ndim = 0;
  int64_t ne[MAX_DIMS] = {1, 1, 1, 1, 1, 1};
  int64_t nb[MAX_DIMS] = {1, 1, 1, 1, 1, 1};
  int64_t offset = 0;

  int op = 0;  // 0 = leaf (no producing op); otherwise an id registered in the op table
  int n_src = 0;
  Tensor* src[MAX_SRC] = {};
  int32_t ip[MAX_IPARAMS] = {};
  float fp[MAX_FPARAMS] = {};

  uint32_t flags = 0;
  int group = 0;           // parameter group (optimizer lr, generator vs discriminator, ...)
  std::string name;

  Tensor* view_src = nullptr;  // for views: the tensor whose storage this one shares
  void* data = nullptr;        // backend pointer to element 0 (offset applied); set by planning
  void* owner = nullptr;       // the Graph or Store that created it
  const void* backend = nullptr;  // the Backend its memory lives on

  int64_t numel() const;
  size_t elsize() const { return dtype_size(dtype); }
  size_t nbytes() const { return (size_t)numel() * elsize(); }  // of a contiguous layout
  bool is_contiguous() const;
  bool has(uint32_t f) const { return (flags & f) != 0; }
  Shape shape() const;
  const Tensor* storage_root() const;  // follows view_src to the tensor that owns storage
  Tensor* storage_root();
  std::string desc() const;  // "name f32[2, 3]"
};

// Contiguous row-major strides for ne[0..ndim).
void tensor_set_contiguous_strides(Tensor* t);
bool shape_equal(const Tensor* a, const Tensor* b);
// Broadcast two shapes numpy-style (trailing dims aligned); fails naming op and both shapes.
Shape shape_broadcast(const char* op, const Shape& a, const Shape& b);

}  // namespace nsvq
