// ops/elementwise.cpp — unary, binary (numpy broadcasting through expand views) and where:
// builders and backward rules. Kernels: ops/cpu/elementwise.cpp, ops/cuda/elementwise.cu.
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

static const char* UNARY_NAMES[UN_COUNT] = {"neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign", "sqr",
                                            "relu", "leaky_relu", "silu", "sigmoid", "tanh", "gelu", "pow",
                                            "clamp", "affine", "recip", "step", "inside", "silu_grad", "gelu_grad",
                                            "softplus"};
static const char* BINARY_NAMES[BIN_COUNT] = {"add", "sub", "mul", "div", "max", "min", "eq", "gt"};

const char* unary_kind_name(int k) { return k >= 0 && k < UN_COUNT ? UNARY_NAMES[k] : "?"; }
const char* binary_kind_name(int k) { return k >= 0 && k < BIN_COUNT ? BINARY_NAMES[k] : "?"; }

float unary_apply_rt(int kind, float x, float p0, float p1) {
  float r = 0;
  kind_dispatch<UN_COUNT>(kind, [&](auto k) { r = unary_apply<decltype(k)::value>(x, p0, p1); });
  return r;
}
float binary_apply_rt(int kind, float a, float b) {
  float r = 0;
  kind_dispatch<BIN_COUNT>(kind, [&](auto k) { r = binary_apply<decltype(k)::value>(a, b); });
  return r;
}

static bool unary_differentiable(int k) { return k != UN_SIGN && k != UN_STEP && k != UN_INSIDE && k != UN_SILU_GRAD && k != UN_GELU_GRAD; }

// y = f(a), same shape; a may be any view
Tensor* unary(Graph& g, Tensor* a, int kind, float p0, float p1) {
  if (kind < 0 || kind >= UN_COUNT) fail("unary: unknown kind %d", kind);
  require_f32(unary_kind_name(kind), a);
  Tensor* t = make_node(g, OP_UNARY, DType::f32, a->shape(), {a});
  t->ip[0] = kind;
  t->fp[0] = p0;
  t->fp[1] = p1;
  if (!unary_differentiable(kind)) t->flags |= TF_NO_GRAD;
  return t;
}

// y = a (op) b with numpy broadcasting: inputs are expanded (stride-0 views) to the output shape
Tensor* binary(Graph& g, Tensor* a, Tensor* b, int kind) {
  if (kind < 0 || kind >= BIN_COUNT) fail("binary: unknown kind %d", kind);
  const char* name = binary_kind_name(kind);
  require_f32(name, a);
  require_f32(name, b);
  Shape s = shape_broadcast(name, a->shape(), b->shape());
  Tensor* t = make_node(g, OP_BINARY, DType::f32, s, {expand(g, a, s), expand(g, b, s)});
  t->ip[0] = kind;
  if (kind == BIN_EQ || kind == BIN_GT) t->flags |= TF_NO_GRAD;
  return t;
}

// y = cond != 0 ? a : b, all three broadcast together
Tensor* where(Graph& g, Tensor* cond, Tensor* a, Tensor* b) {
  require_f32("where", cond);
  require_f32("where", a);
  require_f32("where", b);
  Shape s = shape_broadcast("where", shape_broadcast("where", cond->shape(), a->shape()), b->shape());
  return make_node(g, OP_WHERE, DType::f32, s, {expand(g, cond, s), expand(g, a, s), expand(g, b, s)});
}

// ---------------------------------------------------------------- backward rules

static void unary_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* x = y->src[0];
  float p0 = y->fp[0], p1 = y->fp[1];
  Tensor* d = nullptr;  // dy/dx
  switch (y->ip[0]) {
    case UN_NEG: g.accumulate_grad(x, neg(g, gy)); return;
    case UN_AFFINE: g.accumulate_grad(x, scale(g, gy, p0)); return;
    case UN_EXP: d = y; break;
    case UN_LOG: g.accumulate_grad(x, div(g, gy, x)); return;
    case UN_SQRT: d = unary(g, y, UN_RECIP, 0.5f, 0.0f); break;
    case UN_RSQRT: d = scale(g, pow(g, y, 3.0f), -0.5f); break;
    case UN_ABS: d = unary(g, x, UN_SIGN); break;
    case UN_SQR: d = scale(g, x, 2.0f); break;
    case UN_RELU: d = unary(g, x, UN_STEP); break;
    case UN_LEAKY_RELU: d = unary(g, unary(g, x, UN_STEP), UN_AFFINE, 1.0f - p0, p0); break;
    case UN_SILU: d = unary(g, x, UN_SILU_GRAD); break;
    case UN_GELU: d = unary(g, x, UN_GELU_GRAD); break;
    case UN_SIGMOID: d = mul(g, y, unary(g, y, UN_AFFINE, -1.0f, 1.0f)); break;
    case UN_SOFTPLUS: d = sigmoid(g, x); break;
    case UN_TANH: d = unary(g, sqr(g, y), UN_AFFINE, -1.0f, 1.0f); break;
    case UN_POW: d = scale(g, pow(g, x, p0 - 1.0f), p0); break;
    case UN_CLAMP: d = unary(g, x, UN_INSIDE, p0, p1); break;
    case UN_RECIP:
      if (p0 == 0.0f) return;
      d = scale(g, sqr(g, y), -1.0f / p0);
      break;
    default: fail("unary %s: not differentiable", unary_kind_name(y->ip[0]));
  }
  g.accumulate_grad(x, mul(g, gy, d));
}

static void binary_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor *a = y->src[0], *b = y->src[1];
  switch (y->ip[0]) {
    case BIN_ADD:
      g.accumulate_grad(a, gy);
      g.accumulate_grad(b, gy);
      break;
    case BIN_SUB:
      g.accumulate_grad(a, gy);
      if (g.on_path(b)) g.accumulate_grad(b, neg(g, gy));
      break;
    case BIN_MUL:
      if (g.on_path(a)) g.accumulate_grad(a, mul(g, gy, b));
      if (g.on_path(b)) g.accumulate_grad(b, mul(g, gy, a));
      break;
    case BIN_DIV:
      if (g.on_path(a)) g.accumulate_grad(a, div(g, gy, b));
      if (g.on_path(b)) g.accumulate_grad(b, neg(g, div(g, mul(g, gy, y), b)));
      break;
    case BIN_MAX:
    case BIN_MIN: {
      // the gradient goes to the operand that was selected (a on ties)
      Tensor* pick_a = binary(g, y, a, BIN_EQ);
      if (g.on_path(a)) g.accumulate_grad(a, mul(g, gy, pick_a));
      if (g.on_path(b)) g.accumulate_grad(b, mul(g, gy, unary(g, pick_a, UN_AFFINE, -1.0f, 1.0f)));
      break;
    }
    default: fail("binary %s: not differentiable", binary_kind_name(y->ip[0]));
  }
}

static void where_bwd(Graph& g, Tensor* y, Tensor* gy) {
  Tensor* zero = expand(g, g.constant({}, 0.0f), y->shape());
  if (g.on_path(y->src[1])) g.accumulate_grad(y->src[1], where(g, y->src[0], gy, zero));
  if (g.on_path(y->src[2])) g.accumulate_grad(y->src[2], where(g, y->src[0], zero, gy));
}

void register_elementwise_ops() {
  OpDef d;
  d.name = "unary"; d.backward = unary_bwd; op_register(OP_UNARY, d);
  d.name = "binary"; d.backward = binary_bwd; op_register(OP_BINARY, d);
  d.name = "where"; d.backward = where_bwd; op_register(OP_WHERE, d);
}

}  // namespace nsvq
