//! line-emulator
