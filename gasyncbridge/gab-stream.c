/* gab-stream.c: being written. */
#include "gab-private.h"
