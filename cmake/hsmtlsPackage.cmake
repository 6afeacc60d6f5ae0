# The CMake package (find_package(hsmtls)) and a note when `cmake --install --prefix`
# moves the install away from the prefix the library was configured for.
include(CMakePackageConfigHelpers)

set(HSMTLS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hsmtls)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/hsmtlsConfig.cmake.in
  ${CMAKE_BINARY_DIR}/hsmtlsConfig.cmake
  INSTALL_DESTINATION ${HSMTLS_CMAKE_DIR})
# 0.x releases promise nothing to each other; from 1.0 the major version is the ABI.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(compat SameMinorVersion)
else()
  set(compat SameMajorVersion)
endif()
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hsmtlsConfigVersion.cmake
  COMPATIBILITY ${compat})
install(EXPORT hsmtlsTargets NAMESPACE hsmtls:: DESTINATION ${HSMTLS_CMAKE_DIR})
install(FILES ${CMAKE_BINARY_DIR}/hsmtlsConfig.cmake ${CMAKE_BINARY_DIR}/hsmtlsConfigVersion.cmake
  DESTINATION ${HSMTLS_CMAKE_DIR})

# The library and engine find the provider by the path compiled in at configure time;
# `cmake --install --prefix OTHER` cannot change it, so say so instead of failing later.
install(CODE "
  if(NOT \"\${CMAKE_INSTALL_PREFIX}\" STREQUAL \"${CMAKE_INSTALL_PREFIX}\")
    message(WARNING \"hsmtls was configured for the prefix ${CMAKE_INSTALL_PREFIX}: installed \"
      \"under \${CMAKE_INSTALL_PREFIX}, libhsmtls and the engine still look for the provider at \"
      \"${HSMTLS_PROVIDER_INSTALL_PATH} (set HSMTLS_PROVIDER, or configure with \"
      \"-DCMAKE_INSTALL_PREFIX=\${CMAKE_INSTALL_PREFIX})\")
  endif()")
