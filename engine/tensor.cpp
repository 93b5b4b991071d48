// engine/tensor.cpp — dtype tables, shape helpers, tensor descriptions and the error helper.
#include "engine/tensor.h"
#include <cstdarg>
#include <cstdio>

namespace nsvq {

void fail(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  throw Error(buf);
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i32: return "i32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> d) {
  if (d.size() > (size_t)MAX_DIMS) fail("shape with %zu dims: at most %d supported", d.size(), MAX_DIMS);
  for (int64_t v : d) ne[ndim++] = v;
}

Shape::Shape(const std::vector<int64_t>& d) {
  if (d.size() > (size_t)MAX_DIMS) fail("shape with %zu dims: at most %d supported", d.size(), MAX_DIMS);
  for (int64_t v : d) ne[ndim++] = v;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= ne[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; i++)
    if (ne[i] != o.ne[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; i++) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= ne[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    if (ne[i] != 1 && nb[i] != expect) return false;
    expect *= ne[i];
  }
  return true;
}

Shape Tensor::shape() const {
  Shape s;
  s.ndim = ndim;
  for (int i = 0; i < ndim; i++) s.ne[i] = ne[i];
  return s;
}

const Tensor* Tensor::storage_root() const {
  const Tensor* t = this;
  while (t->view_src) t = t->view_src;
  return t;
}

Tensor* Tensor::storage_root() {
  Tensor* t = this;
  while (t->view_src) t = t->view_src;
  return t;
}

std::string Tensor::desc() const {
  std::string s = name.empty() ? ("#" + std::to_string(id)) : name;
  return s + " " + dtype_name(dtype) + shape().str();
}

void tensor_set_contiguous_strides(Tensor* t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    t->nb[i] = st;
    st *= t->ne[i];
  }
}

bool shape_equal(const Tensor* a, const Tensor* b) { return a->shape() == b->shape(); }

Shape shape_broadcast(const char* op, const Shape& a, const Shape& b) {
  Shape r;
  r.ndim = a.ndim > b.ndim ? a.ndim : b.ndim;
  for (int i = 0; i < r.ndim; i++) {
    int ia = a.ndim - r.ndim + i, ib = b.ndim - r.ndim + i;
    int64_t da = ia >= 0 ? a.ne[ia] : 1, db = ib >= 0 ? b.ne[ib] : 1;
    if (da != db && da != 1 && db != 1)
      fail("%s: shapes %s and %s cannot be broadcast together", op, a.str().c_str(), b.str().c_str());
    r.ne[i] = da == 1 ? db : da;
  }
  return r;
}

}  // namespace nsvq
