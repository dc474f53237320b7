# The C package: libffnc as a shared library beside the static one, and what `cmake --install`
# places for C projects: lib/libffnc.so and lib/libffnc.a, include/ffnc.h, and
# lib/cmake/ffnc/ffncConfig.cmake with the imported targets ffnc::ffnc (shared) and
# ffnc::ffnc_static, so a project writes find_package(ffnc) and
# target_link_libraries(app ffnc::ffnc). Wheel builds (scikit-build-core) need neither: the
# extension links the static library and the wheel holds only the Python package.
if(SKBUILD)
  set(FFNC_C_PACKAGE_DEFAULT OFF)
else()
  set(FFNC_C_PACKAGE_DEFAULT ON)
endif()
option(FFNC_BUILD_SHARED "Build libffnc.so" ${FFNC_C_PACKAGE_DEFAULT})
option(FFNC_INSTALL_C_PACKAGE "cmake --install installs libffnc, ffnc.h and the CMake package"
  ${FFNC_C_PACKAGE_DEFAULT})

if(FFNC_BUILD_SHARED)
  add_library(ffnc_shared SHARED $<TARGET_OBJECTS:ffnc_core> ${FFNC_ISA_OBJECTS})
  target_include_directories(ffnc_shared
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/csrc/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  # OpenMP and libm are the library's own business: a program that links libffnc.so needs
  # neither their flags nor their libraries (they are DT_NEEDED of libffnc.so).
  target_link_libraries(ffnc_shared PRIVATE OpenMP::OpenMP_C m)
  set_target_properties(ffnc_shared PROPERTIES
    OUTPUT_NAME ffnc EXPORT_NAME ffnc
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})

  # Export exactly the functions ffnc.h declares; the kernels of each ISA path and the
  # internal helpers stay local. The list is read from the header at configure time.
  if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang" AND NOT APPLE AND NOT WIN32)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
      ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/ffnc.h)
    file(READ ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/ffnc.h ffnc_header)
    string(REGEX MATCHALL "ffnc_[a-z0-9_]+\\(" ffnc_calls "${ffnc_header}")
    list(TRANSFORM ffnc_calls REPLACE "\\($" "")
    list(REMOVE_DUPLICATES ffnc_calls)
    list(JOIN ffnc_calls "; " ffnc_exports)
    set(ffnc_version_script ${CMAKE_CURRENT_BINARY_DIR}/ffnc.map)
    file(WRITE ${ffnc_version_script}.in "{\n  global: ${ffnc_exports};\n  local: *;\n};\n")
    configure_file(${ffnc_version_script}.in ${ffnc_version_script} COPYONLY)
    target_link_options(ffnc_shared PRIVATE "LINKER:--version-script=${ffnc_version_script}")
    set_property(TARGET ffnc_shared APPEND PROPERTY LINK_DEPENDS ${ffnc_version_script})
  endif()
endif()

if(FFNC_INSTALL_C_PACKAGE)
  include(CMakePackageConfigHelpers)
  set(ffnc_install_targets ffnc_static)
  if(FFNC_BUILD_SHARED)
    list(APPEND ffnc_install_targets ffnc_shared)
  endif()
  install(TARGETS ${ffnc_install_targets} EXPORT ffncTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/ffnc.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  set(ffnc_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/ffnc)
  install(EXPORT ffncTargets NAMESPACE ffnc:: DESTINATION ${ffnc_cmake_dir})
  configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/ffncConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/ffncConfig.cmake INSTALL_DESTINATION ${ffnc_cmake_dir})
  # 0.x: a new minor version may change the API
  write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ffncConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ffncConfig.cmake
    ${CMAKE_CURRENT_BINARY_DIR}/ffncConfigVersion.cmake DESTINATION ${ffnc_cmake_dir})
endif()
