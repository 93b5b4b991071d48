// train/atomic_file.cpp — write_file_atomic: temporary file, fsync, rename, fsync of the folder.
#include "train/atomic_file.h"
#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include "engine/tensor.h"

namespace nsvq {

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("%s: cannot create (%s)", tmp.c_str(), strerror(errno));
  const char* p = (const char*)data;
  size_t left = n;
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("%s: write failed (%s)", tmp.c_str(), strerror(errno));
    }
    p += w;
    left -= (size_t)w;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail("%s: cannot flush to disk (%s)", tmp.c_str(), strerror(errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("%s: cannot rename into place (%s)", path.c_str(), strerror(errno));
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // best effort: some file systems refuse a directory fsync
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace nsvq
