#version 450
// rms_norm.comp — RMS_NORM over f32 rows: dst = x / sqrt(mean(x^2) + eps).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "rows.glsl"
layout(std430, binding = 0) writeonly buffer D { float d[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };

void main() {
    uint r = row_id();
    if (r >= count()) return;
    uvec4 i = t_index(T_SRC0, r * t_ne(T_SRC0, 0u));
    uint n = t_ne(T_SRC0, 0u), l = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint k = l; k < n; k += 256u) {
        float v = x[t_at(T_SRC0, k, i.y, i.z, i.w) >> 2];
        s += v * v;
    }
    s = wg_reduce(s, false);
    float inv = 1.0 / sqrt(s / float(n) + fpar(0u));
    for (uint k = l; k < n; k += 256u) d[t_at(T_DST, k, i.y, i.z, i.w) >> 2] = x[t_at(T_SRC0, k, i.y, i.z, i.w) >> 2] * inv;
}
