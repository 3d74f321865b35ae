#!/bin/sh
# make install / make uninstall into a temporary DESTDIR: the tree, the
# generated config/unit/man page, the installed daemon serving the installed
# config, and an uninstall that removes everything (but an edited config).
# shellcheck disable=SC2015   # "A && ok || bad": ok always succeeds
. "$(dirname "$0")/lib.sh"
need_bin
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
MAKE=${MAKE:-make}
D=$TMP/dest
PREFIX=/opt/deconvd-test     # not the default, to see that PREFIX is followed
mk() { $MAKE -s --no-print-directory BUILD="$(dirname "$BIN" | sed "s|^$ROOT/||")" PREFIX=$PREFIX DESTDIR="$D" "$@"; }

mk install >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; bad "make install"; exit 1; }
ok "make install DESTDIR=... PREFIX=$PREFIX"

models=$(cd config/models && ls)
want=$(
    echo "etc/deconvd/deconvd.json"
    for m in $models; do echo "etc/deconvd/models/$m"; done
    echo "lib/systemd/system/deconvd.service"
    echo "${PREFIX#/}/bin/deconvd"
    echo "${PREFIX#/}/share/man/man8/deconvd.8"
)
got=$(cd "$D" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
want=$(printf '%s\n' "$want" | LC_ALL=C sort)
if [ "$got" = "$want" ]; then ok "installed tree ($(printf '%s\n' "$got" | wc -l) files)"
else bad "installed tree differs:"
     printf '%s\n' "$want" >"$TMP/want"; printf '%s\n' "$got" >"$TMP/got"; diff -u "$TMP/want" "$TMP/got"; fi

mode() { stat -c %a "$D/$1"; }
[ "$(mode "${PREFIX#/}/bin/deconvd")" = 755 ] && [ "$(mode etc/deconvd/deconvd.json)" = 644 ] &&
    [ "$(mode lib/systemd/system/deconvd.service)" = 644 ] && ok "modes: binary 755, data 644" ||
    bad "modes: $(mode "${PREFIX#/}/bin/deconvd") $(mode etc/deconvd/deconvd.json)"

grep -q '"models_dir": "/etc/deconvd/models"' "$D/etc/deconvd/deconvd.json" &&
    /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$D/etc/deconvd/deconvd.json" &&
    ok "config: valid JSON, models_dir /etc/deconvd/models" || bad "config: $(cat "$D/etc/deconvd/deconvd.json")"

grep -qx "ExecStart=$PREFIX/bin/deconvd --config /etc/deconvd/deconvd.json" "$D/lib/systemd/system/deconvd.service" &&
    ok "unit: ExecStart follows PREFIX" || bad "unit: $(grep ExecStart "$D/lib/systemd/system/deconvd.service")"
# Apart from ExecStart the installed unit is the one in systemd/.
grep -v '^ExecStart=' systemd/deconvd.service >"$TMP/unit.src"
grep -v '^ExecStart=' "$D/lib/systemd/system/deconvd.service" >"$TMP/unit.inst"
cmp -s "$TMP/unit.src" "$TMP/unit.inst" && ok "unit: otherwise identical to systemd/deconvd.service" ||
    bad "unit: differs from systemd/deconvd.service beyond ExecStart"

man8="$D/${PREFIX#/}/share/man/man8/deconvd.8"
warn=$(groff -man -Tutf8 -ww -z "$man8" 2>&1)
if head -n1 "$man8" | grep -q '^\.TH DECONVD 8 ' && [ -z "$warn" ]; then ok "man page: groff -man -ww is clean"
else bad "man page: $(head -n1 "$man8") $warn"; fi
# Every long option of --help is in the man page.
missing=""
for o in $("$BIN" --help | grep -o -- '--[a-z-]*' | sort -u); do
    grep -q -- "$(printf '%s' "$o" | sed 's/-/\\\\-/g')" "$man8" || missing="$missing $o"
done
[ -z "$missing" ] && ok "man page: documents every --help option" || bad "man page lacks:$missing"
if command -v man >/dev/null 2>&1; then
    man -l "$man8" 2>/dev/null | grep -q -- '--threads-per-request' && ok "man page renders with man -l" ||
        bad "man -l does not render the options"
fi

# The installed daemon accepts the installed config (models_dir pointed at the DESTDIR copy).
sed "s|\"/etc/deconvd/models\"|\"$D/etc/deconvd/models\"|" "$D/etc/deconvd/deconvd.json" >"$TMP/check.json"
if "$D/${PREFIX#/}/bin/deconvd" --check --config "$TMP/check.json" >"$TMP/check.log" 2>&1; then
    ok "installed binary: --check loads the installed models ($(tail -n1 "$TMP/check.log"))"
else bad "installed binary --check:"; tail -n 5 "$TMP/check.log"; fi

# Re-install over an edited config: kept, ours written as deconvd.json.dist.
echo '{"listen": "127.0.0.1:9999", "models_dir": "/etc/deconvd/models"}' >"$D/etc/deconvd/deconvd.json"
mk install >"$TMP/install2.log" 2>&1 || bad "second make install"
grep -q 9999 "$D/etc/deconvd/deconvd.json" && [ -f "$D/etc/deconvd/deconvd.json.dist" ] &&
    ok "re-install keeps an edited config, adds deconvd.json.dist" || bad "re-install clobbered the edited config"

mk uninstall >"$TMP/uninstall.log" 2>&1 || { cat "$TMP/uninstall.log"; bad "make uninstall"; }
left=$(cd "$D" && find . -type f | sed 's|^\./||')
[ "$left" = "etc/deconvd/deconvd.json" ] && ok "uninstall keeps only the edited config" ||
    bad "after uninstall with an edited config: $left"

# Plain install + uninstall leaves no file and no /etc/deconvd.
rm -rf "$D"
mk install >/dev/null 2>&1 && mk uninstall >/dev/null 2>&1 || bad "install + uninstall"
left=$(cd "$D" && find . -type f)
[ -z "$left" ] && [ ! -e "$D/etc/deconvd" ] && ok "uninstall removes every file and /etc/deconvd" ||
    bad "left after uninstall: $left $(ls -d "$D/etc/deconvd" 2>/dev/null)"

echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
