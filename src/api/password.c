/*
 * password — yescrypt through libcrypt's reentrant API (crypt_gensalt_rn and
 * crypt_rn): a kept, audited implementation, salt from the kernel CSPRNG.
 * Verification compares the whole hash in constant time.
 */
#include "password.h"

#include <crypt.h>
#include <string.h>

#include "berth/util.h"

int password_hash(const char *pw, char *out, size_t outlen)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    char *h;

    memset(&cd, 0, sizeof(cd));
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)))
        return -1;
    h = crypt_rn(pw, salt, &cd, sizeof(cd));
    if (!h || h[0] == '*' || strlen(h) >= outlen)
        return -1;
    util_strlcpy(out, h, outlen);
    explicit_bzero(&cd, sizeof(cd));
    return 0;
}

bool password_verify(const char *pw, const char *hash)
{
    struct crypt_data cd;
    char *h;
    bool ok;

    memset(&cd, 0, sizeof(cd));
    h = crypt_rn(pw, hash, &cd, sizeof(cd));
    ok = h && h[0] != '*' && strlen(h) == strlen(hash) && util_ct_equal(h, hash, strlen(hash));
    explicit_bzero(&cd, sizeof(cd));
    return ok;
}

int password_generate(char out[25])
{
    static const char alphabet[] =
        "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"; /* 57, no look-alikes */
    unsigned char raw[24];
    for (int i = 0; i < 24;) {
        if (util_random(raw, sizeof(raw)) < 0)
            return -1;
        /* Rejection sampling keeps the choice uniform. */
        for (size_t k = 0; k < sizeof(raw) && i < 24; k++)
            if (raw[k] < 228) /* 4 * 57 */
                out[i++] = alphabet[raw[k] % 57];
    }
    out[24] = '\0';
    return 0;
}
