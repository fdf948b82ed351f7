#!/usr/bin/env bash
# Router-pair lab (issue 15): a phone on a LAN switch, two routers A and B with VRRP virtual
# addresses on both sides (keepalived) and a dedicated sync link (conntrackd), the provider on a
# WAN switch. Addresses exist only inside these namespaces.
#   pair.sh up   PREFIX    builds PREFIX-lan, PREFIX-wan (switches), PREFIX-a, PREFIX-b, PREFIX-p1, PREFIX-w
#   pair.sh down PREFIX    removes them (safe to call twice)
# LAN 10.77.0.0/24: VIP .1, A .2, B .3, phone .11. WAN 203.0.113.0/24: VIP .1 (the public address),
# A .2, B .3, provider .10. Sync link 192.168.100.1 (A) / .2 (B). Both routers SNAT to the WAN VIP.
set -euo pipefail
cmd=${1:?up|down}; P=${2:?prefix}
ex() { ip netns exec "$@"; }
case "$cmd" in
up)
  for n in lan wan a b p1 w; do ip netns add "$P-$n"; ex "$P-$n" ip link set lo up; done
  ex "$P-lan" ip link add brl type bridge; ex "$P-lan" ip link set brl up
  ex "$P-wan" ip link add brw type bridge; ex "$P-wan" ip link set brw up
  ip link add "$P-lp1" netns "$P-lan" type veth peer name eth0 netns "$P-p1"
  ex "$P-lan" ip link set "$P-lp1" master brl up
  ex "$P-p1" ip addr add 10.77.0.11/24 dev eth0; ex "$P-p1" ip link set eth0 up; ex "$P-p1" ip route add default via 10.77.0.1
  ip link add "$P-ww" netns "$P-wan" type veth peer name eth0 netns "$P-w"
  ex "$P-wan" ip link set "$P-ww" master brw up
  ex "$P-w" ip addr add 203.0.113.10/24 dev eth0; ex "$P-w" ip link set eth0 up
  i=2
  for r in a b; do
    ip link add "$P-l$r" netns "$P-lan" type veth peer name lan0 netns "$P-$r"
    ex "$P-lan" ip link set "$P-l$r" master brl up
    ip link add "$P-w$r" netns "$P-wan" type veth peer name wan0 netns "$P-$r"
    ex "$P-wan" ip link set "$P-w$r" master brw up
    ex "$P-$r" ip addr add "10.77.0.$i/24" dev lan0; ex "$P-$r" ip link set lan0 up
    ex "$P-$r" ip addr add "203.0.113.$i/24" dev wan0; ex "$P-$r" ip link set wan0 up
    ex "$P-$r" sysctl -qw net.ipv4.ip_forward=1
    # the public address is the WAN VIP on whichever router is master
    ex "$P-$r" iptables -t nat -A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.1
    ex "$P-$r" iptables -P FORWARD DROP
    ex "$P-$r" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    ex "$P-$r" iptables -A FORWARD -i lan0 -o wan0 -j ACCEPT
    i=$((i + 1))
  done
  ip link add sync0 netns "$P-a" type veth peer name sync0 netns "$P-b"
  ex "$P-a" ip addr add 192.168.100.1/24 dev sync0; ex "$P-a" ip link set sync0 up
  ex "$P-b" ip addr add 192.168.100.2/24 dev sync0; ex "$P-b" ip link set sync0 up
  ;;
down)
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$P-(lan|wan|a|b|p1|w)$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" || true
  done
  ;;
*) echo "usage: pair.sh up|down PREFIX" >&2; exit 2;;
esac
