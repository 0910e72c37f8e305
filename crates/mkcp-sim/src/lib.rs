//! Deterministic simulated network for mKCP tests (virtual clock, seeded link faults).
