#version 450
// concat.comp — CONCAT of two tensors of one dtype along iparams[0]: bits moved as they are.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DI { uint di[]; };
layout(std430, binding = 0) writeonly buffer DH { uint16_t dh[]; };
layout(std430, binding = 1) readonly buffer AI { uint ai[]; };
layout(std430, binding = 1) readonly buffer AH { uint16_t ah[]; };
layout(std430, binding = 2) readonly buffer BI { uint bi[]; };
layout(std430, binding = 2) readonly buffer BH { uint16_t bh[]; };

void main() {
    uint k = linear_id();
    if (k >= count()) return;
    uvec4 i = t_index(T_DST, k);
    uint dim = uint(ipar(0)), na = t_ne(T_SRC0, dim);
    bool from_b = i[dim] >= na;
    uvec4 j = i;
    if (from_b) j[dim] -= na;
    uint to = t_at(T_DST, i.x, i.y, i.z, i.w), dt = t_dtype(T_DST);
    uint from = t_at(from_b ? T_SRC1 : T_SRC0, j.x, j.y, j.z, j.w);
    if (dt == DT_F16 || dt == DT_BF16) dh[to >> 1] = from_b ? bh[from >> 1] : ah[from >> 1];
    else di[to >> 2] = from_b ? bi[from >> 2] : ai[from >> 2];
}
