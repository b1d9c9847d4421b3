#!/usr/bin/env bash
# One full sytest run against a Portier binary with every setting test/interop/sytest-RESULTS.md
# names, together: Portier serves clients and federation over TLS on one port (so sytest can act as
# a second homeserver), loads sytest's two application service registrations, and sends mail, CAS
# and reCAPTCHA requests to sytest's test servers.
#
# usage: test/interop/sytest-run-full.sh SYTEST_DIR NAHS_DIR OUT_DIR PORTIER_BIN [TEST FILES...]
#   SYTEST_DIR  matrix-org/sytest with test/interop/sytest-fixed-ports.patch and
#               test/interop/sytest-manual-await.patch applied (patch -p1 in the sytest tree)
#   NAHS_DIR    Net-Async-HTTP-Server 0.07, as for ../shared/peers/sytest/run.sh
# env: PORT (default 18808); SYTEST_HARNESS (default ../shared/peers/sytest beside the repo: its
# perl5lib, NaHS patch and summarize.pl are used). Takes about 6-7 minutes on 2 cores.
set -uo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS="$(realpath "${SYTEST_HARNESS:-$REPO/../shared/peers/sytest}")"
SYTEST_DIR="$(realpath "${1:?usage: sytest-run-full.sh SYTEST_DIR NAHS_DIR OUT_DIR PORTIER_BIN}")"
NAHS_DIR="$(realpath "${2:?NAHS_DIR}")"
OUT_DIR="${3:?OUT_DIR}"
PORTIER_BIN="$(realpath "${4:?PORTIER_BIN}")"
shift 4   # the rest: test files (default: all)
PORT="${PORT:-18808}"
export TIMEOUT_FACTOR="${TIMEOUT_FACTOR:-1}"

mkdir -p "$OUT_DIR"; OUT_DIR="$(realpath "$OUT_DIR")"
rm -rf "$OUT_DIR/perl5lib" "$OUT_DIR/hs" "$OUT_DIR/work"
mkdir -p "$OUT_DIR/perl5lib" "$OUT_DIR/hs" "$OUT_DIR/work"

# Perl modules as ../shared/peers/sytest/run.sh sets them up (its step 1 installs the Debian packages),
# plus query_param and query_form on NaHS 0.07's request (NaHS 0.08+ has them; sytest's identity
# server and 60app-services use them).
cp -r "$NAHS_DIR/lib/." "$OUT_DIR/perl5lib/"
patch -s -d "$OUT_DIR/perl5lib" -p1 < "$HARNESS/net-async-http-server-0.07-to-0.09.patch" || exit 1
REQ="$OUT_DIR/perl5lib/Net/Async/HTTP/Server/Request.pm"
sed -i 's/^0x55AA;$/sub query_param { my ( $self, $name ) = @_; require URI; my %form = URI->new( "?" . ( $self->query_string \/\/ "" ) )->query_form; return $form{$name}; }\n\n0x55AA;/' "$REQ"
sed -i 's/^0x55AA;$/sub query_form { my ( $self ) = @_; require URI; return URI->new( "?" . ( $self->query_string \/\/ "" ) )->query_form; }\n\n0x55AA;/' "$REQ"
cp -r "$HARNESS/perl5lib/." "$OUT_DIR/perl5lib/"
export PERL5LIB="$OUT_DIR/perl5lib${PERL5LIB:+:$PERL5LIB}"
perl -MCrypt::Ed25519 -MNet::Async::HTTP::Server -e1 || exit 1

