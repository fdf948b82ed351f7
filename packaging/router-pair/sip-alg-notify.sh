#!/bin/sh
# keepalived notify for a sip-alg router pair: $3 is MASTER, BACKUP or FAULT
CONNTRACKD="conntrackd -C /etc/conntrackd/conntrackd.conf"
case "$3" in
  MASTER)
    $CONNTRACKD -c   # commit what an external cache would hold (none with DisableExternalCache)
    $CONNTRACKD -f   # flush the caches
    $CONNTRACKD -R   # resync with the kernel table
    $CONNTRACKD -B   # ask the peer for a bulk update
    sip-alg takeover   # sip-alg: the peer's calls are adopted at their next SIP message
    ;;
  BACKUP|FAULT)
    sip-alg standby    # sip-alg: the calls are the peer's now; never delete what conntrackd syncs
    $CONNTRACKD -t   # shorten the kernel timeouts of entries this router no longer forwards
    $CONNTRACKD -n   # request a resync from the master
    ;;
esac

