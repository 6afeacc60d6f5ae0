# hsmtls beside other PKCS#11 users in one process (issue 11), included from
# tests/CMakeLists.txt: GnuTLS's PKCS#11 (when its development files are installed) and
# libp11's engine, each on the same SoftHSM2 module as libhsmtls, and both with it
# (test_coexist_both, with GnuTLS too). tests/test_coexist.py runs them.
set(COEXIST_COMMON c/test_coexist_hsmtls.c c/check.c c/lib_check.c)
set(COEXIST_GNUTLS c/test_coexist_gnutls_pkcs11.c)
# libp11's engine is loaded at run time (ENGINE "dynamic"): only OpenSSL's ENGINE API here.
set(COEXIST_LIBP11 c/test_coexist_libp11_engine.c)

pkg_check_modules(GNUTLS IMPORTED_TARGET gnutls)
if(GNUTLS_FOUND)
  add_executable(test_coexist_gnutls c/test_coexist_gnutls.c ${COEXIST_GNUTLS} ${COEXIST_COMMON})
  target_link_libraries(test_coexist_gnutls PRIVATE hsmtls_lib_shared PkgConfig::GNUTLS)

  add_executable(test_coexist_both c/test_coexist_both.c ${COEXIST_GNUTLS} ${COEXIST_LIBP11} ${COEXIST_COMMON})
  target_compile_definitions(test_coexist_both PRIVATE OPENSSL_SUPPRESS_DEPRECATED)
  target_link_libraries(test_coexist_both PRIVATE hsmtls_lib_shared PkgConfig::GNUTLS OpenSSL::Crypto
                        ${CMAKE_DL_LIBS})
else()
  message(STATUS "GnuTLS development files not found (Debian: libgnutls28-dev): test_coexist_gnutls and "
                 "test_coexist_both are not built")
endif()

add_executable(test_coexist_libp11 c/test_coexist_libp11.c ${COEXIST_LIBP11} ${COEXIST_COMMON})
target_compile_definitions(test_coexist_libp11 PRIVATE OPENSSL_SUPPRESS_DEPRECATED)
target_link_libraries(test_coexist_libp11 PRIVATE hsmtls_lib_shared OpenSSL::Crypto ${CMAKE_DL_LIBS})
