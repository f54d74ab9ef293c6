/* Reference implementation of the chargeport MCU link v1: see mculink.h and docs/mcu-link.md. */
#include "mculink.h"

#include <string.h>

enum { HELLO = 0x01, HELLO_ACK = 0x02, DATA = 0x03, PROVISION = 0x04, PROVISION_ACK = 0x05 };
#define TAG 16
#define MIN_FRAME 7 /* header 2, one body byte, CRC 4 */

static const char INFO[] = "chargeport mculink v1 session";

/* ------------------------------------------------------------------ byte order */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v) {
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

/* ------------------------------------------------------------------ CRC-32 (IEEE 802.3) */

uint32_t ml_crc32(const uint8_t *data, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------ COBS */

size_t ml_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
                if (i + 1 == len) return o - 1; /* a full block ends the data: no empty block */
            }
        }
    }
    out[code_at] = code;
    return o;
}

long ml_cobs_decode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i++];
        if (code == 0 || i + code - 1 > len) return -1;
        for (int k = 1; k < code; k++) {
            if (in[i] == 0) return -1;
            out[o++] = in[i++];
        }
        if (code < 0xFF && i < len) out[o++] = 0;
    }
    return (long)o;
}

/* ------------------------------------------------------------------ SHA-256, HMAC, HKDF */

typedef struct {
    uint32_t h[8];
    uint8_t block[64];
    size_t fill;
    uint64_t total;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *s, const uint8_t *p) {
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t e = v[4], a = v[0];
        uint32_t t1 = v[7] + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & v[5]) ^ (~e & v[6])) +
                      K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) s->h[i] += v[i];
}

static void sha256_init(sha256_ctx *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->fill = 0;
    s->total = 0;
}

static void sha256_update(sha256_ctx *s, const uint8_t *p, size_t len) {
    s->total += len;
    while (len--) {
        s->block[s->fill++] = *p++;
        if (s->fill == 64) {
            sha256_block(s, s->block);
            s->fill = 0;
        }
    }
}

static void sha256_final(sha256_ctx *s, uint8_t out[32]) {
    uint64_t bits = s->total * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(s, &pad, 1);
    while (s->fill != 56) sha256_update(s, &zero, 1);
    put_be64(len, bits);
    sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) put_be32(out + 4 * i, s->h[i]);
}

static void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                        const uint8_t *b, size_t b_len, uint8_t out[32]) {
    uint8_t k[64] = {0}, pad[64], inner[32];
    sha256_ctx s;
    if (key_len > 64) {
        sha256_init(&s);
        sha256_update(&s, key, key_len);
        sha256_final(&s, k);
    } else {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, a, a_len);
    sha256_update(&s, b, b_len);
    sha256_final(&s, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, inner, 32);
    sha256_final(&s, out);
}

void ml_hkdf_sha256_32(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                       const uint8_t *info, size_t info_len, uint8_t out[32]) {
    uint8_t prk[32], one = 0x01;
    hmac_sha256(salt, salt_len, ikm, ikm_len, NULL, 0, prk);   /* extract */
    hmac_sha256(prk, 32, info, info_len, &one, 1, out);        /* expand: T(1) */
}

/* ------------------------------------------------------------------ ChaCha20-Poly1305 */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QR(a, b, c, d)                                                                        \
    a += b, d ^= a, d = ROL(d, 16), c += d, b ^= c, b = ROL(b, 12), a += b, d ^= a,         \
        d = ROL(d, 8), c += d, b ^= c, b = ROL(b, 7)

static void chacha20_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12],
                           uint8_t out[64]) {
    uint32_t s[16], x[16];
    s[0] = 0x61707865, s[1] = 0x3320646e, s[2] = 0x79622d32, s[3] = 0x6b206574;
    for (int i = 0; i < 8; i++) s[4 + i] = le32(key + 4 * i);
    s[12] = counter;
    for (int i = 0; i < 3; i++) s[13 + i] = le32(nonce + 4 * i);
    memcpy(x, s, sizeof x);
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) put_le32(out + 4 * i, x[i] + s[i]);
}

static void chacha20_xor(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12],
                         const uint8_t *in, size_t len, uint8_t *out) {
    uint8_t ks[64];
    for (size_t i = 0; i < len; i += 64) {
        chacha20_block(key, counter++, nonce, ks);
        for (size_t k = 0; k < 64 && i + k < len; k++) out[i + k] = in[i + k] ^ ks[k];
    }
}

