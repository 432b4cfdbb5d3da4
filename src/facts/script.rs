//! The facts-gathering script: one POSIX shell script per host, run in one round trip, read-only.

use crate::plan::NodePlan;

use super::text::MARK;

/// Shell that prints every section [`super::HostFacts::parse`] reads. It changes nothing on the host.
pub fn gather_script(node: &NodePlan) -> String {
    let sysctls: Vec<String> = node.sysctls.iter().map(|s| s.key.clone()).collect();
    let offload_devs = [node.veth.switch_end.as_str(), node.veth.docker_end.as_str()];
    format!(
        r#"export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin"
mark() {{ printf '{MARK}%s\n' "$1"; }}
has() {{ command -v "$1" >/dev/null 2>&1; }}
mark os-release
cat /etc/os-release 2>/dev/null
mark tools
for t in ovs-vsctl docker ip iptables iptables-save iptables-restore nft firewall-cmd ethtool sysctl; do
  p=$(command -v "$t" 2>/dev/null) || continue
  case $t in
    ovs-vsctl) v=$(ovs-vsctl --version 2>/dev/null | head -n1) ;;
    docker) v=$(docker version --format '{{{{.Server.Version}}}}' 2>/dev/null) ;;
    ip) v=$(ip -V 2>/dev/null) ;;
    *) v=$("$t" --version 2>/dev/null | head -n1) ;;
  esac
  printf '%s\t%s\t%s\n' "$t" "$p" "$v"
done
if has ovs-vsctl && ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
  mark ovs-bridge
  ovs-vsctl --timeout=5 --format=json --columns=_uuid,name,datapath_type,ports list Bridge
  mark ovs-port
  ovs-vsctl --timeout=5 --format=json --columns=_uuid,name,interfaces,protected list Port
  mark ovs-interface
  ovs-vsctl --timeout=5 --format=json --columns=_uuid,name,type,options,bfd,bfd_status,mtu_request,error list Interface
fi
mark ip-addr
ip -j -d addr show 2>/dev/null
mark ip-route
ip -j route show 2>/dev/null
mark docker-network
has docker && docker network inspect {network} 2>/dev/null | grep -v '^\[\]$'
mark docker-daemon-json
cat /etc/docker/daemon.json 2>/dev/null
mark iptables-save
has iptables-save && iptables-save 2>/dev/null
mark nft
has nft && nft -j list table inet {nft_table} 2>/dev/null
mark firewalld-state
has firewall-cmd && firewall-cmd --state 2>/dev/null
mark firewalld-rich-rules
has firewall-cmd && firewall-cmd --state >/dev/null 2>&1 && firewall-cmd --list-rich-rules 2>/dev/null
mark sysctl
sysctl -e {sysctls} 2>/dev/null
mark tx-offload
for d in {offload_devs}; do
  has ethtool && ethtool -k "$d" 2>/dev/null | sed -n "s/^tx-checksumming:/$d tx-checksumming:/p"
done
mark boot
{boot}mark end
"#,
        network = node.docker.network,
        nft_table = crate::names::NFT_TABLE,
        sysctls = sysctls.join(" "),
        offload_devs = offload_devs.join(" "),
        boot = crate::boot::facts_snippet(),
    )
}
