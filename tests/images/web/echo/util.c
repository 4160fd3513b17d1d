/* util: log lines, SHA-1 and SHA-256, base64 and UTF-8 for berth-echo (echo.h). */
#include "echo.h"

/* --- small helpers --------------------------------------------------------- */

bool verbose;

/* One line to stderr in one write(2), so lines of different threads never mix. */
void log_line(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    memcpy(line, "berth-echo: ", 12);
    va_start(ap, fmt);
    n = vsnprintf(line + 12, sizeof(line) - 13, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    n = 12 + (n < (int)sizeof(line) - 13 ? n : (int)sizeof(line) - 14);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing sensible to do about a closed stderr */
    }
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rol32(uint32_t x, unsigned n)
{
    return x << n | x >> (32 - n);
}
static uint32_t ror32(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* --- SHA-1 and SHA-256 (FIPS 180-4) ------------------------------------------
 * Both pad the same way (64-byte blocks, a 1 bit, zeros, the bit length as a
 * big-endian 64-bit number), so one Merkle–Damgård frame serves both and each
 * hash brings its compression function and initial state. */

static void sha1_compress(uint32_t *h, const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int i = 0; i < 16; i++)
        w[i] = load_be32(p + 4 * i);
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_compress(uint32_t *h, const uint8_t *p)
{
    uint32_t w[64], v[8];

    for (int i = 0; i < 16; i++)
        w[i] = load_be32(p + 4 * i);
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ror32(v[4], 6) ^ ror32(v[4], 11) ^ ror32(v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + S1 + ch + SHA256_K[i] + w[i];
        uint32_t S0 = ror32(v[0], 2) ^ ror32(v[0], 13) ^ ror32(v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        uint32_t t2 = S0 + maj;
        memmove(v + 1, v, 7 * sizeof(v[0]));
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

void sha1_init(struct md *m)
{
    static const uint32_t iv[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memset(m, 0, sizeof(*m));
    memcpy(m->h, iv, sizeof(iv));
    m->compress = sha1_compress;
}

void sha256_init(struct md *m)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memset(m, 0, sizeof(*m));
    memcpy(m->h, iv, sizeof(iv));
    m->compress = sha256_compress;
}

void md_update(struct md *m, const void *data, size_t n)
{
    const uint8_t *p = data;

    m->bytes += n;
    if (m->used > 0) {
        size_t take = 64 - m->used < n ? 64 - m->used : n;
        memcpy(m->block + m->used, p, take);
        m->used += take;
        p += take;
        n -= take;
        if (m->used < 64)
            return;
        m->compress(m->h, m->block);
        m->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        m->compress(m->h, p);
    memcpy(m->block, p, n);
    m->used = n;
}

/* Writes `words` big-endian state words (5 for SHA-1, 8 for SHA-256). */
void md_final(struct md *m, uint8_t *out, int words)
{
    uint64_t bits = m->bytes * 8;

    m->block[m->used++] = 0x80;
    if (m->used > 56) {
        memset(m->block + m->used, 0, 64 - m->used);
        m->compress(m->h, m->block);
        m->used = 0;
    }
    memset(m->block + m->used, 0, 56 - m->used);
    store_be32(m->block + 56, (uint32_t)(bits >> 32));
    store_be32(m->block + 60, (uint32_t)bits);
    m->compress(m->h, m->block);
    for (int i = 0; i < words; i++)
        store_be32(out + 4 * i, m->h[i]);
}

/* --- base64 (RFC 4648, standard alphabet, padded) -------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* out holds 4 * ceil(n / 3) + 1 bytes. */
void base64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Strict decoding: length a multiple of 4, padding only at the end, unused
 * bits zero. Returns the decoded length or -1. */
long base64_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s), len = 0;

    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                pad++;
                v[j] = 0;
            } else if (pad > 0 || (v[j] = b64_value(s[i + j])) < 0) {
                return -1;
            }
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff)))
            return -1;
        if (len + 3 - (size_t)pad > cap)
            return -1;
        out[len++] = (uint8_t)(x >> 16);
        if (pad < 2)
            out[len++] = (uint8_t)(x >> 8);
        if (pad < 1)
            out[len++] = (uint8_t)x;
    }
    return (long)len;
}

/* --- UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) -- */

bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        size_t len;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t j = 1; j < len; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}
