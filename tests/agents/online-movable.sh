#!/bin/sh
# A memory onlining agent, the way guest agents and udev rules
# (SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable")
# do it: wait for each new memory block and online it Movable. It knows nothing of
# hotplug-lab but where the uevents come from: ROOT/hotplug-lab/events, one
# KEY=value per line, an empty line after each event.
#
# Usage: online-movable.sh ROOT   (ROOT: a `host mount` point; sysfs paths are ROOT/sys/...)
set -u
root=$1
action=
devpath=
while IFS= read -r line; do
    case $line in
        ACTION=*) action=${line#ACTION=} ;;
        DEVPATH=*) devpath=${line#DEVPATH=} ;;
        "")
            state="$root/sys$devpath/state"
            if [ "$action" = add ] && [ "$(cat "$state")" = offline ]; then
                echo online_movable > "$state" || echo "agent: cannot online $devpath" >&2
            fi
            action=
            devpath=
            ;;
    esac
done < "$root/hotplug-lab/events"
