/* Fuzz the SSH public key parser (src/api/ssh_keys.c): any text is either a
 * key with a type of the allowed list, an OpenSSH-shaped fingerprint and a
 * normalised form that parses again to the same fingerprint, or refused with
 * a sentence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/accounts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char norm[20000], norm2[20000];
    char type[32], fp[64], fp2[64], type2[32], why[200];

    why[0] = '\0';
    if (sshkey_parse((const char *)data, size, type, sizeof(type), fp, sizeof(fp), norm,
                     sizeof(norm), why, sizeof(why)) == 0) {
        if (strncmp(fp, "SHA256:", 7) != 0 || strlen(fp) != 50)
            abort();
        if (strcmp(type, "ssh-ed25519") && strcmp(type, "ssh-rsa") &&
            strncmp(type, "ecdsa-sha2-nistp", 16))
            abort();
        if (sshkey_parse(norm, strlen(norm), type2, sizeof(type2), fp2, sizeof(fp2), norm2,
                         sizeof(norm2), why, sizeof(why)) != 0 ||
            strcmp(fp, fp2) != 0 || strcmp(type, type2) != 0 || strcmp(norm, norm2) != 0)
            abort();
    } else if (!why[0]) {
        abort();
    }
    return 0;
}