# Portier: TLS with a self-signed certificate; started once sytest has written its application
# service registrations (random tokens, written when its homeserver fixture starts); the patched
# Manual.pm waits for the port.
cp "$PORTIER_BIN" "$OUT_DIR/hs/portier"
"$OUT_DIR/hs/portier" generate-tls-cert --server-name "127.0.0.1:$PORT" --out "$OUT_DIR/hs/tls" >/dev/null || exit 1
CRT="$(ls "$OUT_DIR"/hs/tls/*.crt "$OUT_DIR"/hs/tls/*cert* 2>/dev/null | head -1)"
KEY="$(ls "$OUT_DIR"/hs/tls/*.key "$OUT_DIR"/hs/tls/*key* 2>/dev/null | head -1)"
AS0="$OUT_DIR/work/server-0/appserv-0.yaml"; AS1="$OUT_DIR/work/server-0/appserv-1.yaml"
( for i in $(seq 1 2400); do [ -s "$AS0" ] && [ -s "$AS1" ] && break; sleep 0.05; done
  cd "$OUT_DIR/hs" && exec env PORTIER_SERVER_NAME="127.0.0.1:$PORT" PORTIER_BIND="127.0.0.1:$PORT" \
    PORTIER_DATA_DIR="$OUT_DIR/hs/data" PORTIER_REGISTRATION__ENABLED=true PORTIER_REGISTRATION__SHARED_SECRET=reg_secret \
    PORTIER_FEDERATION__ENABLED=true PORTIER_FEDERATION__VERIFY_TLS=false \
    PORTIER_FEDERATION__TLS_CERTIFICATE_PATH="$CRT" PORTIER_FEDERATION__TLS_PRIVATE_KEY_PATH="$KEY" \
    PORTIER_APP_SERVICES="[$AS0, $AS1]" PORTIER_APP_SERVICE_VERIFY_TLS=false \
    PORTIER_PUSH__VERIFY_TLS=false PORTIER_PLUGINS='[]' PORTIER_REGISTRATION__ALLOW_GUEST_ACCESS=true \
    PORTIER_MEDIA__URL_PREVIEW_ENABLED=true PORTIER_MEDIA__URL_PREVIEW_IP_RANGE_WHITELIST="[127.0.0.1/32]" PORTIER_MEDIA__URL_PREVIEW_VERIFY_TLS=false \
    PORTIER_IDENTITY__VERIFY_TLS=false PORTIER_IDENTITY__ALLOW_LOOPBACK=true \
    PORTIER_EMAIL__SMTP_HOST=127.0.0.1 PORTIER_EMAIL__SMTP_PORT=19098 \
    PORTIER_CAS__SERVER_URL=https://127.0.0.1:19099/cas PORTIER_CAS__VERIFY_TLS=false \
    PORTIER_REGISTRATION__RECAPTCHA__PUBLIC_KEY=sytest_recaptcha_public_key \
    PORTIER_REGISTRATION__RECAPTCHA__PRIVATE_KEY=sytest_recaptcha_private_key \
    PORTIER_REGISTRATION__RECAPTCHA__SITEVERIFY_API=https://127.0.0.1:19099/recaptcha/api/siteverify \
    PORTIER_REGISTRATION__RECAPTCHA__REQUIRED=false PORTIER_REGISTRATION__RECAPTCHA__VERIFY_TLS=false \
    ./portier serve ) > "$OUT_DIR/portier.log" 2>&1 &
HS_PID=$!
trap 'kill $HS_PID 2>/dev/null; wait $HS_PID 2>/dev/null' EXIT

START=$(date +%s)
( cd "$SYTEST_DIR" && SYTEST_TEST_SERVER_PORT=19099 SYTEST_MAIL_SERVER_PORT=19098 \
    ./run-tests.pl -I Manual -L "https://127.0.0.1:$PORT" --server-name "127.0.0.1:$PORT" \
    -O tap -a --bind-host 127.0.0.1 -p 19000:100 --work-directory "$OUT_DIR/work" "$@" ) \
    > "$OUT_DIR/out.tap" 2> "$OUT_DIR/sytest.stderr"
RC=$?
echo "sytest exit $RC, $(( $(date +%s) - START ))s" | tee "$OUT_DIR/duration.txt"
perl "$HARNESS/summarize.pl" "$SYTEST_DIR" "$OUT_DIR/out.tap" | tee "$OUT_DIR/summary.txt"
