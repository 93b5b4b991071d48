// engine/op_table.cpp — storage of the op table filled by ops/ at start-up.
#include "engine/op_table.h"

namespace nsvq {

static OpDef g_ops[MAX_OPS];

void op_register(int id, const OpDef& def) {
  if (id <= 0 || id >= MAX_OPS) fail("op_register: id %d out of range", id);
  OpDef& d = g_ops[id];
  if (def.name) d.name = def.name;
  if (def.backward) d.backward = def.backward;
  if (def.scratch) d.scratch = def.scratch;
  for (int b = 0; b < BK_COUNT; b++)
    if (def.kernel[b]) d.kernel[b] = def.kernel[b];
  if (def.is_view) d.is_view = true;
}

const OpDef& op_def(int id) {
  if (id < 0 || id >= MAX_OPS) fail("op id %d out of range", id);
  return g_ops[id];
}

const char* op_name(int id) {
  const OpDef& d = op_def(id);
  return d.name ? d.name : (id == 0 ? "leaf" : "unregistered-op");
}

static GradAddFn g_grad_add = nullptr;
void op_set_grad_add(GradAddFn fn) { g_grad_add = fn; }
GradAddFn op_grad_add() {
  if (!g_grad_add) fail("autograd: no gradient-add op registered (call ops_init())");
  return g_grad_add;
}

}  // namespace nsvq
