/* placeholder: replaced by the emulator's test support */
#include "tests/support/fakeplane_proc.h"
