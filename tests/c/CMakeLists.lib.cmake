# libhsmtls's C API tests, included from tests/CMakeLists.txt.
foreach(name test_lib_config test_lib_conn test_lib_cert test_lib_more test_lib_peer test_lib_binding
    test_lib_cache)
  add_executable(${name} c/${name}.c c/check.c c/lib_check.c)
  target_link_libraries(${name} PRIVATE hsmtls_lib_shared OpenSSL::SSL OpenSSL::Crypto)
endforeach()
