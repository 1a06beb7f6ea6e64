#include "formats/formats.h"

rwkv_status rwkvcpp_read(const char *path, tensor_set *set, rwkv_error *err) {
    (void)set;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: rwkv.cpp reading is not built yet", path);
}
