# Sourced by benchmarks that run many lab hosts. Every lab host's neighbours share this machine's one IPv4
# neighbour table (gc_thresh3, 1024 by default, bounds it across namespaces): 30 hosts already need about 1,700
# entries (underlay and sw0 neighbours), and past the bound ARP fails ("neighbor table overflow"), which verify
# reports as switches that do not answer. raise_neigh raises it for the run; call restore_neigh on exit. Real hosts
# each have their own table.
neigh_thresholds=$(sysctl -n net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3 | tr '\n' ' ')
raise_neigh() {
  sysctl -qw net.ipv4.neigh.default.gc_thresh3=65536 net.ipv4.neigh.default.gc_thresh2=32768 net.ipv4.neigh.default.gc_thresh1=4096
}
restore_neigh() {
  local t1 t2 t3
  read -r t1 t2 t3 <<<"$neigh_thresholds"
  sysctl -qw net.ipv4.neigh.default.gc_thresh3="$t3" net.ipv4.neigh.default.gc_thresh2="$t2" net.ipv4.neigh.default.gc_thresh1="$t1"
}
