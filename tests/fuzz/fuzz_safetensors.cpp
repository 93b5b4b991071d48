// tests/fuzz/fuzz_safetensors.cpp — libFuzzer target: the safetensors reader on any bytes, three ways:
// parsed in memory (safetensors_parse), opened lazily from a plain file and every tensor visited, and the
// bytes taken as a .zst file opened lazily and visited (the streaming decompressor); then loaded by name
// into a small Store, as a checkpoint is.
#include <cstdint>
#include <vector>
#include "engine/backend.h"
#include "models/module.h"
#include "models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

static void visit_all(const nsvq::SafetensorsFile& f) {
  std::vector<const nsvq::SafetensorsEntry*> all;
  for (const nsvq::SafetensorsEntry& e : f.entries) all.push_back(&e);
  size_t sum = 0;
  f.visit(all, [&](const nsvq::SafetensorsEntry& e, const uint8_t* p) {
    if (e.end > e.begin) sum += p[0] + p[e.end - e.begin - 1];  // touch the first and last byte
  });
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nsvq;
  try {
    SafetensorsFile f = safetensors_parse(std::vector<uint8_t>(data, data + size), "fuzz");
    Store st(backend_cpu());
    ParamSet ps(st, 0);
    Tensor* a = ps.param("a", {2, 3}, Init::zeros());
    Tensor* b = ps.buffer_i32("b", Shape{4});
    load_tensors(st, f, {a, b}, false);
  } catch (const Error&) {
  }
  try {
    visit_all(safetensors_open(nsvq_fuzz::file("f.safetensors", data, size)));
  } catch (const Error&) {
  }
  try {
    visit_all(safetensors_open(nsvq_fuzz::file("f.safetensors.zst", data, size)));
  } catch (const Error&) {
  }
  return 0;
}
