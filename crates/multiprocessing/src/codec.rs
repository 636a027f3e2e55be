//! How values cross between processes: Python's `pickle`, here serde with bincode.
//!
//! Every message and every task argument is encoded here and nowhere else, so the format can
//! change in one place. A value can cross if it is `Serialize` and `DeserializeOwned`, the
//! Rust counterpart of Python's "must be picklable".
//!
//! # Blocks of bytes
//!
//! serde knows a `Vec<u8>` only as a sequence of `u8`s (giving it an implementation of its own
//! would take specialization, which Rust lacks), so a `Vec<u8>` crosses a byte at a time, each
//! byte a call and, when read, a check against the decoder's limit: ten to a hundred times
//! slower than copying memory. Two ways round that, both with the same encoding as before
//! (the length, then the bytes), so either end may use either type:
//!
//! - A message that *is* a block of bytes (a `Queue<Vec<u8>>`, `send(&vec)`, `send(&vec[..])`)
//!   is recognised here by its type and written as one block, then read back in one
//!   allocation and one copy.
//! - Anywhere else (a field of a struct, an element of a tuple), the type cannot be seen from
//!   here: make the field a [`Bytes`], Python's `bytes`, which serde writes and reads as one
//!   block wherever it sits.

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    let mut buffer = Vec::new();
    encode_into(&mut buffer, value)?;
    Ok(buffer)
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
    if let Some(bytes) = as_block(value) {
        let (length, size) = block_length(bytes.len());
        buffer.reserve(size + bytes.len());
        buffer.extend_from_slice(&length[..size]);
        buffer.extend_from_slice(bytes);
        return Ok(());
    }
    bincode::serde::encode_into_std_write(value, buffer, config())
        .map(drop)
        .map_err(encode_error)
}

/// Encodes `value` as two parts to be sent one after the other, without copying a block of
/// bytes: then `scratch` holds its length and the second part is the block itself; anything
/// else is encoded whole into `scratch`, and the second part is empty.
pub(crate) fn encode_parts<'a, T: Serialize + ?Sized>(
    scratch: &'a mut Vec<u8>,
    value: &'a T,
) -> Result<[&'a [u8]; 2]> {
    if let Some(bytes) = as_block(value) {
        let (length, size) = block_length(bytes.len());
        scratch.clear();
        scratch.extend_from_slice(&length[..size]);
        return Ok([scratch, bytes]);
    }
    encode_into(scratch, value)?;
    Ok([scratch, &[]])
}

/// Decodes a value of type `T` from all of `bytes`.
///
/// # Errors
///
/// [`Error::Decode`] when the bytes are not a `T` or are followed by more bytes: a message
/// is never half-read.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if let Some(block) = Block::<T>::of() {
        let start = block_start(bytes, bytes.len())?;
        return Ok(block.make(bytes[start..].to_vec()));
    }
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
    check_all_read(read, bytes.len())?;
    Ok(value)
}

/// Refuses a message with bytes left after its value.
#[inline]
fn check_all_read(read: usize, size: usize) -> Result<()> {
    if read == size {
        return Ok(());
    }
    Err(Error::Decode {
        message: format!("{} bytes left over after the value", size - read),
    })
}

/// Decodes with claims capped at `LIMIT` bytes.
fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
}

/// A message copied out of where it arrived (a queue's ring, a socket), by [`copy_out`].
pub(crate) enum Copied<T> {
    /// A block of bytes, read straight into its own vector: nothing is left to decode.
    Value(T),
    /// The encoded message, now in the scratch buffer given to [`copy_out`]: [`decode`] it.
    Encoded,
}

