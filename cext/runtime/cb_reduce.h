/* Element-wise reductions of the real collectives, shared by _reduce.pyx (called from Python)
 * and _steps.pyx (called inside the C step loops): d[i] = op(a[i], s[i]); d may alias a.
 * dtype codes: CB_F32 .. CB_F16 (collbench.runtime.context.DTYPE_CODES); ops: 0 sum, 1 prod,
 * 2 min, 3 max (avg is sum, then a scale). */
#ifndef CB_REDUCE_H
#define CB_REDUCE_H
#include <stddef.h>
#include <stdint.h>

#include <string.h>

enum { CB_F32 = 0, CB_F64 = 1, CB_I32 = 2, CB_I64 = 3, CB_I8 = 4, CB_U8 = 5, CB_F16 = 6,
       CB_BF16 = 7, CB_U32 = 8, CB_U64 = 9 };

#define CB_DEFINE_REDUCE(NAME, T)                                                        \
    static void NAME(T *d, const T *a, const T *s, ptrdiff_t n, int op) {                \
        ptrdiff_t i;                                                                     \
        switch (op) {                                                                    \
        case 0: for (i = 0; i < n; i++) d[i] = (T)(a[i] + s[i]); break;                  \
        case 1: for (i = 0; i < n; i++) d[i] = (T)(a[i] * s[i]); break;                  \
        case 2: for (i = 0; i < n; i++) d[i] = s[i] < a[i] ? s[i] : a[i]; break;         \
        default: for (i = 0; i < n; i++) d[i] = s[i] > a[i] ? s[i] : a[i]; break;        \
        }                                                                                \
    }

CB_DEFINE_REDUCE(cb_reduce_f32, float)
CB_DEFINE_REDUCE(cb_reduce_f64, double)
CB_DEFINE_REDUCE(cb_reduce_i32, int32_t)
CB_DEFINE_REDUCE(cb_reduce_i64, int64_t)
CB_DEFINE_REDUCE(cb_reduce_i8, int8_t)
CB_DEFINE_REDUCE(cb_reduce_u8, uint8_t)
CB_DEFINE_REDUCE(cb_reduce_f16, _Float16)
CB_DEFINE_REDUCE(cb_reduce_u32, uint32_t)
CB_DEFINE_REDUCE(cb_reduce_u64, uint64_t)

/* bfloat16 on its 16-bit storage: widen to float, reduce, round to nearest even */
static inline float cb_bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t cb_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static void cb_reduce_bf16(uint16_t *d, const uint16_t *a, const uint16_t *s, ptrdiff_t n,
                           int op) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) {
        float x = cb_bf2f(a[i]), y = cb_bf2f(s[i]), r;
        switch (op) {
        case 0: r = x + y; break;
        case 1: r = x * y; break;
        case 2: r = y < x ? y : x; break;
        default: r = y > x ? y : x; break;
        }
        d[i] = cb_f2bf(r);
    }
}
static void cb_scale_bf16(void *dst_, ptrdiff_t n, double f) {
    uint16_t *d = (uint16_t *)dst_;
    ptrdiff_t i;
    for (i = 0; i < n; i++) d[i] = cb_f2bf((float)((double)cb_bf2f(d[i]) / f));
}

static const int cb_itemsize[10] = {4, 8, 4, 8, 1, 1, 2, 2, 4, 8};

static void cb_reduce(void *d, const void *a, const void *s, ptrdiff_t n, int dt, int op) {
    switch (dt) {
    case CB_F32: cb_reduce_f32(d, a, s, n, op); break;
    case CB_F64: cb_reduce_f64(d, a, s, n, op); break;
    case CB_I32: cb_reduce_i32(d, a, s, n, op); break;
    case CB_I64: cb_reduce_i64(d, a, s, n, op); break;
    case CB_I8: cb_reduce_i8(d, a, s, n, op); break;
    case CB_U8: cb_reduce_u8(d, a, s, n, op); break;
    case CB_BF16: cb_reduce_bf16(d, a, s, n, op); break;
    case CB_U32: cb_reduce_u32(d, a, s, n, op); break;
    case CB_U64: cb_reduce_u64(d, a, s, n, op); break;
    default: cb_reduce_f16(d, a, s, n, op); break;
    }
}

static void cb_scale_f16(void *dst_, ptrdiff_t n, double f) {
    _Float16 *d = (_Float16 *)dst_;
    ptrdiff_t i;
    for (i = 0; i < n; i++) d[i] = (_Float16)((float)d[i] / (float)f);
}
#endif
