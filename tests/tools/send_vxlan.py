#!/usr/bin/python3
"""Sends one hand-made VXLAN frame: UDP to DEST:PORT carrying an Ethernet/IPv4/UDP packet for a container.

Used by the firewall tests to prove who can and cannot inject traffic into the mesh.
Usage: send_vxlan.py DEST PORT VNI INNER_DST_MAC INNER_DST_IP INNER_DST_PORT PAYLOAD [SOURCE_IP]
"""
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> None:
    dest, port, vni, mac, ip, dport, payload = sys.argv[1:8]
    source = sys.argv[8] if len(sys.argv) > 8 else ""
    inner_src_ip = socket.inet_aton("172.31.254.1")
    udp = struct.pack("!HHHH", 40000, int(dport), 8 + len(payload), 0) + payload.encode()
    ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, inner_src_ip, socket.inet_aton(ip))
    ip_header = ip_header[:10] + struct.pack("!H", checksum(ip_header)) + ip_header[12:]
    ethernet = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("02000000be01") + b"\x08\x00"
    vxlan = struct.pack("!B3xI", 0x08, int(vni) << 8)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if source:
        sock.bind((source, 0))
    for _ in range(3):
        sock.sendto(vxlan + ethernet + ip_header + udp, (dest, int(port)))


if __name__ == "__main__":
    main()
