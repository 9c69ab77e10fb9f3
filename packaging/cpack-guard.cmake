# Read by cpack (CPACK_PROJECT_CONFIG_FILE) before it packages anything:
# refuse test and sanitizer builds (packaging/CMakeLists.txt sets the reason).
if(CPACK_MC_REFUSE)
  message(FATAL_ERROR "multicad: refusing to package: ${CPACK_MC_REFUSE}. "
          "Use `make package` (a RelWithDebInfo build with -DMC_TEST_HOOKS=OFF).")
endif()
