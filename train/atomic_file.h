// train/atomic_file.h — whole-file writes that a crash cannot leave half-done: temporary file in the
// destination's folder, fsync, rename over the destination, fsync the folder. Used for token files
// and PNGs (checkpoints stream through models/safetensors.cpp's sink, which follows the same steps).
#pragma once
#include <cstddef>
#include <string>

namespace nsvq {
void write_file_atomic(const std::string& path, const void* data, size_t n);
}  // namespace nsvq
