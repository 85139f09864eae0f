//! Model updates as flat `f32` vectors and their canonical byte encodings.
//!
//! A [`Tensor`] only ever holds finite values. On the wire it is one of two formats, both
//! starting with a one-byte tag and the element count as a little-endian `u32`:
//!
//! ```text
//! F32:   0x01 | count: u32 | count x f32 (little-endian)
//! Int8:  0x02 | count: u32 | block: u32 | ceil(count/block) x f32 scale | count x i8
//! ```
//!
//! In the `Int8` form each block of `block` consecutive values shares one scale
//! `s = max|x| / 127` (one float step smaller where `127 * s` would overflow); a value is
//! stored as `q = round(x / s)` in `-127..=127` and decodes to `q * s`, so the error per
//! value is at most `s / 2`. With the default block of 256 an
//! entry is 3.9x smaller than `F32`. Decoding checks the tag, the count against the length
//! the caller expects (before allocating), the exact byte length, the block size, that every
//! scale is finite and non-negative, that no quantised value is `-128`, and that every
//! decoded value is finite. Encoding is a pure function of the values, so equal tensors have
//! equal bytes and [`Tensor::canonical_bytes`] can be hashed and signed.

use thiserror::Error;

/// Tag byte of the little-endian `f32` format.
pub const TAG_F32: u8 = 0x01;
/// Tag byte of the block-quantised `int8` format.
pub const TAG_INT8: u8 = 0x02;
/// Block length used by [`Encoding::int8`].
pub const DEFAULT_INT8_BLOCK: u32 = 256;
/// Largest accepted int8 block length.
pub const MAX_INT8_BLOCK: u32 = 1 << 16;

const HEADER: usize = 5;

/// How a tensor is laid out in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Little-endian IEEE-754 `f32`, 4 bytes per value, lossless.
    F32,
    /// Symmetric `int8` quantisation with one `f32` scale per `block` values.
    Int8 {
        /// Values per scale, `1..=MAX_INT8_BLOCK`.
        block: u32,
    },
}

impl Encoding {
    /// `Int8` with the default block length.
    pub const fn int8() -> Self {
        Encoding::Int8 {
            block: DEFAULT_INT8_BLOCK,
        }
    }

    /// Exact encoded size in bytes of a tensor with `len` values, saturating at
    /// `usize::MAX` (a size no input has, so decoding such a count reports it truncated;
    /// on 32-bit targets a `u32` count can reach it).
    pub fn encoded_len(self, len: usize) -> usize {
        match self {
            Encoding::F32 => len.saturating_mul(4).saturating_add(HEADER),
            Encoding::Int8 { block } => len
                .div_ceil(block.max(1) as usize)
                .saturating_mul(4)
                .saturating_add(len)
                .saturating_add(HEADER + 4),
        }
    }
}

/// Why bytes could not be decoded into a [`Tensor`], or values not accepted as one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// Fewer bytes than the header or the declared contents need.
    #[error("tensor bytes truncated: need {needed} bytes, found {found}")]
    Truncated {
        /// Bytes the declared contents need.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// More bytes than the declared contents.
    #[error("tensor bytes have {extra} trailing bytes after the declared contents")]
    TrailingBytes {
        /// Bytes after the end of the contents.
        extra: usize,
    },
    /// The first byte is not a known format tag.
    #[error("unknown tensor format tag 0x{0:02x} (expected 0x01 f32 or 0x02 int8)")]
    UnknownFormat(u8),
    /// The element count differs from what the caller (the task's model shape) expects.
    #[error("tensor has {found} values but the model has {expected} parameters")]
    LengthMismatch {
        /// Parameters the model has.
        expected: usize,
        /// Values the bytes declare.
        found: usize,
    },
    /// A value is NaN or infinite.
    #[error("tensor value at index {index} is not finite")]
    NonFinite {
        /// Index of the first non-finite value.
        index: usize,
    },
    /// The int8 block length is zero or above [`MAX_INT8_BLOCK`].
    #[error("int8 block length {0} is outside 1..=65536")]
    InvalidBlock(u32),
    /// An int8 block scale is negative, NaN or infinite.
    #[error("int8 scale of block {block} is not a finite non-negative number")]
    InvalidScale {
        /// Index of the block.
        block: usize,
    },
    /// An int8 value is -128, which the symmetric encoding never produces.
    #[error("int8 value at index {index} is -128, outside the symmetric range -127..=127")]
    QuantOutOfRange {
        /// Index of the value.
        index: usize,
    },
    /// The tensor has more values than a `u32` count can describe.
    #[error("tensor of {0} values is too large to encode")]
    TooLarge(usize),
}

