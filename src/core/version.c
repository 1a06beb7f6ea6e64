/* The library's version string, so that programs loading librwkv at run time
 * (the Python package, plugins) can check which build they got. */
#include "rwkv.h"

const char *rwkv_version(void) { return RWKV_VERSION; }
