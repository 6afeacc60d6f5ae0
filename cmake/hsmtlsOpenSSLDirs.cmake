# Where the provider and the engine are installed by default: OpenSSL's own modules and
# engines directories when they lie under the install prefix (so a Debian build with
# -DCMAKE_INSTALL_PREFIX=/usr puts them where `openssl -provider hsmtls` and
# `-engine hsmtls` look), else LIBDIR/ossl-modules and LIBDIR/engines-3 under the prefix,
# so an install never writes outside its prefix. The directories come from libcrypto.pc.

# hsmtls_openssl_dir(OUT pc_variable fallback): OUT is relative to the install prefix,
# except when libcrypto's directory is outside it (then OUT = fallback, also relative).
function(hsmtls_openssl_dir out pc_variable fallback)
  set(result "${fallback}")
  pkg_get_variable(system_dir libcrypto ${pc_variable})
  if(system_dir)
    file(RELATIVE_PATH rel "${CMAKE_INSTALL_PREFIX}" "${system_dir}")
    if(rel AND NOT IS_ABSOLUTE "${rel}" AND NOT rel MATCHES "^\\.\\.(/|$)")
      set(result "${rel}")
    endif()
  endif()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

# hsmtls_install_dir(OUT_DIR OUT_PATH cache_value default file): the directory to give
# install() (cache_value when set, else default) and the absolute path the installed
# file will have, for code that must find it at run time.
function(hsmtls_install_dir out_dir out_path cache_value default file)
  if(cache_value)
    set(dir "${cache_value}")
  else()
    set(dir "${default}")
  endif()
  if(IS_ABSOLUTE "${dir}")
    set(path "${dir}/${file}")
  else()
    set(path "${CMAKE_INSTALL_PREFIX}/${dir}/${file}")
  endif()
  string(REGEX REPLACE "/+" "/" path "${path}")
  set(${out_dir} "${dir}" PARENT_SCOPE)
  set(${out_path} "${path}" PARENT_SCOPE)
endfunction()
