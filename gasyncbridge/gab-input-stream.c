/* gab-input-stream.c: being written. */
#include "gab-private.h"
