#!/usr/bin/env bash
# SSH keys: every accepted type gives OpenSSH's own SHA256 fingerprint; weak,
# malformed or mislabelled keys are 400 invalid_field public_key with no row;
# duplicates 409; viewers cannot add; only the owner can delete.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
command -v ssh-keygen >/dev/null || { ok "ssh-keygen not installed # SKIP"; exit 0; }
scratch k

admin_login "$TMP/admin.jar"
user_token "$P-dev" developer; DEV=$TOKEN
user_token "$P-oth" developer; OTH=$TOKEN
user_token "$P-view" viewer; VIEW=$TOKEN
add() { # add TOKEN PUBKEY [NAME]
    http POST /api/v1/ssh-keys "$(jq -nc --arg k "$2" --arg n "${3:-key}" '{name:$n, public_key:$k}')" \
        -H "Authorization: Bearer $1"
}
i=0
for t in "ed25519" "ecdsa -b 256" "ecdsa -b 384" "ecdsa -b 521" "rsa -b 2048" "rsa -b 3072"; do
    i=$((i + 1))
    ssh-keygen -q -t $t -N '' -C "me@example" -f "$TMP/key$i" # $t unquoted: "-t rsa -b 2048"
    add "$DEV" "$(cat "$TMP/key$i.pub")"
    expect_eq "a $t key is accepted with ssh-keygen's fingerprint" \
        "201 $(ssh-keygen -lf "$TMP/key$i.pub" | cut -d' ' -f2)" "$STATUS $(jq -r .fingerprint <<<"$BODY")"
done
KEY_ID=$(jq -r .id <<<"$BODY")
add "$DEV" "$(cat "$TMP/key1.pub")"
expect_eq "the same key twice is 409 conflict" "409 conflict" "$STATUS $(jq -r .error.code <<<"$BODY")"
http GET /api/v1/ssh-keys "" -H "Authorization: Bearer $DEV"
expect_eq "the list shows the owner's keys with id, name, type, fingerprint, created_at" \
    "6 created_at,fingerprint,id,name,type" "$(jq -r '"\(.items | length) \(.items[0] | keys | join(","))"' <<<"$BODY")"
http GET /api/v1/ssh-keys "" -H "Authorization: Bearer $OTH"
expect_eq "another user sees none of them" 0 "$(jq '.items | length' <<<"$BODY")"

ssh-keygen -q -t rsa -b 1024 -N '' -f "$TMP/weak" 2>/dev/null
blob=$(cut -d' ' -f2 "$TMP/key1.pub")
for case in "a 1024-bit RSA key:$(cat "$TMP/weak.pub" 2>/dev/null || echo 'ssh-rsa AAAA')" \
            "an unknown type:ssh-dss $blob" \
            "a type that does not match the data:ssh-rsa $blob" \
            "broken base64:ssh-ed25519 AAAA!!!!" \
            "truncated key data:ssh-ed25519 ${blob:0:40}" \
            "an empty key:" \
            "a private key:-----BEGIN OPENSSH PRIVATE KEY-----" \
            "two lines:$(cat "$TMP/key1.pub")
$(cat "$TMP/key2.pub")"; do
    add "$OTH" "${case#*:}"
    expect_eq "${case%%:*} is refused (400 invalid_field public_key)" "400 invalid_field public_key" \
        "$STATUS $(jq -r '"\(.error.code) \(.error.field)"' <<<"$BODY")"
done
http GET /api/v1/ssh-keys "" -H "Authorization: Bearer $OTH"
expect_eq "refused keys leave no row" 0 "$(jq '.items | length' <<<"$BODY")"
http POST /api/v1/ssh-keys "{\"name\":\"k\",\"public_key\":$(jq -Rs . < "$TMP/key1.pub"),\"admin\":1}" -H "Authorization: Bearer $OTH"
expect_eq "an unknown field is named" "400 admin" "$STATUS $(jq -r .error.field <<<"$BODY")"
add "$VIEW" "$(cat "$TMP/key1.pub")"
expect_eq "a viewer cannot add keys (403)" 403 "$STATUS"
http DELETE "/api/v1/ssh-keys/$KEY_ID" "" -H "Authorization: Bearer $OTH"
expect_eq "another user cannot delete the key (404)" 404 "$STATUS"
http DELETE "/api/v1/ssh-keys/$KEY_ID" "" -H "Authorization: Bearer $DEV"
expect_eq "the owner deletes the key (204)" 204 "$STATUS"
http DELETE "/api/v1/ssh-keys/$KEY_ID" "" -H "Authorization: Bearer $DEV"
expect_eq "deleting it again is 404" 404 "$STATUS"
exit 0
