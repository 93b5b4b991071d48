# cmake/aarch64-linux-gnu.cmake — CMake toolchain file for a 64-bit ARM (AArch64) Linux build with Debian's
# cross compiler (g++-aarch64-linux-gnu) and the arm64 -dev packages installed through multiarch
# (libzstd-dev:arm64, zlib1g-dev:arm64, libstb-dev:arm64); tools/cross-aarch64.sh uses it. Programs it
# builds run here under qemu-aarch64-static (the crosscompiling emulator, so ctest works too).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /usr/aarch64-linux-gnu)
# libraries and headers of the target only (multiarch: /usr/lib/aarch64-linux-gnu, /usr/include);
# programs (nvcc, pkg-config helpers) are never the target's
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
