#include "formats/formats.h"

rwkv_status pth_read(const char *path, tensor_set *set, rwkv_error *err) {
    (void)set;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: .pth reading is not built yet", path);
}