/// Copies out a message of `size` bytes, which `append` reads in order: each call adds the
/// next `count` bytes of the message to the end of the vector it is given. A block of bytes
/// goes straight into a vector of its own; anything else into `scratch`, to be decoded later,
/// out of any lock, since decoding runs the `Deserialize` code of the message's type.
///
/// A block's length must be the rest of the message, so nothing is allocated that the
/// message does not hold; when it is not, the message is copied as any other, and decoding
/// it reports the error.
///
/// # Errors
///
/// What `append` returns.
pub(crate) fn copy_out<T>(
    size: usize,
    scratch: &mut Vec<u8>,
    mut append: impl FnMut(&mut Vec<u8>, usize) -> Result<()>,
) -> Result<Copied<T>> {
    scratch.clear();
    let Some(block) = Block::<T>::of() else {
        append(scratch, size)?;
        return Ok(Copied::Encoded);
    };
    append(scratch, size.min(MAX_LENGTH))?;
    let Ok(start) = block_start(scratch, size) else {
        append(scratch, size - scratch.len())?;
        return Ok(Copied::Encoded);
    };
    let mut bytes = Vec::with_capacity(size - start);
    bytes.extend_from_slice(&scratch[start..]);
    append(&mut bytes, size - scratch.len())?;
    Ok(Copied::Value(block.make(bytes)))
}

/// The most bytes a length takes, encoded: a marker, then a `u64`.
const MAX_LENGTH: usize = 9;

/// How a block of `len` bytes starts: its length, encoded as bincode encodes every length.
fn block_length(len: usize) -> ([u8; MAX_LENGTH], usize) {
    let mut length = [0; MAX_LENGTH];
    let size = bincode::serde::encode_into_slice(len as u64, &mut length, config())
        .expect("any u64 fits in nine bytes");
    (length, size)
}

/// Where the bytes of a block start, in a message of `size` bytes that begins with `head`;
/// the length it claims must be the rest of the message, no more, no less.
fn block_start(head: &[u8], size: usize) -> Result<usize> {
    let (claimed, start) =
        bincode::serde::decode_from_slice::<u64, _>(head, config()).map_err(decode_error)?;
    let rest = (size - start) as u64;
    if claimed > rest {
        return Err(Error::Decode {
            message: format!("a block claims {claimed} bytes; {rest} follow"),
        });
    }
    check_all_read(start + claimed as usize, size)?;
    Ok(start)
}

/// The bytes of `value` when it is a block of bytes: a `Vec<u8>`, a [`Bytes`] or a `[u8]`.
fn as_block<T: ?Sized>(value: &T) -> Option<&[u8]> {
    // A block is a vector, three words, or a slice, behind a wide pointer: sizes known at
    // compile time, which spare every other type the checks below.
    let wide = size_of::<*const T>() == size_of::<*const [u8]>();
    if !wide && size_of_val(value) != size_of::<Vec<u8>>() {
        return None;
    }
    let start = (value as *const T).cast::<u8>();
    if is::<T, Vec<u8>>() {
        // SAFETY: `T` is `Vec<u8>`, so `value` points to one.
        Some(unsafe { &*start.cast::<Vec<u8>>() })
    } else if is::<T, Bytes>() {
        // SAFETY: `T` is `Bytes`, so `value` points to one.
        Some(unsafe { &*start.cast::<Bytes>() })
    } else if is::<T, [u8]>() {
        // SAFETY: `T` is `[u8]`: `value` points to its first byte, and its size in bytes is its
        // length.
        Some(unsafe { std::slice::from_raw_parts(start, size_of_val(value)) })
    } else {
        None
    }
}

