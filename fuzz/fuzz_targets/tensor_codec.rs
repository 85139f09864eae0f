//! The tensor codec (`fl_core::tensor`) on arbitrary bytes. The first byte picks a mode:
//!
//! - 0: decode the rest, expecting the element count its header declares (so hostile
//!   counts reach the length checks); what decodes must re-encode to the same bytes (f32)
//!   or to bytes of the same length that decode again (int8).
//! - 1: decode the rest after a two-byte expected length.
//! - 2: encode the rest, read as `f32` values, in f32 and in int8 with the block the next
//!   two bytes give: decoding must give the values back, exactly (f32) or within half a
//!   quantisation step (int8).
//! - 3: `encoded_len` and `peek_encoding` on arbitrary sizes and bytes.
#![no_main]

use fl_core::tensor::{peek_encoding, CodecError, Encoding, Tensor, MAX_INT8_BLOCK};
use libfuzzer_sys::fuzz_target;

fn check_decoded(bytes: &[u8], expected: usize) {
    let Ok(t) = Tensor::decode(bytes, expected) else {
        return;
    };
    assert_eq!(t.len(), expected);
    assert!(t.as_slice().iter().all(|v| v.is_finite()));
    match peek_encoding(bytes).expect("decoded bytes have a format") {
        Encoding::F32 => assert_eq!(t.encode(Encoding::F32).unwrap(), bytes),
        e @ Encoding::Int8 { .. } => {
            let again = t.encode(e).expect("a decoded block length is valid");
            assert_eq!(again.len(), bytes.len());
            if let Err(err) = Tensor::decode(&again, expected) {
                panic!("re-encoded int8 tensor does not decode: {err}");
            }
        }
    }
}

fn round_trip(values: Vec<f32>, block: u32) {
    let Ok(t) = Tensor::new(values) else {
        return;
    };
    let f32_bytes = t.encode(Encoding::F32).unwrap();
    assert_eq!(f32_bytes, t.canonical_bytes());
    assert_eq!(f32_bytes.len(), Encoding::F32.encoded_len(t.len()));
    assert_eq!(Tensor::decode(&f32_bytes, t.len()).unwrap(), t);
    let encoding = Encoding::Int8 { block };
    let q = match t.encode(encoding) {
        Ok(q) => q,
        Err(CodecError::InvalidBlock(_)) => {
            assert!(block == 0 || block > MAX_INT8_BLOCK);
            return;
        }
        Err(e) => panic!("int8 encoding failed: {e}"),
    };
    assert_eq!(q.len(), encoding.encoded_len(t.len()));
    assert_eq!(peek_encoding(&q), Ok(encoding));
    let back = match Tensor::decode(&q, t.len()) {
        Ok(b) => b,
        Err(e) => panic!("int8 encoding of finite values does not decode: {e}"),
    };
    for (chunk, got) in t
        .as_slice()
        .chunks(block as usize)
        .zip(back.as_slice().chunks(block as usize))
    {
        let max = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let step = f64::from(max) / 127.0;
        for (&x, &y) in chunk.iter().zip(got) {
            let err = (f64::from(x) - f64::from(y)).abs();
            assert!(
                err <= step * 0.5001 + f64::from(max) * 1e-6 + 1e-37,
                "int8 error {err} above half a step {step} (x = {x}, y = {y})"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let count = rest
                .get(1..5)
                .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize);
            check_decoded(rest, count);
        }
        1 => {
            if let Some((n, bytes)) = rest.split_first_chunk::<2>() {
                check_decoded(bytes, usize::from(u16::from_le_bytes(*n)));
            }
        }
        2 => {
            if let Some((b, bytes)) = rest.split_first_chunk::<2>() {
                let values = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                // Mostly small blocks; 0 and values above the maximum must be rejected.
                let block = match u16::from_le_bytes(*b) {
                    0xffff => MAX_INT8_BLOCK + 1,
                    0xfffe => MAX_INT8_BLOCK,
                    b => u32::from(b % 64),
                };
                round_trip(values, block);
            }
        }
        _ => {
            if let Some((n, bytes)) = rest.split_first_chunk::<12>() {
                let len = u64::from_le_bytes(n[..8].try_into().unwrap()) as usize;
                let block = u32::from_le_bytes(n[8..].try_into().unwrap());
                let _ = Encoding::F32.encoded_len(len);
                let _ = Encoding::Int8 { block }.encoded_len(len);
                let _ = peek_encoding(bytes);
            }
        }
    }
});
