//! TODO: elf.