/// Proof that `T` is a block of bytes that can be decoded straight into place: a `Vec<u8>`
/// or a [`Bytes`].
struct Block<T> {
    wrapped: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> Block<T> {
    /// The proof, if `T` is one.
    fn of() -> Option<Block<T>> {
        // As in `as_block`: a size known at compile time spares most types the checks.
        if size_of::<T>() != size_of::<Vec<u8>>() {
            return None;
        }
        let wrapped = if is::<T, Vec<u8>>() {
            false
        } else if is::<T, Bytes>() {
            true
        } else {
            return None;
        };
        Some(Block {
            wrapped,
            _type: PhantomData,
        })
    }

    /// `bytes` as a `T`.
    fn make(&self, bytes: Vec<u8>) -> T {
        if self.wrapped {
            // SAFETY: `of` found that `T` is `Bytes`.
            unsafe { same_type(Bytes(bytes)) }
        } else {
            // SAFETY: `of` found that `T` is `Vec<u8>`.
            unsafe { same_type(bytes) }
        }
    }
}

/// `value`, moved out as the type `T` it is.
///
/// # Safety
///
/// `T` must be `U`.
unsafe fn same_type<U, T>(value: U) -> T {
    let value = std::mem::ManuallyDrop::new(value);
    // SAFETY: `T` is `U` (the caller says so), so this reads a valid `T`; `ManuallyDrop`
    // keeps the original from being dropped as well.
    unsafe { std::ptr::read((&*value as *const U).cast::<T>()) }
}

/// Whether `T` is `Target`, a type without lifetimes.
///
/// `TypeId::of` asks for `'static` types, and the messages of a queue need not be; but
/// lifetimes are gone by the time code is generated, so a type's id can be had whatever its
/// lifetimes, and they are the one thing it cannot tell apart. A `Target` without any has no
/// look-alike: `T` is `Target` exactly when their ids match. (bincode makes the same check to
/// copy its own `Vec<u8>`s in one go.)
fn is<T: ?Sized, Target: ?Sized + 'static>() -> bool {
    /// Gives the id of the type its implementer stands for.
    trait Identify {
        fn id(&self) -> TypeId
        where
            Self: 'static;
    }
    impl<U: ?Sized> Identify for PhantomData<U> {
        fn id(&self) -> TypeId
        where
            Self: 'static,
        {
            TypeId::of::<U>()
        }
    }
    let marker: &dyn Identify = &PhantomData::<T>;
    // SAFETY: this only widens the lifetime bound of a trait object that holds no data. Its
    // one method reads nothing and returns a `TypeId`, which borrows nothing, so nothing can
    // outlive what it borrows; and lifetimes do not exist in generated code, so the call runs
    // the same code as for a `'static` type.
    let marker: &(dyn Identify + 'static) = unsafe { std::mem::transmute(marker) };
    marker.id() == TypeId::of::<Target>()
}

/// A block of bytes that crosses as one, wherever it sits in a message: Python's `bytes`.
///
/// A `Vec<u8>` inside a larger value crosses a byte at a time (see the [module
/// documentation](self)); a `Bytes` crosses as its length then its bytes, in one copy each
/// way. It encodes exactly as a `Vec<u8>` does, so one end may send a `Vec<u8>` and the other
/// receive a `Bytes`, or the other way round.
///
/// # Example
///
/// ```
/// use multiprocessing::codec::{Bytes, decode, encode};
///
/// let frame = (7_u32, Bytes::from(vec![0xff; 4096]));
/// let (number, pixels): (u32, Bytes) = decode(&encode(&frame)?)?;
/// assert_eq!((number, pixels.len()), (7, 4096));
/// let pixels: Vec<u8> = pixels.into();
/// # Ok::<(), multiprocessing::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        Bytes(bytes)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Vec<u8> {
        bytes.0
    }
}

/// One block: serde's `bytes`.
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