/// A model update or model: a non-empty or empty vector of finite `f32` values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tensor(Vec<f32>);

impl Tensor {
    /// Wraps `values`, rejecting the first non-finite one.
    pub fn new(values: Vec<f32>) -> Result<Self, CodecError> {
        check_finite(&values)?;
        Ok(Tensor(values))
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The values, by move.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the tensor has no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical lossless encoding ([`Encoding::F32`]), the form that is hashed and signed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.encode(Encoding::F32)
            .expect("a Tensor never exceeds u32::MAX values on the platforms we build for")
    }

    /// Encodes the tensor; fails only for more than `u32::MAX` values or an invalid block.
    pub fn encode(&self, encoding: Encoding) -> Result<Vec<u8>, CodecError> {
        let count = u32::try_from(self.0.len()).map_err(|_| CodecError::TooLarge(self.0.len()))?;
        let mut out = Vec::with_capacity(encoding.encoded_len(self.0.len()));
        match encoding {
            Encoding::F32 => {
                out.push(TAG_F32);
                out.extend_from_slice(&count.to_le_bytes());
                for v in &self.0 {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Encoding::Int8 { block } => {
                check_block(block)?;
                out.push(TAG_INT8);
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(&block.to_le_bytes());
                let blocks = self.0.chunks(block as usize);
                let scales: Vec<f32> = blocks.clone().map(int8_scale).collect();
                for s in &scales {
                    out.extend_from_slice(&s.to_le_bytes());
                }
                for (chunk, &scale) in blocks.zip(&scales) {
                    out.extend(chunk.iter().map(|&v| quantise(v, scale) as u8));
                }
            }
        }
        Ok(out)
    }

    /// Decodes bytes in either format, requiring exactly `expected_len` values.
    ///
    /// The count is checked before anything is allocated, so hostile input cannot make
    /// the decoder allocate more than the caller's model size.
    pub fn decode(bytes: &[u8], expected_len: usize) -> Result<Self, CodecError> {
        let header = bytes.get(..HEADER).ok_or(CodecError::Truncated {
            needed: HEADER,
            found: bytes.len(),
        })?;
        let tag = header[0];
        let count = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if tag != TAG_F32 && tag != TAG_INT8 {
            return Err(CodecError::UnknownFormat(tag));
        }
        if count != expected_len {
            return Err(CodecError::LengthMismatch {
                expected: expected_len,
                found: count,
            });
        }
        let body = &bytes[HEADER..];
        let values = if tag == TAG_F32 {
            exact_len(bytes.len(), Encoding::F32.encoded_len(count))?;
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<_>>()
        } else {
            let block_bytes = body.get(..4).ok_or(CodecError::Truncated {
                needed: HEADER + 4,
                found: bytes.len(),
            })?;
            let block = u32::from_le_bytes([
                block_bytes[0],
                block_bytes[1],
                block_bytes[2],
                block_bytes[3],
            ]);
            check_block(block)?;
            exact_len(bytes.len(), Encoding::Int8 { block }.encoded_len(count))?;
            let n_blocks = count.div_ceil(block as usize);
            let (scale_bytes, quants) = body[4..].split_at(4 * n_blocks);
            let mut values = Vec::with_capacity(count);
            for (b, (sb, qs)) in scale_bytes
                .chunks_exact(4)
                .zip(quants.chunks(block as usize))
                .enumerate()
            {
                let scale = f32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]);
                if !scale.is_finite() || scale < 0.0 {
                    return Err(CodecError::InvalidScale { block: b });
                }
                for &q in qs {
                    let q = q as i8;
                    if q == i8::MIN {
                        return Err(CodecError::QuantOutOfRange {
                            index: values.len(),
                        });
                    }
                    values.push(f32::from(q) * scale);
                }
            }
            values
        };
        check_finite(&values)?;
        Ok(Tensor(values))
    }
}

impl From<Tensor> for Vec<f32> {
    fn from(t: Tensor) -> Self {
        t.0
    }
}

impl AsRef<[f32]> for Tensor {
    fn as_ref(&self) -> &[f32] {
        &self.0
    }
}

