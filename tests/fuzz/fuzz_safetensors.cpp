// tests/fuzz/fuzz_safetensors.cpp — libFuzzer target: the safetensors reader on any bytes: parsed in
// memory (safetensors_parse) and loaded by name into a small Store, as a checkpoint is; opened lazily
// from a plain file and every tensor visited; the bytes taken as a .zst file, opened lazily and visited
// (the streaming decompressor) and read whole (safetensors_read).
#include <cstdint>
#include <string>
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
  const std::string zst = nsvq_fuzz::file("f.safetensors.zst", data, size);
  try {
    visit_all(safetensors_open(zst));
  } catch (const Error&) {
  }
  try {
    safetensors_read(zst);  // whole-stream decompression
  } catch (const Error&) {
  }
  return 0;
}
