#!/bin/bash
# Boots one lab node. Runs as PID 1 of the node's own PID, mount and UTS namespaces, inside its network namespace,
# so killing it ends every process of the node, containers included.
# Args: NODE_DIR HOSTNAME UNDERLAY_CIDR GATEWAY LIGHT(0|1) BACKEND(ovs|linux)
set -eu
node=$1 name=$2 addr=$3 gw=$4 light=$5 backend=${6:-ovs}
exec >>"$node/boot.log" 2>&1
echo "boot $(date +%T.%N) $name"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
hostname "$name"

# A private view of the filesystem: the machine's files underneath, every write the node's own.
mount --make-rprivate /
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p /sys/fs/cgroup/$c
  mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$node/etc,workdir=$node/etc.work" /etc
for d in var/lib/docker var/lib/containerd var/log var/lib/vxmesh root; do
  mkdir -p "$node/$d" "/$d"
  mount --bind "$node/$d" "/$d"
done
# OVS's database and lock file must not come from the machine's /etc underneath.
mkdir -p "$node/openvswitch"
mount --bind "$node/openvswitch" /etc/openvswitch
mkdir -p /run/openvswitch /run/sshd /var/log/openvswitch /run/netns

ip link set lo up
if [ "$backend" = ovs ]; then
  # Open vSwitch, with its database kept across reboots like a real host's.
  if [ ! -e /etc/openvswitch/conf.db ]; then
    ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
  fi
  ovsdb-server /etc/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock \
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options --pidfile --detach --log-file
  ovs-vsctl --no-wait init
  ovs-vswitchd --pidfile --detach --log-file

  # The underlay address lives on br-phy, as on OVS-DPDK hosts: the userspace datapath routes tunnels through it.
  ethtool -K eth0 tx off >/dev/null
  # OVS reads eth0 through a packet socket, so the kernel still sees what arrives there and, by default, answers
  # ARP for br-phy's address with eth0's own MAC. Peers' OVS tunnel neighbour caches then keep whichever answer
  # came last; with eth0's, their tunnels to this host never come up (BFD down, pairs failing at random).
  # A real OVS-DPDK host's NIC has no kernel stack. Here: no ARP answers from eth0.
  sysctl -qw net.ipv4.conf.eth0.arp_ignore=8
  ovs-vsctl --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev -- --may-exist add-port br-phy eth0
  ip link set eth0 up
  ip addr replace "$addr" dev br-phy
  ip link set br-phy up
  ip route replace default via "$gw" dev br-phy
else
  # A host without Open vSwitch: no OVS daemon runs and none of its tools answer, the underlay is eth0 itself.
  mount --bind /dev/null /usr/bin/ovs-vsctl
  ip link set eth0 up
  ip addr replace "$addr" dev eth0
  ip route replace default via "$gw" dev eth0
fi

# No systemd here: a stand-in for the systemctl calls hosts get (restart docker, daemon-reload).
mkdir -p "$node/local-sbin"
cat > "$node/local-sbin/systemctl" <<'SHIM'
#!/bin/sh
# vxmesh lab: stands in for systemctl on a host without systemd. Restarts dockerd as its unit would.
alive() { [ -e "/proc/$1" ] && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
case "$1 $2" in
  "restart docker" | "restart docker.service")
    pid=$(cat /run/docker.pid 2>/dev/null)
    if [ -n "$pid" ]; then kill "$pid"; while alive "$pid"; do sleep 0.1; done; fi
    setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 300); do docker info >/dev/null 2>&1 && exit 0; sleep 0.1; done
    echo "lab systemctl: dockerd did not come back" >&2
    exit 1 ;;
  restart*) echo "lab systemctl: cannot restart $2 here" >&2; exit 1 ;;
  *) exit 0 ;;
esac
SHIM
chmod 755 "$node/local-sbin/systemctl"
mount --bind "$node/local-sbin" /usr/local/sbin

# A non-root admin with passwordless sudo, as real fleets are reached (`ssh.user` in the lab's inventory); root
# logs in too, for the tests that inspect hosts. The password field is `*`, not `!`: sshd without PAM refuses
# accounts whose password is locked, even for key logins. sudo looks up the host's own name: it must resolve.
if ! id vxadmin >/dev/null 2>&1; then
  useradd -M -d / -s /bin/sh vxadmin
  usermod -p '*' vxadmin
fi
if [ ! -e /etc/sudoers.d/vxadmin ]; then
  mkdir -p /etc/sudoers.d
  echo 'vxadmin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vxadmin
  chmod 440 /etc/sudoers.d/vxadmin
fi
grep -q "[[:space:]]$name\$" /etc/hosts || echo "127.0.1.1 $name" >> /etc/hosts

/usr/sbin/sshd -f /etc/vxmesh-lab/sshd_config

if [ "$light" = 0 ]; then
  dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up"; exit 1; }
  docker image inspect busybox:latest >/dev/null 2>&1 || docker import "$node/../busybox.tar" busybox:latest >/dev/null
fi

# What was installed on this node to run at boot (units enabled after the lab made it, so in the node's own
# /etc layer; the distribution's daemons were started above): each ExecStart, in order, as systemd would.
for wanted in "$node"/etc/systemd/system/multi-user.target.wants/*.service; do
  [ -e "$wanted" ] || continue
  unit=/etc/systemd/system/multi-user.target.wants/$(basename "$wanted")
  echo "boot unit $unit"
  sed -n 's/^ExecStart=-\{0,1\}//p' "$unit" | while read -r cmd; do
    timeout 120 sh -c "$cmd" || echo "boot unit $unit failed: $cmd"
  done
done

echo "ready $(date +%T.%N)"
touch "$node/ready"
# PID 1 of the node: reap orphans until the node is stopped.
trap 'exit 0' TERM
while :; do sleep 3600 & wait $! || true; done
