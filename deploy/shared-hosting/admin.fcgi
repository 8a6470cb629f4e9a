#!/bin/sh
# mod_fcgid starts this for the control plane (/admin/): antigw-admin on the
# listening socket mod_fcgid passed as fd 0, one request at a time (-t 1),
# on the same configuration and database as antigw.fcgi (ANTIGW_HOME there).
here=$(cd "$(dirname "$0")" && pwd)
home=${ANTIGW_HOME:-$(dirname "$here")/antigateway}
exec "$home/bin/antigw-admin" -c "$home/antigw.cfg" -t 1