/// The format an encoded tensor uses, read from its tag, without decoding it.
pub fn peek_encoding(bytes: &[u8]) -> Result<Encoding, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Truncated {
            needed: HEADER,
            found: 0,
        }),
        Some(&TAG_F32) => Ok(Encoding::F32),
        Some(&TAG_INT8) => {
            let b = bytes.get(HEADER..HEADER + 4).ok_or(CodecError::Truncated {
                needed: HEADER + 4,
                found: bytes.len(),
            })?;
            Ok(Encoding::Int8 {
                block: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            })
        }
        Some(&t) => Err(CodecError::UnknownFormat(t)),
    }
}

/// Index of the first non-finite value, as an error.
pub fn check_finite(values: &[f32]) -> Result<(), CodecError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(CodecError::NonFinite { index }),
        None => Ok(()),
    }
}

fn check_block(block: u32) -> Result<(), CodecError> {
    if block == 0 || block > MAX_INT8_BLOCK {
        Err(CodecError::InvalidBlock(block))
    } else {
        Ok(())
    }
}

fn exact_len(found: usize, needed: usize) -> Result<(), CodecError> {
    match found.cmp(&needed) {
        std::cmp::Ordering::Less => Err(CodecError::Truncated { needed, found }),
        std::cmp::Ordering::Greater => Err(CodecError::TrailingBytes {
            extra: found - needed,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn int8_scale(block: &[f32]) -> f32 {
    let mut scale = block.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
    // Near f32::MAX the rounded scale can make 127 * scale overflow; the next smaller
    // scale (one step is always enough) keeps every decoded value finite.
    while !(scale * 127.0).is_finite() {
        scale = f32::from_bits(scale.to_bits() - 1);
    }
    scale
}

fn quantise(v: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        0
    } else {
        (v / scale).round().clamp(-127.0, 127.0) as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trip_is_lossless_and_has_documented_layout() {
        let t = Tensor::new(vec![1.0, -2.5, 0.0]).unwrap();
        let bytes = t.encode(Encoding::F32).unwrap();
        assert_eq!(bytes[0], TAG_F32);
        assert_eq!(&bytes[1..5], &3u32.to_le_bytes());
        assert_eq!(&bytes[5..9], &1.0f32.to_le_bytes());
        assert_eq!(bytes.len(), Encoding::F32.encoded_len(3));
        assert_eq!(Tensor::decode(&bytes, 3).unwrap(), t);
        assert_eq!(t.canonical_bytes(), bytes);
    }

    #[test]
    fn int8_quantises_per_block_with_hand_checked_values() {
        // block 2: [1.27, -0.64] has scale 0.01 -> q = [127, -64];
        // [0, 0] has scale 0 -> q = [0, 0]; [5] has scale 5/127 -> q = [127].
        let t = Tensor::new(vec![1.27, -0.64, 0.0, 0.0, 5.0]).unwrap();
        let bytes = t.encode(Encoding::Int8 { block: 2 }).unwrap();
        assert_eq!(bytes.len(), Encoding::Int8 { block: 2 }.encoded_len(5));
        assert_eq!(bytes.len(), 5 + 4 + 3 * 4 + 5);
        let quants = &bytes[bytes.len() - 5..];
        assert_eq!(quants, &[127u8, (-64i8) as u8, 0, 0, 127]);
        let back = Tensor::decode(&bytes, 5).unwrap();
        for (a, b) in t.as_slice().iter().zip(back.as_slice()) {
            assert!((a - b).abs() <= 0.0051, "{a} vs {b}");
        }
        assert_eq!(back.as_slice()[4], 5.0);
    }

    #[test]
    fn int8_is_four_times_smaller_at_scale() {
        let n = 1_000_000;
        let f32_len = Encoding::F32.encoded_len(n);
        let q_len = Encoding::int8().encoded_len(n);
        assert!(f32_len as f64 / q_len as f64 > 3.9);
        assert!(q_len < 4_000_000 / 3);
    }

    #[test]
    fn rejects_non_finite_values() {
        assert_eq!(
            Tensor::new(vec![0.0, f32::NAN]),
            Err(CodecError::NonFinite { index: 1 })
        );
        let mut bytes = Tensor::new(vec![0.0, 1.0]).unwrap().canonical_bytes();
        bytes[9..13].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert_eq!(
            Tensor::decode(&bytes, 2),
            Err(CodecError::NonFinite { index: 1 })
        );
    }

    #[test]
    fn rejects_wrong_length_before_allocating() {
        let bytes = [TAG_F32, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Tensor::decode(&bytes, 10),
            Err(CodecError::LengthMismatch {
                expected: 10,
                found: u32::MAX as usize
            })
        );
    }

    #[test]
    fn rejects_truncated_trailing_and_unknown_bytes() {
        let bytes = Tensor::new(vec![1.0, 2.0]).unwrap().canonical_bytes();
        assert_eq!(
            Tensor::decode(&bytes[..8], 2),
            Err(CodecError::Truncated {
                needed: 13,
                found: 8
            })
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Tensor::decode(&longer, 2),
            Err(CodecError::TrailingBytes { extra: 1 })
        );
        let mut unknown = bytes;
        unknown[0] = 7;
        assert_eq!(
            Tensor::decode(&unknown, 2),
            Err(CodecError::UnknownFormat(7))
        );
        assert!(Tensor::decode(&[], 0).is_err());
    }

    #[test]
    fn rejects_bad_int8_block_scale_and_minus_128() {
        let t = Tensor::new(vec![1.0, -1.0, 0.5]).unwrap();
        let good = t.encode(Encoding::Int8 { block: 2 }).unwrap();
        let mut bad_block = good.clone();
        bad_block[5..9].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            Tensor::decode(&bad_block, 3),
            Err(CodecError::InvalidBlock(0))
        );
        let mut bad_scale = good.clone();
        bad_scale[13..17].copy_from_slice(&(-1.0f32).to_le_bytes());
        assert_eq!(
            Tensor::decode(&bad_scale, 3),
            Err(CodecError::InvalidScale { block: 1 })
        );
        let mut nan_scale = good.clone();
        nan_scale[9..13].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(
            Tensor::decode(&nan_scale, 3),
            Err(CodecError::InvalidScale { block: 0 })
        );
        let mut min = good;
        let last = min.len() - 1;
        min[last] = 0x80;
        assert_eq!(
            Tensor::decode(&min, 3),
            Err(CodecError::QuantOutOfRange { index: 2 })
        );
        assert_eq!(
            t.encode(Encoding::Int8 { block: 0 }),
            Err(CodecError::InvalidBlock(0))
        );
    }

    #[test]
    fn int8_overflowing_scale_decodes_as_non_finite() {
        let mut bytes = vec![TAG_INT8];
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&f32::MAX.to_le_bytes());
        bytes.push(127);
        assert_eq!(
            Tensor::decode(&bytes, 1),
            Err(CodecError::NonFinite { index: 0 })
        );
    }

    #[test]
    fn encoded_len_saturates_instead_of_overflowing() {
        // Found by fuzzing: `4 * len` overflowed (a panic with overflow checks, a wrong
        // size without). On 32-bit targets a declared u32 count gets there, and a wrapped
        // size could have matched a short input.
        assert_eq!(Encoding::F32.encoded_len(usize::MAX / 2), usize::MAX);
        assert_eq!(
            Encoding::Int8 { block: 1 }.encoded_len(usize::MAX),
            usize::MAX
        );
        assert_eq!(
            Encoding::Int8 { block: 0 }.encoded_len(usize::MAX - 3),
            usize::MAX
        );
        assert_eq!(
            Encoding::Int8 { block: 2 }.encoded_len(5),
            5 + 4 + 3 * 4 + 5
        );
    }

    #[test]
    fn int8_encoding_of_values_near_f32_max_decodes() {
        // Found by fuzzing: the scale max/127 rounded up, so 127 * scale overflowed to
        // infinity and decoding rejected what encoding produced from finite values.
        for big in [f32::MAX, -f32::MAX, f32::MAX * 0.99999] {
            let t = Tensor::new(vec![big, 1.0, -big / 3.0]).unwrap();
            for block in [1, 2, 256] {
                let bytes = t.encode(Encoding::Int8 { block }).unwrap();
                let back = Tensor::decode(&bytes, 3).unwrap();
                let err = (f64::from(back.as_slice()[0]) - f64::from(big)).abs();
                assert!(err <= f64::from(big.abs()) * 1e-6, "{big} -> {back:?}");
            }
        }
    }

    #[test]
    fn peek_reports_the_format() {
        let t = Tensor::new(vec![1.0; 3]).unwrap();
        assert_eq!(peek_encoding(&t.canonical_bytes()), Ok(Encoding::F32));
        let q = t.encode(Encoding::Int8 { block: 8 }).unwrap();
        assert_eq!(peek_encoding(&q), Ok(Encoding::Int8 { block: 8 }));
    }
}
