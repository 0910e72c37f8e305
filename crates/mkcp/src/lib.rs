//! Async (tokio) mKCP transport: `KcpListener`, `KcpStream`.
