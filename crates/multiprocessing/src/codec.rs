//! How values cross between processes: Python's `pickle`, here serde with bincode.
//!
//! Every message and every task argument is encoded here and nowhere else, so the format can
//! change in one place. A value can cross if it is `Serialize` and `DeserializeOwned`, the
//! Rust counterpart of Python's "must be picklable".

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The bincode configuration every process uses: variable-length integers, little endian.
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` into bytes.
///
/// # Example
///
/// ```
/// use multiprocessing::codec::{decode, encode};
///
/// let bytes = encode(&(25, "doubler".to_string()))?;
/// assert_eq!(decode::<(i32, String)>(&bytes)?, (25, "doubler".to_string()));
/// # Ok::<(), multiprocessing::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Encode`] when the value cannot be encoded (a map with keys serde cannot write, a
/// `Serialize` impl that fails).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config()).map_err(encode_error)
}

/// The encoder's complaint; a `Serialize` impl's own message as it wrote it.
fn encode_error(error: bincode::error::EncodeError) -> Error {
    let message = match error {
        bincode::error::EncodeError::OtherString(message) => message,
        error => error.to_string(),
    };
    Error::Encode { message }
}

/// The decoder's complaint; a `Deserialize` impl's own message as it wrote it.
fn decode_error(error: bincode::error::DecodeError) -> Error {
    let message = match error {
        bincode::error::DecodeError::OtherString(message) => message,
        error => error.to_string(),
    };
    Error::Decode { message }
}

/// Encodes `value` into `buffer`, replacing what it held; reusing one buffer saves an
/// allocation per message.
///
/// # Errors
///
/// As [`encode`].
pub fn encode_into<T: Serialize + ?Sized>(buffer: &mut Vec<u8>, value: &T) -> Result<()> {
    buffer.clear();
    bincode::serde::encode_into_std_write(value, buffer, config())
        .map(drop)
        .map_err(encode_error)
}

/// Decodes a value of type `T` from all of `bytes`.
///
/// # Errors
///
/// [`Error::Decode`] when the bytes are not a `T` or are followed by more bytes: a message
/// is never half-read.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // A damaged or hostile message can claim a string of any length in a few bytes, and
    // bincode allocates what is claimed. Cap the claims at about 64 times the message's own
    // size (a value rarely takes more room in memory than that), in a few steps, since
    // bincode takes its limit as a constant.
    let (value, read) = match bytes.len() {
        0..=0xFFFF => decode_limited::<T, { 1 << 22 }>(bytes),
        0x1_0000..=0xF_FFFF => decode_limited::<T, { 1 << 26 }>(bytes),
        0x10_0000..=0xFF_FFFF => decode_limited::<T, { 1 << 30 }>(bytes),
        _ => decode_limited::<T, { 1 << 36 }>(bytes),
    }
    .map_err(decode_error)?;
    if read != bytes.len() {
        return Err(Error::Decode {
            message: format!("{} bytes left over after the value", bytes.len() - read),
        });
    }
    Ok(value)
}

/// Decodes with claims capped at `LIMIT` bytes.
fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_claimed_length_is_refused_without_allocating_it() {
        // A string that claims 2^60 bytes, in nine bytes: varint marker 0xfd then a u64.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let error = decode::<String>(&bytes).unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
        let error = decode::<Vec<u8>>(&bytes).unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
        // Values that take far more room in memory than encoded still decode.
        let many_empty: Vec<String> = vec![String::new(); 10_000];
        assert_eq!(
            decode::<Vec<String>>(&encode(&many_empty).unwrap()).unwrap(),
            many_empty
        );
    }

    #[test]
    fn round_trips_and_refuses_bad_bytes() {
        let bytes = encode(&vec![1u64, 2, 3]).unwrap();
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), [1, 2, 3]);
        // Too short: the length says three items, only two follow.
        assert!(matches!(
            decode::<Vec<u64>>(&bytes[..bytes.len() - 1]),
            Err(Error::Decode { .. })
        ));
        // Too long: a trailing byte is refused, not ignored.
        let mut longer = bytes.clone();
        longer.push(0);
        let error = decode::<Vec<u64>>(&longer).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot decode a message: 1 bytes left over after the value"
        );
    }
}