/* Poly1305 with 26-bit limbs (after poly1305-donna, public domain). */
typedef struct {
    uint32_t r[5], h[5], pad[4];
} poly1305_ctx;

static void poly1305_init(poly1305_ctx *p, const uint8_t key[32]) {
    p->r[0] = le32(key + 0) & 0x3ffffff;
    p->r[1] = (le32(key + 3) >> 2) & 0x3ffff03;
    p->r[2] = (le32(key + 6) >> 4) & 0x3ffc0ff;
    p->r[3] = (le32(key + 9) >> 6) & 0x3f03fff;
    p->r[4] = (le32(key + 12) >> 8) & 0x00fffff;
    memset(p->h, 0, sizeof p->h);
    for (int i = 0; i < 4; i++) p->pad[i] = le32(key + 16 + 4 * i);
}

/* One 16-byte block; `len` < 16 only for the last block of a message (padded with 0x01). */
static void poly1305_block(poly1305_ctx *p, const uint8_t *m, size_t len) {
    uint8_t b[17] = {0};
    uint32_t hibit = 1u << 24;
    const uint32_t *r = p->r;
    uint32_t *h = p->h;
    uint32_t s1 = r[1] * 5, s2 = r[2] * 5, s3 = r[3] * 5, s4 = r[4] * 5;
    memcpy(b, m, len);
    if (len < 16) {
        b[len] = 1;
        hibit = 0;
    }
    h[0] += le32(b + 0) & 0x3ffffff;
    h[1] += (le32(b + 3) >> 2) & 0x3ffffff;
    h[2] += (le32(b + 6) >> 4) & 0x3ffffff;
    h[3] += (le32(b + 9) >> 6) & 0x3ffffff;
    h[4] += (le32(b + 12) >> 8) | hibit;
    uint64_t d0 = (uint64_t)h[0] * r[0] + (uint64_t)h[1] * s4 + (uint64_t)h[2] * s3 +
                  (uint64_t)h[3] * s2 + (uint64_t)h[4] * s1;
    uint64_t d1 = (uint64_t)h[0] * r[1] + (uint64_t)h[1] * r[0] + (uint64_t)h[2] * s4 +
                  (uint64_t)h[3] * s3 + (uint64_t)h[4] * s2;
    uint64_t d2 = (uint64_t)h[0] * r[2] + (uint64_t)h[1] * r[1] + (uint64_t)h[2] * r[0] +
                  (uint64_t)h[3] * s4 + (uint64_t)h[4] * s3;
    uint64_t d3 = (uint64_t)h[0] * r[3] + (uint64_t)h[1] * r[2] + (uint64_t)h[2] * r[1] +
                  (uint64_t)h[3] * r[0] + (uint64_t)h[4] * s4;
    uint64_t d4 = (uint64_t)h[0] * r[4] + (uint64_t)h[1] * r[3] + (uint64_t)h[2] * r[2] +
                  (uint64_t)h[3] * r[1] + (uint64_t)h[4] * r[0];
    uint32_t c = (uint32_t)(d0 >> 26);
    h[0] = (uint32_t)d0 & 0x3ffffff;
    d1 += c, c = (uint32_t)(d1 >> 26), h[1] = (uint32_t)d1 & 0x3ffffff;
    d2 += c, c = (uint32_t)(d2 >> 26), h[2] = (uint32_t)d2 & 0x3ffffff;
    d3 += c, c = (uint32_t)(d3 >> 26), h[3] = (uint32_t)d3 & 0x3ffffff;
    d4 += c, c = (uint32_t)(d4 >> 26), h[4] = (uint32_t)d4 & 0x3ffffff;
    h[0] += c * 5, c = h[0] >> 26, h[0] &= 0x3ffffff, h[1] += c;
}

/* Absorb `len` bytes as 16-byte blocks, zero-padding the last (RFC 8439 section 2.8). */
static void poly1305_padded(poly1305_ctx *p, const uint8_t *m, size_t len) {
    uint8_t last[16] = {0};
    for (; len >= 16; m += 16, len -= 16) poly1305_block(p, m, 16);
    if (len) {
        memcpy(last, m, len);
        poly1305_block(p, last, 16);
    }
}

