# hsmtls beside other PKCS#11 users in one process (issue 11), included from
# tests/CMakeLists.txt: GnuTLS's PKCS#11 (when its development files are installed) and
# libp11's engine, each on the same SoftHSM2 module as libhsmtls. tests/test_coexist.py
# runs them.
pkg_check_modules(GNUTLS IMPORTED_TARGET gnutls)
if(GNUTLS_FOUND)
  add_executable(test_coexist_gnutls c/test_coexist_gnutls.c c/test_coexist_hsmtls.c c/check.c c/lib_check.c)
  target_link_libraries(test_coexist_gnutls PRIVATE hsmtls_lib_shared PkgConfig::GNUTLS)
else()
  message(STATUS "GnuTLS development files not found (Debian: libgnutls28-dev): test_coexist_gnutls is not built")
endif()

# libp11's engine is loaded at run time (ENGINE "dynamic"): only OpenSSL's ENGINE API here.
add_executable(test_coexist_libp11 c/test_coexist_libp11.c c/test_coexist_hsmtls.c c/check.c c/lib_check.c)
target_compile_definitions(test_coexist_libp11 PRIVATE OPENSSL_SUPPRESS_DEPRECATED)
target_link_libraries(test_coexist_libp11 PRIVATE hsmtls_lib_shared OpenSSL::Crypto ${CMAKE_DL_LIBS})
