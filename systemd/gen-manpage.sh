#!/bin/sh
# Writes deconvd(8) in groff man format to stdout, built from `deconvd --help`
# so the OPTIONS section cannot drift from the binary.
# Usage: systemd/gen-manpage.sh BINARY VERSION
# The date comes from SOURCE_DATE_EPOCH when set (reproducible builds).
set -eu
bin=${1:?usage: gen-manpage.sh BINARY VERSION}
version=${2:?usage: gen-manpage.sh BINARY VERSION}
help=$("$bin" --help)
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# roff: a backslash is \e, a leading dot or quote must be escaped, and '-' in
# option names is \- so that it renders (and searches) as an ASCII hyphen.
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/" -e 's/-/\\-/g'; }

cat <<ROFF
.TH DECONVD 8 "$date" "deconvd $version" "System Administration"
.SH NAME
deconvd \- serve Keras transposed convolutions over HTTP (KServe v2, TF Serving)
.SH SYNOPSIS
.B deconvd
.RI [ options ]
.SH DESCRIPTION
ROFF
# The description is the help text between the usage line and the first blank line.
printf '%s\n' "$help" | sed -n '2,/^$/p' | sed '/^$/d' | esc
echo '.SH OPTIONS'
# Option lines: two spaces, the option column, two or more spaces, the text.
printf '%s\n' "$help" | sed -n 's/^  \{1,\}\(-[^ ].*[^ ]\)  \{1,\}\([^ ].*\)$/\1\t\2/p' |
while IFS="$(printf '\t')" read -r opt text; do
    echo '.TP'
    # Bold the option names, italicize the argument (an upper-case word).
    printf '%s\n' "$opt" | esc |
        sed -e 's/\(\\-[a-zA-Z\\-]*\)/\\fB\1\\fR/g' -e 's/ \([A-Z][A-Z:]*\)$/ \\fI\1\\fR/'
    printf '%s\n' "$text" | esc
done
cat <<'ROFF'
.SH SIGNALS
.TP
.B SIGTERM\fR, \fBSIGINT
Drain: readiness turns false, the listening socket closes, requests already
accepted finish (bounded by \fBdrain_timeout_ms\fR), then exit 0.
.TP
.B SIGHUP
Reload the models directory; changed models swap in atomically and a broken
file keeps the previous version serving.
.PP
Under systemd (\fBType=notify\fR) deconvd reports READY=1 once the models are
loaded, RELOADING=1 and READY=1 around a reload, and STOPPING=1 when draining.
.SH EXIT STATUS
0 on success or after a drain, 1 on a runtime or model failure, 2 on a usage
or configuration error.
.SH FILES
.TP
.I /etc/deconvd/deconvd.json
Configuration installed by \fBmake install\fR and used by the systemd unit.
.TP
.I /etc/deconvd/models/
Models: \fINAME\fR.json (a Keras layer's \fBget_config()\fR) and its .npy weights.
.SH EXAMPLES
.nf
deconvd \-\-check \-\-config /etc/deconvd/deconvd.json
deconvd \-\-config /etc/deconvd/deconvd.json \-\-listen 127.0.0.1:8080
curl \-s localhost:8080/v2/health/ready
.fi
.SH SEE ALSO
.BR systemctl (1),
.BR systemd.service (5)
.PP
README.md and docs/deployment.md in the deconvd sources.
ROFF
