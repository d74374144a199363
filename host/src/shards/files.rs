//! Shards and their manifest: JSON lines, a fixed number of rows per shard, zstd at a pinned
//! level on one thread, sha256 of the raw and the compressed bytes, and an RFC 6962 Merkle
//! root over the shards' hashes.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The zstd level of every shard. Part of the format: changing it changes every hash.
pub const ZSTD_LEVEL: i32 = 3;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    pub file: String,
    pub rows: usize,
    /// sha256 of the JSONL bytes.
    pub raw_sha256: String,
    pub raw_bytes: u64,
    /// sha256 of the file as written.
    pub sha256: String,
}

/// Compresses one shard's JSONL; the same bytes in always give the same bytes out.
pub fn compress(raw: &[u8]) -> Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    c.include_checksum(true)?;
    c.include_contentsize(true)?;
    Ok(c.compress(raw)?)
}

/// Writes `rows` (each one JSON line, without its newline) as shards of `per_shard` rows into
/// `dir`, each through a temporary file renamed into place; removes shards a previous run left
/// beyond the new count.
pub fn write_shards(
    dir: &Path,
    rows: &super::rows::ChosenRows,
    per_shard: usize,
) -> Result<Vec<ShardInfo>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut out = Vec::new();
    for (name, range) in rows.shard_plan(per_shard) {
        let raw = shard_raw(rows, range.clone())?;
        out.push(write_one(dir, &name, &raw, range.len())?);
    }
    // Shards of an earlier run here that this one does not write (fewer rows, other splits).
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with("shard-")
            && name.ends_with(".jsonl.zst")
            && !out.iter().any(|s| s.file == name);
        if stale {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(out)
}

/// The JSONL bytes of rows `range`.
pub fn shard_raw(rows: &super::rows::ChosenRows, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    for k in range {
        raw.extend_from_slice(&rows.get(k)?);
        raw.push(b'\n');
    }
    Ok(raw)
}

pub fn write_one(dir: &Path, name: &str, raw: &[u8], rows: usize) -> Result<ShardInfo> {
    let packed = compress(raw)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, &packed).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(ShardInfo {
        file: name.to_string(),
        rows,
        raw_sha256: hex::encode(Sha256::digest(raw)),
        raw_bytes: raw.len() as u64,
        sha256: hex::encode(Sha256::digest(&packed)),
    })
}

/// RFC 6962 Merkle tree hash over `leaves` (each a shard's sha256, as bytes).
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => Sha256::digest([]).into(),
        [one] => {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(one);
            h.finalize().into()
        }
        _ => {
            // The largest power of two smaller than n.
            let k = 1usize << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros());
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(merkle_root(&leaves[..k]));
            h.update(merkle_root(&leaves[k..]));
            h.finalize().into()
        }
    }
}

pub fn merkle_root_hex(shards: &[ShardInfo]) -> Result<String> {
    let leaves = shards
        .iter()
        .map(|s| {
            let v = hex::decode(&s.sha256).context("shard sha256 is not hex")?;
            <[u8; 32]>::try_from(v.as_slice()).context("shard sha256 is not 32 bytes")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(hex::encode(merkle_root(&leaves)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(b: u8) -> [u8; 32] {
        [b; 32]
    }

    fn h(parts: &[&[u8]]) -> [u8; 32] {
        let mut s = Sha256::new();
        for p in parts {
            s.update(p);
        }
        s.finalize().into()
    }

    #[test]
    fn merkle_root_follows_rfc6962() {
        let l = |b| h(&[&[0], &leaf(b)]);
        assert_eq!(merkle_root(&[]), h(&[]));
        assert_eq!(merkle_root(&[leaf(1)]), l(1));
        let ab = h(&[&[1], &l(1), &l(2)]);
        assert_eq!(merkle_root(&[leaf(1), leaf(2)]), ab);
        // Three leaves: the split is at 2, so ((1,2),3).
        assert_eq!(
            merkle_root(&[leaf(1), leaf(2), leaf(3)]),
            h(&[&[1], &ab, &l(3)])
        );
        // Five leaves: ((1,2),(3,4)),5.
        let cd = h(&[&[1], &l(3), &l(4)]);
        let abcd = h(&[&[1], &ab, &cd]);
        assert_eq!(
            merkle_root(&[leaf(1), leaf(2), leaf(3), leaf(4), leaf(5)]),
            h(&[&[1], &abcd, &l(5)])
        );
    }

    #[test]
    fn compression_is_deterministic() {
        let raw: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(compress(&raw).unwrap(), compress(&raw).unwrap());
        assert_eq!(zstd::decode_all(&compress(&raw).unwrap()[..]).unwrap(), raw);
    }
}
