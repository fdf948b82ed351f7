#!/usr/bin/env bash
# Namespace lab: phones on a LAN bridge behind a NAT router, a provider on the WAN.
#   lab.sh up   PREFIX [PHONES]   builds PREFIX-r (router), PREFIX-p1..pN (phones), PREFIX-w (provider)
#   lab.sh down PREFIX            removes them (safe to call twice)
# Addresses exist only inside these namespaces (dual stack):
#   LAN 10.77.0.0/24 (router 10.77.0.1, phone i = 10.77.0.(10+i)), WAN 203.0.113.0/24 (router .1, provider .10)
#   LAN fd00:77::/64 (router ::1, phone i = ::(10+i)), WAN 2001:db8:113::/64 (router ::1, provider ::10), NAT66 masquerade
set -euo pipefail
cmd=${1:?up|down}; P=${2:?prefix}; N=${3:-2}
R=$P-r; W=$P-w
ex() { ip netns exec "$@"; }
case "$cmd" in
up)
  ip netns add "$R"; ip netns add "$W"
  ex "$R" ip link set lo up; ex "$W" ip link set lo up
  ex "$R" ip link add br0 type bridge
  ex "$R" ip addr add 10.77.0.1/24 dev br0
  ex "$R" ip link set br0 up
  for i in $(seq 1 "$N"); do
    ip netns add "$P-p$i"; ex "$P-p$i" ip link set lo up
    ip link add "$P-l$i" netns "$R" type veth peer name eth0 netns "$P-p$i"
    ex "$R" ip link set "$P-l$i" master br0 up
    ex "$P-p$i" ip addr add "10.77.0.$((10+i))/24" dev eth0
    ex "$P-p$i" ip link set eth0 up
    ex "$P-p$i" ip route add default via 10.77.0.1
    ex "$P-p$i" ip -6 addr add "fd00:77::$((10+i))/64" dev eth0 nodad
    ex "$P-p$i" ip -6 route add default via fd00:77::1
  done
  ip link add wan0 netns "$R" type veth peer name eth0 netns "$W"
  ex "$R" ip addr add 203.0.113.1/24 dev wan0; ex "$R" ip link set wan0 up
  ex "$W" ip addr add 203.0.113.10/24 dev eth0; ex "$W" ip link set eth0 up
  ex "$R" sysctl -qw net.ipv4.ip_forward=1
  ex "$R" iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE
  ex "$R" iptables -P FORWARD DROP
  ex "$R" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ex "$R" iptables -A FORWARD -i br0 -o wan0 -j ACCEPT
  ex "$R" ip -6 addr add fd00:77::1/64 dev br0 nodad
  ex "$R" ip -6 addr add 2001:db8:113::1/64 dev wan0 nodad
  ex "$W" ip -6 addr add 2001:db8:113::10/64 dev eth0 nodad
  ex "$R" sysctl -qw net.ipv6.conf.all.forwarding=1
  ex "$R" ip6tables -t nat -A POSTROUTING -o wan0 -j MASQUERADE
  ex "$R" ip6tables -P FORWARD DROP
  ex "$R" ip6tables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ex "$R" ip6tables -A FORWARD -i br0 -o wan0 -j ACCEPT
  ;;
down)
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$P-(r|w|p[0-9]+)$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" || true
  done
  ;;
*) echo "usage: lab.sh up|down PREFIX [PHONES]" >&2; exit 2;;
esac
