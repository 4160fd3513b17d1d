#!/bin/sh
# busybox httpd runs this for a directory URL that has no index.html, e.g.
# /container/<user>/<instance>/ when the template's proxy_mode is "keep": the
# page says what it is and shows the full request path and headers it received.
printf 'Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n'
cat <<'HTML'
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>berth demo workspace</title></head>
<body>
<h1>berth demo workspace</h1>
<p>This is a berth demo workspace: a busybox web server running in its own container.</p>
<pre>
HTML
env | sort | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
printf '</pre>\n</body>\n</html>\n'
