// engine/op_table.h — the registry through which op families plug into the engine.
//
// The engine knows no individual op. Each family in ops/ registers, under an integer id, a name,
// a backward rule (which builds gradient nodes in the graph), an optional scratch-size query, and
// one kernel per backend. A backend executes a node by looking its kernel up here.
#pragma once
#include "engine/tensor.h"

namespace nsvq {

class Graph;

enum BackendKind : int { BK_CPU = 0, BK_CUDA = 1, BK_COUNT = 2 };

// Everything a kernel may use besides its node.
struct ExecCtx {
  int nthreads = 1;
  void* scratch = nullptr;      // backend memory of at least OpDef::scratch(node) bytes
  size_t scratch_bytes = 0;
  void* backend_state = nullptr;  // backend specific (CUDA: stream + cuBLAS handle)
};

// Computes node->data from node->src[i]->data, shapes and strides. Never allocates.
using KernelFn = void (*)(Tensor* node, const ExecCtx& ctx);
// Appends the gradient nodes of `y` given its incoming gradient `gy` (same shape as y):
// for each src that needs a gradient, calls g.accumulate_grad(src, gx).
using BackwardFn = void (*)(Graph& g, Tensor* y, Tensor* gy);
// Bytes of temporary memory a kernel needs for this node (0 when none).
using ScratchFn = size_t (*)(const Tensor* node, BackendKind backend);

struct OpDef {
  const char* name = nullptr;
  BackwardFn backward = nullptr;  // nullptr: not differentiable (gradient stops, e.g. argmax)
  ScratchFn scratch = nullptr;
  KernelFn kernel[BK_COUNT] = {};
  bool is_view = false;  // views run no kernel: data = root data + offset
};

constexpr int MAX_OPS = 128;

// Registers (or completes) op `id`. Called by ops/ at start-up; fields left null are not overwritten.
void op_register(int id, const OpDef& def);
const OpDef& op_def(int id);
const char* op_name(int id);

// How the autograd driver adds two gradients of one tensor (ops/ provides the add op).
using GradAddFn = Tensor* (*)(Graph& g, Tensor* a, Tensor* b);
void op_set_grad_add(GradAddFn fn);
GradAddFn op_grad_add();

}  // namespace nsvq
