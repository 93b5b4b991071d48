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
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("%s: cannot create (%s)", tmp.c_str(), strerror(errno));
  auto give_up = [&](const char* what) {  // a full disk or an I/O error: no partial file stays behind
    const int e = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    fail("%s: %s (%s); the previous file, if any, is unchanged", path.c_str(), what, strerror(e));
  };
  const char* p = (const char*)data;
  size_t left = n;
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      give_up("write failed");
    }
    p += w;
    left -= (size_t)w;
  }
  if (::fsync(fd) != 0) give_up("cannot flush to disk");
  const int c = ::close(fd);
  fd = -1;
  if (c != 0) give_up("cannot flush to disk");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) give_up("cannot rename into place");
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // best effort: some file systems refuse a directory fsync
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace nsvq
