// models/safetensors.h — the safetensors checkpoint format (read, validate, write atomically),
// optionally zstd-compressed (a name ending in ".zst"), and loading/saving Store tensors by name.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
// (string-valued metadata; offsets relative to the start of the data, which follows the header),
// then the raw little-endian tensor bytes, packed in header order with no gaps. Writers pad the
// header with spaces to a multiple of 8. A ".zst" file is that whole byte stream zstd-compressed.
//
// Reading validates everything and fails with one line "safetensors <file>: <problem>": header
// length within the file, strict JSON, known dtype, shape x dtype size == offsets span, offsets
// inside the data, contiguous (no gaps, no overlap) and covering it exactly.
//
// Dtypes: F32 <-> f32 and I32 <-> i32 load directly; I64 loads into an i32 tensor with a range check
// (PyTorch's BatchNorm num_batches_tracked is int64). F16, BF16, F64, I8, U8, I16, U16, U32, U64,
// BOOL, F8_E4M3 and F8_E5M2 are recognised (the file validates) but loading one fails with
// "unsupported dtype".
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include "engine/graph.h"

namespace nsvq {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // "F32", "I32", "I64", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data start
  int64_t numel() const;
};

struct SafetensorsFile {
  std::string path;
  std::vector<SafetensorsEntry> entries;  // header order
  std::map<std::string, std::string> metadata;
  std::vector<uint8_t> bytes;  // the whole (decompressed) file; empty when opened lazily (safetensors_open)
  size_t data_start = 0;       // 8 + N
  bool lazy = false;           // tensors are read from the file when visited
  const SafetensorsEntry* find(const std::string& name) const;
  // The bytes of a tensor of a file read whole; fails on a lazily opened one (use visit).
  const uint8_t* data(const SafetensorsEntry& e) const;
  // Calls fn(entry, bytes) for each of `wanted` (entries of this file) in file order, the bytes valid
  // during the call. A lazy file reads them now, one tensor at a time: pread on a plain file, one
  // streaming decompression pass (skipping what is not wanted) over a .zst; host memory stays at the
  // largest wanted tensor.
  void visit(const std::vector<const SafetensorsEntry*>& wanted,
             const std::function<void(const SafetensorsEntry&, const uint8_t*)>& fn) const;
};

// Bytes per element of a safetensors dtype name; 0 when the name is not a safetensors dtype.
size_t safetensors_dtype_size(const std::string& dtype);

// Reads and validates `path` (zstd-decompressed first when it ends in ".zst").
SafetensorsFile safetensors_read(const std::string& path);
// Reads and validates only the header of `path` (the layout is checked against the file's size; for a
// .zst, against the stream's when tensors are visited); tensors are read on visit. What inference
// uses: a checkpoint's Adam moments, discriminator and unused half are never read.
SafetensorsFile safetensors_open(const std::string& path);
// Validates an in-memory (uncompressed) file; `what` names it in errors.
SafetensorsFile safetensors_parse(std::vector<uint8_t> bytes, const std::string& what);

// One tensor to write from host memory.
struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::f32;      // f32 or i32
  std::vector<int64_t> shape;
  const void* data = nullptr;    // shape.numel * dtype size bytes
};
// Writes atomically (temporary file in the same folder, fsync, rename, fsync of the folder);
// zstd-compressed (at zstd_level) when `path` ends in ".zst".
void safetensors_write(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {}, int zstd_level = 3);

// ---- Store tensors by name

// Saves `tensors` (f32 / i32 Store tensors) under their names.
void save_tensors(const Store& st, const std::string& path, const std::vector<Tensor*>& tensors,
                  const std::map<std::string, std::string>& metadata = {}, int zstd_level = 3);
// Saves every tensor of the Store.
void save_store(const Store& st, const std::string& path, const std::map<std::string, std::string>& metadata = {},
                int zstd_level = 3);

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // targets absent from the file
  std::vector<std::string> unexpected;  // file tensors that are not targets
  std::vector<std::string> mismatched;  // "name: file F32[2, 3] vs store f32[3, 2]"
  std::map<std::string, std::string> metadata;
  std::string summary() const;  // one line listing every problem
};

// Loads the file's tensors into `targets` by name. strict: any missing, unexpected or mismatched
// tensor fails with one line listing all of them, and nothing is written. Not strict: loads the
// names present in both, reports missing and unexpected ones; a mismatched shape or dtype still
// fails (as PyTorch's load_state_dict does).
LoadReport load_tensors(Store& st, const std::string& path, const std::vector<Tensor*>& targets, bool strict = true);
// The same from a file already read; each target t is looked up as file_prefix + t->name (e.g.
// "model_ema." for a weight-EMA copy), and the report names file tensors.
LoadReport load_tensors(Store& st, const SafetensorsFile& f, const std::vector<Tensor*>& targets, bool strict,
                        const std::string& file_prefix = "");
// load_tensors with every tensor of the Store as a target.
LoadReport load_store(Store& st, const std::string& path, bool strict = true);

}  // namespace nsvq
