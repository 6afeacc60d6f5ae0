# libhsmtls's DTLS API tests, included from tests/CMakeLists.txt.
add_executable(test_dtls c/test_dtls.c c/test_dtls_sessions.c c/dtls_check.c c/check.c)
target_link_libraries(test_dtls PRIVATE hsmtls_lib_shared OpenSSL::SSL OpenSSL::Crypto)
