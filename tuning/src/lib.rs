//! sluice-tuning: `sluice tune` and `sluice iotune`.
//!
//! Will own: system checks and tuners and the disk probe that writes the
//! io-properties file. Empty until that work is scheduled.
