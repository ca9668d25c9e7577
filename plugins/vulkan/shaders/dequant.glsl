// dequant.glsl — an element of a row of ggml's block formats (apr_quant.h), read from binding 1 as
// apr_dequant_row defines it (the same float operations in the same order, never contracted).
// Block dtype codes (vk_kernels.c): 4 q4_0, 5 q4_1, 6 q5_0, 7 q5_1, 8 q8_0, 9 q4_K, 10 q5_K, 11 q6_K.
layout(std430, binding = 1) readonly buffer QB { uint16_t qb[]; };

uint qbyte(uint b) { return (uint(qb[b >> 1]) >> ((b & 1u) * 8u)) & 0xffu; }
float qf16(uint b) { return f16_bits_to_f32(uint(qb[b >> 1])); }
uint qu32(uint b) { return uint(qb[b >> 1]) | (uint(qb[(b >> 1) + 1u]) << 16); }
int qi8(uint b) { return int(qbyte(b) << 24) >> 24; }

// Elements per block and bytes per block of dtype code dt (>= 4).
uint q_elems(uint dt) { return dt >= 9u ? 256u : 32u; }

// The low nibble of byte i of a 16-byte nibble array for element e < 16, the high one for e >= 16.
uint q_nibble(uint qs, uint e) { return e < 16u ? qbyte(qs + e) & 15u : qbyte(qs + e - 16u) >> 4; }

void q_scale_min(uint sc_at, uint j, out uint sc, out uint m) {
    if (j < 4u) {
        sc = qbyte(sc_at + j) & 63u;
        m = qbyte(sc_at + j + 4u) & 63u;
    } else {
        sc = (qbyte(sc_at + j + 4u) & 15u) | ((qbyte(sc_at + j - 4u) >> 6) << 4);
        m = (qbyte(sc_at + j + 4u) >> 4) | ((qbyte(sc_at + j) >> 6) << 4);
    }
}

// Element e (0 .. block size - 1) of the block at byte bs.
float dq(uint dt, uint bs, uint e) {
    precise float x;
    if (dt == 4u) {
        x = float(int(q_nibble(bs + 2u, e)) - 8) * qf16(bs);
    } else if (dt == 5u) {
        x = float(q_nibble(bs + 4u, e)) * qf16(bs) + qf16(bs + 2u);
    } else if (dt == 6u) {
        uint q = q_nibble(bs + 6u, e) | (((qu32(bs + 2u) >> e) & 1u) << 4);
        x = float(int(q) - 16) * qf16(bs);
    } else if (dt == 7u) {
        uint q = q_nibble(bs + 8u, e) | (((qu32(bs + 4u) >> e) & 1u) << 4);
        x = float(q) * qf16(bs) + qf16(bs + 2u);
    } else if (dt == 8u) {
        x = float(qi8(bs + 2u + e)) * qf16(bs);
    } else if (dt == 9u || dt == 10u) {
        uint j = e / 32u, i = e % 32u, sc, m;
        q_scale_min(bs + 4u, j, sc, m);
        precise float ds = qf16(bs) * float(sc), dm = qf16(bs + 2u) * float(m);
        uint qs = dt == 9u ? bs + 16u : bs + 48u;
        uint q = (qbyte(qs + 32u * (j / 2u) + i) >> (4u * (j & 1u))) & 15u;
        if (dt == 10u) q |= ((qbyte(bs + 16u + i) >> j) & 1u) << 4;
        x = ds * float(q) - dm;
    } else {
        uint h = e / 128u, r = e % 128u, quarter = r / 32u, i = r % 32u;
        uint ql = bs + 64u * h, qh = bs + 128u + 32u * h, sc = bs + 192u + 8u * h;
        uint lo = (quarter & 1u) != 0u ? qbyte(ql + i + 32u) : qbyte(ql + i);
        lo = quarter >= 2u ? lo >> 4 : lo & 15u;
        uint q = lo | (((qbyte(qh + i) >> (2u * quarter)) & 3u) << 4);
        precise float dsc = qf16(bs + 208u) * float(qi8(sc + i / 16u + 2u * quarter));
        x = dsc * float(int(q) - 32);
    }
    return x;
}

// Element k of the row of tensor T_SRC0 (a block dtype) whose first block is at byte row_at.
float dq_row(uint dt, uint row_at, uint k) {
    uint qk = q_elems(dt);
    return dq(dt, row_at + (k / qk) * t_nb(T_SRC0, 0u), k % qk);
}

// The 32 values of unit u of a block-format row at byte row_at: unit u is elements 32u .. 32u + 31
// (a whole block of the 32-element formats, a sub-block of the K-quants). The scales are decoded
// once per unit; each value is the same float operations as dq's.
void dq_unit(uint dt, uint row_at, uint u, out float v[32]) {
    if (dt < 9u) {
        uint bs = row_at + u * t_nb(T_SRC0, 0u);
        float d = qf16(bs), m = dt == 5u || dt == 7u ? qf16(bs + 2u) : 0.0;
        uint qh = dt == 6u ? qu32(bs + 2u) : dt == 7u ? qu32(bs + 4u) : 0u;
        uint qs = dt == 4u ? bs + 2u : dt == 5u ? bs + 4u : dt == 6u ? bs + 6u : bs + 8u;
        for (uint e = 0u; e < 32u; e++) {
            precise float x;
            if (dt == 8u) x = float(qi8(bs + 2u + e)) * d;
            else {
                uint q = q_nibble(qs, e) | (dt == 6u || dt == 7u ? ((qh >> e) & 1u) << 4 : 0u);
                if (dt == 4u) x = float(int(q) - 8) * d;
                else if (dt == 6u) x = float(int(q) - 16) * d;
                else x = float(q) * d + m;
            }
            v[e] = x;
        }
        return;
    }
    uint bs = row_at + (u / 8u) * t_nb(T_SRC0, 0u), j = u % 8u;
    if (dt == 9u || dt == 10u) {
        uint sc, mn;
        q_scale_min(bs + 4u, j, sc, mn);
        precise float ds = qf16(bs) * float(sc), dm = qf16(bs + 2u) * float(mn);
        uint qs = (dt == 9u ? bs + 16u : bs + 48u) + 32u * (j / 2u), shift = 4u * (j & 1u);
        for (uint i = 0u; i < 32u; i++) {
            uint q = (qbyte(qs + i) >> shift) & 15u;
            if (dt == 10u) q |= ((qbyte(bs + 16u + i) >> j) & 1u) << 4;
            precise float x = ds * float(q) - dm;
            v[i] = x;
        }
        return;
    }
    uint h = j / 4u, quarter = j % 4u;
    uint ql = bs + 64u * h + ((quarter & 1u) != 0u ? 32u : 0u), qh = bs + 128u + 32u * h, sc = bs + 192u + 8u * h;
    float d = qf16(bs + 208u);
    for (uint i = 0u; i < 32u; i++) {
        uint lo = qbyte(ql + i);
        lo = quarter >= 2u ? lo >> 4 : lo & 15u;
        uint q = lo | (((qbyte(qh + i) >> (2u * quarter)) & 3u) << 4);
        precise float dsc = d * float(qi8(sc + i / 16u + 2u * quarter));
        precise float x = dsc * float(int(q) - 32);
        v[i] = x;
    }
}
