#!/usr/bin/env bash
# sip-alg iptables rules: divert SIP to NFQUEUE for the ALG. Touches only its own chain
# (mangle SIPALG and SIPALG_LIMIT) and its jump rules, so `remove` leaves the rest of the firewall as it was.
#
#   sip-alg-rules.sh install [--wan IF[,IF...]] [--ports 5060,5070] [--tls-ports 5061] [--queues A:B] [--fail-closed]
#                            [--source-rate N] [--source-burst N] [--fresh-mark MASK] [--iptables CMD] [--no-ipv6]
#   sip-alg-rules.sh remove  [--wan IF] [--iptables CMD]
#   sip-alg-rules.sh status  [--iptables CMD]
#
# Hooks (netfilter-facts.md §1): LAN→WAN in mangle POSTROUTING -o WAN (after the filter accepted
# it, before SNAT); WAN→LAN in mangle FORWARD -i WAN (after de-NAT, so the private destination is
# visible). Both directions of a flow hash to the same queue (--queue-balance hashes the address
# pair). Default is fail-open: --queue-bypass lets SIP through unchanged when no daemon is bound.
# The jump rules match the SIP ports themselves, so RTP and other UDP never walk the chain.
# SIP over TCP goes to the first queue only (one worker keeps each connection's sequence-number
# state for both directions); of TLS (SIPS) only connection openings are queued, to be counted.
# Fairness before the queue: SIP over UDP first meets SIPALG_LIMIT, a per-source limit in the kernel
# (hashlimit, mode srcip: one bucket per sending address and direction, --source-rate packets/s with
# bursts of --source-burst). What is over the limit is dropped there and counted by the rule's own
# counters (the daemon exports them as sipalg_source_limited_total), so one LAN host flooding junk
# cannot fill a worker's queue and delay the other phones' SIP. 0 turns the limit off.
# Several WAN links (--wan wan0,wan1: a primary line and a backup, one provider per line): one rule
# set with jumps for each, one daemon started with the same list.
# Fresh flows: a SIP/UDP packet whose conntrack entry is not in the table yet (! --ctstatus CONFIRMED:
# the first packet of a new flow, or the next one of a flow whose entry vanished, `conntrack -F`) gets
# the --fresh-mark bits before the queue (default 0x10000000, the daemon's fresh-flow-mark; 0: no
# rule). The daemon then reads that flow's NAT binding from the kernel instead of its cache, and its
# verdict clears the bits again: past the queue the packet carries the mark it came with.
# Works with iptables-nft and iptables-legacy (both speak this syntax).
set -euo pipefail

die() { echo "sip-alg-rules: $*" >&2; exit 2; }
action=${1:-}; shift || true
WAN=wan0; PORTS=5060; TLS_PORTS=5061; QUEUES=0:0; IPV6=1; FAIL_CLOSED=0; IPT=${IPTABLES:-}; SRC_RATE=1000; SRC_BURST=2000; FRESH_MARK=0x10000000
while [ $# -gt 0 ]; do
  case "$1" in
    --wan) WAN=${2:?--wan needs an interface or a comma-separated list}; shift 2;;
    --ports) PORTS=${2:?--ports needs a list}; shift 2;;
    --tls-ports) TLS_PORTS=${2:?--tls-ports needs a list}; shift 2;;
    --queues) QUEUES=${2:?--queues needs A:B}; shift 2;;
    --fail-closed) FAIL_CLOSED=1; shift;;
    --fail-open) FAIL_CLOSED=0; shift;;
    --source-rate) SRC_RATE=${2:?--source-rate needs packets per second}; shift 2;;
    --source-burst) SRC_BURST=${2:?--source-burst needs a packet count}; shift 2;;
    --fresh-mark) FRESH_MARK=${2:?--fresh-mark needs a mark mask}; shift 2;;
    --iptables) IPT=${2:?}; shift 2;;
    --no-ipv6) IPV6=0; shift;;
    *) die "unknown option $1 (allowed: --wan IF[,IF...], --ports LIST, --tls-ports LIST, --queues A:B, --fail-closed, --source-rate N, --source-burst N, --fresh-mark MASK, --iptables CMD, --no-ipv6)";;
  esac
