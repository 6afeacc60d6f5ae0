# hsmtls-bench-remote (bench/bench_remote.c, docs/performance-remote.md): TLS 1.3
# handshakes per second of a multi-threaded server whose key is on a token behind p11-kit's
# remoting, through the hsmtls provider (with and without lanes), a peer provider and the
# software key. Included from bench/CMakeLists.txt.
add_executable(hsmtls-bench-remote ${CMAKE_CURRENT_LIST_DIR}/bench_remote.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_server.c)
target_link_libraries(hsmtls-bench-remote PRIVATE OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
# The provider the hsmtls variants load unless --provider or HSMTLS_PROVIDER names another
# (this build's), and hsmtls-fault for --latency (this build's).
target_compile_definitions(hsmtls-bench-remote PRIVATE
  HSMTLS_BENCH_PROVIDER="$<TARGET_FILE:hsmtls_provider>"
  HSMTLS_BENCH_FAULT="$<TARGET_FILE:hsmtls_fault>")
add_dependencies(hsmtls-bench-remote hsmtls_provider hsmtls_fault)
