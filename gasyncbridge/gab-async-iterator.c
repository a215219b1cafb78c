/* gab-async-iterator.c: being written. */
#include "gab-private.h"
