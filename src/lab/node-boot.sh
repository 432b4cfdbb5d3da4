#!/bin/bash
# Boots one lab node as a real host: systemd is PID 1 of the node's own PID, mount, UTS and cgroup namespaces,
# inside its network namespace, over the machine's /usr with the node's own /etc, /var parts, /home, /run, /tmp,
# /dev and cgroups. Killing that PID 1 ends every process of the node, containers included.
# The units systemd starts are the lab's (src/lab/units.rs wrote them into the node's /etc layer).
# Args: NODE_DIR HOSTNAME BACKEND(ovs|linux) CGROUP(relative path, made by the lab in every hierarchy)
#   or: --ready NODE_DIR UNIT... (the node's lab-ready.service, once multi-user.target is reached)
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The node finished booting when the units the lab needs are active; the lab waits for one of these files.
if [ "${1:-}" = --ready ]; then
  node=$2
  shift 2
  exec >>"$node/boot.log" 2>&1
  systemctl --failed --no-legend --plain
  bad=
  for u in "$@"; do systemctl is-active -q "$u" || bad="$bad $u"; done
  if [ -n "$bad" ]; then
    for u in $bad; do journalctl -b -u "$u" -n 15 --no-pager; done
    echo "failed:$bad" | tee "$node/failed"
    exit 1
  fi
  echo "ready $(date +%T.%N)"
  touch "$node/ready"
  exit 0
fi

node=$1 name=$2 backend=$3 cgroup=$4
exec >>"$node/boot.log" 2>&1

# On the machine: the node's own cgroup in every hierarchy becomes the root of its cgroup namespace, so its
# systemd and docker make their cgroups there, never beside the machine's. Then this script again, as PID 1.
if [ $$ != 1 ]; then
  echo "power on $(date +%T.%N) $name"
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    if [ -e "$h$cgroup/cgroup.procs" ]; then echo $$ > "$h$cgroup/cgroup.procs"; fi
  done
  exec unshare --pid --fork --mount --uts --cgroup --propagation private bash "$0" "$@"
fi

echo "boot $(date +%T.%N) $name"
hostname "$name"

# A private view of the filesystem: the machine's files underneath, every write the node's own.
mount --make-rprivate /
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# cgroup v1, as the machine has it (docker needs the hierarchies, `ip netns exec` would lose them); each mount
# shows the node's own cgroup as its root.
v1=(cpu cpuacct cpuset memory devices freezer blkio pids)
mount -t tmpfs tmpfs /sys/fs/cgroup
mkdir -p "${v1[@]/#//sys/fs/cgroup/}" /sys/fs/cgroup/systemd
for c in "${v1[@]}"; do
  mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
done
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$node/etc,workdir=$node/etc.work" /etc
own=(var/lib/docker var/lib/containerd var/log var/lib/vxmesh var/lib/systemd var/tmp root home)
mkdir -p "${own[@]/#/$node/}" "${own[@]/#//}" "$node/openvswitch"
for d in "${own[@]}"; do
  mount --bind "$node/$d" "/$d"
done
# OVS's database and lock file must not come from the machine's /etc underneath.
mount --bind "$node/openvswitch" /etc/openvswitch

# A private /dev, as containers get: what systemd and its units make there (/dev/log, /dev/initctl, mqueue,
# terminals) must not reach the machine's. The console is a file the lab keeps.
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir -p /dev/net /dev/pts /dev/shm
mknod -m 666 /dev/net/tun c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
: >"$node/console.log"
touch /dev/console
mount --bind "$node/console.log" /dev/console

ip link set lo up
echo "$name" > /etc/hostname
[ -e "$node/etc/machine-id" ] || tr -d - < /proc/sys/kernel/random/uuid > /etc/machine-id
grep -q "[[:space:]]$name\$" /etc/hosts || echo "127.0.1.1 $name" >> /etc/hosts

# The lab's admin is the lab's own in every node, whatever the machine has: an account of that name on the
# machine (its home, keys, shell, a locked password) is replaced in this node's /etc, never kept. A non-root user
# with passwordless sudo, as real fleets are reached (`ssh.user` in the lab's inventory). The password field is
# `*`, not `!`: sshd without PAM refuses accounts whose password is locked, even for key logins.
if [ "$(grep '^vxadmin:' /etc/passwd | cut -d: -f6-7)" != /home/vxadmin:/bin/sh ] ||
  [ "$(grep '^vxadmin:' /etc/shadow | cut -d: -f2)" != '*' ]; then
  if grep -q '^vxadmin:' /etc/passwd; then userdel vxadmin; fi
  if grep -q '^vxadmin:' /etc/group; then group=(-g vxadmin); else group=(-U); fi
  useradd "${group[@]}" -d /home/vxadmin -s /bin/sh -p '*' vxadmin
fi
install -d -o vxadmin -g vxadmin -m 755 /home/vxadmin
mkdir -p /etc/sudoers.d
echo 'vxadmin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vxadmin
chmod 440 /etc/sudoers.d/vxadmin

if [ "$backend" = linux ]; then
  # A host without Open vSwitch: none of its tools answer.
  mount --bind /dev/null /usr/bin/ovs-vsctl
fi

echo "systemd $(date +%T.%N)"
# `container=` tells systemd it runs in a container (no hardware, no kernel command line of its own). cgroup v1
# only, as the machine has it: docker 20.10 needs it, and a hybrid systemd would also use the cgroup v2 root.
exec env -i container=vxmesh-lab PATH="$PATH" /lib/systemd/systemd --show-status=0 \
  systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1
