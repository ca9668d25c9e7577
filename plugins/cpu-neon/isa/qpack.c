/* qpack.c — weight_pack on cpu-neon: no packed layouts yet (its kernels unpack rows per tile), so every weight is declined. */
#include "../../common/cpu_backend.h"
#include "../../common/msg.h"

apr_status cpu_isa_weight_pack(cpu_backend *be, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t err_size) {
    (void)be;
    (void)out;
    return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "cpu-neon keeps weights in their own layout (dtype %u)", w->dtype);
}