static void poly1305_finish(poly1305_ctx *p, uint8_t tag[16]) {
    uint32_t *h = p->h, g[5], c, mask;
    c = h[1] >> 26, h[1] &= 0x3ffffff, h[2] += c;
    c = h[2] >> 26, h[2] &= 0x3ffffff, h[3] += c;
    c = h[3] >> 26, h[3] &= 0x3ffffff, h[4] += c;
    c = h[4] >> 26, h[4] &= 0x3ffffff, h[0] += c * 5;
    c = h[0] >> 26, h[0] &= 0x3ffffff, h[1] += c;
    g[0] = h[0] + 5, c = g[0] >> 26, g[0] &= 0x3ffffff;
    g[1] = h[1] + c, c = g[1] >> 26, g[1] &= 0x3ffffff;
    g[2] = h[2] + c, c = g[2] >> 26, g[2] &= 0x3ffffff;
    g[3] = h[3] + c, c = g[3] >> 26, g[3] &= 0x3ffffff;
    g[4] = h[4] + c - (1u << 26);
    mask = (g[4] >> 31) - 1; /* all ones when h >= p: take g = h - p */
    for (int i = 0; i < 5; i++) h[i] = (h[i] & ~mask) | (g[i] & mask);
    uint32_t w0 = h[0] | h[1] << 26, w1 = h[1] >> 6 | h[2] << 20, w2 = h[2] >> 12 | h[3] << 14,
             w3 = h[3] >> 18 | h[4] << 8;
    uint64_t f = (uint64_t)w0 + p->pad[0];
    put_le32(tag, (uint32_t)f);
    f = (uint64_t)w1 + p->pad[1] + (f >> 32);
    put_le32(tag + 4, (uint32_t)f);
    f = (uint64_t)w2 + p->pad[2] + (f >> 32);
    put_le32(tag + 8, (uint32_t)f);
    f = (uint64_t)w3 + p->pad[3] + (f >> 32);
    put_le32(tag + 12, (uint32_t)f);
}

static void aead_tag(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                     size_t aad_len, const uint8_t *cipher, size_t len, uint8_t tag[16]) {
    uint8_t otk[64], lens[16];
    poly1305_ctx p;
    chacha20_block(key, 0, nonce, otk);
    poly1305_init(&p, otk);
    poly1305_padded(&p, aad, aad_len);
    poly1305_padded(&p, cipher, len);
    put_le32(lens, (uint32_t)aad_len), put_le32(lens + 4, 0);
    put_le32(lens + 8, (uint32_t)len), put_le32(lens + 12, 0);
    poly1305_block(&p, lens, 16);
    poly1305_finish(&p, tag);
}

void ml_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                  size_t aad_len, const uint8_t *plain, size_t len, uint8_t *out) {
    chacha20_xor(key, 1, nonce, plain, len, out);
    aead_tag(key, nonce, aad, aad_len, out, len, out + len);
}

int ml_aead_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                 size_t aad_len, const uint8_t *sealed, size_t len, uint8_t *out) {
    uint8_t tag[16], diff = 0;
    if (len < TAG) return -1;
    aead_tag(key, nonce, aad, aad_len, sealed, len - TAG, tag);
    for (int i = 0; i < TAG; i++) diff |= tag[i] ^ sealed[len - TAG + i];
    if (diff) return -1;
    chacha20_xor(key, 1, nonce, sealed, len - TAG, out);
    return 0;
}

/* ------------------------------------------------------------------ messages */

/* Layout letters: I u32 seq, H u16 seq, C u16 code, f float32, ? bool, K 32-byte key,
 * T UTF-8 text to the end. All little endian (docs/mcu-link.md, "Messages"). */
static const char *layout(uint8_t type) {
    switch (type) {
    case ML_MSG_PING: case ML_MSG_PONG: return "I";
    case ML_MSG_SET_CP_DUTY: return "Hf";
    case ML_MSG_SET_CONTACTOR: case ML_MSG_SET_LOCK: case ML_MSG_ACK: return "H?";
    case ML_MSG_RESET_RCD: return "H";
    case ML_MSG_SET_LINK_KEY: return "HK";
    case ML_MSG_CP_LEVEL: return "f?";
    case ML_MSG_CONTACTOR_FEEDBACK: case ML_MSG_LOCK_FEEDBACK: case ML_MSG_RCD_STATUS: return "?";
    case ML_MSG_TEMPERATURE: return "f";
    case ML_MSG_CURRENTS: return "fff";
    case ML_MSG_FAULT: return "C?T";
    default: return NULL;
    }
}

