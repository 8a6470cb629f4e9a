#!/bin/sh
# mod_fcgid starts this for the data plane (/v1/, /health, /metrics): it
# execs antigw-fcgi on the listening socket mod_fcgid passed as fd 0.
# mod_fcgid sends one request at a time to a process and starts and stops
# processes itself, so each runs a single worker thread (-t 1); the limits,
# counters and load-balancer state all processes share live in files beside
# the database (antigw.db, antigw.db.state), owned by the hosting user.
#
# ANTIGW_HOME: the folder with bin/ and antigw.cfg, outside the web root;
# by default "antigateway" beside the web root's folder (~/antigateway when
# the web root is ~/public_html).
here=$(cd "$(dirname "$0")" && pwd)
home=${ANTIGW_HOME:-$(dirname "$here")/antigateway}
exec "$home/bin/antigw-fcgi" -c "$home/antigw.cfg" -t 1
