//! Partition routing: round-robin and murmur3 key hashing.

/// The seed of the partition-key hash. Must match memphis-py (`Memphis.SEED = 31`) and
/// memphis.go; pinned by a test here and one in the Python suite.
pub const PARTITION_KEY_SEED: u32 = 31;

/// MurmurHash3, x86 32-bit variant, as an unsigned 32-bit integer (what `mmh3.hash(key, seed,
/// signed=False)` returns).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k: u32 = 0;
    if tail.len() >= 3 {
        k ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        k ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        k ^= u32::from(tail[0]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The partition for `key` among `partitions` (memphis-py: `partitions[hash % len]`).
/// `None` when the list is empty.
pub fn partition_for_key(key: &[u8], partitions: &[u32]) -> Option<u32> {
    if partitions.is_empty() {
        return None;
    }
    let h = murmur3_x86_32(key, PARTITION_KEY_SEED);
    Some(partitions[(h as usize) % partitions.len()])
}

/// Round-robin over a partition list, starting with its first element, one step per call.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    partitions: Vec<u32>,
    next: usize,
}

impl RoundRobin {
    pub fn new(partitions: Vec<u32>) -> Self {
        RoundRobin {
            partitions,
            next: 0,
        }
    }

    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// The next partition, or `None` for an empty list.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<u32> {
        if self.partitions.is_empty() {
            return None;
        }
        let p = self.partitions[self.next % self.partitions.len()];
        self.next = (self.next + 1) % self.partitions.len();
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vectors from the protocol spec, section 7.5 (verified there against mmh3).
    #[test]
    fn spec_vectors() {
        let cases: [(&str, u32, [usize; 5]); 6] = [
            ("", 1257683291, [1, 2, 3, 1, 1]),
            ("a", 3387765255, [1, 0, 3, 0, 5]),
            ("key", 2580712894, [0, 1, 2, 4, 4]),
            ("user-42", 660284634, [0, 0, 2, 4, 4]),
            ("2ndPartition", 122197930, [0, 1, 2, 0, 0]),
            ("hello", 168865661, [1, 2, 1, 1, 1]),
        ];
        assert_eq!(PARTITION_KEY_SEED, 31);
        for (key, hash, idx) in cases {
            assert_eq!(murmur3_x86_32(key.as_bytes(), 31), hash, "key {key:?}");
            for (n, want) in [2usize, 3, 4, 5, 10].into_iter().zip(idx) {
                let parts: Vec<u32> = (1..=n as u32).collect();
                assert_eq!(
                    partition_for_key(key.as_bytes(), &parts),
                    Some(parts[want]),
                    "key {key:?} n {n}"
                );
            }
        }
    }

    #[test]
    fn round_robin() {
        let mut rr = RoundRobin::new(vec![1, 2, 3]);
        let got: Vec<_> = (0..7).map(|_| rr.next().unwrap()).collect();
        assert_eq!(got, vec![1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(RoundRobin::new(vec![]).next(), None);
        assert_eq!(partition_for_key(b"x", &[]), None);
    }
}