size_t ml_msg_encode(const ml_msg *m, uint8_t *out) {
    const char *l = layout(m->type);
    size_t o = 0;
    int nf = 0;
    if (!l) return 0;
    out[o++] = m->type;
    for (; *l; l++) {
        uint32_t bits;
        switch (*l) {
        case 'I': put_le32(out + o, m->seq), o += 4; break;
        case 'H': out[o++] = (uint8_t)m->seq, out[o++] = (uint8_t)(m->seq >> 8); break;
        case 'C': out[o++] = (uint8_t)m->code, out[o++] = (uint8_t)(m->code >> 8); break;
        case 'f': memcpy(&bits, &m->f[nf++], 4), put_le32(out + o, bits), o += 4; break;
        case '?': out[o++] = m->flag ? 1 : 0; break;
        case 'K': memcpy(out + o, m->key, ML_KEY_LEN), o += ML_KEY_LEN; break;
        case 'T': {
            size_t n = m->text_len > ML_MAX_TEXT ? ML_MAX_TEXT : m->text_len;
            memcpy(out + o, m->text, n), o += n;
            break;
        }
        }
    }
    return o;
}

int ml_msg_decode(const uint8_t *p, size_t len, ml_msg *m) {
    const char *l = len ? layout(p[0]) : NULL;
    size_t i = 1;
    int nf = 0;
    if (!l) return -1;
    memset(m, 0, sizeof *m);
    m->type = p[0];
    for (; *l; l++) {
        size_t need = *l == 'I' || *l == 'f' ? 4 : *l == 'H' || *l == 'C' ? 2
                    : *l == 'K' ? ML_KEY_LEN : *l == '?' ? 1 : 0;
        uint32_t bits;
        if (i + need > len) return -1;
        switch (*l) {
        case 'I': m->seq = le32(p + i); break;
        case 'H': m->seq = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8; break;
        case 'C': m->code = (uint16_t)(p[i] | p[i + 1] << 8); break;
        case 'f': bits = le32(p + i), memcpy(&m->f[nf++], &bits, 4); break;
        case '?': m->flag = p[i] != 0; break;
        case 'K': memcpy(m->key, p + i, ML_KEY_LEN); break;
        case 'T':
            need = len - i;
            if (need > sizeof m->text) return -1;
            memcpy(m->text, p + i, need), m->text_len = need;
            break;
        }
        i += need;
    }
    return i == len ? 0 : -1;
}

/* ------------------------------------------------------------------ codec */

void ml_init(ml_codec *c, ml_role role, const uint8_t *key, ml_random_fn random, void *ctx) {
    memset(c, 0, sizeof *c);
    c->role = role;
    c->random = random;
    c->random_ctx = ctx;
    if (key) ml_rekey(c, key);
}

void ml_rekey(ml_codec *c, const uint8_t key[ML_KEY_LEN]) {
    memcpy(c->key, key, ML_KEY_LEN);
    c->has_key = 1;
}

static ml_role peer(const ml_codec *c) { return c->role == ML_ROLE_HOST ? ML_ROLE_MCU : ML_ROLE_HOST; }

/* 0x00 | COBS(type | direction | body | CRC-32 big endian) | 0x00 */
static size_t frame(const ml_codec *c, uint8_t type, const uint8_t *body, size_t len, uint8_t *out) {
    uint8_t raw[ML_MAX_FRAME];
    size_t n;
    raw[0] = type;
    raw[1] = (uint8_t)c->role;
    memcpy(raw + 2, body, len);
    put_be32(raw + 2 + len, ml_crc32(raw, 2 + len));
    out[0] = 0;
    n = 1 + ml_cobs_encode(raw, 2 + len + 4, out + 1);
    out[n++] = 0;
    return n;
}

