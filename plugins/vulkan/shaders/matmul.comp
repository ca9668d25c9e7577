#version 450
// matmul.comp — MATMUL with an f32, f16, bf16 or block-format weight (dequantized 32 elements at a time): 8 outputs per workgroup, 32 threads each
// striding over K, summed in shared memory.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer D { float d[]; };
layout(std430, binding = 1) readonly buffer WF { float wf[]; };
#include "dequant.glsl"
layout(std430, binding = 2) readonly buffer X { float x[]; };
shared float part[256];

void main() {
    uint l = gl_LocalInvocationID.x, lane = l & 31u;
    uint o = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * 8u + (l >> 5);
    bool live = o < count();
    uvec4 i = t_index(T_DST, live ? o : 0u);   // (n, m, b2, b3)
    uint K = t_ne(T_SRC0, 0u), wd = t_dtype(T_SRC0);
    uint w2 = i.z / (t_ne(T_DST, 2u) / t_ne(T_SRC0, 2u)), w3 = i.w / (t_ne(T_DST, 3u) / t_ne(T_SRC0, 3u));
    float s = 0.0;
    if (live && wd >= 4u) {
        // each lane takes whole 32-element units, decoding their scales once
        uint row = t_at(T_SRC0, 0u, i.x, w2, w3);
        float v[32];
        for (uint u = lane; u < K / 32u; u += 32u) {
            dq_unit(wd, row, u, v);
            for (uint e = 0u; e < 32u; e++) s += v[e] * x[t_at(T_SRC1, 32u * u + e, i.y, i.z, i.w) >> 2];
        }
    } else if (live) {
        for (uint k = lane; k < K; k += 32u)
            s += LOAD_F(wf, qb, wd, t_at(T_SRC0, k, i.x, w2, w3)) * x[t_at(T_SRC1, k, i.y, i.z, i.w) >> 2];
    }
    part[l] = s;
    barrier();
    for (uint h = 16u; h > 0u; h >>= 1) {
        if (lane < h) part[l] += part[l + h];
        barrier();
    }
    if (live && lane == 0u) d[t_at(T_DST, i.x, i.y, i.z, i.w) >> 2] = part[l];
}
