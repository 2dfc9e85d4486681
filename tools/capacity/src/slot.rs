//! Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384. The
//! slot is what ElastiCache Serverless limits, so a hot slot is as much a limit as a hot key.

/// The number of slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The slot `key` belongs to, as Redis Cluster computes it.
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The part of `key` that is hashed: the text between the first `{` and the next `}` when that
/// is not empty, else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(len) => &key[open + 1..open + 1 + len],
    }
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the Redis Cluster spec gives.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_spec() {
        // The Redis Cluster specification's check value.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn keys_map_to_the_slots_redis_gives_them() {
        // `CLUSTER KEYSLOT foo` is 12182; `bar` 5061.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
    }

    #[test]
    fn a_hash_tag_decides_the_slot() {
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag, or none closed, hashes the whole key.
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(slot(b"foo{bar"), crc16(b"foo{bar") % SLOTS);
        // Only the first tag counts.
        assert_eq!(slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
    }
}