/* nonce (12, random) | AEAD_K(plain) with the header as associated data */
static size_t seal_long_term(ml_codec *c, uint8_t type, const uint8_t *plain, size_t len,
                             uint8_t *out) {
    uint8_t body[12 + 32 + TAG], header[2] = {type, (uint8_t)c->role};
    c->random(c->random_ctx, body, 12);
    ml_aead_seal(c->key, body, header, 2, plain, len, body + 12);
    return frame(c, type, body, 12 + len + TAG, out);
}

static void establish(ml_codec *c, const uint8_t host_random[16], const uint8_t mcu_random[16]) {
    uint8_t salt[32];
    memcpy(salt, host_random, 16);
    memcpy(salt + 16, mcu_random, 16);
    ml_hkdf_sha256_32(salt, 32, c->key, ML_KEY_LEN, (const uint8_t *)INFO, sizeof INFO - 1,
                      c->session_key);
    c->established = 1;
    c->tx_counter = c->rx_counter = 0;
}

size_t ml_start(ml_codec *c, uint8_t *out) {
    if (c->role != ML_ROLE_HOST || !c->has_key) return 0;
    c->established = 0;
    c->random(c->random_ctx, c->host_random, 16);
    c->hello_pending = 1;
    return seal_long_term(c, HELLO, c->host_random, 16, out);
}

size_t ml_provision(ml_codec *c, const uint8_t key[ML_KEY_LEN], uint8_t *out) {
    if (c->role != ML_ROLE_HOST) return 0;
    c->provisioning = 1;
    return frame(c, PROVISION, key, ML_KEY_LEN, out);
}

static void data_nonce(uint8_t nonce[12], ml_role direction, const uint8_t counter[8]) {
    nonce[0] = (uint8_t)direction, nonce[1] = nonce[2] = nonce[3] = 0;
    memcpy(nonce + 4, counter, 8);
}

size_t ml_send(ml_codec *c, const uint8_t *payload, size_t len, uint8_t *out) {
    uint8_t body[ML_MAX_FRAME], nonce[12], aad[10] = {DATA, (uint8_t)c->role};
    if (!c->established || 2 + 8 + len + TAG + 4 > ML_MAX_FRAME) return 0;
    put_be64(body, ++c->tx_counter);
    memcpy(aad + 2, body, 8);
    data_nonce(nonce, c->role, body);
    ml_aead_seal(c->session_key, nonce, aad, 10, payload, len, body + 8);
    return frame(c, DATA, body, 8 + len + TAG, out);
}

static void emit(ml_event_fn fn, void *ctx, ml_event_kind kind, const uint8_t *data, size_t len) {
    ml_event ev = {kind, data, len, 0};
    fn(ctx, &ev);
}

static void data_in(ml_codec *c, const uint8_t *f, size_t body_len, ml_event_fn fn, void *ctx) {
    uint8_t nonce[12], aad[10], plain[ML_RX_BUFFER];
    ml_msg msg;
    const uint8_t *counter = f + 2;
    if (!c->established) { emit(fn, ctx, ML_DROP_UNEXPECTED, NULL, 0); return; }
    memcpy(aad, f, 2);
    memcpy(aad + 2, counter, 8);
    data_nonce(nonce, peer(c), counter);
    if (ml_aead_open(c->session_key, nonce, aad, 10, f + 10, body_len - 8, plain) != 0)
        { emit(fn, ctx, ML_DROP_AUTH, NULL, 0); return; }
    if (be64(counter) <= c->rx_counter) { emit(fn, ctx, ML_DROP_REPLAYED, NULL, 0); return; }
    c->rx_counter = be64(counter);
    if (ml_msg_decode(plain, body_len - 8 - TAG, &msg) != 0)
        { emit(fn, ctx, ML_DROP_BAD_MESSAGE, NULL, 0); return; }
    emit(fn, ctx, ML_EV_MESSAGE, plain, body_len - 8 - TAG);
}