done
IFS=, read -r -a WANS <<< "$WAN"
[ "${#WANS[@]}" -ge 1 ] && [ "${#WANS[@]}" -le 8 ] || die "--wan: '$WAN' must name 1 to 8 interfaces, comma-separated"
for w in "${WANS[@]}"; do
  [[ $w =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die "--wan: '$w' is not an interface name (allowed: interface names, comma-separated: wan0 or wan0,wan1)"
done
[[ $PORTS =~ ^[0-9]{1,5}(,[0-9]{1,5}){0,14}$ ]] || die "--ports: '$PORTS' must be a comma-separated list of up to 15 ports"
[[ $TLS_PORTS =~ ^[0-9]{1,5}(,[0-9]{1,5}){0,14}$ ]] || die "--tls-ports: '$TLS_PORTS' must be a comma-separated list of ports"
TCP_PORTS="$PORTS,$TLS_PORTS"
[ "$(echo "$TCP_PORTS" | tr ',' '\n' | wc -l)" -le 15 ] || die "--ports and --tls-ports: at most 15 ports together (iptables multiport)"
[[ $QUEUES =~ ^([0-9]{1,5})(:([0-9]{1,5}))?$ ]] || die "--queues: '$QUEUES' must be A or A:B"
QA=${BASH_REMATCH[1]}; QB=${BASH_REMATCH[3]:-$QA}
[ "$QB" -ge "$QA" ] || die "--queues: B must be >= A"
[[ $SRC_RATE =~ ^[0-9]{1,6}$ ]] && [ "$SRC_RATE" -le 100000 ] || die "--source-rate: '$SRC_RATE' must be packets per second from 0 (off) to 100000"
[[ $FRESH_MARK =~ ^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$ ]] && [ $((FRESH_MARK)) -le 4294967295 ] || die "--fresh-mark: '$FRESH_MARK' must be 0 (off) or a mark mask up to 0xffffffff, decimal or 0x hexadecimal (the daemon's fresh-flow-mark)"
FRESH_MARK=$(printf '0x%x' $((FRESH_MARK)))
[[ $SRC_BURST =~ ^[0-9]{1,6}$ ]] && [ "$SRC_BURST" -ge 1 ] && [ "$SRC_BURST" -le 100000 ] || die "--source-burst: '$SRC_BURST' must be a packet count from 1 to 100000"
if [ -z "$IPT" ]; then
  if command -v iptables >/dev/null; then IPT=iptables; else die "iptables not found"; fi
fi
# IPv6 (NAT66) gets the same rules from the matching ip6tables, when there is one: iptables-nft ->
# ip6tables-nft, iptables-legacy -> ip6tables-legacy, iptables -> ip6tables; --no-ipv6 leaves it out
IP6T=$(dirname "$IPT")/$(basename "$IPT" | sed 's/^iptables/ip6tables/')
[ "$(dirname "$IPT")" = . ] && IP6T=$(basename "$IPT" | sed 's/^iptables/ip6tables/')
if [ "$IPV6" = 1 ] && [ "$IP6T" != "$IPT" ] && command -v "$IP6T" >/dev/null 2>&1; then TABLES=("$IPT" "$IP6T"); else TABLES=("$IPT"); fi
CHAIN=SIPALG
LIMIT=SIPALG_LIMIT
COMMENT="sip-alg"
if [ "$QA" = "$QB" ]; then QSPEC=(--queue-num "$QA"); else QSPEC=(--queue-balance "$QA:$QB"); fi
TSPEC=(--queue-num "$QA")
[ "$FAIL_CLOSED" = 1 ] || { QSPEC+=(--queue-bypass); TSPEC+=(--queue-bypass); }

JUMPS=()
for w in "${WANS[@]}"; do
  JUMPS+=(
    "POSTROUTING -o $w -p udp -m multiport --ports $PORTS"
    "POSTROUTING -o $w -p tcp -m multiport --ports $TCP_PORTS"
    "FORWARD -i $w -p udp -m multiport --ports $PORTS"
    "FORWARD -i $w -p tcp -m multiport --ports $TCP_PORTS"
  )
done

remove_jumps() {
  # every jump to our chain, whatever WAN it was installed with
  local chain line
  for chain in POSTROUTING FORWARD; do
    while line=$($T -S "$chain" 2>/dev/null | grep -E -- "-j $CHAIN( |\$)" | head -n1) && [ -n "$line" ]; do
      # shellcheck disable=SC2086
      eval "$T ${line/-A /-D }"
    done
  done
}

installed() { $T -S "$CHAIN" >/dev/null 2>&1; }

# per-source limit, one hashlimit table per direction and family (a name is global to the namespace)
limit_rules() {
  local fam=$1
  [ "$SRC_RATE" -gt 0 ] || return 0
  local hl=(-m hashlimit --hashlimit-mode srcip --hashlimit-above "$SRC_RATE/sec" --hashlimit-burst "$SRC_BURST" --hashlimit-htable-expire 10000)
  local w
  # LAN→WAN: leaving by any WAN link (one hashlimit table: a name is one table), then back
  for w in "${WANS[@]}"; do $T -A "$LIMIT" -o "$w" "${hl[@]}" --hashlimit-name "sipalg_out$fam" -m comment --comment "$COMMENT source-limit out" -j DROP; done
  for w in "${WANS[@]}"; do $T -A "$LIMIT" -o "$w" -m comment --comment "$COMMENT" -j RETURN; done
  # WAN→LAN: the rest
  $T -A "$LIMIT" "${hl[@]}" --hashlimit-name "sipalg_in$fam" -m comment --comment "$COMMENT source-limit in" -j DROP
}

rc=0
for ipt in "${TABLES[@]}"; do
T="$ipt -w -t mangle"
case "$action" in
install)
  remove_jumps
  $T -N "$CHAIN" 2>/dev/null || $T -F "$CHAIN"
  $T -N "$LIMIT" 2>/dev/null || $T -F "$LIMIT"
  limit_rules "$([ "$ipt" = "${TABLES[0]}" ] && echo 4 || echo 6)"
  $T -A "$CHAIN" -p udp -m comment --comment "$COMMENT" -j "$LIMIT"
  [ "$((FRESH_MARK))" = 0 ] || $T -A "$CHAIN" -p udp -m conntrack ! --ctstatus CONFIRMED -m comment --comment "$COMMENT fresh flow" -j MARK --set-xmark "$FRESH_MARK/$FRESH_MARK"
  $T -A "$CHAIN" -p udp -m comment --comment "$COMMENT" -j NFQUEUE "${QSPEC[@]}"
  $T -A "$CHAIN" -p tcp -m multiport --ports "$TLS_PORTS" --syn -m comment --comment "$COMMENT tls" -j NFQUEUE "${TSPEC[@]}"
  $T -A "$CHAIN" -p tcp -m multiport --ports "$TLS_PORTS" -m comment --comment "$COMMENT tls" -j RETURN
  $T -A "$CHAIN" -p tcp -m comment --comment "$COMMENT" -j NFQUEUE "${TSPEC[@]}"
  for j in "${JUMPS[@]}"; do
    # shellcheck disable=SC2086
    $T -I $j -m comment --comment "$COMMENT" -j "$CHAIN"
  done
  echo "sip-alg rules installed ($ipt): wan=$WAN ports=$PORTS tls-ports=$TLS_PORTS queues=$QA:$QB (tcp: $QA) $([ "$FAIL_CLOSED" = 1 ] && echo fail-closed || echo fail-open) source-limit=$([ "$SRC_RATE" -gt 0 ] && echo "$SRC_RATE/s burst $SRC_BURST" || echo off) fresh-mark=$FRESH_MARK"
  ;;
remove)
  remove_jumps
  if installed; then $T -F "$CHAIN"; $T -X "$CHAIN"; fi
  if $T -S "$LIMIT" >/dev/null 2>&1; then $T -F "$LIMIT"; $T -X "$LIMIT"; fi
  echo "sip-alg rules removed ($ipt)"
  ;;
status)
  if installed; then
    echo "sip-alg rules: installed ($ipt)"
    $T -S POSTROUTING | grep -E -- "-j $CHAIN( |\$)" || true
    $T -S FORWARD | grep -E -- "-j $CHAIN( |\$)" || true
    $T -S "$CHAIN" | grep -v -- "^-N" || true
    $T -S "$LIMIT" 2>/dev/null | grep -v -- "^-N" || true
  else
    echo "sip-alg rules: not installed ($ipt)"; rc=3
  fi
  ;;
*) die "usage: sip-alg-rules.sh install|remove|status [--wan IF[,IF...]] [--ports LIST] [--tls-ports LIST] [--queues A:B] [--fail-closed] [--source-rate N] [--source-burst N] [--fresh-mark MASK] [--iptables CMD] [--no-ipv6]";;
esac
done
exit $rc
