# hsmtls_token_signatures's C test, included from tests/CMakeLists.txt.
add_executable(test_lib_token c/test_lib_token.c c/check.c c/lib_check.c)
target_link_libraries(test_lib_token PRIVATE hsmtls_lib_shared OpenSSL::SSL OpenSSL::Crypto PkgConfig::P11KIT ${CMAKE_DL_LIBS})
