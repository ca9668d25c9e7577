#version 450
// rope.comp — ROPE on f32 x [D, H, T]: one thread per rotated pair or copied element.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer D { float d[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Pos { int pos[]; };
layout(std430, binding = 3) readonly buffer FF { float ff[]; };

// theta reduced to [-pi, pi] (two-part 2*pi), where sin and cos are accurate on every driver.
float reduce_angle(float t) {
    float k = floor(t * 0.15915494309189535 + 0.5);
    return (t - k * 6.28318548202514648) + k * 1.7484556000744883e-7;
}

void main() {
    // per row (h, t): thread p < n_rot/2 rotates pair p; n_rot/2 <= p < n_rot/2 + (D - n_rot) copies one element
    uint k = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (k >= count()) return;
    uint D = t_ne(T_SRC0, 0u), n_rot = uint(ipar(0)), per_row = n_rot / 2u + (D - n_rot);
    uint p = k % per_row, row = k / per_row, h = row % t_ne(T_SRC0, 1u), t = row / t_ne(T_SRC0, 1u);
    if (p >= n_rot / 2u) {
        uint e = n_rot + (p - n_rot / 2u);
        d[t_at(T_DST, e, h, t, 0u) >> 2] = x[t_at(T_SRC0, e, h, t, 0u) >> 2];
        return;
    }
    uint ia = ipar(1) == 0 ? 2u * p : p, ib = ipar(1) == 0 ? 2u * p + 1u : p + n_rot / 2u;
    // the host wrote scale * base^(-2p/n_rot), computed in double, after the param block
    float inv = uintBitsToFloat(P[pc.base + P_EXTRA + p]);
    if (mode() == 1u) inv /= ff[t_at(T_SRC2, p, 0u, 0u, 0u) >> 2];
    float theta = reduce_angle(float(pos[t_at(T_SRC1, t, 0u, 0u, 0u) >> 2]) * inv);
    float c = cos(theta), s = sin(theta);
    float a = x[t_at(T_SRC0, ia, h, t, 0u) >> 2], b = x[t_at(T_SRC0, ib, h, t, 0u) >> 2];
    d[t_at(T_DST, ia, h, t, 0u) >> 2] = a * c - b * s;
    d[t_at(T_DST, ib, h, t, 0u) >> 2] = a * s + b * c;
}
