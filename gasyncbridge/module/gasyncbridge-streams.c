/* gasyncbridge-streams.c: being written. */
#include "gasyncbridge-module.h"

int
gab_module_streams_init (PyObject *module,
                         PyObject *gio)
{
  return 0;
}
