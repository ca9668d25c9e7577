#version 450
// softmax.comp — SOFTMAX over f32 rows: z = x * scale + mask (causal: -inf past r + N - R), then
// exp(z - max) / sum; a row whose every z is -inf gives zeros.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "rows.glsl"
layout(std430, binding = 0) writeonly buffer D { float d[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer M { float mask[]; };

float z_at(uint j, uvec4 i) {
    uint N = t_ne(T_SRC0, 0u), R = t_ne(T_SRC0, 1u);
    if (ipar(0) != 0 && int(j) > int(i.y) + int(N) - int(R)) return -1.0 / 0.0;
    float z = x[t_at(T_SRC0, j, i.y, i.z, i.w) >> 2] * fpar(0u);
    if (mode() == 1u) z += mask[t_at(T_SRC1, j, i.y, 0u, 0u) >> 2];
    return z;
}

void main() {
    uint r = row_id();
    if (r >= count()) return;
    uvec4 i = t_index(T_SRC0, r * t_ne(T_SRC0, 0u));
    uint N = t_ne(T_SRC0, 0u), l = gl_LocalInvocationID.x;
    float m = -1.0 / 0.0;
    for (uint j = l; j < N; j += 256u) m = max(m, z_at(j, i));
    m = wg_reduce(m, true);
    bool none = isinf(m) && m < 0.0;
    float s = 0.0;
    if (!none)
        for (uint j = l; j < N; j += 256u) s += exp(z_at(j, i) - m);
    s = wg_reduce(s, false);
    for (uint j = l; j < N; j += 256u)
        d[t_at(T_DST, j, i.y, i.z, i.w) >> 2] = none ? 0.0 : exp(z_at(j, i) - m) / s;
}
