#!/bin/sh
# GET /: who is serving (busybox httpd runs /cgi-bin/index.cgi for a directory without index.html).
. /lib/phoenix/cgi.sh
[ -r /etc/phoenix/env ] && . /etc/phoenix/env
html() { printf '%s' "$1" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g'; }
read -r up _ </proc/uptime
if grep -q " $DATA_DIR " /proc/mounts 2>/dev/null; then
  backing=$(awk -v d="$DATA_DIR" '$2 == d { print $1 " (" $3 ")"; exit }' /proc/mounts)
else
  backing="a directory of the root filesystem"
fi
printf 'Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n'
cat <<HTML
<!DOCTYPE html>
<html><head><title>Phoenix demo</title></head>
<body>
<h1>Phoenix demo guest</h1>
<table>
<tr><th align="left">instance</th><td>$(html "${PHOENIX_INSTANCE:-unknown}")</td></tr>
<tr><th align="left">runtime</th><td>$(html "${PHOENIX_RUNTIME:-unknown}")</td></tr>
<tr><th align="left">hostname</th><td>$(html "$(hostname)")</td></tr>
<tr><th align="left">uptime</th><td>$(html "$up") s</td></tr>
<tr><th align="left">time (UTC)</th><td>$(html "$(date -u '+%Y-%m-%d %H:%M:%S')")</td></tr>
<tr><th align="left">/data</th><td>$(html "$backing")</td></tr>
</table>
<p><a href="/health">/health</a> &middot; <a href="/cgi-bin/ls">/cgi-bin/ls</a></p>
</body></html>
HTML
