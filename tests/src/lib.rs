//! Checks that run the lessons and read the book; see `tests/`.
