/* gab-channel.c: being written. */
#include "gab-private.h"
