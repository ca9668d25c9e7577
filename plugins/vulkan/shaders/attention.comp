#version 450
// attention.comp — ATTENTION: one workgroup per (query t, head h), keys in chunks of 256 with an
// online softmax; a key whose mask is -inf (or past the causal limit) is never read.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "rows.glsl"
layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KF { float kf[]; };
layout(std430, binding = 2) readonly buffer KH { uint16_t kh[]; };
layout(std430, binding = 3) readonly buffer VF { float vf[]; };
layout(std430, binding = 3) readonly buffer VH { uint16_t vh[]; };
layout(std430, binding = 4) readonly buffer M { float mask[]; };
shared float qs[256];
shared float ps[256];

void main() {
    uint r = row_id();
    if (r >= count()) return;
    uint T = t_ne(T_SRC0, 1u), H = t_ne(T_SRC0, 2u), t = r % T, h = r / T;
    uint D = t_ne(T_SRC0, 0u), Dv = t_ne(T_SRC2, 0u), S = t_ne(T_SRC1, 1u), hk = h / (H / t_ne(T_SRC1, 2u));
    uint l = gl_LocalInvocationID.x, kd = t_dtype(T_SRC1), vd = t_dtype(T_SRC2);
    bool has_mask = mode() == 1u, causal = ipar(0) != 0;
    float scale = fpar(0u);
    uint limit = causal ? uint(clamp(int(t) + int(S) - int(T) + 1, 0, int(S))) : S;  // keys s < limit are visible
    if (l < D) qs[l] = q[t_at(T_SRC0, l, t, h, 0u) >> 2];
    barrier();
    float m = -1.0 / 0.0, lsum = 0.0;
    float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);  // dims l, l + 256, ... (Dv <= 1024)
    for (uint c = 0u; c < limit; c += 256u) {
        uint s = c + l;
        float score = -1.0 / 0.0;
        if (s < limit) {
            float mk = has_mask ? mask[t_at(T_SRC3, s, t, 0u, 0u) >> 2] : 0.0;
            if (!isinf(mk) || mk > 0.0) {
                float dot = 0.0;
                for (uint e = 0u; e < D; e++) dot += qs[e] * LOAD_F(kf, kh, kd, t_at(T_SRC1, e, s, hk, 0u));
                score = dot * scale + mk;
            }
        }
        float cmax = wg_reduce(score, true);
        float nm = max(m, cmax);
        if (isinf(nm) && nm < 0.0) continue;  // nothing visible yet
        float p = isinf(score) && score < 0.0 ? 0.0 : exp(score - nm);
        ps[l] = p;
        float psum = wg_reduce(p, false);     // its barriers also publish ps
        float corr = isinf(m) && m < 0.0 ? 0.0 : exp(m - nm);
        lsum = lsum * corr + psum;
        uint n = min(256u, limit - c);
        for (uint j = 0u; j < 4u; j++) {
            uint e = l + 256u * j;
            if (e >= Dv) break;
            float a = acc[j] * corr;
            for (uint z = 0u; z < n; z++)
                if (ps[z] != 0.0) a += ps[z] * LOAD_F(vf, vh, vd, t_at(T_SRC2, e, c + z, hk, 0u));
            acc[j] = a;
        }
        m = nm;
        barrier();
    }
    for (uint j = 0u; j < 4u; j++) {
        uint e = l + 256u * j;
        if (e < Dv) o[t_at(T_DST, e, h, t, 0u) >> 2] = lsum > 0.0 ? acc[j] / lsum : 0.0;
    }
}
