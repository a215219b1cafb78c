/* gab-testing.c: the test harness (see gab-testing.h). */
#include "gab-private.h"
