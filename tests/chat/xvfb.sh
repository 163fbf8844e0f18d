#!/bin/sh
# Runs a command on a private X server: CI machines have no display. -noreset:
# the test closes its window and opens a new one, and a server reset in between
# would refuse the new connection.
exec xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp -noreset" "$@"