/// One block: the decoder's own vector is taken as it is, after the decoder has checked its
/// length against the message's limit.
impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Bytes, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Takes a block of bytes as serde hands it over.
struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a block of bytes")
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> std::result::Result<Bytes, E> {
        Ok(Bytes(bytes))
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> std::result::Result<Bytes, E> {
        Ok(Bytes(bytes.to_vec()))
    }
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
        let error = decode::<Bytes>(&bytes).unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
        let error = decode::<(Bytes,)>(&bytes).unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
        // A block inside a value is checked against the cap before anything is allocated:
        // 8 MiB claimed in a message of 5 bytes is over it.
        let mut bytes = vec![0xfc];
        bytes.extend_from_slice(&(8u32 << 20).to_le_bytes());
        let error = decode::<(Bytes,)>(&bytes).unwrap_err();
        assert!(error.to_string().contains("LimitExceeded"), "{error}");
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

    #[test]
    fn a_block_of_bytes_encodes_as_bincode_encodes_any_vec_of_u8() {
        for len in [0, 1, 250, 251, 65_535, 65_536, 1 << 20] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            // In a tuple, the vector goes through serde's sequence, byte by byte.
            let slow = encode(&(bytes.clone(),)).unwrap();
            assert_eq!(encode(&bytes).unwrap(), slow);
            assert_eq!(encode(&bytes[..]).unwrap(), slow);
            assert_eq!(encode(&Bytes(bytes.clone())).unwrap(), slow);
            assert_eq!(encode(&(Bytes(bytes.clone()),)).unwrap(), slow);
            assert_eq!(decode::<Vec<u8>>(&slow).unwrap(), bytes);
            assert_eq!(decode::<Bytes>(&slow).unwrap().0, bytes);
            assert_eq!(decode::<(Vec<u8>,)>(&slow).unwrap().0, bytes);
            assert_eq!(decode::<(Bytes,)>(&slow).unwrap().0.0, bytes);
        }
    }

    #[test]
    fn a_block_fills_its_message_exactly() {
        let bytes = encode(&vec![7u8; 10]).unwrap();
        let mut longer = bytes.clone();
        longer.push(0);
        let error = decode::<Vec<u8>>(&longer).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot decode a message: 1 bytes left over after the value"
        );
        let error = decode::<Bytes>(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot decode a message: a block claims 10 bytes; 9 follow"
        );
        assert!(matches!(decode::<Bytes>(&[]), Err(Error::Decode { .. })));
    }

    #[test]
    fn only_blocks_of_bytes_are_taken_for_blocks() {
        assert!(is::<Vec<u8>, Vec<u8>>());
        assert!(is::<[u8], [u8]>());
        assert!(!is::<Vec<i8>, Vec<u8>>());
        assert!(!is::<&[u8], [u8]>());
        assert!(!is::<Box<[u8]>, Vec<u8>>());
        assert!(as_block(&(1u8, 2u8)).is_none());
        assert!(
            as_block(&[1u8, 2]).is_none(),
            "an array is a tuple to serde"
        );
        assert!(as_block(&"text").is_none());
        // Types with lifetimes are told apart from blocks too.
        fn check<'a>(text: &'a str) {
            assert!(!is::<&'a str, Vec<u8>>(), "{text}");
            assert!(as_block(&(text, vec![1u8])).is_none());
        }
        check(&String::from("borrowed"));
    }

    /// Copies `message` out as a queue or a pipe does, a few bytes at a time; returns what
    /// came out and the scratch buffer.
    fn copied<T>(message: &[u8]) -> (Copied<T>, Vec<u8>) {
        let mut scratch = Vec::new();
        let mut rest = message;
        let copied = copy_out(message.len(), &mut scratch, |buffer, count| {
            let (now, later) = rest.split_at(count);
            buffer.extend_from_slice(now);
            rest = later;
            Ok(())
        })
        .unwrap();
        assert!(rest.is_empty(), "the whole message is read");
        (copied, scratch)
    }

    #[test]
    fn copying_out_puts_a_block_in_place_and_leaves_the_rest_to_decode() {
        for len in [0, 3, 300, 70_000] {
            let bytes = vec![9u8; len];
            let message = encode(&bytes).unwrap();
            let (Copied::Value(out), _) = copied::<Vec<u8>>(&message) else {
                panic!("a Vec<u8> is copied into place");
            };
            assert_eq!(out, bytes);
            let (Copied::Value(out), _) = copied::<Bytes>(&message) else {
                panic!("a Bytes is copied into place");
            };
            assert_eq!(out.0, bytes);
            let (Copied::Encoded, scratch) = copied::<(Vec<u8>,)>(&message) else {
                panic!("a tuple is decoded");
            };
            assert_eq!(decode::<(Vec<u8>,)>(&scratch).unwrap().0, bytes);
        }
        // A block whose length is wrong is left to decode, which reports it.
        let mut message = encode(&vec![1u8; 300]).unwrap();
        message.pop();
        let (Copied::Encoded, scratch) = copied::<Vec<u8>>(&message) else {
            panic!("a damaged block is not taken for one");
        };
        assert_eq!(scratch, message);
        assert!(matches!(
            decode::<Vec<u8>>(&scratch),
            Err(Error::Decode { .. })
        ));
    }
}
