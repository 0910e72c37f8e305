//! Drives the real V2Ray binary for interop tests and benchmarks.
