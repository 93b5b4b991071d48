# temporary (lead): replaced by the gemm helper's version
set(NSVQ_GEMM_SOURCES ${CMAKE_CURRENT_LIST_DIR}/gemm.cpp ${CMAKE_CURRENT_LIST_DIR}/gemm_avx512.cpp ${CMAKE_CURRENT_LIST_DIR}/gemm_avx2.cpp)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gemm_avx512.cpp PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512vl;-mavx512bw;-mavx512dq;-mfma")
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gemm_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
function(nsvq_add_gemm_openblas_bench lib)
endfunction()
