//! A bounds check on an entry's msgpack bytes, run before serde decodes them.
//!
//! Some decoders reserve memory for as many elements as an array declares before reading
//! any of them: holo_hash 0.6.3 does when a hash is written as an array instead of as
//! binary, so six hostile bytes (`0xdd ff ff ff ff` where a hash belongs) made a validator
//! reserve 4 GiB, or trap in wasm. [`check_msgpack`] walks the bytes once, without
//! recursion or allocation, and rejects any declared length that the rest of the input
//! cannot hold: every array element and map key or value takes at least one byte, every
//! string, binary and extension its declared bytes. What passes cannot make a decoder
//! reserve more than the input's size; what fails could never have decoded (rmp-serde
//! rejects input that ends before its declared contents), so valid entries are unaffected.
//! Bytes after the first complete value are not looked at, as the decoder ignores them.

use holochain_serialized_bytes::{SerializedBytes, SerializedBytesError};

/// Checks that every length `bytes` declares fits in the bytes that follow it; the error
/// says what was wrong and where.
pub fn check_msgpack(bytes: &[u8]) -> Result<(), String> {
    let mut pos = 0usize;
    // Values still to read; each needs at least one byte, so this never exceeds the
    // bytes left and cannot overflow.
    let mut pending = 1usize;
    while pending > 0 {
        let left = bytes.len() - pos;
        if pending > left {
            return Err(format!(
                "msgpack declares {pending} more values at byte {pos} but only {left} bytes follow"
            ));
        }
        let marker = bytes[pos];
        pos += 1;
        pending -= 1;
        let (children, skip) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (2 * usize::from(marker & 0x0f), 0),
            0x90..=0x9f => (usize::from(marker & 0x0f), 0),
            0xa0..=0xbf => (0, usize::from(marker & 0x1f)),
            0xc1 => {
                return Err(format!(
                    "msgpack marker 0xc1 (never used) at byte {}",
                    pos - 1
                ))
            }
            0xc4 | 0xd9 => (0, read_len(bytes, &mut pos, 1)?),
            0xc5 | 0xda => (0, read_len(bytes, &mut pos, 2)?),
            0xc6 | 0xdb => (0, read_len(bytes, &mut pos, 4)?),
            // Extensions: the length, then a type byte and the data.
            0xc7 => (0, read_len(bytes, &mut pos, 1)? + 1),
            0xc8 => (0, read_len(bytes, &mut pos, 2)? + 1),
            0xc9 => (0, read_len(bytes, &mut pos, 4)?.saturating_add(1)),
            0xcc | 0xd0 => (0, 1),
            0xcd | 0xd1 => (0, 2),
            0xca | 0xce | 0xd2 => (0, 4),
            0xcb | 0xcf | 0xd3 => (0, 8),
            0xd4 => (0, 2),
            0xd5 => (0, 3),
            0xd6 => (0, 5),
            0xd7 => (0, 9),
            0xd8 => (0, 17),
            0xdc => (read_len(bytes, &mut pos, 2)?, 0),
            0xdd => (read_len(bytes, &mut pos, 4)?, 0),
            0xde => (read_len(bytes, &mut pos, 2)?.saturating_mul(2), 0),
            0xdf => (read_len(bytes, &mut pos, 4)?.saturating_mul(2), 0),
        };
        let left = bytes.len() - pos;
        if skip > left {
            return Err(format!(
                "msgpack value at byte {} declares {skip} bytes but only {left} follow",
                pos - 1
            ));
        }
        pos += skip;
        // Checked against the bytes left at the top of the loop.
        pending = pending.saturating_add(children);
    }
    Ok(())
}

/// Reads a big-endian length of `width` bytes at `pos` and moves past it.
fn read_len(bytes: &[u8], pos: &mut usize, width: usize) -> Result<usize, String> {
    let field = bytes
        .get(*pos..*pos + width)
        .ok_or_else(|| format!("msgpack length at byte {} is truncated", *pos))?;
    *pos += width;
    Ok(field.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b)))
}

/// Decodes an entry of type `T` from its serialized bytes after [`check_msgpack`]: how
/// validation reads every entry, natively callable with arbitrary bytes.
pub fn decode_entry<T>(bytes: SerializedBytes) -> Result<T, String>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    check_msgpack(bytes.bytes())?;
    T::try_from(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UpdateSubmission;
    use holochain_serialized_bytes::UnsafeBytes;

    fn sb(bytes: Vec<u8>) -> SerializedBytes {
        SerializedBytes::from(UnsafeBytes::from(bytes))
    }

    #[test]
    fn accepts_what_the_encoder_writes() {
        let v = crate::ModelEvaluation {
            aggregate: hdi::prelude::ActionHash::from_raw_36(vec![7; 36]),
            round: 3,
            loss: 0.25,
            accuracy: 0.5,
            samples: 9,
            membership: None,
        };
        let bytes = SerializedBytes::try_from(v.clone()).unwrap();
        assert_eq!(check_msgpack(bytes.bytes()), Ok(()));
        assert_eq!(decode_entry::<crate::ModelEvaluation>(bytes), Ok(v));
        // Every scalar and container form, nested.
        let mut all = vec![
            0xdc, 0x00, 23, 0x00, 0xff, 0xc0, 0xc2, 0xc3, 0x81, 0xa1, b'k', 0x01,
        ];
        all.extend([0xc4, 1, 9, 0xc5, 0, 1, 9, 0xc6, 0, 0, 0, 1, 9]);
        all.extend([0xd9, 1, b'x', 0xda, 0, 0, 0xdb, 0, 0, 0, 0]);
        all.extend([0xc7, 1, 5, 9, 0xc8, 0, 0, 5, 0xc9, 0, 0, 0, 0, 5]);
        all.extend([0xcc, 1, 0xcd, 0, 1, 0xce, 0, 0, 0, 1, 0xd0, 1]);
        all.extend([0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xd4, 1, 2]);
        all.extend([0xdc, 0, 1, 0xdd, 0, 0, 0, 0, 0xde, 0, 0]);
        assert_eq!(check_msgpack(&all), Ok(()));
        assert!(check_msgpack(&all[..all.len() - 1]).is_err());
    }

    #[test]
    fn rejects_declared_lengths_beyond_the_input_before_any_decoder_sees_them() {
        // An update submission whose `task` hash is an array claiming u32::MAX elements:
        // holo_hash's decoder reserved that many bytes before reading the first one.
        let mut hostile = vec![0x81, 0xa4];
        hostile.extend_from_slice(b"task");
        hostile.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
        let e = check_msgpack(&hostile).unwrap_err();
        assert!(e.contains("4294967295 more values"), "{e}");
        assert!(decode_entry::<UpdateSubmission>(sb(hostile)).is_err());
        for bytes in [
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            vec![0xc6, 0xff, 0xff, 0xff, 0xff],
            vec![0xc9, 0xff, 0xff, 0xff, 0xff, 1],
            vec![0xdc, 0x00, 0x02, 0x01],
            vec![0x92, 0x01],
            vec![0xc1],
            vec![0xdd, 0x00],
            vec![],
        ] {
            assert!(check_msgpack(&bytes).is_err(), "{bytes:02x?}");
        }
        // Trailing bytes are the decoder's business, as before.
        assert_eq!(check_msgpack(&[0x01, 0xdd]), Ok(()));
    }
}
