//! The cluster CIDR cut into node-sized blocks, with the reserved ranges (switch range, excludes) as sorted
//! intervals of block indexes: counting and finding free blocks costs a step per reserved range, never one per block.
//!
//! A /0 cut into /30s is a billion blocks; walking them took minutes. Everything here is arithmetic on the
//! few reserved ranges instead.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Node-sized blocks of a cluster, addressed by index from the cluster's first address.
#[derive(Debug, Clone)]
pub struct BlockSpace {
    base: u32,
    shift: u32,
    count: u32,
    node_prefix: u8,
    /// Half-open `[start, end)` index ranges touched by a reserved range: sorted, disjoint, not adjacent.
    reserved: Vec<(u32, u32)>,
}

impl BlockSpace {
    /// `None` unless `node_prefix` is longer than the cluster's prefix and at most 30 (4 addresses per block).
    pub fn new(cidr: Ipv4Net, node_prefix: u8, reserved: impl IntoIterator<Item = Ipv4Net>) -> Option<Self> {
        if node_prefix <= cidr.prefix_len() || node_prefix > 30 {
            return None;
        }
        let base = u32::from(cidr.network());
        let shift = 32 - u32::from(node_prefix);
        let count = 1u32 << (node_prefix - cidr.prefix_len());
        let mut ranges: Vec<(u32, u32)> = reserved
            .into_iter()
            .filter_map(|r| {
                // Clip to the cluster; a range outside it reserves nothing here.
                let lo = u32::from(r.network()).max(base);
                let hi = u32::from(r.broadcast()).min(u32::from(cidr.broadcast()));
                (lo <= hi).then(|| ((lo - base) >> shift, ((hi - base) >> shift) + 1))
            })
            .collect();
        ranges.sort_unstable();
        Some(BlockSpace { base, shift, count, node_prefix, reserved: merge(ranges) })
    }

    /// How many blocks the cluster has, reserved or not.
    #[cfg(test)]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Blocks no reserved range touches.
    pub fn free_count(&self) -> u32 {
        self.count - self.reserved.iter().map(|(s, e)| e - s).sum::<u32>()
    }

    pub fn subnet(&self, i: u32) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(self.base + (i << self.shift)), self.node_prefix).expect("prefix checked in new")
    }

    /// The index of `s` when it is exactly one block of this space.
    pub fn index_of(&self, s: Ipv4Net) -> Option<u32> {
        let off = u32::from(s.network()).checked_sub(self.base)?;
        let i = off >> self.shift;
        (s.prefix_len() == self.node_prefix && s.addr() == s.network() && i < self.count).then_some(i)
    }

    /// Whether no reserved range touches block `i`.
    pub fn usable(&self, i: u32) -> bool {
        i < self.count && self.reserved_around(i).is_none()
    }

    /// The first block at or after `i` that no reserved range touches.
    pub fn next_usable(&self, i: u32) -> Option<u32> {
        let next = self.reserved_around(i).map_or(i, |(_, end)| end);
        (next < self.count).then_some(next)
    }

    /// The reserved range holding block `i`, if any (binary search: ranges are sorted and disjoint).
    fn reserved_around(&self, i: u32) -> Option<(u32, u32)> {
        let after = self.reserved.partition_point(|(start, _)| *start <= i);
        after.checked_sub(1).map(|k| self.reserved[k]).filter(|(_, end)| i < *end)
    }
}

/// Sorted ranges merged where they overlap or touch, so a jump past one never lands in the next.
fn merge(sorted: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(sorted.len());
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    /// The slow way, block by block: what the arithmetic must agree with.
    fn brute_free(cidr: Ipv4Net, np: u8, reserved: &[Ipv4Net]) -> usize {
        cidr.subnets(np)
            .unwrap()
            .filter(|b| !reserved.iter().any(|r| b.contains(&r.network()) || r.contains(b)))
            .count()
    }

    #[test]
    fn free_count_agrees_with_walking_every_block() {
        let cidr = net("10.0.0.0/16");
        let cases: [&[&str]; 5] = [
            &[],
            &["10.0.255.0/24"],
            &["10.0.4.0/22", "10.0.6.0/24", "10.0.5.128/25", "10.0.7.7/32"],
            &["9.0.0.0/8"],
            &["10.0.0.0/17", "10.0.128.0/17"],
        ];
        for reserved in cases {
            let r: Vec<Ipv4Net> = reserved.iter().map(|s| net(s)).collect();
            for np in [17, 20, 24, 30] {
                let b = BlockSpace::new(cidr, np, r.clone()).unwrap();
                assert_eq!(b.free_count() as usize, brute_free(cidr, np, &r), "{reserved:?} /{np}");
                let walked = (0..b.count()).filter(|i| b.usable(*i)).count();
                assert_eq!(walked, b.free_count() as usize, "{reserved:?} /{np}");
            }
        }
    }

    #[test]
    fn next_usable_jumps_over_reserved_ranges() {
        let b =
            BlockSpace::new(net("10.0.0.0/24"), 28, [net("10.0.0.0/27"), net("10.0.0.32/28"), net("10.0.0.240/28")])
                .unwrap();
        assert_eq!(b.next_usable(0), Some(3));
        assert_eq!(b.next_usable(5), Some(5));
        assert_eq!(b.next_usable(15), None);
        assert_eq!(b.subnet(3), net("10.0.0.48/28"));
    }

    #[test]
    fn index_of_takes_only_whole_blocks_of_the_cluster() {
        let b = BlockSpace::new(net("10.0.0.0/16"), 24, []).unwrap();
        assert_eq!(b.index_of(net("10.0.7.0/24")), Some(7));
        assert_eq!(b.index_of(net("10.0.7.0/25")), None);
        assert_eq!(b.index_of("10.0.7.1/24".parse().unwrap()), None, "host bits set");
        assert_eq!(b.index_of(net("10.1.0.0/24")), None);
        assert_eq!(b.index_of(net("9.0.0.0/24")), None);
    }

    #[test]
    fn the_largest_spaces_are_counted_without_walking() {
        // 2^30 blocks: walking them is minutes; the arithmetic is immediate.
        let b = BlockSpace::new(net("0.0.0.0/0"), 30, [net("10.0.0.0/8"), net("255.255.255.252/30")]).unwrap();
        assert_eq!(b.free_count(), (1 << 30) - (1 << 22) - 1);
        assert_eq!(
            b.next_usable(u32::from(Ipv4Addr::new(10, 0, 0, 0)) >> 2),
            Some(u32::from(Ipv4Addr::new(11, 0, 0, 0)) >> 2)
        );
    }

    #[test]
    fn node_prefix_must_be_longer_than_the_cluster_and_at_most_30() {
        assert!(BlockSpace::new(net("10.0.0.0/30"), 30, []).is_none());
        assert!(BlockSpace::new(net("10.0.0.0/24"), 31, []).is_none());
        assert!(BlockSpace::new(net("10.0.0.0/29"), 30, []).is_some());
    }
}
