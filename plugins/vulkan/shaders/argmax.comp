#version 450
// argmax.comp — ARGMAX of f32 rows: the index of the largest element, the lowest on ties, NaN
// ignored (an all-NaN row gives 0).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer D { int d[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
shared float bv[256];
shared int bi[256];

// Whether (v, i) beats (w, j): NaN and "none" (index -1) lose; larger wins; lower index on ties.
bool beats(float v, int i, float w, int j) {
    if (i < 0) return false;
    if (j < 0) return true;
    return v > w || (v == w && i < j);
}

void main() {
    uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (r >= count()) return;
    uvec4 i = t_index(T_SRC0, r * t_ne(T_SRC0, 0u));
    uint N = t_ne(T_SRC0, 0u), l = gl_LocalInvocationID.x;
    float best = 0.0;
    int at = -1;
    for (uint j = l; j < N; j += 256u) {
        float v = x[t_at(T_SRC0, j, i.y, i.z, i.w) >> 2];
        if (!isnan(v) && beats(v, int(j), best, at)) { best = v; at = int(j); }
    }
    bv[l] = best;
    bi[l] = at;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (l < s && beats(bv[l + s], bi[l + s], bv[l], bi[l])) { bv[l] = bv[l + s]; bi[l] = bi[l + s]; }
        barrier();
    }
    if (l == 0u) d[t_at(T_DST, i.y, i.z, i.w, 0u) >> 2] = max(bi[0], 0);
}