static void frame_in(ml_codec *c, const uint8_t *f, size_t len, ml_event_fn fn, void *ctx) {
    static const size_t min_body[6] = {0, 12 + 16 + TAG, 12 + 32 + TAG, 8 + TAG, 32, 1};
    uint8_t kind, plain[ML_RX_BUFFER], out[ML_MAX_WIRE];
    size_t body_len, plain_len = 0;
    if (len < MIN_FRAME) { emit(fn, ctx, ML_DROP_TRUNCATED, NULL, 0); return; }
    body_len = len - 4 - 2;
    if (ml_crc32(f, len - 4) != ((uint32_t)f[len - 4] << 24 | (uint32_t)f[len - 3] << 16 |
                                 (uint32_t)f[len - 2] << 8 | f[len - 1]))
        { emit(fn, ctx, ML_DROP_CRC, NULL, 0); return; }
    kind = f[0];
    if (f[1] != (uint8_t)peer(c) || kind < HELLO || kind > PROVISION_ACK)
        { emit(fn, ctx, ML_DROP_UNEXPECTED, NULL, 0); return; }
    if (body_len < min_body[kind]) { emit(fn, ctx, ML_DROP_TRUNCATED, NULL, 0); return; }
    if (kind == PROVISION && c->role == ML_ROLE_MCU && body_len == ML_KEY_LEN) {
        uint8_t status = c->has_key ? 1 : 0;
        if (!c->has_key) {
            ml_rekey(c, f + 2);
            emit(fn, ctx, ML_EV_KEY_PROVISIONED, c->key, ML_KEY_LEN);
        }
        { emit(fn, ctx, ML_EV_TRANSMIT, out, frame(c, PROVISION_ACK, &status, 1, out)); return; }
    }
    if (kind == PROVISION_ACK && c->role == ML_ROLE_HOST && body_len == 1) {
        ml_event ev = {ML_EV_PROVISION_ANSWERED, NULL, 0, f[2] == 0};
        if (!c->provisioning || f[2] > 1) { emit(fn, ctx, ML_DROP_UNEXPECTED, NULL, 0); return; }
        c->provisioning = 0;
        { fn(ctx, &ev); return; }
    }
    if (kind == DATA) { data_in(c, f, body_len, fn, ctx); return; }
    if ((kind == HELLO || kind == HELLO_ACK) && c->has_key) {
        if (ml_aead_open(c->key, f + 2, f, 2, f + 14, body_len - 12, plain) != 0)
            { emit(fn, ctx, ML_DROP_AUTH, NULL, 0); return; }
        plain_len = body_len - 12 - TAG;
    } /* else: a blank MCU cannot check a HELLO; PROVISION in the wrong place: unexpected */
    if (kind == HELLO && c->role == ML_ROLE_MCU && plain_len == 16) {
        uint8_t both[32];
        memcpy(both, plain, 16);
        c->random(c->random_ctx, both + 16, 16);
        size_t n = seal_long_term(c, HELLO_ACK, both, 32, out);
        establish(c, both, both + 16);
        emit(fn, ctx, ML_EV_TRANSMIT, out, n);
        { emit(fn, ctx, ML_EV_SESSION, NULL, 0); return; }
    }
    if (kind == HELLO_ACK && c->role == ML_ROLE_HOST && plain_len == 32) {
        if (!c->hello_pending || memcmp(plain, c->host_random, 16) != 0)
            { emit(fn, ctx, ML_DROP_UNEXPECTED, NULL, 0); return; }
        establish(c, plain, plain + 16);
        c->hello_pending = 0;
        { emit(fn, ctx, ML_EV_SESSION, NULL, 0); return; }
    }
    emit(fn, ctx, ML_DROP_UNEXPECTED, NULL, 0);
}

void ml_feed(ml_codec *c, const uint8_t *data, size_t len, ml_event_fn fn, void *ctx) {
    uint8_t decoded[ML_RX_BUFFER];
    for (size_t i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (b != 0) {
            if (c->overflow) continue;
            if (c->buf_len == ML_RX_BUFFER) { /* no frame is this long: resync at next 0x00 */
                c->overflow = 1;
                c->buf_len = 0;
                emit(fn, ctx, ML_DROP_GARBAGE, NULL, 0);
                continue;
            }
            c->buf[c->buf_len++] = b;
            continue;
        }
        size_t n = c->buf_len;
        int overflow = c->overflow;
        c->buf_len = 0;
        c->overflow = 0;
        if (overflow || n == 0) continue; /* back-to-back delimiters are allowed */
        long d = ml_cobs_decode(c->buf, n, decoded);
        if (d < 0) {
            emit(fn, ctx, ML_DROP_GARBAGE, NULL, 0);
            continue;
        }
        frame_in(c, decoded, (size_t)d, fn, ctx);
    }
}
