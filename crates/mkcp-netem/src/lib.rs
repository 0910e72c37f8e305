//! User-space link emulator on real UDP sockets (delay, jitter, loss, duplication, reordering, bandwidth).
