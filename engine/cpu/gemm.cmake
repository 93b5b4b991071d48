# CMake snippet for the CPU SGEMM: the source list NSVQ_GEMM_SOURCES (the ISA kernel files of the target
# architecture, the x86 ones with their own instruction-set flags; everything else builds with the
# project's default flags, no -march=native), and nsvq_add_gemm_openblas_bench(target_lib) for the optional side-by-side OpenBLAS benchmark.
# Usage from the main CMakeLists.txt:
#   include(engine/cpu/gemm.cmake)
#   add_library(nsvq ... ${NSVQ_GEMM_SOURCES})   # needs OpenMP (-fopenmp) like the rest of the engine
#   nsvq_add_gemm_openblas_bench(nsvq)

# The micro-kernel files of each instruction set build only for their architecture (gemm.cpp dispatches
# with the same guards, engine/simd.h); any other 64-bit target gets the portable kernel of gemm.cpp.
set(NSVQ_GEMM_SOURCES ${CMAKE_CURRENT_LIST_DIR}/gemm.cpp)
if(NSVQ_ARCH_X86)
    list(APPEND NSVQ_GEMM_SOURCES ${CMAKE_CURRENT_LIST_DIR}/gemm_avx512.cpp ${CMAKE_CURRENT_LIST_DIR}/gemm_avx2.cpp)
    # Only these two files may contain AVX-512 / AVX2 code; gemm.cpp checks the CPU before calling them.
    set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gemm_avx512.cpp PROPERTIES
        COMPILE_OPTIONS "-mavx512f;-mavx512vl;-mavx512bw;-mavx512dq;-mfma")
    set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gemm_avx2.cpp PROPERTIES
        COMPILE_OPTIONS "-mavx2;-mfma")
elseif(NSVQ_ARCH_ARM64)
    list(APPEND NSVQ_GEMM_SOURCES ${CMAKE_CURRENT_LIST_DIR}/gemm_neon.cpp)  # NEON is baseline: no flags
endif()

set(NSVQ_GEMM_BENCH_SOURCE ${CMAKE_CURRENT_LIST_DIR}/../../tools/bench/gemm_openblas.cpp)

# Adds nsvq-bench-openblas (our sgemm vs cblas_sgemm) when OpenBLAS and its cblas.h are installed.
# OpenBLAS is a benchmark reference only and is never linked into the library itself.
function(nsvq_add_gemm_openblas_bench target_lib)
    if(NSVQ_STATIC)  # Debian's OpenBLAS links statically only with its Fortran and threading runtimes
        message(STATUS "nsvq: static build: nsvq-bench-openblas left out (it links the shared OpenBLAS)")
        return()
    endif()
    find_library(OPENBLAS openblas)
    find_path(OPENBLAS_CBLAS_INCLUDE_DIR cblas.h
              PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include
                    /usr/local/include/openblas /usr/local/include)
    if(NOT OPENBLAS OR NOT OPENBLAS_CBLAS_INCLUDE_DIR)
        message(STATUS "nsvq: OpenBLAS not found, skipping nsvq-bench-openblas")
        return()
    endif()
    find_package(OpenMP REQUIRED COMPONENTS CXX)
    add_executable(nsvq-bench-openblas ${NSVQ_GEMM_BENCH_SOURCE})
    target_include_directories(nsvq-bench-openblas PRIVATE ${OPENBLAS_CBLAS_INCLUDE_DIR})
    target_link_libraries(nsvq-bench-openblas PRIVATE ${target_lib} ${OPENBLAS} OpenMP::OpenMP_CXX)
    target_compile_features(nsvq-bench-openblas PRIVATE cxx_std_17)
    message(STATUS "nsvq: OpenBLAS benchmark nsvq-bench-openblas enabled (${OPENBLAS})")
endfunction()
