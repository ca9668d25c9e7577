#version 450
// ids_check.comp — runs before GET_ROWS and SET_ROWS: any id outside [0, rows of src0) marks the
// node failed in the status buffer, so the kernel after it writes nothing and the host reports it.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 2) readonly buffer Ids1 { int ids1[]; };
layout(std430, binding = 3) readonly buffer Ids2 { int ids2[]; };

void main() {
    uint t = P[pc.base + P_IDS], n = t_ne(t, 0u), rows = t_ne(T_SRC0, 1u);
    for (uint k = gl_LocalInvocationID.x; k < n; k += 256u) {
        uint at = t_at(t, k, 0u, 0u, 0u) >> 2;
        int id = t == T_SRC1 ? ids1[at] : ids2[at];
        if (id < 0 || uint(id) >= rows) status[0] = P[pc.base + P_NODE];
    }
}
