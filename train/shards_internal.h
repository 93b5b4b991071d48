// train/shards_internal.h — what the shard packer (train/shard_pack.cpp), the reader
// (train/shards.cpp) and the streaming loader (train/shard_stream.cpp) share: file names, the JSON
// of chunks and indexes, and little-endian fields of the chunk layout (train/shards.h).
#pragma once
#include <cstdint>
#include <string>
#include "models/json.h"
#include "train/shards.h"

namespace nsvq {

constexpr const char* SHARDS_FORMAT = "nsvq-shards";
constexpr int SHARDS_VERSION = 1;
constexpr int64_t CHUNK_HEADER = 8, CHUNK_RECORD = 12;  // "NSC1" u32 n; {i32 label, u32 h, u32 w}

std::string shards_index_path(const std::string& dir, const std::string& split);
std::string shards_journal_path(const std::string& dir, const std::string& split);
std::string shard_file_name(const std::string& split, int64_t file);  // "train-00003.shard"

// One chunk as a JSON object (one line), and back (what: the file, for errors).
std::string shard_chunk_json(const ShardChunk& c);
ShardChunk shard_chunk_parse(const Json& j, const std::string& what);
// The whole index as JSON text, and back (fills everything but dir).
std::string shards_index_json(const ShardIndex& idx);
ShardIndex shards_index_parse(const Json& j, const std::string& what);
// The integer member key of object j (fails naming what and key when absent or not an integer).
int64_t json_int(const Json& j, const char* key, const std::string& what);
std::string json_str(const Json& j, const char* key, const std::string& what);

inline void le32_put(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
inline uint32_t le32_get(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
// size and channels asked of a pack: a short-side pack serves only the ones it was packed at (fails)
void shards_check_geometry(const ShardIndex& x, int64_t size, int channels);
uint32_t crc32_of(const uint8_t* p, size_t n);

}  // namespace nsvq
