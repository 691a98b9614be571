// Test main: fills the paths tests read from the environment (NFSF_SOURCE_DIR, NFSF_BIN,
// ...) with the build's defaults unless the caller set them, then runs GoogleTest.
#include <gtest/gtest.h>

#include <cstdlib>

int main(int argc, char** argv) {
  setenv("NFSF_SOURCE_DIR", NFSF_TEST_SOURCE_DIR, 0);
  setenv("NFSF_BUILD_DIR", NFSF_TEST_BUILD_DIR, 0);
  setenv("NFSF_SHARED_PCAPS", NFSF_TEST_SOURCE_DIR "/../shared/pcaps", 0);
  setenv("NFSF_BIN", NFSF_TEST_BIN, 0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
