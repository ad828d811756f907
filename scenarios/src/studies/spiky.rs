//! E5: SGD on a spiky function.
